"""Distance matrices between two sets of point clouds (the input of MMD / COV / 1-NNA).

``pairwise_distances(a, b)`` returns D (Na, Nb) with ``D[i, j] = dist(a_i, b_j)``; with
``b=None`` it returns the symmetric matrix of ``a`` with itself, computing each unordered pair
once (diagonal 0). ``dist`` is ``chamfer_distance`` (squared, sum of the two directional means)
or ``earth_movers_distance`` (mean matched Euclidean distance).

Chamfer backends:

- ``"fused"`` (CPU; the choice there when a C++ compiler is found): the brute-force kernel
  ``chamfer_cpu.cpp`` (built once per machine by ``zoo.metrics._native``), which computes each
  squared distance of a pair once in float32 vector registers, feeds both directions' minima
  from it and stores nothing of the N x M matrix; the means are summed in double. ~0.18 ms of
  one core per 2048-point pair, ~14x fewer CPU seconds than the KD-tree (measured alone:
  100 vs 100 clouds in 1.8 s instead of 24.1 s on 2 cores, ``benchmarks/bench_metrics.py
  --only generative``), which makes PointFlow's protocol with hundreds of
  references cheap: 600 x 600 clouds (S x R plus both triangles, 719,400 pairs) in ~1 min on
  2 cores. ``torch.get_num_threads()`` threads, one pair at a time each.
- ``"kdtree"`` (CPU; the fallback, with one warning, when the kernel cannot be built): one
  ``cKDTree`` per cloud (32-point leaves), built once and reused by all pairs; each cloud queries
  in its own tree's leaf order (cache-friendlier); a thread pool (one task per query cloud,
  ``torch.get_num_threads()`` threads) runs the queries, which release the GIL. A directed 2048 ->
  2048 query costs 0.8 ms CPU between similar shapes and ~1.5 ms between clearly different ones (a
  far query point visits more leaves). 100 x 100 clouds of 2048 points (the PointFlow setting: S x
  R plus both triangles = 19,900 pairs, 39,800 directed queries) thus need ~30 s on 2 idle cores;
  the brute force needs ~5 ms per pair (~100 s).
- ``"torch"`` (any device, the choice on GPU): brute force over chunks of pairs with ``baddbmm``
  and ``min``; distances are recomputed exactly from the argmin indices.
- ``"auto"``: ``fused`` on CPU (``kdtree`` without a compiler), ``torch`` elsewhere.

EMD (``"emd"``) solves one assignment per pair on the CPU (exact up to ``EXACT_MAX_POINTS``
points): 0.4 to 1.3 s of CPU per 2048-point pair depending on the shapes, i.e. about 1 to 4
hours for the 100 x 100 setting on 2 idle cores: use small sets, or Chamfer.

``"emd_pointflow"`` / ``"emd_pvd"`` are the papers' approximate EMDs (``zoo.metrics.approxmatch``):
the fused C++ kernel on the CPU, batched torch elsewhere. The approximation is not symmetric, so
the matrix follows PointFlow's ``compute_all_metrics`` orientation exactly: ``D[i, j] =
approxmatch(x1=b_j, x2=a_i)`` (PointFlow's ``M_rs[r, s]`` is computed with the reference r first,
and ``generative_metrics`` passes samples as ``a``), and with ``b=None`` every ordered pair is
computed (``D[i, j] = approxmatch(x1=a_j, x2=a_i)``, not symmetrised; diagonal 0; both orders of a
pair share their kernels). 100 x 100 clouds are thus 29,800 ordered pairs (19,900 kernel sets); see
``benchmarks/bench_metrics.py``.
"""

from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from zoo.metrics._native import library
from zoo.metrics.approxmatch import approxmatch_emd, approxmatch_emd_both, fused_pairs, use_fused
from zoo.metrics.emd import (
    APPROX_ITERATIONS,
    APPROX_LEAF_SIZE,
    EXACT_MAX_POINTS,
    approx_matching,
    exact_matching,
)
from zoo.metrics.knn import to_numpy64

Distance = Literal["chamfer", "emd", "emd_pointflow", "emd_pvd"]
DISTANCES = ("chamfer", "emd", "emd_pointflow", "emd_pvd")
PairBackend = Literal["auto", "fused", "kdtree", "torch"]
CHAMFER_SOURCE = Path(__file__).with_name("chamfer_cpu.cpp")

_TORCH_BUDGET = 1 << 24  # distances held at once by the brute-force path
_APPROX_PAIRS = 64  # pairs gathered at once for the approxmatch variants


def check_cloud_set(name: str, x: object) -> Tensor:
    """A set of clouds must be a (K, N, 3) floating tensor with K >= 1 and N >= 1."""
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x)
        raise ValueError(f"{name} must be a (K, N, 3) tensor of K point clouds, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one non-empty cloud, got {tuple(x.shape)}")
    return x


def pairwise_distances(
    a: Tensor,
    b: Tensor | None = None,
    distance: Distance = "chamfer",
    *,
    backend: PairBackend = "auto",
) -> Tensor:
    """Distance matrix (Na, Nb) between clouds a (Na, N, 3) and b (Nb, M, 3), float64.

    With ``b=None``: the symmetric (Na, Na) matrix of ``a`` against itself, diagonal 0.
    The result is on the device of ``a``.
    """
    a = check_cloud_set("a", a)
    if b is not None:
        b = check_cloud_set("b", b)
        if b.device != a.device:
            raise ValueError(f"a is on {a.device} but b is on {b.device}")
    if distance == "chamfer":
        if backend == "auto":
            cpu = a.device.type == "cpu"
            backend = ("fused" if _chamfer_library() is not None else "kdtree") if cpu else "torch"
        if backend == "fused":
            if a.device.type != "cpu":
                raise ValueError(f"the fused backend needs CPU tensors, got {a.device}")
            if _chamfer_library() is None:
                raise RuntimeError("the fused Chamfer kernel could not be built (see warning)")
            return _chamfer_fused(a.detach(), None if b is None else b.detach())
        if backend == "kdtree":
            if a.device.type != "cpu":
                raise ValueError(f"the kdtree backend needs CPU tensors, got {a.device}")
            d = _chamfer_kdtree(_np(a), None if b is None else _np(b))
            return torch.from_numpy(d)
        if backend == "torch":
            return _chamfer_torch(a.detach(), None if b is None else b.detach())
        raise ValueError(f"backend must be 'auto', 'fused', 'kdtree' or 'torch', got {backend!r}")
    if distance in DISTANCES:  # one of the EMDs
        n = a.shape[1]
        if b is not None and b.shape[1] != n:
            raise ValueError(
                f"EMD needs clouds of equal size, got a {tuple(a.shape)} and b {tuple(b.shape)}"
            )
        if distance == "emd":
            d = _emd_matrix(_np(a), None if b is None else _np(b))
            return torch.from_numpy(d).to(a.device)
        variant = "pointflow" if distance == "emd_pointflow" else "pvd"
        return _approxmatch_matrix(a.detach(), None if b is None else b.detach(), variant)
    raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def _np(x: Tensor) -> np.ndarray:
    return to_numpy64(x)


def _pairs(na: int, nb: int, symmetric: bool) -> list[tuple[int, int]]:
    if symmetric:
        return [(i, j) for i in range(na) for j in range(i + 1, na)]
    return [(i, j) for i in range(na) for j in range(nb)]


def _declare_chamfer(lib: ctypes.CDLL) -> None:
    fn = lib.zoo_chamfer_pairs
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] + [ctypes.c_int] * 4
    fn.argtypes += [ctypes.c_void_p, ctypes.c_int]


def _chamfer_library() -> ctypes.CDLL | None:
    return library(CHAMFER_SOURCE, _declare_chamfer, "zoo.metrics.pairwise (Chamfer)")


def _planar(clouds: Tensor) -> Tensor:
    """(K, N, 3) -> planar float32 (K, 3, Np), Np = N rounded up to 16, padded with far points
    (the kernel's layout; no real point has a padding point as its nearest neighbour)."""
    k, n, _ = clouds.shape
    padded = -(-n // 16) * 16
    out = torch.full((k, 3, padded), 1e18, dtype=torch.float32)
    out[:, :, :n] = clouds.transpose(1, 2)
    return out.contiguous()


def _chamfer_fused(a: Tensor, b: Tensor | None) -> Tensor:
    """Squared Chamfer matrix by the fused kernel (unordered pairs only when symmetric), run
    in chunks of pairs so that an interrupt is seen between them."""
    lib = _chamfer_library()
    assert lib is not None
    sym = b is None
    bb = a if sym else b
    na, nb, n, m = a.shape[0], bb.shape[0], a.shape[1], bb.shape[1]
    xs = _planar(a)
    ys = xs if sym else _planar(bb)
    idx = torch.tensor(_pairs(na, nb, sym), dtype=torch.int64).reshape(-1, 2)
    i, j = idx[:, 0].contiguous(), idx[:, 1].contiguous()
    values = torch.zeros(len(idx), dtype=torch.float64)
    threads = max(1, torch.get_num_threads())
    chunk = 256 * threads
    for s in range(0, len(idx), chunk):
        part = values[s : s + chunk]
        lib.zoo_chamfer_pairs(
            xs.data_ptr(),
            i[s:].data_ptr(),
            ys.data_ptr(),
            j[s:].data_ptr(),
            len(part),
            n,
            xs.shape[2],
            m,
            ys.shape[2],
            part.data_ptr(),
            threads,
        )
    out = torch.zeros(na, nb, dtype=torch.float64)
    out[i, j] = values
    return out + out.T if sym else out


def _chamfer_kdtree(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Squared Chamfer matrix from directed mean NN distances, one KD-tree per cloud."""
    threads = max(1, torch.get_num_threads())
    sym = b is None
    with ThreadPoolExecutor(max_workers=threads) as pool:

        def build(c: np.ndarray) -> list[cKDTree]:
            # Balanced trees with 32-point leaves: ~15% fewer CPU seconds per query than
            # scipy's defaults on 2048-point shapes (measured; trees are reused ~200 times).
            return list(pool.map(lambda p: cKDTree(p, leafsize=32), c))

        trees_a = build(a)
        trees_b = trees_a if sym else build(b)
        # Query each cloud in its own tree's leaf order (spatially coherent, ~8% faster
        # queries; the mean over a cloud's points does not depend on their order).
        a = np.stack([c[t.indices] for c, t in zip(a, trees_a, strict=True)])
        if not sym:
            b = np.stack([c[t.indices] for c, t in zip(b, trees_b, strict=True)])

        def directed(queries: np.ndarray, trees: list[cKDTree]) -> np.ndarray:
            """out[i, j] = mean_k min_l |q_i,k - t_j,l|^2 (the diagonal is skipped when sym)."""

            def row(i: int) -> np.ndarray:
                out = np.zeros(len(trees))
                for j, tree in enumerate(trees):
                    if sym and i == j:
                        continue
                    dist, _ = tree.query(queries[i], k=1)
                    out[j] = np.mean(dist * dist)
                return out

            return np.stack(list(pool.map(row, range(len(queries)))))

        if sym:
            d = directed(a, trees_a)  # (Na, Na), d[i, j]: a_i -> a_j
            return d + d.T
        return directed(a, trees_b) + directed(b, trees_a).T  # (Na, Nb)


def _chamfer_torch(a: Tensor, b: Tensor | None) -> Tensor:
    """Brute-force squared Chamfer matrix in chunks of pairs (any device)."""
    sym = b is None
    bb = a if sym else b
    na, nb = a.shape[0], bb.shape[0]
    n, m = a.shape[1], bb.shape[1]
    dtype = torch.promote_types(torch.promote_types(a.dtype, bb.dtype), torch.float32)
    a, bb = a.to(dtype), bb.to(dtype)
    pairs = torch.tensor(_pairs(na, nb, sym), dtype=torch.long, device=a.device).reshape(-1, 2)
    out = torch.zeros(na, nb, dtype=torch.float64, device=a.device)
    chunk = max(1, _TORCH_BUDGET // (n * m))
    for s in range(0, pairs.shape[0], chunk):
        i, j = pairs[s : s + chunk, 0], pairs[s : s + chunk, 1]
        x, y = a[i], bb[j]  # (P, N, 3), (P, M, 3)
        centre = y.mean(dim=1, keepdim=True)
        xc, yc = x - centre, y - centre
        x2 = xc.square().sum(-1)  # (P, N)
        y2 = yc.square().sum(-1)  # (P, M)
        d = torch.baddbmm(y2.unsqueeze(1), xc, yc.transpose(1, 2), alpha=-2.0)
        d = d + x2.unsqueeze(-1)  # (P, N, M) squared distances (expanded form)
        i_xy = d.min(dim=2).indices  # (P, N)
        i_yx = d.min(dim=1).indices  # (P, M)
        del d
        nn_y = torch.gather(yc, 1, i_xy.unsqueeze(-1).expand(-1, -1, 3))
        nn_x = torch.gather(xc, 1, i_yx.unsqueeze(-1).expand(-1, -1, 3))
        cd = (xc - nn_y).square().sum(-1).mean(-1) + (yc - nn_x).square().sum(-1).mean(-1)
        out[i, j] = cd.to(torch.float64)
    return out + out.T if sym else out


def _emd_matrix(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """EMD for every pair (exact up to EXACT_MAX_POINTS points, else the approx matching)."""
    sym = b is None
    bb = a if sym else b
    n = a.shape[1]

    def one(pair: tuple[int, int]) -> float:
        x, y = a[pair[0]], bb[pair[1]]
        if n <= EXACT_MAX_POINTS:
            perm = exact_matching(x, y)
        else:
            perm = approx_matching(
                x, y, APPROX_LEAF_SIZE, APPROX_ITERATIONS, np.random.default_rng(0)
            )
        return float(np.linalg.norm(x - y[perm], axis=1).mean())

    pairs = _pairs(a.shape[0], bb.shape[0], sym)
    with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
        values = list(pool.map(one, pairs))
    out = np.zeros((a.shape[0], bb.shape[0]))
    for (i, j), v in zip(pairs, values, strict=True):
        out[i, j] = v
    return out + out.T if sym else out


def _approxmatch_matrix(a: Tensor, b: Tensor | None, variant: str) -> Tensor:
    """D[i, j] = approxmatch(x1=b_j, x2=a_i) (b = a when None, every ordered pair i != j).

    With ``b=None`` each unordered pair is solved once for both orders (the swapped order's
    kernel is the transpose). On the CPU the fused C++ kernel runs all pairs on
    ``torch.get_num_threads()`` threads (``approxmatch.fused_pairs``); otherwise (another
    device, or no compiler) the torch path: on the CPU ``torch.get_num_threads()`` worker
    threads each run one pair at a time with one torch thread (measured: intra-op threading of
    these 16 MB element-wise passes loses most of its gain, and on a loaded machine costs up to
    5x the CPU time); elsewhere chunks of pairs.
    """
    sym = b is None
    bb = a if sym else b
    na, nb = a.shape[0], bb.shape[0]
    idx = torch.tensor(_pairs(na, nb, sym), dtype=torch.long, device=a.device).reshape(-1, 2)
    out = torch.zeros(na, nb, dtype=torch.float64, device=a.device)
    i, j = idx[:, 0], idx[:, 1]
    if use_fused(a.device, "auto"):
        values = fused_pairs(bb, j, a, i, variant, both=sym)
    else:
        values = _approxmatch_torch(a, bb, idx, sym, variant)
    if sym:
        out[i, j], out[j, i] = values[:, 0], values[:, 1]
    else:
        out[i, j] = values
    return out


def _approxmatch_torch(a: Tensor, bb: Tensor, idx: Tensor, sym: bool, variant: str) -> Tensor:
    """The torch path of ``_approxmatch_matrix``: values (P,) or, with ``sym``, (P, 2)."""
    cpu = a.device.type == "cpu"
    chunk = 1 if cpu else _APPROX_PAIRS
    starts = range(0, idx.shape[0], chunk)
    local = threading.local()  # one reused buffer set per worker thread (see approxmatch_emd)

    def run(s: int) -> Tensor:
        if cpu:
            torch.set_num_threads(1)  # this worker thread only
        ws = local.__dict__.setdefault("workspace", {})
        i, j = idx[s : s + chunk, 0], idx[s : s + chunk, 1]
        if sym:  # (x1=a_j, x2=a_i) -> D[i, j] and (x1=a_i, x2=a_j) -> D[j, i]
            return approxmatch_emd_both(a[j], a[i], variant, ws, backend="torch")  # type: ignore[arg-type]
        return approxmatch_emd(bb[j], a[i], variant, ws, backend="torch")  # type: ignore[arg-type]

    if cpu:
        with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
            return torch.cat(list(pool.map(run, starts))).to(torch.float64)
    return torch.cat([run(s) for s in starts]).to(torch.float64)
