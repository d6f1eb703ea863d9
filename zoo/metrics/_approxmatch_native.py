"""Call the fused CPU approxmatch kernel ``approxmatch_cpu.cpp`` (built once per machine by
``zoo.metrics._native``: plain C++, ``-march=native``, cached, called through ``ctypes``).

When no compiler is found or the build fails, ``load()`` returns None and warns once;
``zoo.metrics.approxmatch`` then runs its torch path.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch
from torch import Tensor

from zoo.metrics._native import library

SOURCE = Path(__file__).with_name("approxmatch_cpu.cpp")


def _declare(lib: ctypes.CDLL) -> None:
    for name in ("zoo_approxmatch_f32", "zoo_approxmatch_f64"):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        fn.argtypes += [ctypes.c_int64] * 3 + [ctypes.c_void_p]
        fn.argtypes += [ctypes.c_int] * 3 + [ctypes.c_void_p] * 2 + [ctypes.c_int]
    lib.zoo_exp_f32.restype = None
    lib.zoo_exp_f32.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]


def load() -> ctypes.CDLL | None:
    """The compiled kernel library, built on first use; None (with one warning) if impossible."""
    return library(SOURCE, _declare, "zoo.metrics.approxmatch")


def approxmatch_cost(
    set1: Tensor,
    idx1: Tensor,
    set2: Tensor,
    idx2: Tensor,
    levels: tuple[float, ...],
    squared: bool,
    both: bool,
    threads: int | None = None,
    evals: Tensor | None = None,
) -> Tensor:
    """Total match cost (not divided by N) of the pairs (x1 = set1[idx1[p]], x2 = set2[idx2[p]]).

    set1 (K1, N, 3), set2 (K2, M, 3): CPU tensors of one dtype, float32 or float64; idx1, idx2
    (P,) int64. Returns (P,) float64, or (P, 2) with ``both`` (column 1: the swapped order).
    ``threads`` worker threads (default ``torch.get_num_threads()``), one pair at a time each.
    ``evals``: an optional (P,) int64 tensor that receives the number of kernel entries
    (exponentials) evaluated per pair (the benchmark's work count).
    """
    lib = load()
    if lib is None:
        raise RuntimeError("the fused approxmatch kernel is not available")
    fn = {torch.float32: lib.zoo_approxmatch_f32, torch.float64: lib.zoo_approxmatch_f64}[
        set1.dtype
    ]
    set1, set2 = set1.contiguous(), set2.to(set1.dtype).contiguous()
    idx1 = idx1.to(torch.int64).contiguous()
    idx2 = idx2.to(torch.int64).contiguous()
    p = idx1.shape[0]
    out = torch.zeros((p, 2) if both else (p,), dtype=torch.float64)
    lv = torch.tensor(levels, dtype=torch.float64)
    threads = torch.get_num_threads() if threads is None else threads
    if p:
        fn(
            set1.data_ptr(),
            idx1.data_ptr(),
            set2.data_ptr(),
            idx2.data_ptr(),
            p,
            set1.shape[1],
            set2.shape[1],
            lv.data_ptr(),
            len(levels),
            int(squared),
            int(both),
            out.data_ptr(),
            None if evals is None else evals.data_ptr(),
            max(1, threads),
        )
    return out


def exp_f32(x: Tensor) -> Tensor:
    """The kernel's float32 exponential applied to a contiguous CPU float32 tensor (a probe of
    its throughput for the benchmark; exactly 0 below -87)."""
    lib = load()
    if lib is None:
        raise RuntimeError("the fused approxmatch kernel is not available")
    x = x.contiguous()
    out = torch.empty_like(x)
    lib.zoo_exp_f32(x.data_ptr(), out.data_ptr(), x.numel())
    return out
