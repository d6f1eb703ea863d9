"""Held-out PSNR against training wall time of radiance-field runs (model=nerf, model=ngp).

Data (``--dataset``): ``tinylego``, ``../shared/data/real/nerf/tiny_lego_100px_derived.npz``
(relative to the repository; 100 views of 100 x 100 on black): views 0-89 train, 90-99 are
held out; or ``synthshapes``, the embedded chair of ``python -m zoo.train model=nerf`` (50
train views, its 10 test views held out). Each run is a label, ``LABEL`` or ``LABEL=MODEL``
(``--models``): the model is built from its CPU-default Hydra config
(``conf/model/<MODEL>.yaml``) plus the label's preset overrides (:data:`PRESETS`, e.g.
``nerf_nogrid``: the nerf default without its occupancy grid; ``nerf_old``: the CPU default
before the grid) and any ``--set LABEL OVERRIDE``; it is trained by a plain loop over the
datamodule's random-ray batches for ``--minutes`` of training wall time (time spent rendering
the held-out views for the curve is not counted; one-off costs such as ``torch.compile`` are).
The held-out PSNR (mean over the held-out views of the PSNR of each view) is measured at a
geometric schedule of training times.

Prints a table per run, the time each run needs to reach given PSNRs and the speed-up of each
run over the first one, and writes everything to JSON (``--out``, default
``benchmarks/results/nerf.json``).

    python benchmarks/bench_nerf.py --minutes 5
    python benchmarks/bench_nerf.py --models nerf nerf_nogrid nerf_old --minutes 5 \\
        --out benchmarks/results/nerf_occupancy.json
    python benchmarks/bench_nerf.py --dataset synthshapes --models nerf nerf_old --minutes 5
    python benchmarks/bench_nerf.py --models ngp --minutes 1 --set ngp model.compile=true

OpenMP threads are made to sleep rather than spin while waiting (``OMP_WAIT_POLICY=PASSIVE``
unless set otherwise): on a machine whose cores are shared with other jobs, spinning threads
made every step of both models 10-20x slower here.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP runtime

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import harness  # noqa: E402
import torch  # noqa: E402
from harness import REPO, eval_times, heldout_psnr, plain, time_to  # noqa: E402

DEFAULT_DATA = harness.TINY_LEGO
# Overrides a run label implies (on top of its model's CPU default).
PRESETS: dict[str, list[str]] = {
    # The nerf CPU default without empty-space skipping: stratified samples in [near, far].
    "nerf_nogrid": ["model.occupancy=null"],
    # The nerf CPU default before the occupancy grid (what zoo.train model=nerf used to run).
    "nerf_old": [
        "model.occupancy=null",
        "model.num_samples=64",
        "model.field.pos_freqs=6",
        "model.field.depth=4",
        "model.field.width=128",
        "model.field.use_viewdirs=false",
    ],
}


def parse_run(label: str) -> tuple[str, str]:
    """``LABEL`` or ``LABEL=MODEL`` -> (label, model); a preset label names its model."""
    if "=" in label:
        name, model = label.split("=", 1)
        return name, model
    return label, label.split("_", 1)[0]


def build(model_name: str, data_path: Path | None, overrides: list[str], rays: int | None) -> tuple:
    """Model and datamodule exactly as ``python -m zoo.train model=<name> data=tinynerf``
    (``data_path`` None: the default data, the embedded chair of ``data=synthshapes``)."""
    data = ["data=tinynerf", f"data.path={data_path}"] if data_path is not None else []
    ov = [f"model={model_name}", *data]
    if rays is not None:
        ov.append(f"data.rays_per_batch={rays}")
    return harness.build(ov + overrides)


def run(
    label: str, args: argparse.Namespace, prepare: Callable[[Any, Any], None] | None = None
) -> dict[str, Any]:
    """One run's curve; ``prepare(model, datamodule)`` runs before the first step (what a
    model's Lightning hooks would do at step 0 that the plain loop has no trainer for)."""
    label, model_name = parse_run(label)
    overrides = PRESETS.get(label, []) + [o for name, o in args.set if name in (label, "all")]
    data = args.data if args.dataset == "tinylego" else None
    model, dm, cfg = build(model_name, data, overrides, args.rays)
    if prepare is not None:
        prepare(model, dm)
    cameras, images = dm.eval_views("test")
    ds = dm.train_dataset()
    train_step = harness.rays_step(model, dm)
    model.train()
    minutes = {name: float(m) for name, m in args.minutes_for}.get(label, args.minutes)
    budget = 60.0 * minutes
    checkpoints = sorted(args.checkpoints) if args.checkpoints else eval_times(budget)
    print(f"\n[{label}] {' '.join(overrides)}", flush=True)
    print(f"rays/step {ds.rays_per_batch}, {budget:.0f} s of training", flush=True)
    print(f"{'train s':>8} {'steps':>7} {'it/s':>6} {'held-out PSNR':>14}", flush=True)
    curve = []
    if args.eval_untrained:  # slow for ngp: nothing is skipped before the first grid update
        curve.append({"train_s": 0.0, "step": 0, "psnr": heldout_psnr(model, cameras, images)})
        print(f"{0.0:8.1f} {0:7d} {'':>6} {curve[0]['psnr']:14.2f}", flush=True)
    train_s, step = 0.0, 0
    for target in checkpoints:
        while train_s < target:
            t0 = time.perf_counter()
            train_step(step)
            train_s += time.perf_counter() - t0
            step += 1
        psnr = heldout_psnr(model, cameras, images)
        curve.append({"train_s": round(train_s, 2), "step": step, "psnr": psnr})
        print(f"{train_s:8.1f} {step:7d} {step / train_s:6.2f} {psnr:14.2f}", flush=True)
    return {
        "model": model_name,
        "overrides": overrides,
        "config": {k: v for k, v in plain(cfg.model).items() if k not in ("optimizer",)},
        "optimizer": plain(cfg.model).get("optimizer"),
        "rays_per_batch": ds.rays_per_batch,
        "curve": curve,
    }


def comparison(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Time for each run to reach several PSNRs (incl. the first run's best) and the ratio of
    each run's time to the first run's (> 1: the first run is faster)."""
    if len(results) < 2:
        return []
    labels = list(results)
    first = labels[0]
    best = max(p["psnr"] for p in results[first]["curve"])
    best = math.floor(best * 100) / 100  # reached by the first run at 2 decimals
    levels = sorted({15.0, 18.0, 20.0, 22.0, 25.0, 28.0, best})
    rows = []
    for level in levels:
        times = {lab: time_to(results[lab]["curve"], level) for lab in labels}
        t0 = times[first]
        ratios = {lab: (t / t0 if t is not None and t0 else None) for lab, t in times.items()}
        rows.append(
            {"psnr": level, "seconds": times, "ratio_to_first": ratios, "first_best": level == best}
        )
    return rows


def print_comparison(results: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """The time-to-PSNR table of :func:`comparison`."""
    labels = list(results)
    print("\nTraining time (s) to reach a held-out PSNR (checkpoint resolution):")
    print(f"{'PSNR dB':>8} " + " ".join(f"{lab:>12}" for lab in labels))
    for r in rows:
        cells = []
        for lab in labels:
            t, q = r["seconds"][lab], r["ratio_to_first"][lab]
            txt = "-" if t is None else f"{t:.0f}" + ("" if q is None else f" ({q:.1f}x)")
            cells.append(f"{txt:>12}")
        tag = f"  ({labels[0]}'s best)" if r["first_best"] else ""
        print(f"{r['psnr']:8.2f} " + " ".join(cells) + tag)
    print(f"(in parentheses: time relative to {labels[0]})")


def write_report(
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
    load_before: tuple[float, float, float],
) -> None:
    """Write the JSON report of the runs finished so far to ``args.out``."""
    tiny = args.dataset == "tinylego"
    report = {
        "data": str(args.data.resolve()) if tiny else "synthshapes chair (data=synthshapes)",
        "split": "train views 0-89, held out 90-99" if tiny else "50 train views, 10 test views",
        "minutes_per_model": {
            n: {m: float(v) for m, v in args.minutes_for}.get(n, args.minutes) for n in results
        },
        "machine": harness.machine_record(load_before),
        "results": results,
        "time_to_psnr": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            report,
            indent=2,
            default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o),
        )
    )


def main(
    argv: list[str] | None = None,
    presets: dict[str, list[str]] | None = None,
    prepare: Callable[[Any, Any], None] | None = None,
    default_models: tuple[str, ...] = ("nerf", "ngp"),
    default_out: Path = REPO / "benchmarks" / "results" / "nerf.json",
    description: str | None = None,
) -> None:
    """The command line; another script reuses it with its own ``presets`` (run labels and
    their overrides), ``prepare`` hook (see :func:`run`), default runs and output file."""
    PRESETS.update(presets or {})
    p = argparse.ArgumentParser(
        description=description or __doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--dataset", choices=["tinylego", "synthshapes"], default="tinylego")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the tiny-lego .npz")
    p.add_argument(
        "--models",
        nargs="+",
        default=list(default_models),
        metavar="LABEL[=MODEL]",
        help=f"runs; presets: {', '.join(PRESETS)}",
    )
    p.add_argument("--minutes", type=float, default=5.0, help="training budget per model")
    p.add_argument(
        "--minutes-for",
        nargs=2,
        action="append",
        default=[],
        metavar=("MODEL", "MINUTES"),
        help="a per-model training budget overriding --minutes, e.g. --minutes-for nerf 10",
    )
    p.add_argument("--rays", type=int, default=None, help="override data.rays_per_batch")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-untrained", action="store_true", help="also score the model at step 0")
    p.add_argument(
        "--checkpoints",
        type=float,
        nargs="+",
        default=None,
        help="training times (s) at which to score (default: a geometric schedule)",
    )
    p.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("MODEL", "OVERRIDE"),
        help="a Hydra override for one run label (or 'all'), e.g. --set ngp model.compile=true",
    )
    p.add_argument("--out", type=Path, default=default_out)
    args = p.parse_args(argv)
    if args.dataset == "tinylego" and not args.data.is_file():
        raise SystemExit(f"--data: no such file {args.data}")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}
    for label in args.models:
        torch.manual_seed(args.seed)
        results[parse_run(label)[0]] = run(label, args, prepare)
        write_report(args, results, comparison(results), load_before)  # partial runs survive
    rows = comparison(results)
    if rows:
        print_comparison(results, rows)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
