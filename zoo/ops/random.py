"""Random draws that are the same on every CPU.

``torch.randn`` in float32 on the CPU takes a vectorised Box-Muller path whose result depends on
the kernel path PyTorch picks for the machine: with the same seed, ``ATEN_CPU_CAPABILITY=default``
and ``avx2`` / ``avx512`` give values that differ in the last bits (measured with torch 2.13;
float64 ``randn`` and ``rand`` of either dtype agree bit for bit). Latent searches and ODE
solvers amplify such differences into different results, so every draw an *evaluation* depends
on (latent codes, sample noise, starting points of a search) goes through :func:`randn`, which
draws in float64 and rounds, giving identical values on any x86-64 CPU.

Training may keep ``torch.randn``: its results are compared by tolerance, not bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor


def randn(
    *size: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Standard normal values of shape ``size``, the same on every CPU for a seeded ``generator``.

    Drawn in float64 on the CPU (``generator`` must be a CPU generator or None for the global
    one), then cast to ``dtype`` and moved to ``device``.
    """
    out = torch.randn(*size, generator=generator, dtype=torch.float64)
    return out.to(dtype=dtype, device=device)


__all__ = ["randn"]
