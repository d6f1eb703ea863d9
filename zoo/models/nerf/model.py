"""``model=nerf``: Neural Radiance Fields (Mildenhall et al., ECCV 2020).

Rendering (Sec. 4-5): each ray gets ``num_samples`` stratified samples in [near, far] (coarse
pass); if ``num_importance > 0`` a second field is evaluated at the coarse samples plus
``num_importance`` samples drawn from the coarse weights by inverse-CDF sampling (fine pass).
Both passes are one ``_render_pass`` (sample points -> field -> volume rendering through
:mod:`zoo.ops.volume_rendering`) and the loss is the sum of both passes' MSE.

Paper preset (``experiment=nerf_paper``; ``paper_configs/blender_config.txt``): 64 coarse +
128 fine samples, 8 x 256 fields with view directions, 1024 rays per step, Adam lr 5e-4
decayed exponentially by 10x over 500k steps (``lrate_decay = 500``), white background.

Empty-space skipping (``occupancy``): instead of stratified samples in [near, far], rays are
marched with a constant metric step through the occupied cells of an occupancy grid
(:mod:`zoo.ops.occupancy`), as NerfAcc does for this very network (Li et al., "NerfAcc:
Efficient Sampling Accelerates NeRFs", ICCV 2023; ``nerfacc.OccGridEstimator`` and
``examples/train_mlp_nerf.py``: 1024 steps per box diagonal, a 128^3 grid updated every 16
steps). The network, the volume rendering and the MSE loss are the paper's; only where the
samples go changes: most samples of a plain NeRF fall in empty space, and skipping them pays for
finer steps. The grid replaces the hierarchical fine pass (NerfAcc's MLP NeRF has none).
Without ``occupancy`` (the class default) the model is the paper's stratified sampler.

Unbounded scenes (data ``ray_space == "contract"``, e.g. ``data=colmap data.contract=true``):
the stratified sampler places half the samples uniformly in ``[near, 1]`` and half linearly
in disparity in ``[1, far]`` (nerfacto's ``UniformLinDispPiecewiseSampler``), and
the fields see mip-NeRF 360's contracted points (Barron et al., CVPR 2022, Eq. 10 and Sec. 2;
:func:`zoo.ops.scene_space.contract`); volume rendering keeps world distances. This needs
``occupancy=None`` (the grid covers a bounded box).

The CPU default (``conf/model/nerf.yaml``, chosen by measurement with
``benchmarks/bench_nerf.py``) is a smaller field with the occupancy grid; see that file.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.nerf.radiance import RadianceFieldModel
from zoo.models.registry import register_model
from zoo.ops.occupancy import OccupancyGrid
from zoo.ops.sampling import importance_samples, stratified_samples
from zoo.ops.scene_space import contract
from zoo.ops.volume_rendering import compute_deltas, volume_render


@register_model("nerf")
class NeRF(RadianceFieldModel):
    """NeRF with an optional hierarchical fine pass.

    Args:
        field: the coarse network (``zoo.models.nerf.field.NeRFField``).
        fine_field: the fine network (paper: same architecture); None disables the fine pass.
        num_samples: stratified samples per ray (paper: 64).
        num_importance: extra importance samples of the fine pass (paper: 128).
        raw_noise_std: std of Gaussian noise added to the raw density in training (the
            Blender config uses 0).
        occupancy: an :class:`OccupancyGrid` for empty-space skipping (NerfAcc); None (the
            paper, and the default) samples ``num_samples`` stratified depths per ray.
        steps_per_diagonal: with ``occupancy``, marching steps along the scene box diagonal
            (NerfAcc: 1024); the metric step is ``diagonal / steps_per_diagonal``.
        early_stop_eps: with ``occupancy``, transmittance below which a ray stops (1e-4).
        march_segments: with ``occupancy``, slices of the march between early-stop checks.
        **kwargs: see :class:`zoo.models.nerf.radiance.RadianceFieldModel`.
    """

    def __init__(
        self,
        field: nn.Module,
        fine_field: nn.Module | None = None,
        num_samples: int = 64,
        num_importance: int = 0,
        raw_noise_std: float = 0.0,
        occupancy: OccupancyGrid | None = None,
        steps_per_diagonal: int = 1024,
        early_stop_eps: float = 1e-4,
        march_segments: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if occupancy is not None and num_importance > 0:
            raise ValueError(
                "occupancy replaces the hierarchical fine pass: set num_importance=0 with it"
            )
        if steps_per_diagonal < 2 or not 0.0 <= early_stop_eps < 1.0 or march_segments < 1:
            raise ValueError(
                f"need steps_per_diagonal >= 2, 0 <= early_stop_eps < 1, march_segments >= 1; "
                f"got {steps_per_diagonal}, {early_stop_eps}, {march_segments}"
            )
        if num_samples < 2 or num_importance < 0:
            raise ValueError(
                f"need num_samples >= 2 and num_importance >= 0, got {num_samples}, "
                f"{num_importance}"
            )
        if num_importance > 0 and fine_field is None:
            raise ValueError("num_importance > 0 needs a fine_field")
        self.field = field
        self.fine_field = fine_field if num_importance > 0 else None
        self.num_samples = int(num_samples)
        self.num_importance = int(num_importance)
        self.raw_noise_std = float(raw_noise_std)
        self.occupancy = occupancy
        self.steps_per_diagonal = int(steps_per_diagonal)
        self.early_stop_eps = float(early_stop_eps)
        self.march_segments = int(march_segments)
        self.on_scene_configured()

    @property
    def supports_contraction(self) -> bool:
        """Unbounded scenes (data ``ray_space=contract``) need the stratified sampler."""
        return self.occupancy is None

    # ---- occupancy grid (only with ``occupancy``) ---------------------------------------
    def grid_density(self, points: Tensor) -> Tensor:
        """The occupancy grid follows the coarse field (the one it marches)."""
        return self.field.density(points)

    def _render_pass(
        self, field: nn.Module, origins: Tensor, directions: Tensor, t: Tensor
    ) -> dict[str, Tensor]:
        """Evaluate ``field`` at ``o + t d`` and volume-render.

        Args:
            origins, directions: (R, 3) rays (directions with camera z = -1, not unit).
            t: (R, S) sorted sample depths.
        Returns:
            ``rgb`` (R, 3), ``depth`` (R,), ``opacity`` (R,), ``weights`` (R, S).
        """
        r, s = t.shape
        points = origins[:, None, :] + t[..., None] * directions[:, None, :]  # (R, S, 3)
        if self.contracted:  # unbounded scene: the field lives in the radius-2 ball
            points = contract(points)
        norm = directions.norm(dim=-1, keepdim=True)  # (R, 1)
        viewdirs = (directions / norm)[:, None, :].expand(r, s, 3)
        sigma, rgb = field(points.reshape(-1, 3), viewdirs.reshape(-1, 3))
        sigma, rgb = sigma.view(r, s), rgb.view(r, s, 3)
        if self.training and self.raw_noise_std > 0:
            sigma = F.relu(sigma + torch.randn_like(sigma) * self.raw_noise_std)
        delta = compute_deltas(t) * norm  # metric segment lengths
        return volume_render(sigma, rgb, t, delta, self.background_tensor(t))

    def render_rays(
        self, origins: Tensor, directions: Tensor, perturb: bool = False
    ) -> dict[str, Tensor]:
        """Coarse (and fine) passes; returns the final pass's ``rgb``/``depth``/``opacity``
        and, with a fine pass, ``rgb_coarse``; with ``occupancy``, the occupancy march's."""
        if self.occupancy is not None:
            return self.march_occupancy(self.field, origins, directions, perturb)
        n = origins.shape[0]
        if self.contracted:
            # Uniform in t up to distance 1, linear in disparity beyond, out to far (nerfacto's
            # UniformLinDispPiecewiseSampler; mip-NeRF 360 spaces its samples in disparity):
            # far space gets samples in proportion to its contracted extent.
            u = stratified_samples(
                0.0, 1.0, self.num_samples, n_rays=n, perturb=perturb, device=origins.device
            )  # (R, S) in [0, 1]
            split = max(1.0, self.near)
            inner = self.near + (split - self.near) * 2.0 * u
            frac = (2.0 * u - 1.0).clamp(0.0, 1.0)  # position in disparity
            outer = 1.0 / (1.0 / split - frac * (1.0 / split - 1.0 / self.far))
            t = torch.where(u < 0.5, inner, outer)  # (R, S) ascending depths
        else:
            t = stratified_samples(
                self.near,
                self.far,
                self.num_samples,
                n_rays=n,
                perturb=perturb,
                device=origins.device,
            )  # (R, S)
        coarse = self._render_pass(self.field, origins, directions, t)
        if self.fine_field is None:
            return coarse
        # Bins between the coarse samples, weights of the interior samples (run_nerf.py).
        mids = 0.5 * (t[:, 1:] + t[:, :-1])  # (R, S - 1)
        t_fine = importance_samples(
            mids, coarse["weights"][:, 1:-1], self.num_importance, deterministic=not perturb
        )
        t_all = torch.sort(torch.cat([t, t_fine], dim=-1), dim=-1).values  # (R, S + N)
        fine = self._render_pass(self.fine_field, origins, directions, t_all)
        fine["rgb_coarse"] = coarse["rgb"]
        return fine

    def density(self, points: Tensor) -> Tensor:
        """Density of the fine field (the coarse one without a fine pass)."""
        field = self.fine_field if self.fine_field is not None else self.field
        return field.density(points)


__all__ = ["NeRF"]
