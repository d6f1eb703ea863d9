"""Benchmark: a trained PointFlow checkpoint against trivial baselines, Chamfer and EMD.

For the data the checkpoint was trained on (its stored data config), with S = R = the first
``--max-shapes`` shapes of ``--split`` as references (``--n-points`` points each):

- generation: MMD / COV / 1-NNA (``zoo.metrics.generative_metrics``) with Chamfer (squared, sum
  of both directions) and EMD (mean matched Euclidean distance), PointFlow Sec. 5;
- reconstruction: mean Chamfer and EMD between ``to_points(reconstruct(target))`` and the
  target's points.

Rows: the trained model; the untrained model of the same config (same normalisation); the
Gaussian baseline: every "sample" or "reconstruction" is N(mean, diag(std^2)) noise with the
per-axis mean / std of the training split's points (``eval_shapes("train")``); and, for
generation only, the training shapes themselves used as samples (what memorising the training
set scores). All distances are in data units (ShapeNet v2 normalisation, bbox diagonal 1).

    python benchmarks/bench_pointflow.py --checkpoint /tmp/<run>/checkpoints/last.ckpt \
        [--split test] [--max-shapes 16] [--n-points 2048] [--out benchmarks/results/pointflow.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch
from torch import Tensor


def _stack(targets: list[Any], n: int) -> Tensor:
    from zoo.evaluation import _subsample

    return torch.stack([_subsample(t.points.float().cpu(), n) for t in targets])  # (S, n, 3)


def _recon(pred: list[Tensor], refs: Tensor) -> dict[str, float]:
    from zoo.metrics import chamfer_distance, earth_movers_distance

    cd = [float(chamfer_distance(p, r)) for p, r in zip(pred, refs, strict=True)]
    emd = [float(earth_movers_distance(p, r)) for p, r in zip(pred, refs, strict=True)]
    return {"recon/chamfer_l2": float(np.mean(cd)), "recon/emd": float(np.mean(emd))}


def _gen(samples: Tensor, refs: Tensor) -> dict[str, float]:
    from zoo.metrics import generative_metrics

    out = {}
    for dist, tag in (("chamfer", "cd"), ("emd", "emd")):
        for k, v in generative_metrics(samples, refs, distance=dist).items():
            out[f"gen/{k}_{tag}"] = float(v)
    return out


def model_rows(model: Any, targets: list[Any], refs: Tensor, n: int) -> dict[str, float]:
    """Generation and reconstruction metrics of a PointFlow model; decode seconds per cloud."""
    model.eval()
    t0 = time.perf_counter()
    samples = torch.stack(
        [
            model.to_points(s, n, seed=i).cpu()
            for i, s in enumerate(model.sample(len(targets), seed=0))
        ]
    )
    per_cloud = (time.perf_counter() - t0) / len(targets)
    pred = [model.to_points(model.reconstruct(t), n, seed=0).cpu() for t in targets]
    return {**_gen(samples, refs), **_recon(pred, refs), "s_per_sample": per_cloud}


def gaussian_rows(mean: Tensor, std: Tensor, refs: Tensor, n: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(2 * len(refs), n, 3, generator=g) * std + mean
    return {**_gen(noise[: len(refs)], refs), **_recon(list(noise[len(refs) :]), refs)}


def main() -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from zoo.checkpoint import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--max-shapes", type=int, default=16)
    p.add_argument("--n-points", type=int, default=2048)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/pointflow.json"))
    args = p.parse_args()

    model, meta = load_model(args.checkpoint, expect_model="pointflow")
    dm = instantiate(OmegaConf.create(meta["data_cfg"]), form=model.data_form)
    dm.prepare_data()
    dm.setup("test")
    targets = dm.eval_shapes(args.split, limit=args.max_shapes)
    if len(targets) < 2:
        raise SystemExit(f"--split {args.split}: need >= 2 shapes, got {len(targets)}")
    n = args.n_points
    refs = _stack(targets, n)
    train = dm.eval_shapes("train")
    train_pts = torch.cat([t.points.float() for t in train])  # (K, 3)
    mean, std = train_pts.mean(0), train_pts.std(0)

    rows: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    rows["pointflow (trained)"] = model_rows(model, targets, refs, n)
    torch.manual_seed(0)
    untrained = instantiate(meta["model_cfg"])
    untrained.configure_from_data(meta["data_info"])
    untrained.set_normalization(model.points_mean, model.points_std)
    rows["pointflow (untrained)"] = model_rows(untrained, targets, refs, n)
    rows["gaussian (train mean/std)"] = gaussian_rows(mean, std, refs, n)
    rows["training shapes as samples"] = _gen(_stack(train[: len(targets)], n), refs)

    result: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "data": meta["data_cfg"],
        "split": args.split,
        "shapes": len(targets),
        "n_points": n,
        "gaussian_mean": mean.tolist(),
        "gaussian_std": std.tolist(),
        "seconds": time.perf_counter() - t0,
        "machine": harness.machine_record(),
        "rows": rows,
    }
    keys = sorted({k for r in rows.values() for k in r})
    names = list(rows)
    print(f"\n{len(targets)} {args.split} shapes, {n} points; data {meta['data_cfg'].get('root')}")
    print(f"{'metric':<18}" + "".join(f"{c[:26]:>28}" for c in names))
    for k in keys:
        print(f"{k:<18}" + "".join(f"{rows[c].get(k, float('nan')):>28.4g}" for c in names))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
