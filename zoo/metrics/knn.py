"""Nearest neighbours between point clouds: the kernel of Chamfer, F-score and normal consistency.

``nearest_neighbors(x, y)`` finds, for every point of ``x``, its nearest point of ``y``. The
search (an index, no gradient) has several backends; the returned squared distances are
recomputed as ``|x_i - y_idx(i)|^2`` in torch, so they are differentiable w.r.t. both clouds and
free of the cancellation error of the ``|x|^2 - 2 x.y + |y|^2`` expansion (the KD-tree backend
returns its own exact float64 distances instead when neither input requires a gradient).

Backends (``backend=``):

- ``"torch"``: chunked brute force ``|y|^2 - 2 x.y`` with ``baddbmm`` + ``min``; any device, and the
  right choice on GPU. Memory is bounded by chunking (about 2^22 distances at a time).
- ``"kdtree"``: ``scipy.spatial.cKDTree`` (CPU, float64). One cloud queries with all torch threads;
  a batch runs one tree per item in a thread pool (scipy releases the GIL while querying).
- ``"open3d"``: ``open3d.core.nns.NearestNeighborSearch`` KNN (CPU, float32), kept for comparison.
- ``"naive"``: the full ``torch.cdist`` matrix (exact differences, no expansion); a reference
  for tests, O(N M) memory.
- ``"auto"`` (default): ``kdtree`` for CPU tensors with ``N * M >= KDTREE_MIN_PAIRS`` (256^2),
  else ``torch``. Measured single-threaded on the benchmark CPU (one pair, both directions):
  the two are even at 256 points, the KD-tree is 2x faster at 512, 7-10x at 1024-2048 (the brute
  force is O(N M), the tree O(N log M)); 100k x 100k takes ~0.1 s with the tree and minutes by
  brute force (``benchmarks/bench_metrics.py``). open3d's KNN was not faster than scipy here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from zoo._open3d import import_open3d
from zoo.metrics._checks import point_pair

Backend = Literal["auto", "torch", "kdtree", "open3d", "naive"]

# CPU crossover between the brute-force torch path and the KD-tree (N * M of one pair).
KDTREE_MIN_PAIRS = 256 * 256
# Distances held in memory at once by the chunked brute force.
_TORCH_BUDGET = 1 << 22


def nearest_neighbors(x: Tensor, y: Tensor, *, backend: Backend = "auto") -> tuple[Tensor, Tensor]:
    """For every point of ``x``, the squared distance to and index of its nearest point in ``y``.

    Args:
        x: (N, 3) or (B, N, 3) query points.
        y: (M, 3) or (B, M, 3) points searched (same batching and batch size as ``x``).
        backend: see the module docstring.
    Returns:
        ``sq_dist`` (N,) or (B, N) = ``min_j |x_i - y_j|^2`` (differentiable, dtype of ``x``
        promoted to at least float32) and ``idx`` (N,) or (B, N) int64 with
        ``sq_dist[i] = |x_i - y[idx[i]]|^2``. Ties are broken arbitrarily (backend-dependent).
    """
    xb, yb, batched = point_pair(x, y)
    if backend == "naive":
        sq, idx = _nn_naive(xb, yb)
        return (sq, idx) if batched else (sq[0], idx[0])
    if backend == "auto":
        big = xb.shape[1] * yb.shape[1] >= KDTREE_MIN_PAIRS
        backend = "kdtree" if xb.device.type == "cpu" and big else "torch"
    with torch.no_grad():
        if backend == "torch":
            idx = _nn_index_torch(xb.detach(), yb.detach())
        elif backend == "kdtree":
            sq, idx = _nn_kdtree(xb.detach(), yb.detach())
            if not (xb.requires_grad or yb.requires_grad):
                # The tree's float64 distances are exact; skip the gather (see to_numpy64).
                sq = sq.to(
                    torch.promote_types(torch.promote_types(xb.dtype, yb.dtype), torch.float32)
                )
                return (sq, idx) if batched else (sq[0], idx[0])
        elif backend == "open3d":
            idx = _nn_index_open3d(xb.detach(), yb.detach())
        else:
            raise ValueError(
                f"backend must be one of auto, torch, kdtree, open3d, naive; got {backend!r}"
            )
    sq = gathered_sq_dist(xb, yb, idx)
    return (sq, idx) if batched else (sq[0], idx[0])


def nearest_neighbors_naive(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Brute-force reference: full ``torch.cdist`` matrix then ``min``. Same contract as above."""
    return nearest_neighbors(x, y, backend="naive")


def gathered_sq_dist(x: Tensor, y: Tensor, idx: Tensor) -> Tensor:
    """``|x_i - y_idx(i)|^2`` for batched x (B, N, 3), y (B, M, 3), idx (B, N) -> (B, N)."""
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    nn = torch.gather(y.to(dtype), 1, idx.unsqueeze(-1).expand(-1, -1, 3))  # (B, N, 3)
    return (x.to(dtype) - nn).square().sum(-1)


def _nn_naive(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    d = torch.cdist(x.to(dtype), y.to(dtype), compute_mode="donot_use_mm_for_euclid_dist")
    sq, idx = d.square().min(dim=-1)  # (B, N)
    return sq, idx


def _nn_index_torch(x: Tensor, y: Tensor) -> Tensor:
    """argmin_j |x_i - y_j|^2 via chunked ``|y_j|^2 - 2 x_i.y_j`` (``|x_i|^2`` is constant)."""
    b, n, _ = x.shape
    m = y.shape[1]
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    centre = y.mean(dim=1, keepdim=True)  # (B, 1, 3) shift both clouds: less cancellation
    x = (x - centre).to(dtype)
    y = (y - centre).to(dtype)
    yt = y.transpose(1, 2)  # (B, 3, M)
    y2 = y.square().sum(-1).unsqueeze(1)  # (B, 1, M)
    rows = max(1, min(n, _TORCH_BUDGET // m))
    items = max(1, _TORCH_BUDGET // (rows * m))
    idx = torch.empty(b, n, dtype=torch.long, device=x.device)
    for i in range(0, b, items):
        for r in range(0, n, rows):
            d = torch.baddbmm(
                y2[i : i + items], x[i : i + items, r : r + rows], yt[i : i + items], alpha=-2.0
            )  # (items, rows, M)
            idx[i : i + items, r : r + rows] = d.min(dim=-1).indices
    return idx


def _nn_kdtree(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(B, N) float64 squared distances and int64 indices from one cKDTree per batch item."""
    if x.device.type != "cpu":
        raise ValueError(f"the kdtree backend needs CPU tensors, got {x.device}")
    xs = to_numpy64(x)
    ys = to_numpy64(y)
    threads = max(1, torch.get_num_threads())

    def one(i: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
        tree = cKDTree(ys[i], balanced_tree=False, compact_nodes=False)
        return tree.query(xs[i], k=1, workers=workers)

    if xs.shape[0] == 1 or threads == 1:
        out = [one(i, threads) for i in range(xs.shape[0])]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            out = list(pool.map(lambda i: one(i, 1), range(xs.shape[0])))
    dist = np.stack([d for d, _ in out])
    idx = np.stack([i for _, i in out]).astype(np.int64)
    return torch.from_numpy(dist * dist), torch.from_numpy(idx)


def to_numpy64(x: Tensor) -> np.ndarray:
    """float64 numpy copy of a tensor, converted by numpy: a torch dtype cast runs on the OpenMP
    pool, which costs tens of ms per call on an oversubscribed CPU (measured)."""
    x = x.detach().cpu()
    if x.dtype not in (torch.float16, torch.float32, torch.float64):
        x = x.float()  # e.g. bfloat16, which numpy lacks
    return np.ascontiguousarray(x.numpy(), dtype=np.float64)


def _nn_index_open3d(x: Tensor, y: Tensor) -> Tensor:
    if x.device.type != "cpu":
        raise ValueError(f"the open3d backend needs CPU tensors, got {x.device}")

    o3d = import_open3d()
    out = []
    for i in range(x.shape[0]):
        ys = o3d.core.Tensor(np.ascontiguousarray(y[i].numpy(), dtype=np.float32))
        search = o3d.core.nns.NearestNeighborSearch(ys)
        search.knn_index()
        xs = o3d.core.Tensor(np.ascontiguousarray(x[i].numpy(), dtype=np.float32))
        idx, _ = search.knn_search(xs, 1)
        out.append(idx.numpy()[:, 0].astype(np.int64))
    return torch.from_numpy(np.stack(out))
