"""``model=ngp``: a hash-grid radiance field in the manner of Instant-NGP (Müller et al.,
"Instant Neural Graphics Primitives with a Multiresolution Hash Encoding", SIGGRAPH 2022), in
plain PyTorch: the same code on CPU and GPU, no CUDA extension.

Ray marching (Sec. 5.4 / App. E): each ray is marched through the scene box with a constant
metric step (paper: ``sqrt(3) / 1024`` of the unit cube, i.e. 1024 steps per box diagonal) from
a random offset in training; samples in cells that the :class:`OccupancyGrid` marks empty are
skipped, and a ray stops once its transmittance falls below ``early_stop_eps`` (1e-4). In
PyTorch the march is vectorised: candidate samples form a dense (rays, steps) array; the
occupied ones are gathered and the field is evaluated on them in ``march_segments``
consecutive slices of the steps, each only for rays still alive after the previous slices
(early termination without evaluating anything twice). The evaluated samples are composited
in packed form with the shared :mod:`zoo.ops.volume_rendering` (``render_weights_packed``,
``composite_packed``). Grid and march are the shared :mod:`zoo.ops.occupancy` (``model=nerf``
samples through them too).

Optimisation (Sec. 4): Adam with betas (0.9, 0.99), eps 1e-15, lr 1e-2, L2 weight decay 1e-6
on the MLP weights only (none on the hash table).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from zoo.models.nerf.radiance import RadianceFieldModel
from zoo.models.ngp.hash_field import HashField
from zoo.models.registry import register_model
from zoo.ops.occupancy import OccupancyGrid


@register_model("ngp")
class InstantNGP(RadianceFieldModel):
    """Hash-grid radiance field with occupancy-grid empty-space skipping.

    Args:
        field: a :class:`HashField`.
        occupancy: an :class:`OccupancyGrid` (its box is the scene box).
        steps_per_diagonal: marching steps along the scene box diagonal (paper: 1024; the
            metric step is ``diagonal / steps_per_diagonal``).
        early_stop_eps: transmittance below which a ray stops (paper: 1e-4).
        march_segments: slices of the march between early-termination checks.
        mlp_weight_decay: L2 factor on MLP parameters (paper: 1e-6).
        compile: run the field through ``torch.compile`` (dynamic shapes; a one-off compile of
            tens of seconds, then faster steps where a compiler toolchain is available).
        **kwargs: see :class:`zoo.models.nerf.radiance.RadianceFieldModel`.
    """

    def __init__(
        self,
        field: HashField,
        occupancy: OccupancyGrid,
        steps_per_diagonal: int = 1024,
        early_stop_eps: float = 1e-4,
        march_segments: int = 4,
        mlp_weight_decay: float = 1e-6,
        compile: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if steps_per_diagonal < 2 or not 0.0 <= early_stop_eps < 1.0 or march_segments < 1:
            raise ValueError(
                f"need steps_per_diagonal >= 2, 0 <= early_stop_eps < 1, march_segments >= 1; "
                f"got {steps_per_diagonal}, {early_stop_eps}, {march_segments}"
            )
        self.field = field
        self.occupancy = occupancy
        self.steps_per_diagonal = int(steps_per_diagonal)
        self.early_stop_eps = float(early_stop_eps)
        self.march_segments = int(march_segments)
        self.mlp_weight_decay = float(mlp_weight_decay)
        self.compile = bool(compile)
        self._compiled: Any = None
        self.on_scene_configured()

    # ---- scene --------------------------------------------------------------------------
    @property
    def diagonal(self) -> float:
        return math.dist(self.bbox_min, self.bbox_max)

    @property
    def step_size(self) -> float:
        """Metric marching step."""
        return self.diagonal / self.steps_per_diagonal

    def on_scene_configured(self) -> None:
        self.field.set_bbox(self.bbox_min, self.bbox_max)
        self.occupancy.set_bbox(self.bbox_min, self.bbox_max)
        self.occupancy.step_size = self.step_size

    def reset_scene_state(self) -> None:
        self.occupancy.reset()

    def fresh_copy(self) -> RadianceFieldModel:
        compiled, self._compiled = self._compiled, None  # never deep-copy a compiled module
        try:
            return super().fresh_copy()
        finally:
            object.__setattr__(self, "_compiled", compiled)

    def optimizer_param_groups(self) -> Any:
        table = [self.field.encoding.table]
        others = [p for n, p in self.named_parameters() if n != "field.encoding.table"]
        return [
            {"params": table, "weight_decay": 0.0},
            {"params": others, "weight_decay": self.mlp_weight_decay},
        ]

    # ---- field --------------------------------------------------------------------------
    def _field(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """The field, compiled for training steps when ``compile`` is set (inference stays
        eager: one compiled graph, no recompiles for the 0 / 1 sizes torch specialises)."""
        if not (self.compile and torch.is_grad_enabled() and len(x) > 1):
            return self.field(x, d)
        if self._compiled is None:
            object.__setattr__(self, "_compiled", torch.compile(self.field, dynamic=True))
        from torch._dynamo.exc import BackendCompilerFailed

        try:
            return self._compiled(x, d)
        except BackendCompilerFailed as e:
            # No working inductor toolchain here (e.g. torch 2.13's CPU code generation under
            # ATEN_CPU_CAPABILITY=default emits at::vec code it cannot compile): train eagerly.
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            warnings.warn(
                f"ngp: model.compile=true but torch.compile failed ({first[:200]}); "
                "running the field eagerly",
                RuntimeWarning,
                stacklevel=2,
            )
            self.compile = False
            object.__setattr__(self, "_compiled", None)
            return self.field(x, d)

    def density(self, points: Tensor) -> Tensor:
        return self.field.density(points)

    def mesh_density(self, points: Tensor) -> Tensor:
        """Density with the empty cells of the occupancy grid zeroed (no floaters there)."""
        return self.field.density(points) * self.occupancy.query(points).float()

    def before_train_step(self, step: int) -> None:
        """Occupancy-grid update every ``update_every`` steps, from the first step after the
        field has seen some data (step 0 would only measure the random initialisation)."""
        if step > 0 and self.occupancy.due(step):
            self.occupancy.update(self.field.density, step)

    # ---- rendering ----------------------------------------------------------------------
    def render_rays(
        self, origins: Tensor, directions: Tensor, perturb: bool = False
    ) -> dict[str, Tensor]:
        """March rays (R, 3) + (R, 3) through the occupied cells; ``rgb`` (R, 3), ``depth``
        (R,), ``opacity`` (R,) and ``samples`` (the number of field evaluations)."""
        return self.march_occupancy(self._field, origins, directions, perturb)


__all__ = ["InstantNGP"]
