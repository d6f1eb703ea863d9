"""``zoo.process`` on the 100 real lego photos: pose accuracy, wall time, and ngp trained on the
recovered poses against ngp trained on the true poses.

Data: ``../shared/data/real/nerf/lego_800_100views`` (relative to the repository): the 100
NeRF-synthetic lego renders (800 x 800 RGBA, composited on white by ``zoo.process``), their
poses thrown away; ``--every 2`` takes every second one (50 photos). Steps:

1. ``zoo.sfm.process`` registers them at ``--downscale`` (default 2: 400 x 400), one shared
   ``SIMPLE_PINHOLE`` camera (the renders have no distortion), exhaustive matching, the
   ``--mapper`` (default ``global``), the final Cauchy-loss bundle adjustment (off with
   ``--no-refine``), the pose check (:mod:`zoo.sfm.check`: views kept, re-posed, dropped) and
   (with ``--fallback``) the other mapper when views were left out, as zoo.process's
   defaults; wall time of each stage. ``--min-registered 0`` measures what it writes even
   when it would refuse (fewer than half the photos posed).
2. The camera centres written to ``transforms.json`` (kept and re-posed views) are aligned to
   the true ones by a least-squares similarity (Umeyama 1991,
   :func:`zoo.ops.camera_math.similarity_align`); per view: rotation error (the angle of
   ``R_true^T R_align R_est``, degrees) and camera-centre error as a percentage of the true
   camera's distance to the scene centre (4 units); median and max over the views (the
   goal: every view within 1 degree, median < 0.5 degree, centre error < 1 %). A diagnostic
   beside it: the rotation error after aligning the rotations by themselves (with few views
   on a short arc the centres fix the alignment's rotation poorly).
3. ``ngp`` (its CPU default, ``conf/model/ngp.yaml``) trains on views 0-89 for
   ``--train-seconds`` of training wall time, once on the recovered poses (the written
   ``transforms.json``) and once on the true poses written in the same layout (same images,
   same loader and normalisation, same scene box: a cube from the recovered sparse points), at
   ``--train-downscale`` of the processed images (default 4: 100 x 100); the held-out PSNR is
   the mean over views 90-99 of each view's PSNR against the photo.

Prints the tables and writes ``benchmarks/results/process.json`` (``--out``).

    python benchmarks/bench_process.py                      # ~2 min SfM + 2 x train-seconds
    python benchmarks/bench_process.py --downscale 1 --no-train   # poses at 800 px
    python benchmarks/bench_process.py --every 2 --downscale 4 --no-train   # 50 photos, 200 px
    python benchmarks/bench_process.py --work DIR --reuse --train-steps 1000   # equal steps

``--train-steps`` trains both runs for a number of steps instead of seconds (separates the
pose error from load differences on a shared machine).

Timings depend on what else runs on the machine: record the load beside them.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP runtime

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import harness  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from harness import heldout_psnr  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LEGO = REPO / ".." / "shared" / "data" / "real" / "nerf" / "lego_800_100views"


def true_poses(root: Path) -> dict[str, np.ndarray]:
    """``r_<i>.png`` -> true OpenGL camera-to-world (4, 4)."""
    out = {}
    for split in ("train", "test"):
        for f in json.loads((root / f"transforms_{split}.json").read_text())["frames"]:
            out[Path(f["file_path"]).name + ".png"] = np.array(f["transform_matrix"])
    return out


def _errors(e: np.ndarray, t: np.ndarray, fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (deg) and centre (% of camera distance) errors of every view after the
    similarity aligning the centres of the views in ``fit``."""
    from zoo.ops.camera_math import similarity_align

    s, r, tr = similarity_align(e[fit, :3, 3], t[fit, :3, 3])
    centres = s * e[:, :3, 3] @ r.T + tr
    centre_pct = 100 * np.linalg.norm(centres - t[:, :3, 3], axis=1)
    centre_pct /= np.linalg.norm(t[:, :3, 3], axis=1)
    rot = np.einsum("nji,njk->nik", t[:, :3, :3], r @ e[:, :3, :3])
    angle = np.degrees(np.arccos(np.clip((np.trace(rot, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    return angle, centre_pct


def pose_errors(est: dict[str, np.ndarray], true: dict[str, np.ndarray]) -> dict[str, Any]:
    """Rotation (degrees) and centre errors (% of the camera distance) after a similarity
    alignment of all estimated camera centres onto the true ones (the goal's definition), and,
    as a diagnostic, after an alignment refitted on the views within 3x the median centre
    error (at least 1 %): the views outside it are counted as gross errors (e.g. a view
    registered turned by 180 degrees on the lego's near-symmetric sides)."""
    names = sorted(set(est) & set(true))
    e = np.stack([est[n] for n in names])
    t = np.stack([true[n] for n in names])
    angle, centre_pct = _errors(e, t, np.ones(len(names), bool))
    keep = np.ones(len(names), bool)
    for _ in range(5):
        a, c = _errors(e, t, keep)
        keep = c < max(3 * np.median(c), 1.0)
    a, c = _errors(e, t, keep)

    def stats(x: np.ndarray) -> dict[str, float]:
        return {"median": float(np.median(x)), "max": float(x.max())}

    # Diagnostic: the rotations aligned by themselves (the chordal mean of R_true R_est^T
    # projected onto SO(3)); with few views on a short arc the centres fix the similarity's
    # rotation poorly, and this separates that from the rotations' own error.
    u, _, vt = np.linalg.svd(np.einsum("nij,nkj->ik", t[:, :3, :3], e[:, :3, :3]))
    r_rot = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    rel = np.einsum("nji,njk->nik", t[:, :3, :3], r_rot @ e[:, :3, :3])
    rot_only = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))

    return {
        "views": len(names),
        "rotation_deg": stats(angle),
        "centre_pct": stats(centre_pct),
        "worst_view": names[int(np.argmax(angle))],
        "rotation_deg_rotations_aligned": stats(rot_only),
        "robust": {
            "inliers": int(keep.sum()),
            "gross_error_views": [n for n, k in zip(names, keep, strict=True) if not k],
            "gross_rotation_deg": [round(float(x), 1) for x in a[~keep]],
            "rotation_deg": stats(a[keep]),
            "centre_pct": stats(c[keep]),
        },
    }


def train_ngp(transforms: Path, args: argparse.Namespace, box: list[float]) -> dict[str, Any]:
    """ngp's CPU default trained on ``transforms`` (views 0-89) for ``args.train_seconds``."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import zoo.models.ngp  # noqa: F401  (registers the model)
    from zoo.cli_utils import CONF_DIR

    overrides = [
        "model=ngp",
        "data=nerfstudio",
        f"data.path={transforms}",
        f"data.downscale={args.train_downscale}",
        f"data.bbox_min=[{-box[0]},{-box[1]},{-box[2]}]",
        f"data.bbox_max=[{box[0]},{box[1]},{box[2]}]",
        "run_dir=/tmp/bench_process",
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    dm = instantiate(cfg.data, form=model.data_form)
    dm.setup("fit")
    model.configure_from_data(dm.info())
    cameras, images = dm.eval_views("test")
    ds = dm.train_dataset()
    opt_cfg = model.configure_optimizers()
    opt = opt_cfg["optimizer"] if isinstance(opt_cfg, dict) else opt_cfg
    model.train()
    train_s, step = 0.0, 0
    while (step < args.train_steps) if args.train_steps else (train_s < args.train_seconds):
        t0 = time.perf_counter()
        loss, _ = model.train_on_batch(ds[step], step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        train_s += time.perf_counter() - t0
        step += 1
    psnr = heldout_psnr(model, cameras, images)
    return {
        "train_s": round(train_s, 1),
        "steps": step,
        "heldout_psnr": psnr,
        "n_train": len(ds.cameras),
        "n_test": len(cameras),
    }


def write_true_transforms(
    out: Path, true: dict[str, np.ndarray], size: int, held: list[str]
) -> Path:
    """The processed images with their true poses and intrinsics, in the same layout."""
    meta = json.loads((out / "transforms.json").read_text())
    focal = 0.5 * size / math.tan(0.5 * 0.6911112070083618)  # the scenes' camera_angle_x
    frames = []
    for f in meta["frames"]:
        name = Path(f["file_path"]).name
        frames.append({"file_path": f["file_path"], "transform_matrix": true[name].tolist()})
    names = sorted(true, key=lambda n: int(n[2:-4]))
    tm = {
        "camera_model": "PINHOLE",
        "fl_x": focal,
        "fl_y": focal,
        "cx": size / 2,
        "cy": size / 2,
        "w": size,
        "h": size,
        "frames": [fr for n in names for fr in frames if Path(fr["file_path"]).name == n],
        "test_filenames": held,
    }
    path = out / "transforms_true.json"
    path.write_text(json.dumps(tm))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=LEGO)
    ap.add_argument("--downscale", type=int, default=2, help="of the 800 px photos for SfM")
    ap.add_argument("--every", type=int, default=1, help="take every n-th photo (2: 50 photos)")
    ap.add_argument("--camera-model", default="SIMPLE_PINHOLE")
    ap.add_argument("--train-downscale", type=int, default=4, help="of the processed images")
    ap.add_argument("--train-seconds", type=float, default=120.0)
    ap.add_argument("--train-steps", type=int, default=0, help="train steps instead of seconds")
    ap.add_argument("--work", type=Path, default=None, help="output folder (default: temp)")
    ap.add_argument("--reuse", action="store_true", help="reuse --work's scene (no new SfM)")
    ap.add_argument("--no-train", action="store_true", help="pose errors only (no ngp runs)")
    ap.add_argument("--high-quality", action="store_true", help="zoo.process high_quality=true")
    ap.add_argument("--mapper", default="global", choices=["global", "incremental"])
    ap.add_argument("--no-refine", action="store_true", help="zoo.process refine=false")
    ap.add_argument("--fallback", action="store_true", help="zoo.process fallback=true")
    ap.add_argument("--min-pair-matches", type=int, default=30, help="zoo.process's")
    ap.add_argument("--calibrate", action="store_true", help="zoo.process calibrate=true")
    ap.add_argument("--min-registered", type=float, default=0.5, help="zoo.process's")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "process.json")
    args = ap.parse_args()

    from zoo.sfm import process

    data = args.data.resolve()
    true = {n: p for n, p in true_poses(data).items() if int(n[2:-4]) % args.every == 0}
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_process_"))
    photos = work / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for name in true:
        split = "train" if int(name[2:-4]) < 90 else "test"
        link = photos / name
        if not link.exists():
            link.symlink_to(data / split / name)
    load_before = os.getloadavg()
    if args.reuse:
        from zoo.sfm import ProcessResult

        frames = json.loads((work / "scene" / "transforms.json").read_text())["frames"]
        reg = [Path(f["file_path"]).name for f in frames]
        rec_path = work / "scene" / "process.json"
        rec = json.loads(rec_path.read_text()) if rec_path.is_file() else {}
        result = ProcessResult(
            work / "scene",
            reg,
            sorted(set(true) - set(reg)),
            rec.get("num_points", -1),
            rec.get("times_s", {}),
        )
    else:
        result = process(
            photos,
            work / "scene",
            camera_model=args.camera_model,
            downscale=args.downscale,
            overwrite=True,
            high_quality=args.high_quality,
            mapper=args.mapper,
            refine=not args.no_refine,
            fallback=args.fallback,
            min_registered=args.min_registered,
            calibrate=args.calibrate,
            min_pair_matches=args.min_pair_matches,
        )
    meta = json.loads((work / "scene" / "transforms.json").read_text())
    est = {Path(f["file_path"]).name: np.array(f["transform_matrix"]) for f in meta["frames"]}
    errors = pose_errors(est, true)
    size = 800 // args.downscale
    print(f"\nregistered {len(result.registered)} of {len(true)} photos at {size} px")
    if result.unregistered:
        print(f"not registered: {', '.join(result.unregistered)}")
    if result.summary.get("notes"):
        print("\n".join(result.summary["notes"]))
        info = result.summary
        print(
            f"kept {len(info['kept'])}, re-posed {len(info['reposed'])}, "
            f"dropped {len(info['dropped'])} (mapper {info['mapper']})"
        )
    print(f"{'':24} {'median':>8} {'max':>8}")
    for key, unit in (("rotation_deg", "rotation error (deg)"), ("centre_pct", "centre error (%)")):
        print(f"{unit:24} {errors[key]['median']:8.3f} {errors[key]['max']:8.3f}")
    rob = errors["robust"]
    print(
        f"robust alignment on {rob['inliers']} views: rotation {rob['rotation_deg']['median']:.3f}"
        f" / {rob['rotation_deg']['max']:.3f} deg, centre {rob['centre_pct']['median']:.3f} / "
        f"{rob['centre_pct']['max']:.3f} %; gross errors: {rob['gross_error_views']} "
        f"{rob['gross_rotation_deg']}"
    )
    rot_only = errors["rotation_deg_rotations_aligned"]
    print(f"rotations aligned by themselves: {rot_only['median']:.3f} / {rot_only['max']:.3f} deg")
    print("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.times.items()))
    report = {
        "data": str(data),
        "sfm_resolution": 800 // args.downscale,
        "camera_model": args.camera_model,
        "high_quality": args.high_quality,
        "mapper": args.mapper,
        "refine": not args.no_refine,
        "registered": len(result.registered),
        "unregistered": result.unregistered,
        "every": args.every,
        "fallback": args.fallback,
        "calibrate": args.calibrate,
        "min_pair_matches": args.min_pair_matches,
        "mapper_used": result.summary.get("mapper"),
        "kept": len(result.summary.get("kept", [])),
        "reposed": result.summary.get("reposed"),
        "dropped": result.summary.get("dropped"),
        "num_points": result.num_points,
        "pose_errors": errors,
        "wall_time_s": {k: round(v, 1) for k, v in result.times.items()},
        "machine": harness.machine_record(load_before),
        "command": "python benchmarks/bench_process.py "
        f"--every {args.every} --downscale {args.downscale} --train-seconds {args.train_seconds:g}"
        + (f" --train-steps {args.train_steps}" if args.train_steps else "")
        + (" --high-quality" if args.high_quality else "")
        + f" --mapper {args.mapper}"
        + (" --no-refine" if args.no_refine else "")
        + (" --fallback" if args.fallback else "")
        + (" --calibrate" if args.calibrate else "")
        + f" --min-pair-matches {args.min_pair_matches}"
        + f" --min-registered {args.min_registered:g}",
    }
    if args.no_train:
        report["machine"]["loadavg_after"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
        return

    # ngp on recovered vs true poses: views 90-99 held out in both.
    held = [f"images/r_{i}.png" for i in range(90, 100)]
    meta["test_filenames"] = [h for h in held if Path(h).name in est]
    recovered = work / "scene" / "transforms_recovered.json"
    recovered.write_text(json.dumps(meta))
    truth_json = write_true_transforms(
        work / "scene", true, 800 // args.downscale, meta["test_filenames"]
    )
    from zoo.data.formats.nerfstudio import read_point_ply

    pts, _ = read_point_ply(work / "scene" / "sparse_points.ply", "ply")
    half = float(np.percentile(np.abs(pts), 98, axis=0).max() * 1.2)
    box = [half, half, half]
    runs = {}
    for label, path in (("recovered", recovered), ("true", truth_json)):
        budget = f"{args.train_steps} steps" if args.train_steps else f"{args.train_seconds:.0f} s"
        print(f"\nngp on {label} poses, {budget} of training ...", flush=True)
        runs[label] = train_ngp(path, args, box)
        r = runs[label]
        print(f"  {r['steps']} steps, held-out PSNR {r['heldout_psnr']:.2f} dB")
    gap = runs["true"]["heldout_psnr"] - runs["recovered"]["heldout_psnr"]
    print(f"\nheld-out PSNR: recovered {runs['recovered']['heldout_psnr']:.2f} dB, "
          f"true {runs['true']['heldout_psnr']:.2f} dB, gap {gap:.2f} dB")  # fmt: skip
    report["ngp"] = {
        "train_resolution": 800 // args.downscale // args.train_downscale,
        "scene_box_half": half,
        **runs,
        "psnr_gap_db": gap,
    }
    report["machine"]["loadavg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
