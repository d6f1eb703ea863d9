"""Multiscale lego: per-scale held-out PSNR of nerf, mipnerf and ngp at equal training time.

Mip-NeRF's multiscale Blender benchmark (Barron et al., ICCV 2021, Sec. 5 and Table 1): each
image of a Blender scene at 4 scales (2x2 box averages), all scales trained together with the
loss weighted by pixel area, PSNR reported per scale. Here the scene is the full-resolution
lego of ``../shared/data/real/nerf/lego_800_100views`` (views 0-89 train, 90-99 test),
converted by ``zoo.data.multiscale`` (``write_multiscale``) once into ``--cache`` with level 0 at
``800 / --base-downscale`` px (default 4: 200 / 100 / 50 / 25 px, because 2 CPU cores cannot
train or even render 800 px scales in minutes; the paper's scales are 800 / 400 / 200 / 100).

Each run (``--models``, labels as in ``bench_nerf.py``: ``LABEL`` or ``LABEL=MODEL`` with
``--set LABEL OVERRIDE``) is its CPU-default Hydra config (``conf/model/<MODEL>.yaml``) on
``data=multiscale``, trained by a plain loop over the datamodule's all-scale random-ray batches
(with ``radii`` and ``lossmult``) for ``--minutes`` of training wall time (rendering is not
counted). Then every test view is rendered at every scale and scored (PSNR per view averaged,
SSIM of ``zoo.metrics``); the coarsest-scale renders of the models named by ``--save-renders``
go to ``benchmarks/results/renders/mipnerf_multiscale/``. Prints the per-scale table with the
paper's rows and margins and writes JSON (``--out``).

    python benchmarks/bench_mipnerf.py --minutes 6
    python benchmarks/bench_mipnerf.py --base-downscale 2 --minutes 8   # 400 / 200 / 100 / 50 px

OpenMP threads sleep while waiting (``OMP_WAIT_POLICY=PASSIVE``), as in ``bench_nerf.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP runtime

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import harness  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO / ".." / "shared" / "data" / "real" / "nerf" / "lego_800_100views"
RENDERS = REPO / "benchmarks" / "results" / "renders" / "mipnerf_multiscale"
# Mip-NeRF paper, Table 1 (multiscale Blender, mean over the 8 scenes), PSNR at full, 1/2,
# 1/4, 1/8 resolution: the NeRF baseline (with the paper's area-weighted loss: "NeRF" row)
# and Mip-NeRF.
PAPER = {
    "nerf": [31.196, 30.647, 26.252, 22.533],
    "mipnerf": [32.629, 34.336, 35.471, 35.602],
}


def convert(src: Path, cache: Path, base_downscale: int) -> Path:
    """The multiscale lego (train and test splits), written once."""
    from zoo.data.formats.multiscale_blender import METADATA, write_multiscale

    dst = cache / f"lego_multiscale_base{base_downscale}"
    if not (dst / METADATA).is_file():
        t0 = time.perf_counter()
        write_multiscale(
            src, dst, levels=4, base_downscale=base_downscale, splits=("train", "test")
        )
        print(f"converted {src} -> {dst} in {time.perf_counter() - t0:.0f} s", flush=True)
    return dst


def build(model_name: str, root: Path, overrides: list[str]) -> tuple[Any, Any, Any]:
    """Model and datamodule as ``python -m zoo.train model=<name> data=multiscale``."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from zoo.cli_utils import CONF_DIR

    ov = [f"model={model_name}", "data=multiscale", f"data.root={root}", "run_dir=/tmp/bench"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=ov + overrides)
    model = instantiate(cfg.model)
    dm = instantiate(cfg.data, form=model.data_form)
    dm.setup("fit")
    model.configure_from_data(dm.info())
    return model, dm, cfg


def score(model: Any, dm: Any, views: list[int], save: Path | None) -> dict[str, Any]:
    """Per-scale mean PSNR / SSIM over the test ``views``; the coarsest renders saved."""
    import imageio.v3 as iio

    from zoo.metrics import psnr, ssim
    from zoo.metrics.image import SSIM_WINDOW

    rows = {}
    scales = dm.eval_scales("test")
    for j, (name, cameras, images) in enumerate(scales):
        idx = torch.tensor(views)
        cams, gt = cameras[idx], images[idx]
        t0 = time.perf_counter()
        pred = model.render_maps(model, cams)["rgb"].clamp(0, 1).cpu()
        row = {"psnr": float(psnr(pred, gt).mean()), "render_s": time.perf_counter() - t0}
        row["ssim"] = float(ssim(pred, gt).mean()) if min(gt.shape[1:3]) >= SSIM_WINDOW else None
        rows[name] = row
        if save is not None and j == len(scales) - 1:
            save.parent.mkdir(parents=True, exist_ok=True)
            for v, img, ref in zip(views, pred, gt, strict=True):
                u8 = (img.numpy() * 255).round().astype(np.uint8)
                iio.imwrite(f"{save}_view{v:02d}.png", u8)
                iio.imwrite(
                    RENDERS / f"gt_{name}_view{v:02d}.png",
                    (ref.numpy() * 255).round().astype(np.uint8),
                )
    return rows


def run(label: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    model_name = label.split("=", 1)[1] if "=" in label else label
    label = label.split("=", 1)[0]
    overrides = [o for name, o in args.set if name in (label, "all")]
    model, dm, cfg = build(model_name, root, overrides)
    ds = dm.train_dataset()
    train_step = harness.rays_step(model, dm)
    model.train()
    budget = 60.0 * args.minutes
    print(f"\n[{label}] model={model_name} {' '.join(overrides)}; {budget:.0f} s", flush=True)
    train_s, step = 0.0, 0
    next_print = 30.0
    while train_s < budget:
        t0 = time.perf_counter()
        _, psnr = train_step(step)
        train_s += time.perf_counter() - t0
        step += 1
        if train_s >= next_print:
            print(f"  {train_s:6.0f} s  step {step:6d}  train PSNR {float(psnr):5.2f}", flush=True)
            next_print += 60.0
    model.eval()
    save = RENDERS / label if label in args.save_renders else None
    scales = score(model, dm, args.test_views, save)
    mean_psnr = float(np.mean([r["psnr"] for r in scales.values()]))
    print(
        "  "
        + "  ".join(f"{k} {r['psnr']:.2f}" for k, r in scales.items())
        + f"  mean {mean_psnr:.2f}"
    )
    return {
        "model": model_name,
        "overrides": overrides,
        "train_s": round(train_s, 1),
        "steps": step,
        "rays_per_batch": ds.rays_per_batch,
        "scales": scales,
        "mean_psnr": mean_psnr,
        "renders": None if save is None else f"{save.relative_to(REPO)}_view*.png",
    }


def table(results: dict[str, dict[str, Any]], sizes: list[int]) -> list[str]:
    """The per-scale PSNR table, with the paper's rows and the mipnerf - nerf margins."""
    head = f"{'':>16}" + "".join(f"{f'{s} px':>9}" for s in sizes) + f"{'mean':>9}{'steps':>8}"
    lines = [head]
    for label, r in results.items():
        ps = [s["psnr"] for s in r["scales"].values()]
        lines.append(
            f"{label:>16}" + "".join(f"{p:9.2f}" for p in ps) + f"{np.mean(ps):9.2f}{r['steps']:8d}"
        )
    if "nerf" in results and "mipnerf" in results:
        a = [s["psnr"] for s in results["mipnerf"]["scales"].values()]
        b = [s["psnr"] for s in results["nerf"]["scales"].values()]
        d = [x - y for x, y in zip(a, b, strict=True)]
        lines.append(
            f"{'mip - nerf':>16}" + "".join(f"{x:+9.2f}" for x in d) + f"{np.mean(d):+9.2f}"
        )
    for name, ps in PAPER.items():
        lines.append(
            f"{'paper ' + name:>16}" + "".join(f"{p:9.2f}" for p in ps) + f"{np.mean(ps):9.2f}"
        )
    d = [x - y for x, y in zip(PAPER["mipnerf"], PAPER["nerf"], strict=True)]
    lines.append(
        f"{'paper mip-nerf':>16}" + "".join(f"{x:+9.2f}" for x in d) + f"{np.mean(d):+9.2f}"
    )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--src", type=Path, default=DEFAULT_SRC, help="Blender-format lego")
    p.add_argument("--cache", type=Path, default=REPO / "data" / "cache" / "bench_mipnerf")
    p.add_argument("--base-downscale", type=int, default=4, help="level 0 = 800 px / this")
    p.add_argument(
        "--models", nargs="+", default=["nerf", "mipnerf", "ngp"], metavar="LABEL[=MODEL]"
    )
    p.add_argument("--minutes", type=float, default=6.0, help="training wall time per model")
    p.add_argument("--test-views", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--save-renders", nargs="*", default=["nerf", "mipnerf"])
    p.add_argument("--set", nargs=2, action="append", default=[], metavar=("LABEL", "OVERRIDE"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "mipnerf_multiscale.json"
    )
    args = p.parse_args()
    if not (args.src / "transforms_train.json").is_file():
        raise SystemExit(f"error: --src: no transforms_train.json in {args.src}")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    root = convert(args.src, args.cache, args.base_downscale)
    sizes = [800 // args.base_downscale // 2**j for j in range(4)]
    results: dict[str, dict[str, Any]] = {}
    for label in args.models:
        torch.manual_seed(args.seed)
        results[label.split("=", 1)[0]] = run(label, args, root)
        report = {
            "data": f"{args.src.resolve()} -> {root} (train views 0-89, test views 90-99)",
            "scales_px": sizes,
            "test_views": args.test_views,
            "minutes_per_model": args.minutes,
            "paper_table1_psnr": PAPER,
            "machine": harness.machine_record(load_before),
            "results": results,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))  # partial runs survive
    print(f"\nHeld-out PSNR (dB) per scale, {args.minutes:g} min of training each:")
    print("\n".join(table(results, sizes)))
    print(f"load average before {load_before}, after {os.getloadavg()}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
