"""Quality vs training time of the shape models' CPU defaults, with wall time and peak memory.

For each model (``--models``) its CPU-default command ``python -m zoo.train model=<m>`` runs as
a child process, unchanged except for:

- a fresh data root (``data.root=<work>/<m>/data``), so the embedded data are generated inside
  the measured wall time, as on a user's first run;
- ``trainer.max_steps`` raised and a :class:`zoo.callbacks.WallClockSnapshots` callback that
  stops training after ``--minutes`` of training wall time and saves the weights at
  ``--seconds`` of training time and at the default's own ``trainer.max_steps`` (so the
  default run is the prefix of this one: none of these models ties its schedule to
  max_steps; deepsdf's step decay counts steps from the start).

The child's wall time, CPU time and peak resident memory come from ``os.wait4``; the callback
records when fit started and ended, which splits the wall time into data preparation,
training and the final evaluation (the CLI's shared evaluation with ceilings, of the last
weights). Afterwards every snapshot is scored here by the shared evaluator
(``zoo.evaluation.evaluate``, ``--max-shapes`` held-out shapes at 30,000 points a side, the
same shapes as the run's ceilings ``ceil/...``) and on the showcase chair of
``zoo.benchmark`` (silhouette IoU of the rendered output against the true mask), next to the
silhouette IoU of the model's representation ceiling on that chair (the true chair through the
model's representation, drawn the same way; ``--ceiling-iou-of <json>`` adds it to a finished
run's JSON). Prints one
table per model, the default run's cost, and writes JSON (``--out``); the showcase renders of
the default and the last snapshot go to ``benchmarks/results/renders/shape_curves/``.

    python benchmarks/bench_shape_curves.py                      # 4 models x 10 min
    python benchmarks/bench_shape_curves.py --models deepsdf --minutes 20 --seconds 60 300 600 1200

Run it alone: the snapshots' times are wall-clock times of this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import harness

REPO = Path(__file__).resolve().parents[1]
RENDERS = REPO / "benchmarks" / "results" / "renders" / "shape_curves"
MODELS = ("voxel_gan", "pointflow", "mesh_gcn", "deepsdf")
F = "recon/fscore@0.01"


def default_max_steps(model: str) -> int:
    """``trainer.max_steps`` of the model's CPU-default config."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose("train", overrides=[f"model={model}"])
    return int(cfg.trainer.max_steps)


def train_child(model: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run the CLI for ``model`` with snapshots; its wall / CPU time and peak memory."""
    run = work / model
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    steps = default_max_steps(model)
    snaps = run / "snapshots"
    seconds = ",".join(f"{s:g}" for s in args.seconds)
    cmd = [
        sys.executable,
        "-m",
        "zoo.train",
        f"model={model}",
        f"hydra.run.dir={run / 'run'}",
        f"data.root={run / 'data'}",
        f"trainer.max_steps={10**8}",
        "+callbacks.snap._target_=zoo.callbacks.WallClockSnapshots",
        f"+callbacks.snap.dirpath={snaps}",
        f"+callbacks.snap.seconds=[{seconds}]",
        f"+callbacks.snap.steps=[{steps}]",
        f"+callbacks.snap.stop_after={args.minutes * 60:g}",
        *args.override,
    ]
    print(f"\n[{model}] {' '.join(cmd[1:])}", flush=True)
    t0_unix, t0 = time.time(), time.perf_counter()
    with open(run / "stdout.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: {model}: training failed, see {run / 'stdout.log'}")
    info = json.loads((snaps / "snapshots.json").read_text())
    final = json.loads((run / "run" / "metrics.json").read_text())
    start, end = info["train_start_unix"], info["train_end_unix"]
    at_default = next(r for r in info["snapshots"] if r["reason"] == "step")
    return {
        "command": "python -m zoo.train " + " ".join(cmd[3:]),
        "default_max_steps": steps,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: KiB
        "data_and_setup_s": start - t0_unix,
        "train_s": end - start,
        "final_eval_s": t0_unix + wall - end,
        "default_train_s": at_default["seconds"],
        "snapshots": info["snapshots"],
        "final_metrics": final,
    }


def score_snapshots(model_name: str, run: dict[str, Any], args: argparse.Namespace) -> None:
    """Shared evaluation and showcase IoU of every distinct snapshot (in place)."""
    import imageio.v3 as iio
    import torch

    from zoo.benchmark.showcase import score, to_uint8
    from zoo.checkpoint import load_model
    from zoo.evaluation import EvalConfig, evaluate

    eval_cfg = EvalConfig(
        max_shapes=args.max_shapes, ceilings=False, n_boot=args.n_boot, save_images=False
    )
    seen: set[int] = set()
    dm = show = None
    RENDERS.mkdir(parents=True, exist_ok=True)
    for snap in run["snapshots"]:
        if snap["step"] in seen:
            snap["duplicate"] = True
            continue
        seen.add(snap["step"])
        model, meta = load_model(snap["path"])
        if dm is None:
            dm, show = showcase_data(model, meta)
        t0 = time.perf_counter()
        torch.manual_seed(0)
        metrics = evaluate(model, dm, eval_cfg)
        shown, images = score(model, show, eval_cfg.n_points, eval_cfg.mesh_resolution)
        snap["eval_s"] = time.perf_counter() - t0
        snap["metrics"] = metrics
        snap["show"] = shown
        if images and snap["reason"] in ("step", "end"):
            name = "default" if snap["reason"] == "step" else f"{args.minutes:g}min"
            path = RENDERS / f"{model_name}_{name}_step{snap['step']}.png"
            iio.imwrite(path, to_uint8(images["pred"][0]))
            snap["render"] = str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
            if not (RENDERS / "ground_truth_grey.png").exists():
                iio.imwrite(RENDERS / "ground_truth_grey.png", to_uint8(images["gt"][0]))
        print(
            f"  {snap['reason']:>4} {snap['seconds']:6.0f} s step {snap['step']:6d}: "
            f"F {metrics.get(F, float('nan')):.3f} "
            f"CD-L2x1e3 {metrics.get('recon/chamfer_l2', float('nan')) * 1e3:.3f} "
            f"mask IoU {shown.get('mask_iou', float('nan')):.3f} ({snap['eval_s']:.0f} s)",
            flush=True,
        )


def showcase_data(model: Any, meta: dict[str, Any]) -> tuple[Any, Any]:
    """The model's test data (set up) and the showcase chair of ``zoo.benchmark``, from the
    data config stored in its checkpoint (``meta``)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from zoo.benchmark import _set_scene, _setup_data, _showcase
    from zoo.benchmark.showcase import showcase_id

    cfg = OmegaConf.create({"data": meta["data_cfg"], "showcase_category": "chair"})
    shape_dm = instantiate(cfg.data, form="points")
    shape_dm.prepare_data()
    mid, index = showcase_id(shape_dm, "chair")
    _set_scene(cfg.data, "chair", index)
    dm = _setup_data(cfg, model)
    return dm, _showcase(cfg, model, dm, mid, index)


def ceiling_showcase_iou(model: Any, show: Any) -> float:
    """Silhouette IoU on the showcase chair of the model's representation ceiling (the true
    chair through the model's own representation, ``Representation.ceiling``), drawn the way
    the model's output is drawn (``zoo.benchmark.showcase.draw_shape``): the most the
    representation allows on that image."""
    from zoo.benchmark.showcase import _mask_iou, draw_shape, grey
    from zoo.ops.raycast import render_mesh

    gt_mask = render_mesh(grey(show.scene_mesh), show.cameras)["mask"].bool().cpu()
    mesh, points = model.ceiling(show.target, 2048, 64)
    _, mask = draw_shape(model.kind, mesh, points, show.cameras)
    return _mask_iou(mask.bool().cpu(), gt_mask)


def add_ceiling_ious(report: dict[str, Any]) -> None:
    """``ceiling_mask_iou`` of every run of ``report`` (from its last snapshot's config)."""
    from zoo.checkpoint import load_model

    for name, run in report["runs"].items():
        model, meta = load_model(run["snapshots"][-1]["path"])
        _, show = showcase_data(model, meta)
        run["ceiling_mask_iou"] = ceiling_showcase_iou(model, show)
        print(f"[{name}] ceiling's showcase silhouette IoU {run['ceiling_mask_iou']:.3f}")


def table(name: str, run: dict[str, Any]) -> list[str]:
    ceil = run["final_metrics"].get("ceil/fscore@0.01")
    ceil_cd = run["final_metrics"].get("ceil/chamfer_l2")
    rows = [
        f"\n{name}: ceiling F@0.01 {ceil:.3f}, CD-L2 x1e3 {ceil_cd * 1e3:.3f}, showcase IoU "
        f"{run.get('ceiling_mask_iou', float('nan')):.3f}"
        if ceil is not None
        else f"\n{name}: no ceiling",
        "| train s | step | F@0.01 | F / ceiling | CD-L2 x1e3 | CD / ceiling | mask IoU |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in run["snapshots"]:
        if s.get("duplicate"):
            continue
        m = s["metrics"]
        f, cd = m.get(F, float("nan")), m.get("recon/chamfer_l2", float("nan"))
        frac = f / ceil if ceil else float("nan")
        cd_frac = cd / ceil_cd if ceil_cd else float("nan")
        mark = " (default)" if s["reason"] == "step" else ""
        rows.append(
            f"| {s['seconds']:.0f}{mark} | {s['step']} | {f:.3f} | {frac:.2f} | {cd * 1e3:.3f} | "
            f"{cd_frac:.1f}x | {s['show'].get('mask_iou', float('nan')):.3f} |"
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--minutes", type=float, default=10.0, help="training wall time per model")
    p.add_argument("--seconds", type=float, nargs="+", default=[60, 150, 300, 450])
    p.add_argument("--max-shapes", type=int, default=16, help="held-out shapes scored")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples of the SEs")
    p.add_argument("--override", nargs="*", default=[], help="extra zoo.train overrides")
    p.add_argument("--work", type=Path, default=REPO / "data" / "cache" / "bench_shape_curves")
    p.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "shape_curves.json"
    )
    p.add_argument(
        "--ceiling-iou-of",
        type=Path,
        default=None,
        help="only add the ceilings' showcase IoU to this finished run's JSON (and reprint)",
    )
    args = p.parse_args()
    if args.ceiling_iou_of is not None:
        report = json.loads(args.ceiling_iou_of.read_text())
        add_ceiling_ious(report)
        args.ceiling_iou_of.write_text(json.dumps(report, indent=2))
        for name, run in report["runs"].items():
            print("\n".join(table(name, run)))
        return
    load_before = os.getloadavg()
    report: dict[str, Any] = {
        "minutes": args.minutes,
        "machine": harness.machine_record(load_before),
        "runs": {},
    }
    for name in args.models:
        run = train_child(name, args.work, args)
        print(
            f"[{name}] wall {run['wall_s']:.0f} s (data + setup {run['data_and_setup_s']:.0f}, "
            f"training {run['train_s']:.0f}, final evaluation {run['final_eval_s']:.0f}), "
            f"peak RSS {run['peak_rss_mb']:.0f} MB; default's {run['default_max_steps']} steps "
            f"at {run['default_train_s']:.0f} s of training",
            flush=True,
        )
        report["runs"][name] = run
        report["machine"]["loadavg_after_training"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    for name, run in report["runs"].items():
        print(f"\n[{name}] scoring {len(run['snapshots'])} snapshots", flush=True)
        score_snapshots(name, run, args)
        args.out.write_text(json.dumps(report, indent=2))
    add_ceiling_ious(report)
    print("\nDefault runs (python -m zoo.train model=<m>, data generated from scratch):")
    print("| model | steps | data + setup s | training s | evaluation s | total s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for name, run in report["runs"].items():
        total = run["data_and_setup_s"] + run["default_train_s"] + run["final_eval_s"]
        run["default_total_s"] = total
        print(
            f"| {name} | {run['default_max_steps']} | {run['data_and_setup_s']:.0f} | "
            f"{run['default_train_s']:.0f} | {run['final_eval_s']:.0f} | {total:.0f} | "
            f"{run['peak_rss_mb']:.0f} |"
        )
    for name, run in report["runs"].items():
        print("\n".join(table(name, run)))
    report["machine"]["loadavg_after"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
