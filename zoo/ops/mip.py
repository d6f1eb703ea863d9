"""Cones instead of rays: Mip-NeRF's conical frustums and integrated positional encoding.

Mip-NeRF (Barron et al., "Mip-NeRF: A Multiscale Representation for Anti-Aliasing Neural
Radiance Fields", ICCV 2021; reference code google/mipnerf ``internal/mip.py``) casts a cone
through each pixel instead of an infinitely thin ray. The cone's radius at unit distance along
the (z = -1) ray direction is ``2 / sqrt(12)`` times the pixel width there (the radius whose
disc has the variance of a uniform pixel footprint), :func:`zoo.ops.rays.pixel_radii`.

Each interval ``[t0, t1]`` of a ray is a conical frustum, approximated by a Gaussian with the
frustum's first and second moments (paper eq. 7-8, written in the midpoint ``t_mu`` and
half-width ``t_delta`` because the raw formulas cancel catastrophically in float32 when
``t1 - t0`` is small against ``t0``):

    t_mean = t_mu + 2 t_mu t_delta^2 / (3 t_mu^2 + t_delta^2)
    t_var  = t_delta^2 / 3 - (4 / 15) t_delta^4 (12 t_mu^2 - t_delta^2) / (3 t_mu^2 + t_delta^2)^2
    r_var  = r^2 (t_mu^2 / 4 + (5 / 12) t_delta^2 - (4 / 15) t_delta^4 / (3 t_mu^2 + t_delta^2))

lifted to world space along the direction ``d`` (eq. 8, diagonal covariance):
``mu = o + t_mean d``, ``Sigma_diag = t_var d^2 + r_var (1 - d^2 / |d|^2)``.

The integrated positional encoding (IPE, eq. 14) is the expectation of NeRF's sinusoids under
that Gaussian: ``E[sin(2^l x)] = sin(2^l mu) exp(-2^(2l) var / 2)`` (and cos likewise) for
degrees ``l = min_deg .. max_deg - 1`` (the paper: 0 .. 15, i.e. ``max_deg = 16``), with no
identity term: frequencies whose period is below the frustum's size fade to zero, which is
what removes aliasing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

CONE_RADIUS_SCALE = 2.0 / math.sqrt(12.0)  # radius / pixel width (Mip-NeRF Sec. 3.1)


def frustum_moments(t0: Tensor, t1: Tensor, radius: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean and variance along the axis, and variance perpendicular to it, of the conical
    frustum between depths ``t0 < t1`` of a cone with radius ``radius`` at depth 1 (the stable
    form above; ``internal/mip.py: conical_frustum_to_gaussian(stable=True)``).

    Args:
        t0, t1: (R, S) interval ends along the ray (ray parameter, the direction not unit).
        radius: (R,) cone radius at ray parameter 1.
    Returns:
        ``t_mean``, ``t_var``, ``r_var``, each (R, S); ``t_*`` in ray-parameter units,
        ``r_var`` in world units squared per axis perpendicular to the ray (for |d| = 1).
    """
    if t0.shape != t1.shape or t0.ndim != 2 or radius.shape != t0.shape[:1]:
        raise ValueError(
            f"t0, t1 must be (R, S) and radius (R,), got {tuple(t0.shape)}, {tuple(t1.shape)}, "
            f"{tuple(radius.shape)}"
        )
    mu = 0.5 * (t0 + t1)  # (R, S)
    hw = 0.5 * (t1 - t0)
    mu2, hw2 = mu**2, hw**2
    denom = 3.0 * mu2 + hw2
    t_mean = mu + 2.0 * mu * hw2 / denom
    t_var = hw2 / 3.0 - (4.0 / 15.0) * (hw2**2 * (12.0 * mu2 - hw2)) / denom**2
    r_var = radius[:, None] ** 2 * (mu2 / 4.0 + (5.0 / 12.0) * hw2 - (4.0 / 15.0) * hw2**2 / denom)
    return t_mean, t_var, r_var


def lift_gaussian(
    origins: Tensor, directions: Tensor, t_mean: Tensor, t_var: Tensor, r_var: Tensor
) -> tuple[Tensor, Tensor]:
    """World-space mean (R, S, 3) and diagonal covariance (R, S, 3) of Gaussians given along
    rays ``o + t d`` (Mip-NeRF eq. 8 with a diagonal covariance, as the reference's default).

    Args:
        origins, directions: (R, 3); the directions need not be unit length.
        t_mean, t_var, r_var: (R, S) from :func:`frustum_moments`.
    """
    mean = origins[:, None, :] + t_mean[..., None] * directions[:, None, :]  # (R, S, 3)
    d2 = directions**2  # (R, 3)
    d_mag_sq = d2.sum(-1, keepdim=True).clamp_min(1e-10)  # (R, 1)
    null_diag = 1.0 - d2 / d_mag_sq  # (R, 3) diagonal of I - d d^T / |d|^2
    cov = t_var[..., None] * d2[:, None, :] + r_var[..., None] * null_diag[:, None, :]
    return mean, cov


def conical_frustums(
    origins: Tensor, directions: Tensor, t_vals: Tensor, radii: Tensor
) -> tuple[Tensor, Tensor]:
    """Gaussians of the S frustums between S + 1 sorted fence posts ``t_vals`` (R, S + 1) of
    cones (origins, directions (R, 3), radii (R,)): mean (R, S, 3), diagonal covariance
    (R, S, 3) (``internal/mip.py: cast_rays`` with ``ray_shape='cone'``)."""
    if t_vals.ndim != 2 or t_vals.shape[1] < 2:
        raise ValueError(f"t_vals must be (R, S + 1) with S >= 1, got {tuple(t_vals.shape)}")
    t_mean, t_var, r_var = frustum_moments(t_vals[:, :-1], t_vals[:, 1:], radii)
    return lift_gaussian(origins, directions, t_mean, t_var, r_var)


def integrated_pos_enc(mean: Tensor, var: Tensor, min_deg: int = 0, max_deg: int = 16) -> Tensor:
    """Integrated positional encoding (Mip-NeRF eq. 14) of Gaussians with diagonal covariance.

    ``y = 2^l x`` for ``l`` in ``[min_deg, max_deg)`` has variance ``4^l var``; the result is
    ``[sin(y) exp(-var_y / 2), cos(y) exp(-var_y / 2)]`` laid out as the reference does: all
    sines (degree-major, then coordinate) followed by all cosines. No identity term.

    Args:
        mean, var: (..., D) means and per-coordinate variances.
    Returns:
        (..., 2 D (max_deg - min_deg)).
    """
    if mean.shape != var.shape:
        raise ValueError(f"mean and var must match, got {tuple(mean.shape)}, {tuple(var.shape)}")
    if not 0 <= min_deg < max_deg:
        raise ValueError(f"need 0 <= min_deg < max_deg, got {min_deg}, {max_deg}")
    scales = 2.0 ** torch.arange(min_deg, max_deg, dtype=mean.dtype, device=mean.device)  # (L,)
    shape = (*mean.shape[:-1], len(scales) * mean.shape[-1])  # explicit: N may be 0
    y = (mean[..., None, :] * scales[:, None]).reshape(shape)  # (..., L D)
    y_var = (var[..., None, :] * scales[:, None] ** 2).reshape(shape)
    damp = torch.exp(-0.5 * y_var)
    return torch.cat([torch.sin(y) * damp, torch.cos(y) * damp], dim=-1)


def pos_enc(x: Tensor, min_deg: int, max_deg: int, append_identity: bool = True) -> Tensor:
    """NeRF's positional encoding in the reference's layout (all sines then all cosines,
    the input first with ``append_identity``): what :func:`integrated_pos_enc` gives at zero
    variance. Mip-NeRF encodes view directions with it (degrees 0-3, identity appended)."""
    scales = 2.0 ** torch.arange(min_deg, max_deg, dtype=x.dtype, device=x.device)
    y = (x[..., None, :] * scales[:, None]).reshape(*x.shape[:-1], len(scales) * x.shape[-1])
    feats = torch.cat([torch.sin(y), torch.cos(y)], dim=-1)
    return torch.cat([x, feats], dim=-1) if append_identity else feats


def sample_fenceposts(
    near: float, far: float, num: int, n_rays: int, perturb: bool, device: torch.device | None
) -> Tensor:
    """(R, num) sorted interval ends in ``[near, far]`` (``internal/mip.py:
    sample_along_rays``, linear in depth): ``linspace(near, far, num)``, and in training each
    post jittered uniformly between the midpoints to its neighbours (the first and last stay
    within ``[near, far]``)."""
    if num < 2:
        raise ValueError(f"need at least 2 fence posts, got {num}")
    t = torch.linspace(near, far, num, device=device).expand(n_rays, num)  # (R, num)
    if not perturb:
        return t.contiguous()
    mids = 0.5 * (t[:, 1:] + t[:, :-1])
    upper = torch.cat([mids, t[:, -1:]], dim=-1)
    lower = torch.cat([t[:, :1], mids], dim=-1)
    return lower + (upper - lower) * torch.rand(n_rays, num, device=device)


def blur_weights(weights: Tensor, padding: float = 0.01) -> Tensor:
    """Mip-NeRF's weight filter before resampling (Sec. 3.2, ``resample_along_rays``): a
    2-tap max-pool followed by a 2-tap average over the edge-padded weights (a "blurpool",
    a wide, smooth envelope of the coarse weights), plus ``padding`` so that every interval
    keeps some samples. (R, S) -> (R, S), not normalised (the sampler normalises)."""
    if weights.ndim != 2:
        raise ValueError(f"weights must be (R, S), got {tuple(weights.shape)}")
    padded = torch.cat([weights[:, :1], weights, weights[:, -1:]], dim=-1)  # (R, S + 2)
    wmax = torch.maximum(padded[:, :-1], padded[:, 1:])  # (R, S + 1)
    return 0.5 * (wmax[:, :-1] + wmax[:, 1:]) + padding


__all__ = [
    "CONE_RADIUS_SCALE",
    "blur_weights",
    "conical_frustums",
    "frustum_moments",
    "integrated_pos_enc",
    "lift_gaussian",
    "pos_enc",
    "sample_fenceposts",
]
