"""Jensen-Shannon divergence between the occupancy distributions of two sets of clouds.

Convention: PointFlow (Yang et al., ICCV 2019), ``metrics/evaluation_metrics.py``:
``jsd_between_point_cloud_sets(sample_pcs, ref_pcs, resolution=28)``, itself taken from
Achlioptas et al. 2018 (``optas/latent_3d_points``), reported in the PointFlow, PVD and LION
tables:

1. A grid of ``resolution^3`` cell centres ``i / (resolution - 1) - 0.5`` (i = 0 .. resolution-1
   per axis) fills the cube [-0.5, 0.5]^3; with ``in_unit_sphere`` (PointFlow: always) only the
   centres with norm <= 0.5 are kept (the sphere of diameter 1).
2. Every point of every cloud of a set is counted at its nearest kept centre (points outside
   the sphere too: they go to the nearest kept centre). The counts of the set, normalised to
   sum 1, are its distribution P (samples) or Q (references). Note: PointFlow computes the
   per-cloud Bernoulli occupancy too, but its JSD uses these raw point counts.
3. ``JSD(P, Q) = H((P + Q) / 2) - (H(P) + H(Q)) / 2`` with entropies in **bits** (``base=2``),
   so 0 <= JSD <= 1: identical sets give 0, sets whose points fall in disjoint cells give 1
   (= log 2 nats).

The inputs are expected in the unit sphere's scale (PointFlow scales its clouds for this
metric); values outside are counted at the boundary cells as in the reference code.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from zoo.metrics.knn import to_numpy64
from zoo.metrics.pairwise import check_cloud_set


def unit_cube_grid(resolution: int, in_unit_sphere: bool = True) -> np.ndarray:
    """(G, 3) cell centres of PointFlow's grid (module docstring, step 1), in C order."""
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    axis = np.arange(resolution) / (resolution - 1) - 0.5
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    if in_unit_sphere:
        grid = grid[np.linalg.norm(grid, axis=1) <= 0.5]
    return grid


def occupancy_counts(clouds: Tensor, resolution: int = 28, in_unit_sphere: bool = True) -> Tensor:
    """(G,) number of points of all ``clouds`` (K, N, 3) nearest to each grid centre (float64)."""
    clouds = check_cloud_set("clouds", clouds)
    grid = unit_cube_grid(resolution, in_unit_sphere)
    _, nearest = cKDTree(grid).query(to_numpy64(clouds).reshape(-1, 3), k=1)
    return torch.from_numpy(np.bincount(nearest, minlength=len(grid)).astype(np.float64))


def _entropy_bits(p: Tensor) -> Tensor:
    nz = p[p > 0]
    return -(nz * nz.log2()).sum()


def jensen_shannon_divergence(p: Tensor, q: Tensor) -> float:
    """JSD in bits of two non-negative count vectors (each normalised to sum 1 first)."""
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(
            f"need two 1-D vectors of equal length, got {tuple(p.shape)}, {tuple(q.shape)}"
        )
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("counts must be non-negative with a positive sum")
    p, q = p.double() / p.sum(), q.double() / q.sum()
    value = _entropy_bits((p + q) / 2) - (_entropy_bits(p) + _entropy_bits(q)) / 2
    return max(float(value), 0.0)  # rounding can give -1e-17 for identical inputs


def jsd(
    samples: Tensor, references: Tensor, resolution: int = 28, in_unit_sphere: bool = True
) -> float:
    """PointFlow's JSD between the occupancy distributions of two sets (module docstring).

    Args:
        samples: (S, N, 3) and references: (R, M, 3) clouds (any N, M; CPU or other device).
        resolution: grid cells per axis (PointFlow: 28).
        in_unit_sphere: keep only the centres inside the unit-diameter sphere (PointFlow: True).
    Returns:
        JSD in bits, in [0, 1].
    """
    p = occupancy_counts(samples, resolution, in_unit_sphere)
    q = occupancy_counts(references, resolution, in_unit_sphere)
    return jensen_shannon_divergence(p, q)
