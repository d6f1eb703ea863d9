"""Held-out PSNR against training wall time for model=gaussians, beside model=ngp in the same
run, on the tiny lego; then rendering speed (frames per second at 100 and 400 px) and the
number of Gaussians.

Data: ``../shared/data/real/nerf/tiny_lego_100px_derived.npz`` (views 0-89 train, 90-99 held
out, black background), or with ``--blender DIR --downscale 4`` a Blender scene such as
``../shared/data/real/nerf/lego_800_100views`` at 200 px (its own train / test splits). Each
model is built from its CPU-default Hydra config (``conf/model/<name>.yaml``, overrides with
``--set``) and trained by a plain loop for ``--minutes`` of training wall time (rendering the
held-out views for the curve is not counted). Shares its pieces with ``bench_nerf.py``
(model building, PSNR, the checkpoint schedule, the ngp loop) through ``harness.py``.

    python benchmarks/bench_gaussians.py --minutes 5 --threads 2
    python benchmarks/bench_gaussians.py --blender ../shared/data/real/nerf/lego_800_100views \\
        --downscale 4 --out benchmarks/results/gaussians_200px.json

Writes JSON (``--out``, default ``benchmarks/results/gaussians.json``). OpenMP threads sleep
rather than spin while waiting (``OMP_WAIT_POLICY=PASSIVE``), as in ``bench_nerf.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP runtime

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import bench_nerf  # noqa: E402
import harness  # noqa: E402
import torch  # noqa: E402
from harness import REPO, eval_times, heldout_psnr, plain, time_to  # noqa: E402

DEFAULT_DATA = harness.TINY_LEGO


def build(model_name: str, args: argparse.Namespace) -> tuple:
    """Model and datamodule as ``python -m zoo.train model=<name> data=tinynerf|blender``."""
    overrides = [o for name, o in args.set if name in (model_name, "all")]
    if args.blender is None:
        return bench_nerf.build(model_name, args.data, overrides, None)
    ov = [
        f"model={model_name}",
        "data=blender",
        f"data.root={args.blender}",
        f"data.downscale={args.downscale}",
        "data.background=black",
    ]
    return harness.build(ov + overrides)


def train_curve(
    name: str, model: Any, dm: Any, step_fn: Any, args: argparse.Namespace, budget: float
) -> dict[str, Any]:
    """Call ``step_fn(step)`` for ``budget`` s of training time, scoring the held-out views at
    bench_nerf's checkpoint schedule (the scoring time is not counted)."""
    cameras, images = dm.eval_views("test")
    checkpoints = sorted(args.checkpoints) if args.checkpoints else eval_times(budget)
    print(f"\n[{name}] {budget:.0f} s of training", flush=True)
    print(f"{'train s':>8} {'steps':>7} {'it/s':>6} {'Gaussians':>10} {'held-out PSNR':>14}")
    curve = []
    train_s, step = 0.0, 0
    model.train()
    for target in checkpoints:
        while train_s < target:
            t0 = time.perf_counter()
            step_fn(step)
            train_s += time.perf_counter() - t0
            step += 1
        psnr = heldout_psnr(model, cameras, images)
        n = getattr(model, "num_gaussians", None)
        curve.append({"train_s": round(train_s, 2), "step": step, "psnr": psnr, "gaussians": n})
        print(f"{train_s:8.1f} {step:7d} {step / train_s:6.2f} {n or '':>10} {psnr:14.2f}")
    return {"model": name, "curve": curve}


def render_fps(model: Any, cameras: Any, size: int, repeats: int = 1) -> float:
    """Frames per second rendering held-out cameras at ``size`` x ``size`` (all 10 at 100 px,
    fewer at larger sizes: about 10 x 100^2 pixels in all, at least one view)."""
    cams = cameras.resized(size, size)
    cams = cams[0 : max(1, min(len(cams), round(10 * (100 / size) ** 2)))]
    model.eval()
    with torch.no_grad():
        model.render_maps(model, cams[0:1])  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            model.render_maps(model, cams)
        dt = time.perf_counter() - t0
    return repeats * len(cams) / dt


def save_renders(model: Any, cameras: Any, images: torch.Tensor, path: Path) -> None:
    """The first four held-out views: renders in the top row, ground truth below."""
    from zoo.export import export_image, image_grid

    model.eval()
    with torch.no_grad():
        pred = model.render_maps(model, cameras[0:4])["rgb"].clamp(0, 1).cpu()
    export_image(image_grid([*pred, *images[:4]], 4), path)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--blender", type=Path, default=None, help="a Blender scene folder instead")
    p.add_argument("--downscale", type=int, default=4)
    p.add_argument("--models", nargs="+", default=["gaussians", "ngp"])
    p.add_argument("--minutes", type=float, default=5.0, help="training budget per model")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoints", type=float, nargs="+", default=None)
    p.add_argument("--fps-sizes", type=int, nargs="+", default=[100, 400])
    p.add_argument(
        "--renders",
        type=Path,
        default=None,
        help="write <model>_heldout_<W>px.png (4 held-out views, render above ground truth)",
    )
    p.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("MODEL", "OVERRIDE"),
        help="a Hydra override for one model (or 'all')",
    )
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gaussians.json")
    args = p.parse_args()
    if args.blender is None and not args.data.is_file():
        raise SystemExit(f"--data: no such file {args.data}")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    budget = 60.0 * args.minutes
    results: dict[str, Any] = {}
    fps: dict[str, dict[str, float]] = {}
    for name in args.models:
        torch.manual_seed(args.seed)
        model, dm, cfg = build(name, args)
        make = harness.view_step if model.data_form == "images" else harness.rays_step
        results[name] = train_curve(name, model, dm, make(model, dm), args, budget)
        results[name]["config"] = {k: v for k, v in plain(cfg.model).items() if k != "optimizer"}
        cameras, images = dm.eval_views("test")
        if args.renders is not None:
            png = args.renders / f"{name}_heldout_{cameras.width}px.png"
            save_renders(model, cameras, images, png)
        fps[name] = {f"{s}px": render_fps(model, cameras, s) for s in args.fps_sizes}
        print(f"[{name}] rendering: " + ", ".join(f"{k} {v:.2f} fps" for k, v in fps[name].items()))
    rows = []
    for level in (20.0, 22.0, 25.0, 27.0, 28.0, 29.0, 30.0):
        rows.append(
            {"psnr": level, **{f"{n}_s": time_to(r["curve"], level) for n, r in results.items()}}
        )
    print("\nTraining time (s) to reach a held-out PSNR (checkpoint resolution):")
    print(f"{'PSNR dB':>8} " + " ".join(f"{n + ' s':>12}" for n in results))
    for r in rows:
        cells = [r[f"{n}_s"] for n in results]
        print(f"{r['psnr']:8.1f} " + " ".join(f"{c:12.1f}" if c else f"{'-':>12}" for c in cells))
    report = {
        "data": str((args.blender or args.data).resolve()),
        "downscale": args.downscale if args.blender else None,
        "split": "train views 0-89, held out 90-99" if args.blender is None else "train / test",
        "minutes_per_model": args.minutes,
        "machine": harness.machine_record(load_before),
        "results": results,
        "render_fps": fps,
        "time_to_psnr": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
