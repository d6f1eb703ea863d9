"""Earth mover's distance between equal-size point clouds: exact, bounded, or as papers ran it.

Definition (Rubner et al. 2000; the point-cloud EMD of Fan et al. 2017 and PointFlow, Yang et
al. 2019, whose ``emd / N`` is this mean)::

    EMD(x, y) = min over permutations p of  1/N sum_i |x_i - y_p(i)|      (Euclidean, not squared)

Methods:

- ``"exact"``: the shortest-augmenting-path solver ``scipy.optimize.linear_sum_assignment`` on
  the dense float64 N x N cost. O(N^2) memory; 0.35 s to 2 s of CPU at N = 2048 and 2 s to
  10 s at N = 4096 on the benchmark CPU (the time grows with the transport between the shapes).
- ``"approx"``: a feasible matching improved by block-coordinate descent, so the value is an
  **upper bound** of the exact EMD that can only decrease with ``iterations``:
  (1) both clouds are split recursively at the median of the longest axis of their union
  (equal counts on both sides) into leaves of <= ``leaf_size`` points, each leaf matched exactly;
  (2) ``iterations`` times: pairs are regrouped by a median split of their midpoints
  ``(x_i + y_p(i)) / 2`` after a random rotation, and each group is re-matched exactly (this
  never increases the cost). Cost O(iterations * N * leaf_size^2) time, O(leaf_size^2) memory.
  Measured relative error vs exact (``leaf_size=512, iterations=8``; unit-diameter shapes):
  two samples of the *same* surface (the hardest case, where the exact EMD is smallest):
  +0.4 to +0.6 % at N = 2048 and +0.7 to +2.5 % at N = 4096 (sphere, ellipsoid/box mixture);
  clearly different shapes: +0.003 to +0.05 %. At N = 4096 it is 2.5-3x faster than exact
  (``benchmarks/bench_metrics.py``). The error grows with N / leaf_size: at N >> 10^4 expect
  several percent for similar clouds (not measurable here: exact is out of reach).
- ``"auto"`` (default): exact for N <= ``exact_max_points`` (4096), approx above.
- ``"pointflow"`` / ``"pvd"``: **not** the exact EMD but the approximate matching of Fan et al.
  2017 (CUDA ``approxmatch``) with which the papers' tables were made: PointFlow's variant
  (9 annealing levels, Euclidean cost; PointFlow, SoftFlow, ShapeGF ...) or PVD/LION's (10
  levels with the level-0 pass, *squared* cost, values ~10x larger on ShapeNet). See
  ``zoo.metrics.approxmatch``; ``x`` takes the kernels' first argument (PointFlow passes the
  reference cloud there). Use these to put a number beside a paper's table.

The solver runs on the CPU in float64 (inputs on another device are copied); the returned mean
is recomputed in torch from the matching, so it lives on the input device and is
differentiable w.r.t. both clouds (the matching itself is piecewise constant). The
``"pointflow"`` / ``"pvd"`` methods run in torch on the input device (batched, GPU too) and
are not differentiable.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from torch import Tensor

from zoo.metrics._checks import float_dtype, point_pair, unbatch
from zoo.metrics.approxmatch import approxmatch_emd
from zoo.metrics.knn import to_numpy64

EXACT_MAX_POINTS = 4096
APPROX_LEAF_SIZE = 512
APPROX_ITERATIONS = 8

Method = Literal["auto", "exact", "approx", "pointflow", "pvd"]
METHODS = ("auto", "exact", "approx", "pointflow", "pvd")


def earth_movers_distance(
    x: Tensor,
    y: Tensor,
    *,
    method: Method = "auto",
    exact_max_points: int = EXACT_MAX_POINTS,
    leaf_size: int = APPROX_LEAF_SIZE,
    iterations: int = APPROX_ITERATIONS,
    seed: int = 0,
) -> Tensor:
    """EMD of x and y: the mean matched Euclidean distance of the optimal one-to-one matching,
    or a paper's approximation of it (``"pointflow"``, ``"pvd"``; module docstring).

    Args:
        x, y: (N, 3) or (B, N, 3) clouds with the same number of points.
        method: ``"auto"``, ``"exact"``, ``"approx"``, ``"pointflow"`` or ``"pvd"``.
        exact_max_points: largest N solved exactly by ``"auto"``.
        leaf_size, iterations, seed: parameters of ``"approx"`` (the seed makes it deterministic).
    Returns:
        scalar, or (B,) for batched inputs; same units as the input.
    """
    xb, yb, batched = point_pair(x, y)
    if xb.shape[1] != yb.shape[1]:
        raise ValueError(
            "earth_movers_distance needs clouds of equal size, got "
            f"x {tuple(x.shape)} and y {tuple(y.shape)}"
        )
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method in ("pointflow", "pvd"):
        return unbatch(approxmatch_emd(xb, yb, method), batched)
    if leaf_size < 2 or iterations < 0:
        raise ValueError(f"need leaf_size >= 2 and iterations >= 0, got {leaf_size}, {iterations}")
    n = xb.shape[1]
    use_exact = method == "exact" or (method == "auto" and n <= exact_max_points)
    perms = []
    xs = to_numpy64(xb)
    ys = to_numpy64(yb)
    for i in range(xb.shape[0]):
        if use_exact:
            perms.append(exact_matching(xs[i], ys[i]))
        else:
            rng = np.random.default_rng(seed)
            perms.append(approx_matching(xs[i], ys[i], leaf_size, iterations, rng))
    perm = torch.from_numpy(np.stack(perms)).to(xb.device)  # (B, N)
    dtype = float_dtype(xb, yb)
    matched = torch.gather(yb.to(dtype), 1, perm.unsqueeze(-1).expand(-1, -1, 3))  # (B, N, 3)
    emd = (xb.to(dtype) - matched).norm(dim=-1).mean(-1)
    return unbatch(emd, batched)


def exact_matching(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Optimal permutation p (N,) minimising sum_i |x_i - y_p(i)| for x, y (N, 3)."""
    rows, cols = linear_sum_assignment(cdist(x, y))
    perm = np.empty(len(x), dtype=np.int64)
    perm[rows] = cols
    return perm


def approx_matching(
    x: np.ndarray, y: np.ndarray, leaf_size: int, iterations: int, rng: np.random.Generator
) -> np.ndarray:
    """Upper-bound matching: median-split partition, then block re-matching (module docstring)."""
    perm = _partition_matching(x, y, leaf_size)
    for _ in range(iterations):
        rot = _random_rotation(rng)
        key = (0.5 * (x + y[perm])) @ rot.T  # (N, 3) midpoints of the matched pairs, rotated
        for ix in _median_leaves(key, leaf_size):
            iy = perm[ix]
            rows, cols = linear_sum_assignment(cdist(x[ix], y[iy]))
            perm[ix[rows]] = iy[cols]
    return perm


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random 3x3 rotation: QR of a Gaussian matrix with the sign fix of Mezzadri 2007."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _partition_matching(x: np.ndarray, y: np.ndarray, leaf_size: int) -> np.ndarray:
    """Split x and y together (same axis, each at its own median), match leaves exactly."""
    perm = np.empty(len(x), dtype=np.int64)
    stack = [(np.arange(len(x)), np.arange(len(y)))]
    while stack:
        ix, iy = stack.pop()
        m = len(ix)
        if m <= leaf_size:
            rows, cols = linear_sum_assignment(cdist(x[ix], y[iy]))
            perm[ix[rows]] = iy[cols]
            continue
        both = np.concatenate([x[ix], y[iy]])
        axis = int(np.argmax(both.max(0) - both.min(0)))
        k = m // 2
        ox = np.argpartition(x[ix, axis], k)
        oy = np.argpartition(y[iy, axis], k)
        stack.append((ix[ox[:k]], iy[oy[:k]]))
        stack.append((ix[ox[k:]], iy[oy[k:]]))
    return perm


def _median_leaves(p: np.ndarray, leaf_size: int) -> list[np.ndarray]:
    """Index sets of a balanced median-split tree over points p (N, 3), leaves <= leaf_size."""
    leaves, stack = [], [np.arange(len(p))]
    while stack:
        ix = stack.pop()
        if len(ix) <= leaf_size:
            leaves.append(ix)
            continue
        q = p[ix]
        axis = int(np.argmax(q.max(0) - q.min(0)))
        k = len(ix) // 2
        order = np.argpartition(q[:, axis], k)
        stack.append(ix[order[:k]])
        stack.append(ix[order[k:]])
    return leaves
