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

import bench_nerf  # noqa: E402
from harness import REPO  # noqa: E402

CASES = {"pointnerf_static": ["model.grow_every=0", "model.prune_every=0"]}


def carve(model, dm) -> None:
    """Random starting points carved by the training views, as ``zoo.train`` does at step 0
    (the plain loop has no trainer to do it)."""
    if model.name == "pointnerf" and model.random_start and model.carve_fraction > 0.0:
        model.carve(*dm.eval_views("train"))


def main() -> None:
    bench_nerf.main(
        presets=CASES,
        prepare=carve,
        default_models=("pointnerf", "ngp"),
        default_out=REPO / "benchmarks" / "results" / "pointnerf.json",
        description=__doc__,
    )


if __name__ == "__main__":
    main()
