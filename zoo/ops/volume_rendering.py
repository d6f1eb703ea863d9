"""Emission-absorption volume rendering by quadrature (NeRF eq. 3).

For samples ``i = 1..S`` along a ray with densities ``sigma_i`` and segment lengths ``delta_i``:

    alpha_i = 1 - exp(-sigma_i * delta_i)
    T_i     = prod_{j < i} (1 - alpha_j) = exp(-sum_{j < i} sigma_j * delta_j)
    w_i     = T_i * alpha_i
    C       = sum_i w_i c_i + (1 - sum_i w_i) * background

``opacity = sum_i w_i = 1 - T_{S+1}``. Transmittance is computed in log space (an exclusive
cumulative sum of optical depths), which equals the cumulative product of ``1 - alpha`` of the
reference code but needs no ``1e-10`` guard. Every tensor is laid out ``(rays, samples)``;
empty or skipped samples simply carry ``sigma = 0``.

Reference: Mildenhall et al., "NeRF", ECCV 2020, Sec. 4; Max, "Optical models for direct
volume rendering", IEEE TVCG 1995.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def compute_deltas(t: Tensor, last: float = 1e10) -> Tensor:
    """Segment lengths ``delta_i = t_{i+1} - t_i`` of sorted samples (R, S) -> (R, S).

    The last sample's segment is ``last`` (NeRF uses 1e10: the ray continues to infinity, so
    a dense last sample is fully opaque). Multiply by ``|d|`` to get metric lengths when the
    ray directions are not unit vectors.
    """
    if t.ndim != 2:
        raise ValueError(f"t must be (R, S), got {tuple(t.shape)}")
    tail = torch.full_like(t[:, :1], last)
    return torch.cat([t[:, 1:] - t[:, :-1], tail], dim=-1)


def alpha_from_density(sigma: Tensor, delta: Tensor) -> Tensor:
    """``alpha = 1 - exp(-sigma * delta)``, the opacity of one segment (any shape)."""
    return -torch.expm1(-sigma * delta)


def render_weights(sigma: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
    """Compositing weights and transmittance from densities.

    Args:
        sigma: (R, S) non-negative densities.
        delta: (R, S) segment lengths (metric).
    Returns:
        weights (R, S) ``w_i = T_i alpha_i`` and transmittance (R, S) ``T_i`` (the fraction of
        light reaching sample i).
    """
    if sigma.shape != delta.shape or sigma.ndim != 2:
        raise ValueError(
            f"sigma and delta must both be (R, S), got {tuple(sigma.shape)} and "
            f"{tuple(delta.shape)}"
        )
    tau = sigma * delta  # (R, S) optical depth of each segment
    # Exclusive cumulative sum (not cumsum - tau, which loses precision next to a 1e10 tail).
    tau_before = torch.cat([torch.zeros_like(tau[:, :1]), torch.cumsum(tau[:, :-1], dim=-1)], -1)
    trans = torch.exp(-tau_before)
    weights = trans * -torch.expm1(-tau)
    return weights, trans


def _background(background: Tensor | Sequence[float] | float | None, like: Tensor) -> Tensor:
    if background is None:
        return torch.zeros(3, dtype=like.dtype, device=like.device)
    bg = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if bg.ndim == 0:
        bg = bg.expand(3)
    if bg.shape[-1] != 3:
        raise ValueError(f"background must have 3 channels, got shape {tuple(bg.shape)}")
    return bg


def composite(
    weights: Tensor,
    rgb: Tensor,
    t: Tensor | None = None,
    background: Tensor | Sequence[float] | float | None = None,
    depth_min_opacity: float = 1e-3,
) -> dict[str, Tensor]:
    """Accumulate per-sample colours (and depths) with compositing weights.

    Args:
        weights: (R, S) from :func:`render_weights`.
        rgb: (R, S, 3) sample colours in [0, 1].
        t: (R, S) sample depths, for the depth map (optional).
        background: RGB (3,) or per-ray (R, 3) colour seen through the remaining
            transmittance ``1 - opacity``; None means black.
        depth_min_opacity: rays less opaque than this get depth 0 ("no surface").
    Returns:
        ``rgb`` (R, 3), ``opacity`` (R,) and, with ``t``, ``depth`` (R,): the expected depth of
        the ray termination given that it terminates, ``sum w_i t_i / opacity`` (a z-depth for
        zoo rays), 0 where ``opacity < depth_min_opacity``.
    """
    if rgb.shape[:2] != weights.shape or rgb.shape[-1] != 3:
        raise ValueError(
            f"rgb must be (R, S, 3) matching weights {tuple(weights.shape)}, got {tuple(rgb.shape)}"
        )
    opacity = weights.sum(dim=-1)  # (R,)
    colour = (weights[..., None] * rgb).sum(dim=-2)  # (R, 3)
    colour = colour + (1.0 - opacity)[..., None] * _background(background, weights)
    out = {"rgb": colour, "opacity": opacity}
    if t is not None:
        depth = (weights * t).sum(dim=-1) / opacity.clamp_min(1e-10)
        out["depth"] = torch.where(opacity >= depth_min_opacity, depth, torch.zeros_like(depth))
    return out


def volume_render(
    sigma: Tensor,
    rgb: Tensor,
    t: Tensor,
    delta: Tensor,
    background: Tensor | Sequence[float] | float | None = None,
) -> dict[str, Tensor]:
    """Render rays from per-sample densities and colours (NeRF eq. 3).

    Args:
        sigma: (R, S) densities; rgb: (R, S, 3) colours; t: (R, S) depths of the samples;
        delta: (R, S) metric segment lengths (e.g. ``compute_deltas(t) * |d|``).
        background: see :func:`composite`.
    Returns:
        ``rgb`` (R, 3), ``depth`` (R,), ``opacity`` (R,), ``weights`` (R, S),
        ``transmittance`` (R, S).
    """
    weights, trans = render_weights(sigma, delta)
    out = composite(weights, rgb, t, background)
    out["weights"] = weights
    out["transmittance"] = trans
    return out


def render_weights_packed(
    sigma: Tensor, delta: Tensor, ray_index: Tensor, n_rays: int
) -> tuple[Tensor, Tensor]:
    """:func:`render_weights` for packed samples (rays with different sample counts).

    Args:
        sigma, delta: (M,) densities and metric segment lengths of all samples, grouped by ray
            and in marching order within each ray.
        ray_index: (M,) long, the ray of each sample, non-decreasing.
        n_rays: R.
    Returns:
        weights (M,) and transmittance (M,), equal to the dense computation. The exclusive
        cumulative optical depth is accumulated in float64 over all M samples and the value at
        each ray's first sample subtracted, so rays do not lose precision to the ones before.
    """
    if sigma.shape != delta.shape or sigma.shape != ray_index.shape or sigma.ndim != 1:
        raise ValueError(
            f"sigma, delta and ray_index must all be (M,), got {tuple(sigma.shape)}, "
            f"{tuple(delta.shape)}, {tuple(ray_index.shape)}"
        )
    tau = sigma * delta  # (M,)
    if tau.numel() == 0:
        return tau, tau + 1.0
    cs = torch.cumsum(tau.double(), dim=0)
    excl = cs - tau.double()  # exclusive sum (float64: no cancellation trouble)
    # Exclusive sum at each ray's first sample: first index of a ray = where ray_index changes.
    first = torch.ones_like(ray_index, dtype=torch.bool)
    first[1:] = ray_index[1:] != ray_index[:-1]
    start = torch.zeros(n_rays, dtype=excl.dtype, device=excl.device)
    start = start.index_put((ray_index[first],), excl[first])
    trans = torch.exp(-(excl - start[ray_index])).to(sigma.dtype)
    weights = trans * -torch.expm1(-tau)
    return weights, trans


def composite_packed(
    weights: Tensor,
    rgb: Tensor,
    t: Tensor,
    ray_index: Tensor,
    n_rays: int,
    background: Tensor | Sequence[float] | float | None = None,
    depth_min_opacity: float = 1e-3,
) -> dict[str, Tensor]:
    """:func:`composite` for packed samples: weights (M,), rgb (M, 3), t (M,) and the ray of
    each sample (M,) -> ``rgb`` (R, 3), ``opacity`` (R,), ``depth`` (R,) for R = ``n_rays``."""
    if rgb.shape != (*weights.shape, 3) or t.shape != weights.shape:
        raise ValueError(
            f"need weights (M,), rgb (M, 3), t (M,), got {tuple(weights.shape)}, "
            f"{tuple(rgb.shape)}, {tuple(t.shape)}"
        )
    zeros = weights.new_zeros(n_rays)
    opacity = zeros.index_add(0, ray_index, weights)
    colour = weights.new_zeros(n_rays, 3).index_add(0, ray_index, weights[:, None] * rgb)
    colour = colour + (1.0 - opacity)[:, None] * _background(background, weights)
    depth = zeros.index_add(0, ray_index, weights * t) / opacity.clamp_min(1e-10)
    depth = torch.where(opacity >= depth_min_opacity, depth, torch.zeros_like(depth))
    return {"rgb": colour, "opacity": opacity, "depth": depth}


__all__ = [
    "alpha_from_density",
    "composite",
    "composite_packed",
    "compute_deltas",
    "render_weights",
    "render_weights_packed",
    "volume_render",
]
