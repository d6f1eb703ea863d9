"""Build (once per machine) the zoo's plain C++ CPU kernels and load them through ``ctypes``.

A kernel is one C++ file next to this module, without torch headers, compiled with the system
C++ compiler (``$CXX`` or ``g++``) for the CPU it runs on (``-march=native``) into a shared
library cached under ``$ZOO_KERNEL_CACHE`` (default ``~/.cache/zoo/kernels``), keyed by a hash
of the source, the flags, the compiler's version and the CPU's model and feature flags (a cache
shared between machines never loads code built for another CPU). ``ctypes`` releases the GIL
and the callers pass the tensors' data pointers: no copies.

Why not ``torch.utils.cpp_extension.load_inline``: compiling anything that includes
``torch/extension.h`` takes ~35 s of wall time here (measured: 17.7 s user for an empty
function), which a fresh CI run would pay inside the test budget; these libraries build in
about a second and need neither ninja nor Python headers.

When no compiler is found or the build fails, :func:`library` returns None and warns once per
kernel; the callers then run their torch / scipy paths.
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
from collections.abc import Callable
from pathlib import Path

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
_libraries: dict[Path, ctypes.CDLL | None] = {}


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


def _build(cxx: str, source: Path) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True)
    key = hashlib.sha256(
        "\n".join([source.read_text(), " ".join(FLAGS), version.stdout, _cpu_id()]).encode()
    ).hexdigest()[:16]
    name = f"{source.stem.removesuffix('_cpu')}_{key}.so"
    # The user's cache, or (read-only home...) a per-user temporary directory.
    uid = os.getuid() if hasattr(os, "getuid") else 0
    fallback = Path(tempfile.gettempdir()) / f"zoo-kernels-{uid}"
    for root in (_cache_dir(), fallback):
        if (root / name).exists():
            return root / name
        try:
            root.mkdir(parents=True, exist_ok=True)
            return _compile(cxx, source, root / name)
        except OSError:  # read-only or otherwise unusable: the next directory
            continue
    raise RuntimeError(f"no writable directory for the kernel ({_cache_dir()}, {fallback})")


def _compile(cxx: str, source: Path, out: Path) -> Path:
    # Build to a temporary name and rename: concurrent processes never load a partial file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [cxx, *FLAGS, str(source), "-o", tmp], capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def library(source: Path, declare: Callable[[ctypes.CDLL], None], what: str) -> ctypes.CDLL | None:
    """The compiled library of ``source`` (built on first use; ``declare`` sets its functions'
    ctypes signatures), or None with one warning naming ``what`` falls back if impossible."""
    with _lock:
        if source in _libraries:
            return _libraries[source]
        lib = None
        cxx = _compiler()
        try:
            if cxx is None:
                raise RuntimeError("no C++ compiler found (set CXX or install g++)")
            lib = ctypes.CDLL(str(_build(cxx, source)))
            declare(lib)
        except (OSError, RuntimeError, AttributeError, subprocess.SubprocessError) as err:
            warnings.warn(
                f"{what}: the fused CPU kernel {source.name} could not be built ({err}); "
                "using the slower path",
                RuntimeWarning,
                stacklevel=3,
            )
            lib = None
        _libraries[source] = lib
        return lib
