"""What NeRF and Instant-NGP share: a per-scene radiance field as a zoo ``Representation``.

A subclass provides ``render_rays`` (rays -> colour, depth, opacity) and ``density`` (points
-> sigma); this base turns them into the Lightning steps (photometric MSE, ``train/loss``,
``train/psnr``, ``val/psnr``), image rendering for any camera (chunked, no grad), marching
cubes meshes of the density through the shared ops, and per-scene ``sample``/``reconstruct``.

Conventions: ray directions have camera-frame z = -1 (:mod:`zoo.ops.rays`), so the ray
parameter ``t`` is a z-depth and ``near``/``far`` from the data are z-depths; depth maps are
z-depths (0 where a ray hits nothing); images are composited on the data's background.
"""

from __future__ import annotations

import abc
import copy
import math
from typing import Any, ClassVar

import torch
import trimesh
from torch import Tensor

from zoo.metrics import mse_to_psnr
from zoo.models.base import ZooModel
from zoo.ops.marching_cubes import evaluate_grid, marching_cubes
from zoo.ops.occupancy import FieldFn, OccupancyGrid, occupancy_march
from zoo.ops.rays import generate_radii, generate_rays, pixel_radii, rays_for_pixels
from zoo.ops.scene_space import ndc_rays
from zoo.representation import ShapeTarget
from zoo.structures.cameras import Cameras


def exponential_decay(
    optimizer: torch.optim.Optimizer, decay_steps: int, decay_rate: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    """NeRF's learning-rate schedule, ``lr(step) = lr0 * decay_rate^(step / decay_steps)``
    (``run_nerf.py``: Keras ExponentialDecay with ``decay_steps = lrate_decay * 1000``, not
    staircase; the Blender paper config has ``lrate_decay = 500``)."""
    if decay_steps < 1 or not 0.0 < decay_rate <= 1.0:
        raise ValueError(
            f"need decay_steps >= 1 and 0 < decay_rate <= 1, got {decay_steps}, {decay_rate}"
        )
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: decay_rate ** (step / decay_steps)
    )


class RadianceFieldModel(ZooModel):
    """Base of the radiance-field models (``kind="radiance"``, ``data_form="views"``).

    Args:
        chunk: rays rendered at once in ``render_maps`` and validation.
        density_threshold: iso-level of the density (1 / scene units) for ``to_mesh``.
        reconstruct_steps: optimisation steps of ``reconstruct`` on a new scene's views.
        reconstruct_rays: rays per step there.
        optimizer, scheduler, scheduler_interval: see :class:`zoo.models.base.ZooModel`.
    """

    kind: ClassVar[str] = "radiance"
    data_form: ClassVar[str] = "views"
    generative: ClassVar[bool] = False
    per_scene: ClassVar[bool] = True
    # Cone-traced models (Mip-NeRF) need each ray's pixel footprint: ``render_rays`` then
    # takes ``radii`` (R,), the cone radius at ray parameter 1 (zoo.ops.rays.pixel_radii).
    uses_radii: ClassVar[bool] = False

    def __init__(
        self,
        chunk: int = 8192,
        density_threshold: float = 10.0,
        reconstruct_steps: int = 500,
        reconstruct_rays: int = 1024,
        optimizer: Any = None,
        scheduler: Any = None,
        scheduler_interval: str = "step",
    ) -> None:
        super().__init__(
            optimizer=optimizer, scheduler=scheduler, scheduler_interval=scheduler_interval
        )
        if chunk < 1 or reconstruct_steps < 0 or reconstruct_rays < 1:
            raise ValueError(
                f"need chunk >= 1, reconstruct_steps >= 0, reconstruct_rays >= 1; got {chunk}, "
                f"{reconstruct_steps}, {reconstruct_rays}"
            )
        self.chunk = int(chunk)
        self.density_threshold = float(density_threshold)
        self.reconstruct_steps = int(reconstruct_steps)
        self.reconstruct_rays = int(reconstruct_rays)
        self.coarse_loss_weight = 1.0  # weight of a coarse pass's MSE (NeRF: 1, Mip-NeRF: 0.1)
        # Scene description, replaced by configure_from_data (defaults: NeRF's Blender setting).
        self.near, self.far = 2.0, 6.0
        self.background = [1.0, 1.0, 1.0]
        self.bbox_min, self.bbox_max = [-1.5] * 3, [1.5] * 3
        self.ndc: dict[str, float] | None = None  # NDC parameters for forward-facing scenes
        self.contracted = False  # unbounded scene: fields see mip-NeRF 360's contracted points
        # Empty-space skipping grid (a submodule set by the subclass; None: no grid).
        self.occupancy: OccupancyGrid | None = None

    # ---- data ---------------------------------------------------------------------------
    def configure_from_data(self, info: dict[str, Any]) -> None:
        """Read ``near``, ``far`` (z-depths), ``background`` (RGB) and the scene box
        ``bbox_min``/``bbox_max`` from the views datamodule's ``info()``."""
        super().configure_from_data(info)
        if info.get("form", "views") != "views":
            raise ValueError(f"{self.name} trains on views, got data form {info.get('form')!r}")
        for key in ("near", "far", "background", "bbox_min", "bbox_max"):
            if key not in info:
                raise ValueError(f"{self.name}: data info has no {key!r} (got {sorted(info)})")
        near, far = float(info["near"]), float(info["far"])
        if not 0.0 <= near < far:
            raise ValueError(f"{self.name}: need 0 <= near < far, got {near}, {far}")
        bg = [float(c) for c in info["background"]]
        lo, hi = [float(c) for c in info["bbox_min"]], [float(c) for c in info["bbox_max"]]
        if (
            len(bg) != 3
            or len(lo) != 3
            or len(hi) != 3
            or not all(a < b for a, b in zip(lo, hi, strict=True))
        ):
            raise ValueError(
                f"{self.name}: need 3-value background and bbox_min < bbox_max, got {bg}, {lo}, "
                f"{hi}"
            )
        self.near, self.far, self.background = near, far, bg
        self.bbox_min, self.bbox_max = lo, hi
        space = info.get("ray_space", "euclidean")
        if space not in ("euclidean", "ndc", "contract"):
            raise ValueError(f"{self.name}: unknown ray_space {space!r}")
        if space == "contract" and not self.supports_contraction:
            raise ValueError(
                f"{self.name} does not support scene contraction (data ray_space=contract) yet; "
                "use model=nerf model.occupancy=null or give the data a bounding box"
            )
        self.ndc = dict(info["ndc"]) if space == "ndc" else None
        self.contracted = space == "contract"
        self.on_scene_configured()

    @property
    def supports_contraction(self) -> bool:
        """Whether this model samples unbounded rays (``ray_space == "contract"``)."""
        return False

    def to_ray_space(self, origins: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
        """World rays -> the rays the field is marched along: NeRF's NDC rays for a
        forward-facing scene (``info()["ray_space"] == "ndc"``; the box is then [-1, 1]^3 and
        ``t`` runs over [0, 1]), else unchanged."""
        if self.ndc is None:
            return origins, directions
        n = self.ndc
        return ndc_rays(
            origins, directions, n["width"], n["height"], n["focal"], n.get("near", 1.0)
        )

    # ---- optional occupancy grid ---------------------------------------------------------
    # Models that march an ``OccupancyGrid`` (``zoo.ops.occupancy``) store it as
    # ``self.occupancy`` (None: no grid) with ``self.steps_per_diagonal``; the hooks below keep
    # it on the scene box, reset it per scene, update it during training and mask meshes by it.
    @property
    def step_size(self) -> float:
        """Metric length of one marching step: the box diagonal / ``steps_per_diagonal``."""
        return math.dist(self.bbox_min, self.bbox_max) / self.steps_per_diagonal

    def grid_density(self, points: Tensor) -> Tensor:
        """The density the occupancy grid is updated from (default: :meth:`density`)."""
        return self.density(points)

    def on_scene_configured(self) -> None:
        """Hook for subclasses: the scene box / bounds changed (puts the grid, if any, on the
        new box)."""
        if self.occupancy is not None:
            self.occupancy.set_bbox(self.bbox_min, self.bbox_max)
            self.occupancy.step_size = self.step_size

    def march_occupancy(
        self, field: FieldFn, origins: Tensor, directions: Tensor, perturb: bool
    ) -> dict[str, Tensor]:
        """Render rays (R, 3) + (R, 3) with ``field`` through the occupied cells of
        ``self.occupancy`` (:func:`zoo.ops.occupancy.occupancy_march` with this model's near /
        far, metric step, ``steps_per_diagonal + 1`` candidate steps (the longest chord),
        background, ``early_stop_eps`` and ``march_segments``)."""
        return occupancy_march(
            field,
            self.occupancy,
            origins,
            directions,
            near=self.near,
            far=self.far,
            step_size=self.step_size,
            n_steps=int(math.ceil(self.steps_per_diagonal)) + 1,  # covers the longest chord
            background=self.background_tensor(origins),
            early_stop_eps=self.early_stop_eps,
            segments=self.march_segments,
            perturb=perturb,
        )

    def background_tensor(self, like: Tensor) -> Tensor:
        return torch.tensor(self.background, dtype=like.dtype, device=like.device)

    # ---- what a subclass implements -----------------------------------------------------
    @abc.abstractmethod
    def render_rays(
        self, origins: Tensor, directions: Tensor, perturb: bool = False
    ) -> dict[str, Tensor]:
        """Render rays (R, 3) + (R, 3): ``rgb`` (R, 3), ``depth`` (R,), ``opacity`` (R,), and
        for training any extra terms the loss needs (e.g. ``rgb_coarse``). A model with
        ``uses_radii`` also takes ``radii`` (R,)."""

    def _render(
        self, origins: Tensor, directions: Tensor, radii: Tensor | None, perturb: bool
    ) -> dict[str, Tensor]:
        """``render_rays``, passing the rays' footprints to the models that use them."""
        if not self.uses_radii:
            return self.render_rays(origins, directions, perturb=perturb)
        if radii is None:
            raise ValueError(f"{self.name} casts cones: the rays need 'radii' (pixel footprints)")
        return self.render_rays(origins, directions, perturb=perturb, radii=radii)

    @abc.abstractmethod
    def density(self, points: Tensor) -> Tensor:
        """Density sigma (N,) at world points (N, 3) (the one meshes are extracted from)."""

    def before_train_step(self, step: int) -> None:
        """Hook run before each optimisation step: the occupancy-grid update (if any) every
        ``update_every`` steps, from step 1 (step 0 would only measure the random
        initialisation)."""
        grid = self.occupancy
        if grid is not None and step > 0 and grid.due(step):
            grid.update(self.grid_density, step)

    # ---- training -----------------------------------------------------------------------
    def photometric_loss(
        self, out: dict[str, Tensor], target: Tensor, weight: Tensor | None = None
    ) -> Tensor:
        """MSE of the rendered colour, plus ``coarse_loss_weight`` times that of the coarse
        pass when there is one. With per-ray ``weight`` (R,) (multiscale data's ``lossmult``,
        the pixel's area in full-resolution pixels) the MSE is the weighted mean
        ``sum_r w_r |c_r - t_r|^2 / (3 sum_r w_r)`` (google/mipnerf ``train.py``, up to its
        factor 3); without it, the plain mean."""

        def mse(rgb: Tensor) -> Tensor:
            err = ((rgb - target) ** 2).mean(-1)  # (R,)
            return err.mean() if weight is None else (weight * err).sum() / weight.sum()

        loss = mse(out["rgb"])
        if "rgb_coarse" in out:
            loss = loss + self.coarse_loss_weight * mse(out["rgb_coarse"])
        return loss

    def train_on_batch(self, batch: dict[str, Tensor], step: int) -> tuple[Tensor, Tensor]:
        """One optimisation step's forward pass on a batch of rays (``origins``, ``directions``,
        ``rgb``; ``radii`` / ``lossmult`` where the model uses them) at global step ``step``:
        ``(loss, psnr)``. ``training_step`` and the benchmarks' plain loops call it; the caller
        steps the optimiser."""
        for key in ("origins", "directions", "rgb"):
            if key not in batch:
                raise ValueError(
                    f"{self.name}: training batch has no {key!r} (got {sorted(batch)})"
                )
        self.before_train_step(step)
        origins, directions = self.to_ray_space(batch["origins"], batch["directions"])
        out = self._render(origins, directions, batch.get("radii"), True)
        loss = self.photometric_loss(out, batch["rgb"], batch.get("lossmult"))
        psnr = mse_to_psnr(torch.mean((out["rgb"].detach() - batch["rgb"]) ** 2))
        return loss, psnr

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, psnr = self.train_on_batch(batch, int(self.global_step))
        n = len(batch["rgb"])
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/psnr", psnr, prog_bar=True, batch_size=n)
        return loss

    @torch.no_grad()
    def render_ray_batch(
        self, origins: Tensor, directions: Tensor, radii: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Render many rays in chunks of ``self.chunk`` without gradients (eval mode)."""
        parts: dict[str, list[Tensor]] = {}
        origins, directions = self.to_ray_space(origins, directions)
        for start in range(0, len(origins), self.chunk):
            part = slice(start, start + self.chunk)
            out = self._render(
                origins[part], directions[part], None if radii is None else radii[part], False
            )
            for key in ("rgb", "depth", "opacity"):
                parts.setdefault(key, []).append(out[key])
        return {k: torch.cat(v) for k, v in parts.items()}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.render_ray_batch(batch["origins"], batch["directions"], batch.get("radii"))
        psnr = mse_to_psnr(torch.mean((out["rgb"].clamp(0, 1) - batch["rgb"]) ** 2))
        self.log("val/psnr", psnr, prog_bar=True, batch_size=1)
        return psnr

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.render_ray_batch(batch["origins"], batch["directions"], batch.get("radii"))
        psnr = mse_to_psnr(torch.mean((out["rgb"].clamp(0, 1) - batch["rgb"]) ** 2))
        self.log("test/psnr", psnr, batch_size=1)
        return psnr

    # ---- Representation -----------------------------------------------------------------
    def sample(self, n: int, seed: int | None = None) -> list[Any]:
        """A per-scene model has one shape, the fitted scene: ``[self] * n``."""
        return [self] * n

    def render_maps(self, shape: Any, cameras: Cameras) -> dict[str, Tensor]:
        """Volume-render ``shape`` (a fitted model of this class, e.g. ``self``) from any
        cameras: ``rgb`` (B, H, W, 3) on the background, ``depth`` (B, H, W) z-depth (0 where
        nothing is hit), ``opacity`` (B, H, W)."""
        model = self if shape is None else shape
        if not isinstance(model, RadianceFieldModel):
            raise TypeError(f"{self.name}.render_maps expects a fitted scene, got {type(shape)}")
        was_training = model.training
        model.eval()
        try:
            cameras = cameras.to(model.device_)
            origins, directions = generate_rays(cameras)  # (B, H, W, 3) each
            b, h, w = origins.shape[:3]
            radii = generate_radii(cameras).reshape(-1) if model.uses_radii else None
            out = model.render_ray_batch(origins.reshape(-1, 3), directions.reshape(-1, 3), radii)
        finally:
            model.train(was_training)
        return {
            "rgb": out["rgb"].reshape(b, h, w, 3),
            "depth": out["depth"].reshape(b, h, w),
            "opacity": out["opacity"].reshape(b, h, w),
        }

    def mesh_density(self, points: Tensor) -> Tensor:
        """The density meshed by ``to_mesh``: :meth:`density`, with the empty cells of the
        occupancy grid (if any) zeroed."""
        sigma = self.density(points)
        grid = self.occupancy
        if grid is None:
            return sigma
        return sigma * grid.query(points).float()

    def to_mesh(self, shape: Any, resolution: int = 128) -> trimesh.Trimesh:
        """Marching cubes of the density at ``density_threshold`` over the scene box (through
        :func:`zoo.ops.marching_cubes.evaluate_grid` / ``marching_cubes``; empty mesh when the
        level is never crossed)."""
        model = self if shape is None else shape
        was_training = model.training
        model.eval()
        try:
            grid = evaluate_grid(
                model.mesh_density,
                resolution,
                model.bbox_min,
                model.bbox_max,
                chunk=65536,
                device=model.device_,
            )
        finally:
            model.train(was_training)
        return marching_cubes(
            grid,
            level=model.density_threshold,
            bbox_min=model.bbox_min,
            bbox_max=model.bbox_max,
            inside="above",
        )

    def fresh_copy(self) -> RadianceFieldModel:
        """An untrained model with the same architecture and scene settings."""
        # Do not drag the Lightning trainer (and its loaders) into the copy.
        trainer = getattr(self, "_trainer", None)
        memo = {id(trainer): None} if trainer is not None else {}
        new = copy.deepcopy(self, memo)
        for module in new.modules():
            if module is not new and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        new.reset_scene_state()
        return new

    def reset_scene_state(self) -> None:
        """Hook for subclasses: forget scene-specific state (resets the occupancy grid, if any)."""
        if self.occupancy is not None:
            self.occupancy.reset()

    def reconstruct(self, target: ShapeTarget) -> Any:
        """The fitted scene for ``target``.

        A per-scene model cannot encode a new scene without optimisation, so: when ``target``
        is the scene this model was trained on (same name as the data's ``scene``) the model
        itself is returned; otherwise a fresh copy (same architecture, re-initialised weights)
        is fitted to ``target.views`` / ``target.cameras`` for ``reconstruct_steps`` steps of
        ``reconstruct_rays`` random rays with this model's optimiser settings, and returned.
        """
        if target.name == self.data_info.get("scene") or self.reconstruct_steps == 0:
            return self
        target.require("views", "cameras", model=self.name)
        model = self.fresh_copy()
        model.fit_views(target.cameras, target.views, self.reconstruct_steps, self.reconstruct_rays)
        model.eval()
        return model

    def fit_views(
        self, cameras: Cameras, images: Tensor, steps: int, rays_per_batch: int, seed: int = 0
    ) -> list[float]:
        """Plain optimisation loop (outside Lightning) on random rays of ``images`` (B, H, W,
        3) seen by ``cameras``. Returns the training PSNR of each step."""
        b, h, w = images.shape[:3]
        if images.shape[-1] != 3 or len(cameras) != b:
            raise ValueError(
                f"images must be (B, H, W, 3) for {len(cameras)} cameras, got {tuple(images.shape)}"
            )
        dev = self.device_
        cameras, images = cameras.to(dev), images.to(dev)
        opt_cfg = self.configure_optimizers()
        opt = opt_cfg["optimizer"] if isinstance(opt_cfg, dict) else opt_cfg
        sched = opt_cfg["lr_scheduler"]["scheduler"] if isinstance(opt_cfg, dict) else None
        gen = torch.Generator(device="cpu").manual_seed(seed)
        self.train()
        history = []
        for step in range(steps):
            idx = torch.randint(0, b * h * w, (rays_per_batch,), generator=gen).to(dev)
            cam, rem = idx // (h * w), idx % (h * w)
            o, d = rays_for_pixels(cameras, cam, rem % w, rem // w)
            batch = {"origins": o, "directions": d, "rgb": images[cam, rem // w, rem % w]}
            batch["radii"] = pixel_radii(cameras, cam)
            loss, psnr = self.train_on_batch(batch, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            history.append(float(psnr) if math.isfinite(float(psnr)) else float("nan"))
        return history


__all__ = ["RadianceFieldModel", "exponential_decay"]
