"""Held-out PSNR against training wall time of model=pointnerf, beside model=ngp in the same
run: :mod:`bench_nerf`'s loop, data, table and JSON with Point-NeRF's cases.

Cases (``--models``, labels as in ``bench_nerf.py``): ``pointnerf`` (the CPU default:
random starting points carved by the training views, growing and pruning), ``pointnerf_static`` (the
same without growing or pruning), ``ngp``; any ``--set LABEL OVERRIDE`` of ``bench_nerf.py``
applies (e.g. ``--set pointnerf model.init_ply=points.ply`` to start from a point cloud).

    python benchmarks/bench_pointnerf.py --minutes 5 --threads 2
    python benchmarks/bench_pointnerf.py --dataset synthshapes --models pointnerf --minutes 1

Writes JSON (``--out``, default ``benchmarks/results/pointnerf.json``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP runtime

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_nerf  # noqa: E402

CASES = {"pointnerf_static": ["model.grow_every=0", "model.prune_every=0"]}
_build = bench_nerf.build


def build(*args, **kwargs) -> tuple:
    """bench_nerf's model and data; random starting points carved by the training views as
    ``zoo.train`` does at step 0 (the plain loop has no trainer to do it)."""
    model, dm, cfg = _build(*args, **kwargs)
    if getattr(model, "_random_start", False) and model.carve_fraction > 0.0:
        model.carve(*dm.eval_views("train"))
    return model, dm, cfg


def main() -> None:
    bench_nerf.PRESETS.update(CASES)
    bench_nerf.build = build
    argv = sys.argv[1:]
    if "--models" not in argv:
        argv = ["--models", "pointnerf", "ngp", *argv]
    if "--out" not in argv:
        argv += ["--out", str(bench_nerf.REPO / "benchmarks" / "results" / "pointnerf.json")]
    sys.argv = [sys.argv[0], *argv]
    bench_nerf.main()


if __name__ == "__main__":
    main()
