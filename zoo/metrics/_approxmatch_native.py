"""Build (once per machine) and call the fused CPU approxmatch kernel ``approxmatch_cpu.cpp``.

The kernel is plain C++ without torch headers, compiled with the system C++ compiler
(``$CXX`` or ``g++``) for the CPU it runs on (``-march=native``) into a shared library cached
under ``$ZOO_KERNEL_CACHE`` (default ``~/.cache/zoo/kernels``), keyed by a hash of the source,
the flags, the compiler's version and the CPU's model and feature flags (a cache shared between
machines never loads code built for another CPU). It is called through ``ctypes``, which
releases the GIL, with the tensors' data pointers: no copies of the point sets.

Why not ``torch.utils.cpp_extension.load_inline``: compiling anything that includes
``torch/extension.h`` takes ~35 s of wall time here (measured: 17.7 s user for an empty
function), which a fresh CI run would pay inside the test budget; this library builds in about
a second and needs neither ninja nor Python headers.

When no compiler is found or the build fails, ``load()`` returns None and warns once;
``zoo.metrics.approxmatch`` then runs its torch path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor

SOURCE = Path(__file__).with_name("approxmatch_cpu.cpp")
FLAGS = (
    "-O3",
    "-march=native",
    "-std=c++20",
    "-fopenmp-simd",  # the `omp simd` reductions vectorise; no OpenMP runtime is linked
    "-fno-math-errno",  # sqrt vectorises (no -ffast-math: it would change the process's FPU mode)
    "-fPIC",
    "-shared",
    "-pthread",
)

_lock = threading.Lock()
_state: dict[str, object] = {}


def _cpu_id() -> str:
    """The CPU's model and feature flags (what -march=native compiles for)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() + platform.machine()
    keep = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(keep)))


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "g++"))


def _cache_dir() -> Path:
    root = os.environ.get("ZOO_KERNEL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "zoo" / "kernels"


def _build(cxx: str) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True)
    key = hashlib.sha256(
        "\n".join([SOURCE.read_text(), " ".join(FLAGS), version.stdout, _cpu_id()]).encode()
    ).hexdigest()[:16]
    name = f"approxmatch_{key}.so"
    # The user's cache, or (read-only home...) a per-user temporary directory.
    uid = os.getuid() if hasattr(os, "getuid") else 0
    fallback = Path(tempfile.gettempdir()) / f"zoo-kernels-{uid}"
    for root in (_cache_dir(), fallback):
        if (root / name).exists():
            return root / name
        try:
            root.mkdir(parents=True, exist_ok=True)
            return _compile(cxx, root / name)
        except OSError:  # read-only or otherwise unusable: the next directory
            continue
    raise RuntimeError(f"no writable directory for the kernel ({_cache_dir()}, {fallback})")


def _compile(cxx: str, out: Path) -> Path:
    # Build to a temporary name and rename: concurrent processes never load a partial file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [cxx, *FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def load() -> ctypes.CDLL | None:
    """The compiled kernel library, built on first use; None (with one warning) if impossible."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]  # type: ignore[return-value]
        lib = None
        cxx = _compiler()
        try:
            if cxx is None:
                raise RuntimeError("no C++ compiler found (set CXX or install g++)")
            lib = ctypes.CDLL(str(_build(cxx)))
            for name in ("zoo_approxmatch_f32", "zoo_approxmatch_f64"):
                fn = getattr(lib, name)
                fn.restype = ctypes.c_int
                fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
                fn.argtypes += [ctypes.c_int64] * 3 + [ctypes.c_void_p]
                fn.argtypes += [ctypes.c_int] * 3 + [ctypes.c_void_p] * 2 + [ctypes.c_int]
            lib.zoo_exp_f32.restype = None
            lib.zoo_exp_f32.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            warnings.warn(
                f"zoo.metrics.approxmatch: the fused CPU kernel could not be built ({err}); "
                "using the slower torch path",
                RuntimeWarning,
                stacklevel=3,
            )
            lib = None
        _state["lib"] = lib
        return lib


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
