"""``model=mipnerf``: Mip-NeRF (Barron et al., "Mip-NeRF: A Multiscale Representation for
Anti-Aliasing Neural Radiance Fields", ICCV 2021; reference code google/mipnerf).

Each pixel casts a cone (radius ``2 / sqrt(12)`` of the pixel width at unit depth, carried by
the batches as ``radii``); ``num_samples + 1`` fence posts split the ray into conical
frustums, each approximated by a Gaussian and featurised with the integrated positional
encoding (:mod:`zoo.ops.mip`). One network serves both levels (the paper's single multiscale
MLP): level 0 samples stratified fence posts in [near, far]; level 1 resamples
``num_samples + 1`` posts from level 0's weights after a max-then-average blur plus
``resample_padding`` (0.01), without gradients across levels. Volume rendering is the shared
quadrature (:mod:`zoo.ops.volume_rendering`) over the frustums' lengths, and the loss is the
fine MSE plus ``coarse_loss_weight`` (0.1) times the coarse MSE, each weighted per ray by the
data's ``lossmult`` when it has one (multiscale data).

Paper preset (``experiment=mipnerf_paper``; ``configs/blender.gin`` and the model defaults of
``internal/models.py``): 128 samples per level, 8 x 256 network with a skip at layer 4, IPE
degrees 0-16, view directions with degrees 0-4, softplus density with bias -1, RGB padding
0.001, batch 4096 rays, Adam with the learning rate decayed log-linearly from 5e-4 to 5e-6
over 1M steps after a 2500-step warm-up from 1% (:func:`mip_lr_schedule`).

Empty-space skipping (``occupancy``, the CPU default): the coarse level is not ``num_samples``
stratified frustums in [near, far] but a march through the occupied cells of an occupancy grid
(:mod:`zoo.ops.occupancy`, the sampler of ``model=nerf``'s CPU default and of ``model=ngp``;
NerfAcc, Li et al., ICCV 2023), with a constant metric step of ``diagonal /
steps_per_diagonal``: every marched sample keeps its interval ``t +- dt / 2`` and is a
conical frustum (so the IPE sees the cone as in the paper), rays stop once their
transmittance is below ``early_stop_eps``, and rays that meet no occupied cell are not
evaluated at all (background). The resampled level keeps the reference's design: the
coarse weights of the marched intervals, blurred (max then average) plus
``resample_padding`` on the occupied, evaluated intervals only (known-empty space gets no
samples), give ``num_samples + 1`` fence posts by inverse-CDF sampling; the same network is
evaluated on those frustums, and the loss is fine + ``coarse_loss_weight`` x coarse. The grid
is updated with :meth:`density` (a full-resolution pixel's footprint at mid depth).
Without ``occupancy`` (the class default and the paper preset) the coarse level is the
paper's stratified one.

One difference from the reference: the resampling goes through the shared
:func:`zoo.ops.sampling.importance_samples`, which draws sorted iid uniforms in training (the
reference's ``sorted_piecewise_constant_pdf`` jitters one uniform per stratum) and
``linspace(0, 1)`` at evaluation (the reference: ``linspace(0, 1 - eps)``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from zoo.models.nerf.radiance import RadianceFieldModel
from zoo.models.registry import register_model
from zoo.ops.mip import (
    CONE_RADIUS_SCALE,
    blur_weights,
    conical_frustums,
    sample_fenceposts,
)
from zoo.ops.occupancy import OccupancyGrid, march_candidates, march_packed
from zoo.ops.sampling import importance_samples
from zoo.ops.volume_rendering import composite_packed, volume_render


def mip_lr_schedule(
    optimizer: torch.optim.Optimizer,
    max_steps: int,
    final_ratio: float = 0.01,
    delay_steps: int = 2500,
    delay_mult: float = 0.01,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Mip-NeRF's (and JaxNeRF's) ``learning_rate_decay``: ``lr(step) = lr0 * delay(step) *
    final_ratio^(step / max_steps)`` (log-linear from ``lr0`` to ``final_ratio * lr0``,
    constant after ``max_steps``), where ``delay`` rises from ``delay_mult`` to 1 as
    ``sin(pi / 2 * step / delay_steps)`` over the first ``delay_steps`` (0 disables it)."""
    if max_steps < 1 or not 0 < final_ratio <= 1 or delay_steps < 0 or not 0 < delay_mult <= 1:
        raise ValueError(
            f"need max_steps >= 1, 0 < final_ratio <= 1, delay_steps >= 0, 0 < delay_mult <= 1; "
            f"got {max_steps}, {final_ratio}, {delay_steps}, {delay_mult}"
        )

    def factor(step: int) -> float:
        delay = 1.0
        if delay_steps > 0:
            frac = min(max(step / delay_steps, 0.0), 1.0)
            delay = delay_mult + (1 - delay_mult) * math.sin(0.5 * math.pi * frac)
        return delay * final_ratio ** min(step / max_steps, 1.0)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@register_model("mipnerf")
class MipNeRF(RadianceFieldModel):
    """Mip-NeRF with one field for both sampling levels.

    Args:
        field: :class:`zoo.models.mipnerf.field.MipNeRFField`.
        num_samples: frustums per ray and level (paper: 128).
        num_levels: sampling levels (paper: 2; 1 gives a single coarse pass).
        resample_padding: added to the blurred weights before resampling (paper: 0.01).
        coarse_loss_weight: weight of the non-final levels' MSE (paper: 0.1).
        occupancy: an :class:`OccupancyGrid`: the coarse level marches through its occupied
            cells (see the module docstring); None (the paper) samples stratified frustums.
        steps_per_diagonal: with ``occupancy``, marching steps along the scene box diagonal.
        early_stop_eps: with ``occupancy``, transmittance below which a ray stops (1e-4).
        march_segments: with ``occupancy``, slices of the march between early-stop checks.
        **kwargs: see :class:`zoo.models.nerf.radiance.RadianceFieldModel`.
    """

    uses_radii: ClassVar[bool] = True

    def __init__(
        self,
        field: nn.Module,
        num_samples: int = 128,
        num_levels: int = 2,
        resample_padding: float = 0.01,
        coarse_loss_weight: float = 0.1,
        occupancy: OccupancyGrid | None = None,
        steps_per_diagonal: int = 256,
        early_stop_eps: float = 1e-4,
        march_segments: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if steps_per_diagonal < 2 or not 0.0 <= early_stop_eps < 1.0 or march_segments < 1:
            raise ValueError(
                f"need steps_per_diagonal >= 2, 0 <= early_stop_eps < 1, march_segments >= 1; "
                f"got {steps_per_diagonal}, {early_stop_eps}, {march_segments}"
            )
        if num_samples < 1 or num_levels < 1 or resample_padding < 0 or coarse_loss_weight < 0:
            raise ValueError(
                f"need num_samples >= 1, num_levels >= 1, resample_padding >= 0, "
                f"coarse_loss_weight >= 0; got {num_samples}, {num_levels}, {resample_padding}, "
                f"{coarse_loss_weight}"
            )
        self.field = field
        self.num_samples = int(num_samples)
        self.num_levels = int(num_levels)
        self.resample_padding = float(resample_padding)
        self.coarse_loss_weight = float(coarse_loss_weight)
        self.occupancy = occupancy
        self.steps_per_diagonal = int(steps_per_diagonal)
        self.early_stop_eps = float(early_stop_eps)
        self.march_segments = int(march_segments)
        self.on_scene_configured()

    def _level(
        self, origins: Tensor, directions: Tensor, radii: Tensor, t_vals: Tensor
    ) -> dict[str, Tensor]:
        """Render the frustums between fence posts ``t_vals`` (R, S + 1)."""
        r, s = t_vals.shape[0], t_vals.shape[1] - 1
        mean, var = conical_frustums(origins, directions, t_vals, radii)  # (R, S, 3) each
        norm = directions.norm(dim=-1, keepdim=True)  # (R, 1)
        viewdirs = (directions / norm)[:, None, :].expand(r, s, 3)
        sigma, rgb = self.field(mean.reshape(-1, 3), var.reshape(-1, 3), viewdirs.reshape(-1, 3))
        delta = (t_vals[:, 1:] - t_vals[:, :-1]) * norm  # (R, S) metric frustum lengths
        t_mid = 0.5 * (t_vals[:, 1:] + t_vals[:, :-1])
        return volume_render(
            sigma.view(r, s), rgb.view(r, s, 3), t_mid, delta, self.background_tensor(t_vals)
        )

    def render_rays(
        self,
        origins: Tensor,
        directions: Tensor,
        perturb: bool = False,
        radii: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Cone-trace rays (R, 3) + (R, 3) with footprints ``radii`` (R,): the last level's
        ``rgb``/``depth``/``opacity`` and, with two or more levels, ``rgb_coarse`` (the
        previous level's colour)."""
        if radii is None or radii.shape != origins.shape[:1]:
            got = None if radii is None else tuple(radii.shape)
            raise ValueError(f"mipnerf needs radii of shape ({len(origins)},), got {got}")
        radii = radii.to(origins)
        if self.occupancy is not None:
            return self._render_marched(origins, directions, radii, perturb)
        t_vals = sample_fenceposts(
            self.near, self.far, self.num_samples + 1, len(origins), perturb, origins.device
        )
        out: dict[str, Tensor] = {}
        for level in range(self.num_levels):
            if level > 0:
                weights = blur_weights(out["weights"].detach(), self.resample_padding)
                t_vals = importance_samples(
                    t_vals, weights, self.num_samples + 1, deterministic=not perturb
                )
                prev = out["rgb"]
            out = self._level(origins, directions, radii, t_vals)
            if level > 0:
                out["rgb_coarse"] = prev
        return out

    def march_coarse(
        self, origins: Tensor, directions: Tensor, radii: Tensor, perturb: bool
    ) -> dict[str, Tensor]:
        """The coarse level through the occupancy grid: the composited ``rgb``/``depth``/
        ``opacity`` (R,...), and for resampling the dense march ``t`` (R, S) of interval
        centres, ``edges`` (R, S + 1) of the intervals, ``weights`` (R, S) (0 where not
        evaluated) and ``evaluated`` (R, S) bool; ``samples`` = frustums evaluated."""
        assert self.occupancy is not None
        r = len(origins)
        t, dt, candidates = march_candidates(
            self.occupancy,
            origins,
            directions,
            self.near,
            self.far,
            self.step_size,
            self.steps_per_diagonal + 1,  # covers the longest chord
            perturb,
        )
        viewdirs = directions / directions.norm(dim=-1, keepdim=True)

        def frustums(ray_i: Tensor, col: Tensor) -> tuple[Tensor, Tensor]:
            tc, half = t[ray_i, col], 0.5 * dt[ray_i]  # (M,)
            posts = torch.stack([tc - half, tc + half], dim=-1)  # (M, 2): one interval each
            mean, var = conical_frustums(origins[ray_i], directions[ray_i], posts, radii[ray_i])
            return self.field(mean[:, 0], var[:, 0], viewdirs[ray_i])

        weights, rgb, ray_i, col = march_packed(
            frustums, candidates, self.step_size, self.early_stop_eps, self.march_segments
        )
        bg = self.background_tensor(origins)
        out = composite_packed(weights, rgb, t[ray_i, col], ray_i, r, bg)
        dense = t.new_zeros(t.shape).index_put((ray_i, col), weights.detach())
        out["weights"] = dense  # (R, S)
        out["evaluated"] = torch.zeros_like(candidates).index_put(
            (ray_i, col), torch.ones_like(ray_i, dtype=torch.bool)
        )
        out["t"] = t
        out["edges"] = torch.cat([t - 0.5 * dt[:, None], t[:, -1:] + 0.5 * dt[:, None]], dim=-1)
        out["samples"] = torch.tensor(len(ray_i), device=t.device)
        return out

    def _render_marched(
        self, origins: Tensor, directions: Tensor, radii: Tensor, perturb: bool
    ) -> dict[str, Tensor]:
        """Coarse level by the occupancy march, then the resampled levels on the rays that
        met an occupied cell (the others show the background)."""
        coarse = self.march_coarse(origins, directions, radii, perturb)
        if self.num_levels == 1:
            return {k: coarse[k] for k in ("rgb", "depth", "opacity", "samples")}
        evaluated = coarse["evaluated"]  # (R, S)
        hit = evaluated.any(dim=-1).nonzero()[:, 0]  # (H,)
        # Blur over the march (empty neighbours included, as the reference), then keep the
        # pdf on the evaluated intervals only, each with at least the padding.
        mask = evaluated[hit].to(origins.dtype)
        pdf = (blur_weights(coarse["weights"][hit], 0.0) + self.resample_padding) * mask
        edges = coarse["edges"][hit]  # (H, S + 1)
        t_vals = importance_samples(
            edges, pdf, self.num_samples + 1, deterministic=not perturb, eps=1e-8
        )  # (H, N + 1)
        # u = 0 and 1 map to the ends of the whole march array: keep the posts within the
        # evaluated span (first to last evaluated interval) of each ray.
        cols = torch.arange(mask.shape[1], device=mask.device)
        first = torch.where(mask > 0, cols, mask.shape[1]).min(dim=-1).values
        last = torch.where(mask > 0, cols, -1).max(dim=-1).values
        t_vals = t_vals.clamp(edges.gather(1, first[:, None]), edges.gather(1, last[:, None] + 1))
        o, d, rad = origins[hit], directions[hit], radii[hit]
        out: dict[str, Tensor] = {}
        for level in range(1, self.num_levels):
            if level > 1:
                weights = blur_weights(out["weights"].detach(), self.resample_padding)
                t_vals = importance_samples(
                    t_vals, weights, self.num_samples + 1, deterministic=not perturb
                )
            prev = out.get("rgb")
            out = self._level(o, d, rad, t_vals)
        r = len(origins)
        bg = self.background_tensor(origins).expand(r, 3).contiguous()
        result = {
            "rgb": bg.index_put((hit,), out["rgb"]),
            "depth": origins.new_zeros(r).index_put((hit,), out["depth"]),
            "opacity": origins.new_zeros(r).index_put((hit,), out["opacity"]),
            "samples": coarse["samples"] + len(hit) * self.num_samples,
        }
        if prev is None:
            result["rgb_coarse"] = coarse["rgb"]
        else:
            result["rgb_coarse"] = bg.index_put((hit,), prev)
        return result

    # ---- point queries (meshes) ---------------------------------------------------------
    def point_variance(self) -> float:
        """Isotropic variance (world units^2) given to a point for :meth:`density`: that of a
        frustum of a full-resolution training pixel at mid depth, ``(r t)^2 / 4`` with ``r``
        the cone radius at unit depth (from the data's focal length)."""
        focal = float(self.data_info.get("focal", 0.0) or 0.0)
        if focal <= 0:
            return 0.0
        t = 0.5 * (self.near + self.far)
        return (CONE_RADIUS_SCALE / focal * t) ** 2 / 4.0

    def density(self, points: Tensor) -> Tensor:
        """Density at points (N, 3), seen at the finest training pixel footprint."""
        var = torch.full_like(points, self.point_variance())
        return self.field.density(points, var)


__all__ = ["MipNeRF", "mip_lr_schedule"]
