"""Re-parametrisations of space for scenes that are not a bounded box around an object.

- :func:`ndc_rays`: NeRF's normalised device coordinates for forward-facing (LLFF) captures
  (Mildenhall et al., ECCV 2020, App. C; ``ndc_rays`` in bmild/nerf ``run_nerf_helpers.py``):
  the frustum of a camera at the origin looking along -z, from the plane ``z = -near`` to
  infinity, becomes the cube [-1, 1]^3, and a ray's parameter ``t' in [0, 1]`` runs from the
  near plane to infinity (linear in disparity).
- :func:`contract`: mip-NeRF 360's scene contraction (Barron et al., CVPR 2022, Eq. 10):
  identity inside the unit ball, ``(2 - 1 / |x|) x / |x|`` outside, so all of space fits in the
  ball of radius 2 (nerfacto uses the same map with the L-infinity norm: ``order=inf``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def ndc_rays(
    origins: Tensor, directions: Tensor, width: int, height: int, focal: float, near: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Rays (R, 3) + (R, 3) in world coordinates (the forward-facing frame: cameras look
    roughly along -z) -> the same rays in NDC (R, 3) + (R, 3).

    The origin is first moved to the plane ``z = -near``; then, with ``a = -2 f / W`` and
    ``b = -2 f / H`` (NeRF App. C, Eq. 25-26)::

        o' = (a ox / oz, b oy / oz, 1 + 2 near / oz)
        d' = (a (dx / dz - ox / oz), b (dy / dz - oy / oz), -2 near / oz)

    A world point ``o + t d`` maps to ``o' + t' d'`` with ``t' = 1 - oz / (oz + t dz)``.
    """
    t = -(near + origins[..., 2]) / directions[..., 2]
    o = origins + t[..., None] * directions
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = directions.unbind(-1)
    a, b = -2.0 * focal / width, -2.0 * focal / height
    o_ndc = torch.stack([a * ox / oz, b * oy / oz, 1.0 + 2.0 * near / oz], dim=-1)
    d_ndc = torch.stack(
        [a * (dx / dz - ox / oz), b * (dy / dz - oy / oz), -2.0 * near / oz], dim=-1
    )
    return o_ndc, d_ndc


def contract(x: Tensor, order: float = 2) -> Tensor:
    """mip-NeRF 360's contraction (..., 3) -> (..., 3) into the ball (``order=2``) or cube
    (``order=inf``, nerfacto) of radius 2. Continuous, identity for ``|x| <= 1``."""
    norm = torch.linalg.vector_norm(x, ord=order, dim=-1, keepdim=True)
    safe = norm.clamp_min(1.0)  # no division by 0; equals norm wherever it is used
    return torch.where(norm <= 1.0, x, (2.0 - 1.0 / safe) * x / safe)


def inverse_contract(y: Tensor, order: float = 2) -> Tensor:
    """The inverse of :func:`contract` on the open ball of radius 2: ``|y| > 1`` maps back to
    ``y / (|y| (2 - |y|))``."""
    norm = torch.linalg.vector_norm(y, ord=order, dim=-1, keepdim=True)
    safe = norm.clamp(1.0, 2.0 - 1e-6)
    return torch.where(norm <= 1.0, y, y / (safe * (2.0 - safe)))


__all__ = ["contract", "inverse_contract", "ndc_rays"]
