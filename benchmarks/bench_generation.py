"""Generation quality of shape generators, read against what the data itself scores.

For each checkpoint (``name=path``), the shared evaluation (``zoo.evaluation.evaluate``,
generation only) scores as many samples as references with PointFlow's protocol (MMD / COV /
1-NNA with Chamfer, ``--n-points`` points a cloud, bootstrap standard errors), and once per data
configuration the two model-free rows of ``eval.generation_baselines``: "data" (an independent
draw of held-out shapes, or the test split's halves where no second draw exists: what a perfect
generator scores) and "train copy" (the training shapes: what memorising scores). Prints one
table and writes JSON (``--out``), with the machine, the load before and after, and the wall time
of every row.

``--ceiling`` adds, per checkpoint, the train-copy row pushed through that model's representation
(``zoo.evaluation.ceiling_train_clouds``: each training shape as ``model.ceiling`` gives it, e.g.
voxelised at the model's grid and meshed as its samples are): what memorising scores in that
representation, so a score can be split into the representation's limit and the training's.

``--autoencode`` adds, per checkpoint, the references themselves encoded and decoded by the
model (``model.reconstruct`` then ``model.to_points``, one seed per shape), scored as samples:
the decoder's limit. A generator scoring near its autoencoded row is limited by its decoder,
one far above it by its prior (the distribution of its sampled latents).

``--noise`` adds a sensitivity ladder: the "data" row's clouds with isotropic Gaussian noise
of each given standard deviation added to every point (in the data's units, bbox diagonal 1
for synthshapes), scored the same way, so a generator's fuzz can be read in noise units.

    python benchmarks/bench_generation.py pd=outputs/.../last.ckpt pf=outputs/.../last.ckpt \
        --out benchmarks/results/generation_synthshapes_chair.json

Every checkpoint is scored on its own training data (the data config stored in it) unless
``--data key=value`` overrides fields of it (e.g. ``--data root=/path``); all checkpoints of one
call must share that data, so that they meet the same references.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor

from zoo.checkpoint import load_model, read_checkpoint
from zoo.cli_utils import write_json
from zoo.evaluation import (
    EvalConfig,
    ceiling_train_clouds,
    data_row_clouds,
    evaluate,
    reference_set,
    set_metrics,
)
from zoo.metrics.pairwise import pairwise_distances

COLUMNS = ("1nna_cd", "cov_cd", "mmd_cd")
ROWS = (("gen", None), ("gen_data", "data (perfect generator)"), ("gen_train", "train copy"))


def _cell(metrics: dict[str, float], prefix: str, key: str) -> str:
    v, se = metrics.get(f"{prefix}/{key}"), metrics.get(f"{prefix}/{key}_se")
    if v is None:
        return "-"
    scale = 1e3 if key.startswith("mmd") else 1.0
    return f"{v * scale:.3f} ± {se * scale:.3f}" if se is not None else f"{v * scale:.3f}"


def noise_ladder(dm: Any, cfg: EvalConfig, stds: list[float]) -> dict[str, dict[str, float]]:
    """The data row's clouds (an independent draw, or the split halves) with Gaussian noise of
    each std added, scored against the same references."""
    refs, synsets = reference_set(dm, [], cfg)
    clean, refs, _ = data_row_clouds(dm, refs, synsets, cfg.n_points)
    g = torch.Generator().manual_seed(0)
    out = {}
    for std in stds:
        noisy = clean + std * torch.randn(clean.shape, generator=g)
        out[str(std)] = set_metrics(noisy, refs, cfg, "gen_noise", extras=False)
    return out


@dataclass
class References:
    """The references of one data config, read and their (R, R) Chamfer matrix computed once
    for every extra row."""

    clouds: Tensor  # (R, n_points, 3)
    synsets: list[str]
    d_rr: Tensor  # (R, R)

    @classmethod
    def of(cls, dm: Any, cfg: EvalConfig) -> References:
        clouds, synsets = reference_set(dm, [], cfg)
        return cls(clouds, synsets, pairwise_distances(clouds, None, "chamfer"))


def ceiling_row(model: Any, dm: Any, cfg: EvalConfig, refs: References) -> dict[str, float]:
    """``gen_ceil/...``: the training shapes through ``model``'s representation
    (:func:`zoo.evaluation.ceiling_train_clouds`) scored against the references."""
    clouds = ceiling_train_clouds(model, dm, refs.synsets, cfg)
    if len(clouds) < 2:
        return {}
    out = set_metrics(clouds, refs.clouds, cfg, "gen_ceil", d_rr=refs.d_rr)
    out["gen_ceil/samples"] = float(len(clouds))
    return out


def autoencode_row(model: Any, dm: Any, cfg: EvalConfig, refs: References) -> dict[str, float]:
    """``gen_ae/...``: each reference shape of the split reconstructed by ``model`` (encoded,
    or fitted, from its own points) and decoded to ``cfg.n_points``, scored against them."""
    targets = dm.eval_shapes(cfg.split, limit=len(refs.clouds))
    with torch.no_grad():
        clouds = [
            model.to_points(model.reconstruct(t), cfg.n_points, seed=i).float().cpu()
            for i, t in enumerate(targets)
        ]
    k = len(clouds)  # the split's shapes: the first k references
    out = set_metrics(torch.stack(clouds), refs.clouds[:k], cfg, "gen_ae", d_rr=refs.d_rr[:k, :k])
    out["gen_ae/samples"] = float(len(clouds))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpts", nargs="+", help="name=path of a checkpoint")
    ap.add_argument("--data", nargs="*", default=[], help="key=value overrides of the data config")
    ap.add_argument("--n-points", type=int, default=2048)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--split", default="test")
    ap.add_argument("--noise", type=float, nargs="*", default=[], help="noise ladder stds")
    ap.add_argument(
        "--ceiling", action="store_true", help="also the train copy in each model's representation"
    )
    ap.add_argument(
        "--autoencode", action="store_true", help="also the references encoded and decoded"
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    results: dict[str, Any] = {
        "machine": harness.machine_record(),
        "load_before": os.getloadavg(),
        "protocol": {
            "n_points": args.n_points,
            "bootstrap": args.boot,
            "split": args.split,
            "distance": "Chamfer-L2 (squared, sum of both directions); MMD x 1e3 in the table",
        },
        "models": {},
    }
    baselines: dict[str, float] | None = None
    refs: References | None = None
    data_cfg_seen: Any = None
    for spec in args.ckpts:
        name, _, path = spec.partition("=")
        t0 = time.perf_counter()
        model, meta = load_model(path)
        data_cfg = OmegaConf.create(meta.get("data_cfg"))
        for kv in args.data:
            key, _, value = kv.partition("=")
            OmegaConf.update(data_cfg, key, OmegaConf.create(f"v: {value}")["v"])  # YAML-typed
        if data_cfg_seen is not None and data_cfg != data_cfg_seen:
            raise SystemExit(f"error: {path}: data config differs from the first checkpoint's")
        data_cfg_seen = data_cfg
        dm = instantiate(data_cfg, form=model.data_form)
        dm.prepare_data()
        dm.setup("test")
        cfg = EvalConfig(
            split=args.split,
            max_shapes=0,
            n_points=args.n_points,
            n_boot=args.boot,
            ceilings=False,
            save_images=False,
            generation_baselines=baselines is None,
        )
        metrics = evaluate(model, dm, cfg)
        if baselines is None:
            baselines = {k: v for k, v in metrics.items() if k.startswith(("gen_data", "gen_tr"))}
        metrics = {k: v for k, v in metrics.items() if k.startswith("gen/")}
        if args.ceiling or args.autoencode:
            refs = refs or References.of(dm, cfg)  # one data config for every checkpoint
        if args.ceiling:
            metrics.update(ceiling_row(model, dm, cfg, refs))
        if args.autoencode:
            metrics.update(autoencode_row(model, dm, cfg, refs))
        results["models"][name] = {
            "checkpoint": str(path),
            "model": model.name,
            "trained_steps": int(read_checkpoint(path).get("global_step", -1)),
            "metrics": metrics,
            "seconds": time.perf_counter() - t0,
        }
        print(f"{name}: {model.name} scored in {time.perf_counter() - t0:.0f} s", flush=True)
    results["baselines"] = baselines or {}
    if args.noise:
        results["noise_ladder"] = noise_ladder(dm, cfg, args.noise)
    results["data"] = OmegaConf.to_container(data_cfg_seen) if data_cfg_seen is not None else None
    results["load_after"] = os.getloadavg()

    refs = next(iter(results["models"].values()))["metrics"].get("gen/references", float("nan"))
    print(f"\n{len(results['models'])} generators, {refs:.0f} references, {args.n_points} points")
    print(f"| row | {' | '.join(COLUMNS)} |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, r in results["models"].items():
        cells = " | ".join(_cell(r["metrics"], "gen", c) for c in COLUMNS)
        print(f"| {name} ({r['model']}) | {cells} |")
        if f"gen_ceil/{COLUMNS[0]}" in r["metrics"]:
            cells = " | ".join(_cell(r["metrics"], "gen_ceil", c) for c in COLUMNS)
            print(f"| train copy in {name}'s representation | {cells} |")
        if f"gen_ae/{COLUMNS[0]}" in r["metrics"]:
            cells = " | ".join(_cell(r["metrics"], "gen_ae", c) for c in COLUMNS)
            print(f"| references autoencoded by {name} | {cells} |")
    for prefix, label in ROWS[1:]:
        cells = " | ".join(_cell(results["baselines"], prefix, c) for c in COLUMNS)
        print(f"| {label} | {cells} |")
    for std, row in results.get("noise_ladder", {}).items():
        cells = " | ".join(_cell(row, "gen_noise", c) for c in COLUMNS)
        print(f"| data + noise std {std} | {cells} |")
    write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
