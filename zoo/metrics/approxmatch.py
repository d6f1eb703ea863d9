"""The approximate EMD of Fan et al. (``approxmatch``), as PointFlow and PVD/LION ran it.

Most point-cloud generation papers did not report the exact earth mover's distance: they ran
the CUDA ``approxmatch`` + ``matchcost`` kernels of Fan, Su & Guibas (CVPR 2017, "A Point Set
Generation Network"), an iterative soft matching that anneals a Gaussian kernel over a fixed
list of levels. Two variants are in use, and they give different numbers (PVD issue #4: MMD-EMD
of airplanes 0.00357 with the first vs 0.0310 with the second), so the zoo provides both:

- ``"pointflow"``: PointFlow (Yang et al., ICCV 2019; ``stevenygd/PointFlow``,
  ``metrics/pytorch_structural_losses/src/approxmatch.cu``), also used by the papers that reuse
  its evaluation code (e.g. SoftFlow, DPF-Net, ShapeGF). Levels ``-4^j`` for ``j = 7 .. -1``
  (nine passes; the loop stops before Fan's final level-0 pass), cost = sum of match weight
  times the **Euclidean** distance, divided by N.
- ``"pvd"``: PVD (Zhou et al., ICCV 2021; ``alexzhou907/PVD``, ``metrics/PyTorchEMD``, the
  kernel as modified by K. Mo) and LION (Zeng et al., NeurIPS 2022; ``nv-tlabs/LION``,
  ``third_party/PyTorchEMD``): the same levels **plus** the level-0 pass (ten passes, the last
  one spreads all remaining mass uniformly), cost = sum of match weight times the **squared**
  distance, divided by N.

The algorithm (one pass per level ``a <= 0``; clouds x1 (N, 3), x2 (M, 3); with N = M, as in
the papers, both start with unit mass per point, ``remainL = remainR = 1`` (N != M: below);
``K = exp(a |x1_k - x2_l|^2)``)::

    ratioL_k  = remainL_k / (1e-9 + sum_l K_kl remainR_l)
    sumR_l    = remainR_l * sum_k K_kl ratioL_k
    ratioR_l  = min(remainR_l / (sumR_l + 1e-9), 1) * remainR_l
    remainR_l = max(0, remainR_l - sumR_l)
    match_kl += K_kl ratioL_k ratioR_l
    remainL_k = max(0, remainL_k - sum_l K_kl ratioL_k ratioR_l)

    cost = sum_kl match_kl c(|x1_k - x2_l|) / N,   c(d) = d ("pointflow") or d^2 ("pvd").

The matching is asymmetric in (x1, x2): PointFlow's ``compute_all_metrics`` calls it with the
*reference* (or the row cloud of the self-distance matrices) as ``x1``; ``zoo.metrics.pairwise``
follows that orientation (see there). Its value is not the exact EMD: it is a feasible
(sub-)transport plan's cost, so it can be below the exact EMD when mass is left unmatched (the
pointflow variant) and is generally above it for matched mass.

Two implementations of the same arithmetic (``backend``):

- ``"fused"`` (CPU tensors; the default there): the C++ kernel ``approxmatch_cpu.cpp``, built on
  first use for the CPU that runs it (``zoo.metrics._approxmatch_native``: the system ``g++``,
  ``-O3 -march=native``, cached under ``~/.cache/zoo/kernels``) and run on
  ``torch.get_num_threads()`` threads, one pair per thread. Per level it makes two sweeps over
  the rows, computing each kernel entry from the coordinates in each (2 exponentials per entry
  and level, none of the 16 MB matrices of a 2048-point pair is stored: the work stays in L1),
  with its own vectorised float32 exponential (~2 ulp, exactly 0 below -87: the CUDA
  ``__expf`` flushes there too). Columns are visited in Morton-ordered blocks of 16 points;
  a block whose bounding box lies so far from the row point that every entry is that exact 0
  is skipped, which at the steep levels (-16384 .. -256) skips most of the work without
  changing any sum. Both argument orders of a pair share each exponential
  (``approxmatch_emd_both``). About 20 ms of one core per 2048-point pair (the torch path:
  ~65-90 ms); see ``benchmarks/bench_metrics.py``.
- ``"torch"`` (any device; the choice for non-CPU tensors, and the fallback with one warning
  when the C++ kernel cannot be built): vectorised over a batch of pairs (``(P, N, M)`` kernel
  matrices). ``K`` is computed once per level and reused by the three sums (the CUDA kernel
  recomputes it three times); the cost is accumulated per level as
  ``ratioL^T (K * c) ratioR`` instead of storing ``match``. Kernel exponents below -80 are
  clamped there (weights below 2e-35 instead of ~0; torch's float32 exp is ~10x slower on such
  arguments): the change to any sum is below 1e-25 even after the 1e9 amplification of
  ``ratioL``.

Inputs in float32 run in float32 (as the CUDA kernels did), float64 in float64 (the fused
kernel uses libm's exp there: for checking, not speed); the fused kernel sums each level's cost
in float64. Clouds of different sizes N != M start with the kernel's masses
(``multiL = m / n``, ``multiR = n / m`` in C integer division: 1 for the smaller side); the
cost is divided by N, as PointFlow's wrapper does (it asserts N == M).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from zoo.metrics import _approxmatch_native as native

Variant = Literal["pointflow", "pvd"]

#: The annealing levels of the kernels: -4^j for j = 7 .. -1 (PointFlow), then 0 (PVD/LION).
LEVELS_POINTFLOW: tuple[float, ...] = tuple(-(4.0**j) for j in range(7, -2, -1))
LEVELS_PVD: tuple[float, ...] = LEVELS_POINTFLOW + (0.0,)

_EPS = 1e-9  # the kernels' guards against division by zero
_MIN_EXPONENT = -80.0  # kernel exponents below it are clamped (float32 exp is slow there)
_BUDGET = 1 << 22  # kernel entries at once: one 2048-point pair (larger chunks run slower)


def variant_settings(variant: str) -> tuple[tuple[float, ...], bool]:
    """(levels, squared cost) of a variant name."""
    if variant == "pointflow":
        return LEVELS_POINTFLOW, False
    if variant == "pvd":
        return LEVELS_PVD, True
    raise ValueError(f"approxmatch variant must be 'pointflow' or 'pvd', got {variant!r}")


Workspace = dict[str, Tensor]
Backend = Literal["auto", "fused", "torch"]


def approxmatch_emd(
    x1: Tensor,
    x2: Tensor,
    variant: Variant = "pointflow",
    workspace: Workspace | None = None,
    backend: Backend = "auto",
) -> Tensor:
    """Approximate EMD of each pair ``(x1[p], x2[p])`` (module docstring), divided by N.

    Args:
        x1: (P, N, 3) first clouds (PointFlow: the reference). x2: (P, M, 3) second clouds.
        variant: ``"pointflow"`` (9 levels, Euclidean cost) or ``"pvd"`` (10 levels with the
            level-0 pass, squared cost).
        workspace: torch path only: a dict the caller keeps (one per thread) to reuse the
            (P, N, M) buffers across calls. Without it, many calls from worker threads fragment
            glibc's per-thread heaps (measured: +3.5 MB resident per 2048-point pair, 24 GB and
            an out-of-memory kill at 100 vs 100).
        backend: ``"auto"`` (the fused C++ kernel for CPU tensors when it builds, else torch),
            ``"fused"`` (CPU only; an error if it cannot be built) or ``"torch"``.
    Returns:
        (P,) costs in the dtype of the inputs (float32 at least), on their device. Not
        differentiable (computed under ``no_grad``).
    """
    return _batched(x1, x2, variant, both=False, workspace=workspace, backend=backend)


def approxmatch_emd_both(
    x1: Tensor,
    x2: Tensor,
    variant: Variant = "pointflow",
    workspace: Workspace | None = None,
    backend: Backend = "auto",
) -> Tensor:
    """(P, 2): ``approxmatch_emd(x1, x2)`` and ``approxmatch_emd(x2, x1)`` in one go, sharing
    each level's kernel (its transpose serves the swapped order): ~40 % less work than two
    calls. Used for the self-distance matrices of the generation metrics."""
    return _batched(x1, x2, variant, both=True, workspace=workspace, backend=backend)


def use_fused(device: torch.device, backend: Backend) -> bool:
    """Whether ``backend`` runs the fused C++ kernel for tensors on ``device`` (building it on
    first use; ``"auto"`` falls back to torch with one warning if it cannot be built)."""
    if backend not in ("auto", "fused", "torch"):
        raise ValueError(f"backend must be 'auto', 'fused' or 'torch', got {backend!r}")
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        return False
    if device.type != "cpu":
        raise ValueError(f"the fused approxmatch kernel needs CPU tensors, got {device}")
    if native.load() is None:
        if backend == "fused":
            raise RuntimeError("the fused approxmatch kernel could not be built (see warning)")
        return False
    return True


def fused_pairs(
    set1: Tensor, idx1: Tensor, set2: Tensor, idx2: Tensor, variant: str, both: bool
) -> Tensor:
    """Fused kernel over index pairs: cost of (x1 = set1[idx1[p]], x2 = set2[idx2[p]]) / N, and
    with ``both`` also of the swapped order (/ M) as column 1. set1 (K1, N, 3), set2 (K2, M, 3)
    CPU; float64 (P,) or (P, 2). Runs in chunks (so that an interrupt is seen between them) on
    ``torch.get_num_threads()`` threads."""
    levels, squared = variant_settings(variant)
    dtype = torch.promote_types(torch.promote_types(set1.dtype, set2.dtype), torch.float32)
    set1, set2 = set1.detach().to(dtype), set2.detach().to(dtype)
    n, m = set1.shape[1], set2.shape[1]
    chunk = 64 * max(1, torch.get_num_threads())
    parts = [
        native.approxmatch_cost(
            set1, idx1[s : s + chunk], set2, idx2[s : s + chunk], levels, squared, both
        )
        for s in range(0, idx1.shape[0], chunk)
    ]
    out = torch.cat(parts) if parts else torch.zeros((0, 2) if both else (0,), dtype=torch.float64)
    scale = torch.tensor([n, m], dtype=torch.float64) if both else float(n)
    return out / scale


def _buffer(workspace: Workspace, name: str, like: Tensor, shape: tuple[int, ...]) -> Tensor:
    """A (reused) uninitialised buffer of ``shape`` with the dtype and device of ``like``."""
    buf = workspace.get(name)
    if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
        buf = workspace[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buf


def _batched(
    x1: Tensor,
    x2: Tensor,
    variant: str,
    both: bool,
    workspace: Workspace | None,
    backend: Backend,
) -> Tensor:
    levels, squared = variant_settings(variant)
    if x1.ndim != 3 or x2.ndim != 3 or x1.shape[0] != x2.shape[0] or 3 != x1.shape[-1]:
        raise ValueError(
            f"approxmatch needs (P, N, 3) and (P, M, 3) batches, got {tuple(x1.shape)} "
            f"and {tuple(x2.shape)}"
        )
    if x2.shape[-1] != 3 or x1.shape[1] == 0 or x2.shape[1] == 0:
        raise ValueError(f"approxmatch needs non-empty 3D clouds, got {tuple(x2.shape)}")
    if x1.device != x2.device:
        raise ValueError(f"x1 is on {x1.device} but x2 is on {x2.device}")
    dtype = torch.promote_types(torch.promote_types(x1.dtype, x2.dtype), torch.float32)
    p, n, m = x1.shape[0], x1.shape[1], x2.shape[1]
    if use_fused(x1.device, backend):
        idx = torch.arange(p)
        return fused_pairs(x1, idx, x2, idx, variant, both).to(dtype)
    chunk = max(1, _BUDGET // (n * m))
    scale = torch.tensor([n, m], dtype=dtype, device=x1.device) if both else n
    out = []
    with torch.no_grad():
        for s in range(0, p, chunk):
            a, b = x1[s : s + chunk].to(dtype), x2[s : s + chunk].to(dtype)
            ws = {} if workspace is None else workspace
            out.append(_approxmatch_chunk(a, b, levels, squared, both, ws) / scale)
    return torch.cat(out)


def _masses(n: int, m: int) -> tuple[float, float]:
    """The kernels' initial masses (multiL, multiR) of x1 (n points), x2 (m points): C integer
    division, as in ``approxmatch.cu``."""
    return (1.0, float(n // m)) if n >= m else (float(m // n), 1.0)


def _sq_dist(a: Tensor, b: Tensor, workspace: Workspace) -> Tensor:
    """(P, N, M) squared distances from coordinate differences (no cancellation, like the
    kernels' ``(x2-x1)*(x2-x1) + ...``), one contiguous coordinate plane at a time."""
    ac = a.transpose(1, 2).contiguous()  # (P, 3, N)
    bc = b.transpose(1, 2).contiguous()  # (P, 3, M)
    shape = (a.shape[0], a.shape[1], b.shape[1])
    d2 = _buffer(workspace, "d2", a, shape)
    diff = _buffer(workspace, "diff", a, shape)
    torch.sub(ac[:, 0, :, None], bc[:, 0, None, :], out=d2).square_()  # (P, N, M)
    for c in (1, 2):
        torch.sub(ac[:, c, :, None], bc[:, c, None, :], out=diff)
        d2.addcmul_(diff, diff)
    return d2


def _one_pass(
    k: Tensor, kt: Tensor, remain_l: Tensor, remain_r: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One level's three sweeps with kernel k (P, N, M) and its transpose kt (module docstring).

    Returns ratio_l (P, N, 1), ratio_r (P, M, 1) and the updated remain_l, remain_r."""
    ratio_l = remain_l / (torch.bmm(k, remain_r) + _EPS)  # (P, N, 1)
    sum_r = remain_r * torch.bmm(kt, ratio_l)  # (P, M, 1)
    ratio_r = torch.clamp(remain_r / (sum_r + _EPS), max=1.0) * remain_r  # (P, M, 1)
    remain_r = torch.clamp(remain_r - sum_r, min=0.0)
    moved_l = ratio_l * torch.bmm(k, ratio_r)  # (P, N, 1) mass of x1 matched this level
    remain_l = torch.clamp(remain_l - moved_l, min=0.0)
    return ratio_l, ratio_r, remain_l, remain_r


def _approxmatch_chunk(
    a: Tensor,
    b: Tensor,
    levels: tuple[float, ...],
    squared: bool,
    both: bool,
    workspace: Workspace,
) -> Tensor:
    """Total match cost (P,) of x1 = a (P, N, 3), x2 = b (P, M, 3) (masses: ``_masses``).

    With ``both``: (P, 2), the costs of (x1=a, x2=b) and of (x1=b, x2=a). The second
    orientation's kernel is the transpose of the first's, so each level's exponentials (the
    bulk of the work) serve both."""
    d2 = _sq_dist(a, b, workspace)  # (P, N, M)
    cost_m = d2  # (P, N, M) the cost of moving unit mass
    if not squared:
        cost_m = torch.sqrt(d2, out=_buffer(workspace, "cost", d2, tuple(d2.shape)))
    p, n, m = d2.shape
    ones = {"dtype": a.dtype, "device": a.device}
    ml, mr = _masses(n, m)
    state = [(torch.full((p, n, 1), ml, **ones), torch.full((p, m, 1), mr, **ones))]  # remains
    if both:
        ml, mr = _masses(m, n)
        state.append((torch.full((p, m, 1), ml, **ones), torch.full((p, n, 1), mr, **ones)))
    total = torch.zeros(p, len(state), **ones)
    k = _buffer(workspace, "k", d2, tuple(d2.shape))
    kt = k.transpose(1, 2)  # a view: the kernel of the swapped orientation
    d2_max = float(d2.max())
    for level in levels:
        torch.mul(d2, level, out=k)
        if level * d2_max < _MIN_EXPONENT:
            k.clamp_(min=_MIN_EXPONENT)  # exp(-80) ~ 2e-35 stands for 0 (module docstring)
        k.exp_()  # (P, N, M) kernel of this level
        ratios = []
        for o, (remain_l, remain_r) in enumerate(state):
            fwd, bwd = (k, kt) if o == 0 else (kt, k)
            ratio_l, ratio_r, remain_l, remain_r = _one_pass(fwd, bwd, remain_l, remain_r)
            state[o] = (remain_l, remain_r)
            ratios.append((ratio_l, ratio_r))
        k.mul_(cost_m)  # now K * c (and kt its transpose)
        for o, (ratio_l, ratio_r) in enumerate(ratios):
            weighted = torch.bmm(k if o == 0 else kt, ratio_r)  # (P, N or M, 1)
            total[:, o] += (ratio_l * weighted).sum(dim=(1, 2))
    return total if both else total[:, 0]
