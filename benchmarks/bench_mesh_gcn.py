"""Benchmark: mesh_gcn reconstruction of held-out shapes, with Pixel2Mesh's F-score thresholds.

For the data a ``model=mesh_gcn`` checkpoint was trained on (its stored data config), every
held-out shape (the first ``--max-shapes`` of ``--split``) is reconstructed with
``reconstruct`` (from its points, or from one rendered view with ``encoder=image``) and scored
on ``--n-points`` surface samples of the predicted mesh against the shape's held-out points:

- Chamfer-L2 (squared, sum of both directional means; ``zoo.metrics.chamfer_distance``) and
  Chamfer-L1 (ONet: mean of the Euclidean directional means);
- F-score at the Euclidean tau = 0.01 of the shared evaluator, and at Pixel2Mesh's thresholds,
  which are on SQUARED distances (tau^2 = 1e-4 and 2e-4, "F(tau)" and "F(2tau)" in its Table 1):
  ``zoo.metrics.f_score`` takes a Euclidean threshold, so they are passed as sqrt(1e-4) = 0.01
  and sqrt(2e-4) ~= 0.01414. In our units (bounding-box diagonal 1) the first coincides with
  the evaluator's 0.01;
- normal consistency (``zoo.metrics.normal_consistency``, mesh face normals vs. data normals).

Rows: the trained model, per category and overall, and the untrained model of the same config,
which returns the template ico-sphere for every input (the trivial baseline a deformation must
beat). All distances are in data units (ShapeNet v2 normalisation, bbox diagonal 1).

    python -m zoo.train model=mesh_gcn hydra.run.dir=/tmp/mesh_gcn_run
    python benchmarks/bench_mesh_gcn.py --checkpoint /tmp/mesh_gcn_run/checkpoints/last.ckpt \
        [--split test] [--max-shapes 24] [--n-points 2048] [--out benchmarks/results/mesh_gcn.json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch

# Pixel2Mesh's F-score thresholds on squared distances -> Euclidean taus for zoo.metrics.f_score.
P2M_SQUARED_TAUS = (1e-4, 2e-4)


def shape_metrics(model: Any, target: Any, n: int) -> dict[str, float]:
    """Reconstruction metrics of one held-out shape (and the seconds ``reconstruct`` took)."""
    from zoo.evaluation import _subsample
    from zoo.metrics import chamfer_distance, f_score, normal_consistency
    from zoo.ops.surface import sample_surface

    t0 = time.perf_counter()
    shape = model.reconstruct(target)
    seconds = time.perf_counter() - t0
    mesh = model.to_mesh(shape)
    pred, pred_n = sample_surface(mesh, n, seed=0)
    idx = _subsample(torch.arange(len(target.points)), n)
    gt = target.points[idx].float()
    out = {
        "chamfer_l2": float(chamfer_distance(pred, gt)),
        "chamfer_l1": float(chamfer_distance(pred, gt, squared=False)),
        "fscore@0.01": float(f_score(pred, gt, 0.01)),
    }
    for t2 in P2M_SQUARED_TAUS:
        out[f"fscore@d2<{t2:g}"] = float(f_score(pred, gt, math.sqrt(t2)))
    if target.normals is not None:
        gt_n = target.normals[idx].float()
        out["normal_consistency"] = float(normal_consistency(pred, pred_n, gt, gt_n))
    out["watertight"] = float(mesh.is_watertight)
    out["s_per_shape"] = seconds
    return out


def mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys()
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def main() -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from zoo.checkpoint import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--max-shapes", type=int, default=24)
    p.add_argument("--n-points", type=int, default=2048)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/mesh_gcn.json"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, meta = load_model(args.checkpoint, expect_model="mesh_gcn")
    dm = instantiate(OmegaConf.create(meta["data_cfg"]), form=model.data_form)
    dm.prepare_data()
    dm.setup("test")
    targets = dm.eval_shapes(args.split, limit=args.max_shapes)
    if not targets:
        raise SystemExit(f"--split {args.split}: no shapes")
    n = args.n_points

    t0 = time.perf_counter()
    per_shape = [shape_metrics(model, t, n) for t in targets]
    by_cat: dict[str, list[dict[str, float]]] = defaultdict(list)
    for t, r in zip(targets, per_shape, strict=True):
        by_cat[t.extra.get("category", "?")].append(r)
    rows: dict[str, dict[str, float]] = {"trained (all)": mean_rows(per_shape)}
    for cat in sorted(by_cat):
        rows[f"trained {cat} ({len(by_cat[cat])})"] = mean_rows(by_cat[cat])
    torch.manual_seed(0)
    untrained = instantiate(meta["model_cfg"])
    untrained.configure_from_data(meta["data_info"])
    untrained.eval()
    rows["untrained = template"] = mean_rows([shape_metrics(untrained, t, n) for t in targets])

    result: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "model": meta["model_cfg"],
        "data": meta["data_cfg"],
        "split": args.split,
        "shapes": len(targets),
        "n_points": n,
        "p2m_thresholds": {
            f"fscore@d2<{t2:g}": {"squared": t2, "euclidean_tau_passed": math.sqrt(t2)}
            for t2 in P2M_SQUARED_TAUS
        },
        "seconds": time.perf_counter() - t0,
        "machine": harness.machine_record(),
        "rows": rows,
        "per_shape": {t.name: r for t, r in zip(targets, per_shape, strict=True)},
    }
    keys = list(rows["trained (all)"])
    names = list(rows)
    enc = meta["model_cfg"].get("encoder", "points")
    print(f"\nmesh_gcn (encoder={enc}): {len(targets)} {args.split} shapes, {n} points")
    print(f"{'metric':<20}" + "".join(f"{c[:22]:>24}" for c in names))
    for k in keys:
        print(f"{k:<20}" + "".join(f"{rows[c].get(k, float('nan')):>24.4g}" for c in names))
    print("F-score thresholds: d2<1e-4 and d2<2e-4 are Pixel2Mesh's squared-distance taus, passed")
    print("to f_score as the Euclidean sqrt(1e-4) = 0.01 and sqrt(2e-4) = 0.01414.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
