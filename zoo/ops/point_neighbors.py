"""K nearest points within a radius, through a voxel hash of the points (CPU-affordable).

Point-NeRF (Xu et al., "Point-NeRF: Point-based Neural Radiance Fields", CVPR 2022, Sec. 3.1
and its CUDA kernel in Xharlie/pointnerf) shades a location ``x`` from the ``K`` (8) nearest
neural points within a query radius, found by hashing the points into voxels and scanning the
voxels around ``x``. This is the same search in plain PyTorch:

- :class:`PointGrid` sorts the points by the integer key of their cell (cell size = the query
  radius, keys ``(i * ny + j) * nz + k`` over the points' bounding cells, so no hash
  collisions) and remembers where each non-empty cell's run of points starts and ends (a
  dense key table when the grid has at most 2^23 cells, else ``searchsorted`` on the keys);
- :func:`radius_knn` looks up the 27 cells around each query (``searchsorted`` on the sorted
  non-empty keys: every point within ``radius`` lies in one of them), measures the distance
  to every point of those cells (flat, vectorised: about ``27 / (4 pi / 3) = 6.4`` times the
  points of the query ball) and keeps the ``K`` nearest within the radius. Queries go in
  chunks, so memory is bounded by the chunk size times the points of 27 cells.

:func:`radius_knn_brute` is the obviously-correct ``O(Q N)`` version the tests compare with.
Missing neighbours (fewer than ``K`` points within the radius) have index -1 and squared
distance ``inf``; neighbours are sorted by distance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_OFFSETS = torch.tensor(
    [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=torch.long
)  # (27, 3)


DENSE_TABLE_CELLS = 1 << 23  # grids up to this many cells get a dense lookup table (64 MiB)


class PointGrid:
    """A voxel hash of points (N, 3) with cell size ``radius`` (built once, queried often).

    Attributes:
        points: (N, 3) the points, in their original order (indices refer to it).
        order: (N,) long, the points sorted by cell key.
        keys: (C,) long, the sorted keys of the non-empty cells; ``starts``/``counts`` (C,)
            where each cell's run begins in ``order`` and how many points it holds.
    """

    def __init__(self, points: Tensor, radius: float) -> None:
        if points.ndim != 2 or points.shape[-1] != 3:
            raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
        if not radius > 0.0 or not math.isfinite(radius):
            raise ValueError(f"radius must be positive and finite, got {radius}")
        self.points = points.detach()
        self.radius = float(radius)
        dev = points.device
        if len(points) == 0:
            self.origin = torch.zeros(3, device=dev)
            self.dims = torch.ones(3, dtype=torch.long, device=dev)
            self.order = torch.zeros(0, dtype=torch.long, device=dev)
            self.keys = self.starts = self.counts = torch.zeros(0, dtype=torch.long, device=dev)
            self.table = None
            return
        self.origin = self.points.min(dim=0).values  # (3,)
        ijk = self.cells(self.points)  # (N, 3)
        self.dims = ijk.max(dim=0).values + 1  # (3,) cells per axis
        key = self._key(ijk)  # (N,)
        key_sorted, self.order = torch.sort(key, stable=True)
        self.keys, self.counts = torch.unique_consecutive(key_sorted, return_counts=True)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        # A dense key -> cell table when it is small: direct lookups instead of searchsorted.
        self.table: Tensor | None = None
        if int(self.dims.prod()) <= DENSE_TABLE_CELLS:
            self.table = torch.full((int(self.dims.prod()),), -1, dtype=torch.long, device=dev)
            self.table[self.keys] = torch.arange(len(self.keys), device=dev)

    def cells(self, x: Tensor) -> Tensor:
        """Integer cell coordinates (..., 3) of points x (..., 3) (may be outside the grid)."""
        return torch.floor((x - self.origin) / self.radius).long()

    def _key(self, ijk: Tensor) -> Tensor:
        return (ijk[..., 0] * self.dims[1] + ijk[..., 1]) * self.dims[2] + ijk[..., 2]

    @property
    def max_count(self) -> int:
        """Points in the fullest cell (the number of slot iterations of a query)."""
        return int(self.counts.max()) if len(self.counts) else 0


def radius_knn(
    queries: Tensor,
    grid: PointGrid,
    k: int,
    radius: float | None = None,
    chunk: int = 16384,
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest points of ``grid`` within ``radius`` of each query.

    Args:
        queries: (Q, 3) query locations.
        grid: a :class:`PointGrid` of the points (its cell size bounds the radius).
        k: neighbours per query (Point-NeRF: 8).
        radius: search radius, at most the grid's cell size (default: the cell size).
        chunk: queries searched at once (bounds the memory of the candidate lists).
    Returns:
        idx (Q, k) long indices into ``grid.points`` (-1: no neighbour) and dist2 (Q, k) their
        squared distances (``inf`` where missing), nearest first.
    """
    if queries.ndim != 2 or queries.shape[-1] != 3:
        raise ValueError(f"queries must be (Q, 3), got {tuple(queries.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    r = grid.radius if radius is None else float(radius)
    if not 0.0 < r <= grid.radius:
        raise ValueError(f"radius must be in (0, {grid.radius}] (the grid's cell size), got {r}")
    q, dev = len(queries), queries.device
    best_d = torch.full((q, k), math.inf, device=dev, dtype=queries.dtype)
    best_i = torch.full((q, k), -1, dtype=torch.long, device=dev)
    if q == 0 or len(grid.keys) == 0:
        return best_i, best_d
    queries = queries.detach()
    for s in range(0, q, chunk):
        part = slice(s, s + chunk)
        best_i[part], best_d[part] = _knn_chunk(queries[part], grid, k, r * r)
    return best_i, best_d


def _knn_chunk(queries: Tensor, grid: PointGrid, k: int, r2: float) -> tuple[Tensor, Tensor]:
    """:func:`radius_knn` for one chunk of queries (Q, 3): every point of the 27 cells around
    each query is a candidate (expanded flat, query-major), those within the radius are
    placed in a (Q, L) block (L: the most any query has) and the k smallest kept."""
    q, dev = len(queries), queries.device
    ijk = grid.cells(queries)[:, None, :] + _OFFSETS.to(dev)  # (Q, 27, 3)
    inside = ((ijk >= 0) & (ijk < grid.dims)).all(dim=-1)  # (Q, 27)
    key = grid._key(torch.minimum(ijk.clamp_min(0), grid.dims - 1))  # (Q, 27)
    if grid.table is not None:
        pos = grid.table[key]  # (Q, 27), -1: empty cell
        found = inside & (pos >= 0)
        pos = pos.clamp_min(0)
    else:
        pos = torch.searchsorted(grid.keys, key).clamp_max(len(grid.keys) - 1)  # (Q, 27)
        found = inside & (grid.keys[pos] == key)
    count = torch.where(found, grid.counts[pos], 0)  # (Q, 27)
    pair_q, pair_c = count.nonzero(as_tuple=True)  # (P,) query-major
    pair_start, pair_count = grid.starts[pos[pair_q, pair_c]], count[pair_q, pair_c]
    # Expand each (query, cell) pair into its cell's points: T candidates.
    pair_of = torch.repeat_interleave(torch.arange(len(pair_q), device=dev), pair_count)  # (T,)
    first = torch.cumsum(pair_count, 0) - pair_count  # (P,) first candidate of each pair
    within = torch.arange(len(pair_of), device=dev) - first[pair_of]
    cand = grid.order[pair_start[pair_of] + within]  # (T,) point indices
    cand_q = pair_q[pair_of]  # (T,) non-decreasing
    d2 = ((grid.points[cand] - queries[cand_q]) ** 2).sum(-1)  # (T,)
    near = d2 <= r2
    cand, cand_q, d2 = cand[near], cand_q[near], d2[near]
    best_d = torch.full((q, k), math.inf, device=dev, dtype=queries.dtype)
    best_i = torch.full((q, k), -1, dtype=torch.long, device=dev)
    if len(cand) == 0:
        return best_i, best_d
    rank = _rank_within(cand_q)  # (T',) position among the query's candidates
    width = max(k, int(rank.max()) + 1)
    block_d = torch.full((q, width), math.inf, device=dev, dtype=queries.dtype)
    block_i = torch.full((q, width), -1, dtype=torch.long, device=dev)
    block_d[cand_q, rank], block_i[cand_q, rank] = d2.to(queries.dtype), cand
    best_d, pick = torch.topk(block_d, k, dim=1, largest=False, sorted=True)
    best_i = torch.where(torch.isinf(best_d), -1, torch.gather(block_i, 1, pick))
    return best_i, best_d


def _rank_within(group: Tensor) -> Tensor:
    """For a non-decreasing (M,) group index, each element's rank within its group."""
    first = torch.ones_like(group, dtype=torch.bool)
    first[1:] = group[1:] != group[:-1]
    idx = torch.arange(len(group), device=group.device)
    start = torch.cummax(torch.where(first, idx, 0), dim=0).values
    return idx - start


def radius_knn_brute(
    queries: Tensor, points: Tensor, k: int, radius: float
) -> tuple[Tensor, Tensor]:
    """:func:`radius_knn` by all pairwise distances (Q, N): the reference for tests."""
    d2 = torch.cdist(queries.double(), points.double()) ** 2  # (Q, N)
    d2 = torch.where(d2 <= radius * radius, d2, math.inf)
    pad = max(0, k - points.shape[0])
    d2 = torch.cat([d2, torch.full((len(queries), pad), math.inf, dtype=d2.dtype)], dim=1)
    best_d, best_i = torch.topk(d2, k, dim=1, largest=False, sorted=True)
    best_i = torch.where(torch.isinf(best_d), -1, best_i)
    return best_i, best_d.to(queries.dtype)


__all__ = ["PointGrid", "radius_knn", "radius_knn_brute"]
