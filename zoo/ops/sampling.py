"""Sample positions along rays: stratified (NeRF's coarse pass), inverse-CDF importance sampling
(NeRF's hierarchical fine pass) and uniform marching steps clipped to a box (Instant-NGP).

Convention: a ray is ``o + t d``; with the zoo's ray directions (camera-frame z = -1, see
:mod:`zoo.ops.rays`) the parameter ``t`` is the z-depth, and ``near``/``far`` are z-depths as in
NeRF's Blender setting (near = 2, far = 6).

Reference: Mildenhall et al., "NeRF: Representing Scenes as Neural Radiance Fields for View
Synthesis", ECCV 2020, Sec. 4 (stratified sampling, eq. 2) and Sec. 5.2 (hierarchical volume
sampling).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _as_ray_tensor(v: Tensor | float, n_rays: int, like: Tensor, name: str) -> Tensor:
    """``v`` as an (R,) tensor (a scalar is broadcast)."""
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    if v.ndim == 0:
        return v.expand(n_rays)
    v = v.reshape(-1) if v.shape == (n_rays, 1) else v
    if v.shape != (n_rays,):
        raise ValueError(f"{name} must be a scalar or have shape ({n_rays},), got {tuple(v.shape)}")
    return v


def stratified_samples(
    near: Tensor | float,
    far: Tensor | float,
    num_samples: int,
    n_rays: int | None = None,
    perturb: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Stratified samples of ``t`` in ``[near, far]`` (NeRF eq. 2).

    ``[near, far]`` is split into ``num_samples`` equal bins and one sample is drawn uniformly in
    each bin (``perturb=True``, training) or placed at the bin centre (``perturb=False``,
    evaluation). (The reference code places unperturbed samples on ``linspace(near, far, N)``,
    i.e. on the bin edges; centres keep every sample inside its bin.)

    Args:
        near, far: scalars or (R,) tensors.
        num_samples: S, samples per ray.
        n_rays: R, required when both ``near`` and ``far`` are scalars.
    Returns:
        (R, S) sorted sample depths ``t``.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    ref = next((v for v in (near, far) if isinstance(v, Tensor) and v.ndim > 0), None)
    if ref is None:
        if n_rays is None:
            raise ValueError("n_rays is required when near and far are both scalars")
        ref = torch.empty(n_rays, device=device)
    n = ref.shape[0] if n_rays is None else n_rays
    near_t = _as_ray_tensor(near, n, ref.float(), "near")
    far_t = _as_ray_tensor(far, n, ref.float(), "far")
    steps = torch.arange(num_samples, dtype=near_t.dtype, device=near_t.device)  # (S,)
    if perturb:
        u = torch.rand(n, num_samples, generator=generator, device=near_t.device)
        u = u.to(near_t.dtype)
    else:
        u = torch.full((n, num_samples), 0.5, dtype=near_t.dtype, device=near_t.device)
    frac = (steps[None] + u) / num_samples  # (R, S) in [0, 1)
    return near_t[:, None] + (far_t - near_t)[:, None] * frac


def importance_samples(
    bins: Tensor,
    weights: Tensor,
    num_samples: int,
    deterministic: bool = False,
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw samples from the piecewise-constant pdf given by ``weights`` over ``bins``
    (inverse transform sampling, NeRF Sec. 5.2).

    The pdf is ``(w + eps) / sum(w + eps)`` on each bin (``eps`` keeps it defined on rays with
    zero weights, where sampling becomes uniform); a uniform ``u`` (or, with ``deterministic``,
    ``linspace(0, 1, N)``) is mapped through the inverse of the piecewise-linear CDF.
    No gradient flows to ``bins`` or ``weights`` (the result is detached, as in NeRF).

    Args:
        bins: (R, K + 1) sorted bin edges.
        weights: (R, K) non-negative weight of each bin.
        num_samples: N, samples per ray.
    Returns:
        (R, N) sorted samples inside ``[bins[:, 0], bins[:, -1]]``.
    """
    if bins.ndim != 2 or weights.ndim != 2 or bins.shape[1] != weights.shape[1] + 1:
        raise ValueError(
            f"bins must be (R, K + 1) and weights (R, K), got {tuple(bins.shape)} and "
            f"{tuple(weights.shape)}"
        )
    if bins.shape[0] != weights.shape[0]:
        raise ValueError(f"bins and weights disagree on R: {bins.shape[0]} vs {weights.shape[0]}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    bins = bins.detach()
    w = weights.detach().clamp_min(0) + eps  # (R, K)
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cumsum(pdf, dim=-1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], dim=-1)  # (R, K + 1), 0 .. 1
    cdf[:, -1] = 1.0
    n_rays, k = weights.shape
    if deterministic:
        u = torch.linspace(0.0, 1.0, num_samples, dtype=cdf.dtype, device=cdf.device)
        u = u.expand(n_rays, num_samples).contiguous()
    else:
        u = torch.rand(n_rays, num_samples, generator=generator, device=cdf.device).to(cdf.dtype)
    idx = torch.searchsorted(cdf, u, right=True)  # (R, N) in 1 .. K + 1
    below = (idx - 1).clamp(0, k)
    above = idx.clamp(0, k)
    cdf_lo, cdf_hi = cdf.gather(1, below), cdf.gather(1, above)
    bin_lo, bin_hi = bins.gather(1, below), bins.gather(1, above)
    denom = cdf_hi - cdf_lo
    frac = torch.where(
        denom < 1e-12, torch.zeros_like(denom), (u - cdf_lo) / denom.clamp_min(1e-12)
    )
    samples = bin_lo + frac * (bin_hi - bin_lo)
    return torch.sort(samples, dim=-1).values


def ray_box_intersect(
    origins: Tensor, directions: Tensor, bbox_min: Tensor, bbox_max: Tensor
) -> tuple[Tensor, Tensor]:
    """Entry and exit parameters of rays through an axis-aligned box (slab method).

    Args:
        origins, directions: (R, 3).
        bbox_min, bbox_max: (3,) box corners.
    Returns:
        t_enter, t_exit: (R,) with ``t_enter > t_exit`` for rays that miss the box. ``t`` is in
        units of ``directions`` (the z-depth for zoo rays).
    """
    if origins.shape != directions.shape or origins.shape[-1] != 3 or origins.ndim != 2:
        raise ValueError(
            f"origins and directions must both be (R, 3), got {tuple(origins.shape)} and "
            f"{tuple(directions.shape)}"
        )
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    inv = 1.0 / safe
    t0 = (bbox_min.to(origins) - origins) * inv  # (R, 3)
    t1 = (bbox_max.to(origins) - origins) * inv
    t_enter = torch.minimum(t0, t1).amax(dim=-1)
    t_exit = torch.maximum(t0, t1).amin(dim=-1)
    return t_enter, t_exit


def uniform_march(
    t_start: Tensor,
    t_end: Tensor,
    step: Tensor,
    max_steps: int,
    perturb: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Equally spaced samples ``t_k = t_start + (k + u) * step`` (Instant-NGP's ray marching
    with a random start offset ``u ~ U(0, 1)`` per ray in training, ``u = 0.5`` otherwise).

    Args:
        t_start, t_end, step: (R,) segment of each ray to march and its step (in ``t`` units).
        max_steps: S, the number of candidate steps (cover the longest segment).
    Returns:
        t: (R, S) sample parameters; valid: (R, S) bool, ``t_k < t_end`` (and the ray's
        segment non-empty).
    """
    n = t_start.shape[0]
    k = torch.arange(max_steps, dtype=t_start.dtype, device=t_start.device)  # (S,)
    if perturb:
        u = torch.rand(n, 1, generator=generator, device=t_start.device).to(t_start.dtype)
    else:
        u = torch.full((n, 1), 0.5, dtype=t_start.dtype, device=t_start.device)
    t = t_start[:, None] + (k[None] + u) * step[:, None]  # (R, S)
    valid = t < t_end[:, None]
    return t, valid


__all__ = ["importance_samples", "ray_box_intersect", "stratified_samples", "uniform_march"]
