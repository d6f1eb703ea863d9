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
from zoo.ops.mip import CONE_RADIUS_SCALE, blur_weights, conical_frustums, sample_fenceposts
from zoo.ops.sampling import importance_samples
from zoo.ops.volume_rendering import volume_render


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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
            out = self._level(origins, directions, radii.to(origins), t_vals)
            if level > 0:
                out["rgb_coarse"] = prev
        return out

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
