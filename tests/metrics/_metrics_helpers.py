"""Deterministic point sets shared by the metric tests (unique module name: no tests/__init__)."""

from __future__ import annotations

import math

import torch


def devices() -> list[str]:
    """CPU, plus CUDA when this machine has one (the metrics must be device-agnostic)."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def fibonacci_sphere(
    n: int, radius: float = 1.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """(n, 3) near-uniform points on a sphere (golden-angle spiral)."""
    i = torch.arange(n, dtype=dtype) + 0.5
    z = 1 - 2 * i / n
    r = (1 - z * z).sqrt()
    phi = i * math.pi * (3 - math.sqrt(5))
    return radius * torch.stack([r * phi.cos(), r * phi.sin(), z], dim=-1)


def random_ellipsoids(k: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """(k, n, 3) surfaces of axis-aligned ellipsoids with semi-axes uniform in [0.15, 0.5]."""
    d = torch.randn(k, n, 3, generator=gen)
    d = d / d.norm(dim=-1, keepdim=True)
    axes = 0.15 + 0.35 * torch.rand(k, 1, 3, generator=gen)
    return d * axes


def random_cubes(k: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """(k, n, 3) points on the surfaces of axis-aligned cubes with half-size in [0.3, 0.4]."""
    p = torch.rand(k, n, 3, generator=gen) * 2 - 1
    face = torch.randint(0, 3, (k, n), generator=gen)
    sign = torch.randint(0, 2, (k, n), generator=gen).to(p.dtype) * 2 - 1
    p.scatter_(2, face.unsqueeze(-1), sign.unsqueeze(-1))
    return p * (0.3 + 0.1 * torch.rand(k, 1, 1, generator=gen))
