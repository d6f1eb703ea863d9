"""The voxel 3D-GAN as a zoo model (``model=voxel_gan``).

Wu et al., "Learning a Probabilistic Latent Space of Object Shapes via 3D Generative-Adversarial
Modeling", NeurIPS 2016. The authors' release (zck119/3dgan-release) has pretrained generators
but no training code; this is a reimplementation from the paper:

- networks: :mod:`zoo.models.voxel_gan.networks` (paper widths at 64^3; smaller on CPU);
- latent prior: 200-d, i.i.d. U[0, 1] as in the release's sampling mode (``torch.rand``,
  ``latent_dist="uniform"``, the paper preset) or N(0, I) (the default: in our short CPU runs the
  uniform prior, whose mean is shared by all codes, collapsed to near-identical samples far more
  often);
- ``loss="gan"``: paper objective and, with ``d_acc_threshold=0.8``, its adaptive D update (D
  steps only while its accuracy on the current batch is <= 0.8); paper optimisers Adam(beta1
  0.5), lr 2.5e-3 (G) and 1e-5 (D), batch 100 (``conf/experiment/voxel_gan_paper.yaml``). The
  CPU default (lr 2e-3 / 2e-4) updates D on every batch: with the 0.8 rule at those rates D was
  frozen almost from the start and G collapsed onto one noisy shape (chair, 2000 steps: 1-NNA
  1.0, COV 0.06 with the rule; 0.78 and 0.44 without);
- ``loss="wgan_gp"``: Gulrajani et al. 2017, Algorithm 1 (one critic step per batch, one
  generator step every ``n_critic`` batches, penalty weight ``gp_weight``), with a layer-normed
  critic (no batch norm under a per-sample gradient penalty).

Training uses Lightning manual optimisation with two optimisers, so ``trainer.max_steps`` counts
optimiser steps of *both* networks (G and D steps each count one).

Shapes are occupancy grids (R, R, R) in [0, 1] whose voxel [i, j, k] is the cell of the
``[-0.5, 0.5]^3`` box used by :func:`zoo.ops.voxelize.voxelize` (i along x); meshes come from
:func:`zoo.ops.voxelize.voxels_to_mesh` (marching cubes at 0.5 on the cell centres).
``reconstruct`` is a latent search: Adam on z against the target's voxels (BCE), several random
restarts, keeping the best (3D-GAN itself has no encoder except in its 3D-VAE-GAN variant).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
import trimesh
from torch import Tensor

from zoo.export import export_mesh
from zoo.metrics import voxel_iou
from zoo.models.base import ZooModel
from zoo.models.registry import register_model
from zoo.models.voxel_gan import losses
from zoo.models.voxel_gan.latent import latent_search, lerp_latents, resize_voxels
from zoo.models.voxel_gan.networks import VoxelDiscriminator, VoxelGenerator
from zoo.nn.conv3d import NORMS
from zoo.ops.random import randn
from zoo.ops.surface import sample_surface
from zoo.ops.voxelize import voxel_centers, voxelize, voxels_to_mesh
from zoo.representation import ShapeTarget

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]


@register_model("voxel_gan")
class VoxelGAN(ZooModel):
    """3D-GAN: a generator of occupancy grids trained adversarially."""

    kind = "voxel"
    data_form = "voxels"
    generative = True
    # G and D steps each leave the other network without gradient (see zoo.train).
    ddp_find_unused_parameters = True
    interpolates = True

    def __init__(
        self,
        resolution: int = 32,
        z_dim: int = 200,
        g_channels: int = 16,
        d_channels: int = 16,
        loss: Literal["gan", "wgan_gp"] = "gan",
        g_norm: str = "batch",
        d_norm: str = "auto",
        latent_dist: Literal["uniform", "normal"] = "normal",
        d_acc_threshold: float | None = None,
        gp_weight: float = 10.0,
        n_critic: int = 5,
        recon_steps: int = 200,
        recon_restarts: int = 4,
        recon_lr: float = 0.1,
        recon_dtype: str = "float64",
        optimizer: OptimizerFactory | None = None,
        optimizer_d: OptimizerFactory | None = None,
        scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        if scheduler is not None:
            raise ValueError("voxel_gan: scheduler is not supported (manual optimisation)")
        super().__init__(optimizer=optimizer, scheduler=None, **kwargs)
        if loss not in ("gan", "wgan_gp"):
            raise ValueError(f"loss must be 'gan' or 'wgan_gp', got {loss!r}")
        if latent_dist not in ("uniform", "normal"):
            raise ValueError(f"latent_dist must be 'uniform' or 'normal', got {latent_dist!r}")
        if d_norm == "auto":
            d_norm = "batch" if loss == "gan" else "layer"
        if loss == "wgan_gp" and d_norm == "batch":
            raise ValueError("wgan_gp needs a critic without batch norm: use d_norm=layer|none")
        for name, value in (("g_norm", g_norm), ("d_norm", d_norm)):
            if value not in NORMS:
                raise ValueError(f"{name} must be one of {NORMS} or 'auto', got {value!r}")
        if n_critic < 1 or recon_steps < 0 or recon_restarts < 1:
            raise ValueError(
                f"need n_critic >= 1, recon_steps >= 0, recon_restarts >= 1; got {n_critic}, "
                f"{recon_steps}, {recon_restarts}"
            )
        self.automatic_optimization = False
        self.resolution = int(resolution)
        self.z_dim = int(z_dim)
        self.loss_type = loss
        self.latent_dist = latent_dist
        self.d_acc_threshold = d_acc_threshold
        self.gp_weight = float(gp_weight)
        self.n_critic = int(n_critic)
        self.recon_steps = int(recon_steps)
        self.recon_restarts = int(recon_restarts)
        self.recon_lr = float(recon_lr)
        if recon_dtype not in ("float32", "float64"):
            raise ValueError(f"recon_dtype must be 'float32' or 'float64', got {recon_dtype!r}")
        self.recon_dtype = getattr(torch, recon_dtype)
        self._optimizer_d_factory = optimizer_d or self._optimizer_factory
        self.generator = VoxelGenerator(z_dim, resolution, g_channels, g_norm)
        self.discriminator = VoxelDiscriminator(resolution, d_channels, d_norm)
        # Training batches seen (persistent, so n_critic scheduling survives a resume).
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        self.voxel_bbox: tuple[list[float], list[float]] = ([-0.5] * 3, [0.5] * 3)

    # ---------------------------------------------------------------- data and optimisers
    def configure_from_data(self, info: dict[str, Any]) -> None:
        super().configure_from_data(info)
        r = info.get("voxel_resolution", info.get("resolution"))
        if r is not None and int(r) != self.resolution:
            raise ValueError(
                f"voxel_gan: data voxel resolution {r} != model.resolution {self.resolution}; "
                "set model.resolution to the data's grid size"
            )
        if "voxel_bbox_min" in info and "voxel_bbox_max" in info:
            self.voxel_bbox = (list(info["voxel_bbox_min"]), list(info["voxel_bbox_max"]))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        opt_g = self._optimizer_factory(self.generator.parameters())
        opt_d = self._optimizer_d_factory(self.discriminator.parameters())
        return [opt_g, opt_d]

    def sample_latents(self, n: int, seed: int | None = None) -> Tensor:
        """(n, z_dim) latent codes from the prior, on the model's device."""
        gen = torch.Generator()  # drawn on the CPU: the same codes on every machine
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        if self.latent_dist == "uniform":
            return torch.rand(n, self.z_dim, generator=gen).to(self.device_)
        return randn(n, self.z_dim, generator=gen, device=self.device_)

    def _draw_z(self, n: int) -> Tensor:
        """Training latents from the global RNG (seeded by ``seed_everything``)."""
        draw = torch.rand if self.latent_dist == "uniform" else torch.randn
        return draw(n, self.z_dim, device=self.device_)

    def _real_voxels(self, batch: dict[str, Tensor]) -> Tensor:
        vox = batch["voxels"]
        r = self.resolution
        if vox.ndim != 5 or tuple(vox.shape[1:]) != (1, r, r, r):
            raise ValueError(
                f"voxel_gan: batch['voxels'] must have shape (B, 1, {r}, {r}, {r}), "
                f"got {tuple(vox.shape)}"
            )
        return vox.float()

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> dict[str, Tensor]:
        real = self._real_voxels(batch)  # (B, 1, R, R, R)
        if stage == "train":
            step = self._gan_step if self.loss_type == "gan" else self._wgan_gp_step
            logs = step(real)
            self.batches_seen += 1
        else:
            logs = self._validation_logs(real)
        bs = len(real)
        for key, value in logs.items():
            self.log(f"{stage}/{key}", value, prog_bar=key == "loss", batch_size=bs)
        return logs

    def _gan_step(self, real: Tensor) -> dict[str, Tensor]:
        """One 3D-GAN step: D (only while its accuracy <= threshold), then G."""
        opt_g, opt_d = self.optimizers()
        fake = self.generator(self._draw_z(len(real)))  # (B, 1, R, R, R)
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake.detach())
        loss_d = losses.gan_d_loss(real_logits, fake_logits)
        acc = losses.discriminator_accuracy(real_logits.detach(), fake_logits.detach())
        update_d = self.d_acc_threshold is None or float(acc) <= self.d_acc_threshold
        if update_d:
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            opt_d.step()
        self.discriminator.requires_grad_(False)  # G step: no gradient into D's weights
        loss_g = losses.gan_g_loss(self.discriminator(fake))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        self.discriminator.requires_grad_(True)
        return {
            "loss": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_acc": acc,
            "d_updated": torch.tensor(float(update_d), device=real.device),
        }

    def _wgan_gp_step(self, real: Tensor) -> dict[str, Tensor]:
        """One critic step per batch, one generator step every ``n_critic`` batches."""
        opt_g, opt_d = self.optimizers()
        with torch.no_grad():
            fake = self.generator(self._draw_z(len(real)))
        real_s = self.discriminator(real)
        fake_s = self.discriminator(fake)
        gp = losses.gradient_penalty(self.discriminator, real, fake)
        loss_d = losses.wgan_d_loss(real_s, fake_s) + self.gp_weight * gp
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        logs = {"loss": loss_d.detach(), "wasserstein": (real_s - fake_s).mean().detach(), "gp": gp}
        if int(self.batches_seen) % self.n_critic == self.n_critic - 1:
            self.discriminator.requires_grad_(False)
            loss_g = losses.wgan_g_loss(self.discriminator(self.generator(self._draw_z(len(real)))))
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            opt_g.step()
            self.discriminator.requires_grad_(True)
            logs["loss_g"] = loss_g.detach()
        return {k: v.detach() for k, v in logs.items()}

    @torch.no_grad()
    def _validation_logs(self, real: Tensor) -> dict[str, Tensor]:
        """Voxel-space sample quality on a held-out batch (no gradient):
        ``mmd_iou`` = mean over real grids of (1 - best IoU with a sample), lower is better
        (the MMD of Achlioptas et al. 2018 with 1 - IoU as the distance), and ``occupancy_ratio``
        = occupied fraction of samples / of real grids (1 is right)."""
        fake = self.generator(self.sample_latents(len(real), seed=0))[:, 0] >= 0.5  # (B, R, R, R)
        real_b = real[:, 0] >= 0.5
        # iou[i, j] = IoU(real_i, fake_j), one batched call per real grid.
        iou = torch.stack([voxel_iou(r.expand_as(fake), fake) for r in real_b])  # (B, B)
        occ = fake.float().mean() / real_b.float().mean().clamp_min(1e-8)
        return {"mmd_iou": (1 - iou.max(dim=1).values).mean(), "occupancy_ratio": occ}

    # ---------------------------------------------------------------- Representation
    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Occupancy probabilities (B, R, R, R) of latent codes (B, z_dim), eval mode."""
        was_training = self.generator.training
        self.generator.eval()
        out = self.generator(z.to(self.device_))[:, 0]
        self.generator.train(was_training)
        return out

    def sample(self, n: int, seed: int | None = None) -> list[Tensor]:
        """n occupancy grids (R, R, R) float in [0, 1] (CPU) from latents of the prior."""
        grids = self.generate(self.sample_latents(n, seed)).cpu()
        return list(grids)

    def reconstruct(
        self, target: ShapeTarget, steps: int | None = None, restarts: int | None = None
    ) -> Tensor:
        """Latent search: the grid G(z*) with z* = argmin_z BCE(G(z), target.voxels).

        ``restarts`` codes from the prior (seeded, so deterministic) are optimised together with
        Adam (lr ``recon_lr``) for ``steps`` iterations, the generator frozen in eval mode;
        uniform-prior codes are projected back to [0, 1]^d after each step. Targets at another
        resolution are resampled to the model's grid. Returns (R, R, R) float on the CPU.

        The search runs in ``recon_dtype`` (float64 by default): in float32, Adam amplified the
        round-off of different CPU kernel paths into a different optimum (occupied voxels of one
        chair 609 vs 594 under ``ATEN_CPU_CAPABILITY=default`` vs ``avx512``); in float64 the
        two trajectories stay within 2e-14 after 200 steps, at about 1.5x the cost.
        """
        target.require("voxels", model=self.name)
        steps = self.recon_steps if steps is None else int(steps)
        restarts = self.recon_restarts if restarts is None else int(restarts)
        goal = resize_voxels(target.voxels.to(self.device_), self.resolution)  # (R, R, R)
        z0 = self.sample_latents(restarts, seed=0)  # (K, z_dim)
        unit_box = self.latent_dist == "uniform"
        grid, _, _ = latent_search(
            self.generator, goal, z0, steps, self.recon_lr, unit_box, dtype=self.recon_dtype
        )
        return grid.float().cpu()

    def to_mesh(self, shape: Tensor, resolution: int = 128) -> trimesh.Trimesh:
        """Marching cubes (level 0.5) of the occupancy on the voxel-centre grid of the voxel box
        (the data's ``voxel_bbox_*``, default [-0.5, 0.5]^3); ``resolution`` is ignored (the
        grid is native). May be empty (0 faces) when nothing exceeds 0.5."""
        return voxels_to_mesh(self._check_shape(shape), *self.voxel_bbox)

    def to_points(self, shape: Tensor, n: int = 2048, seed: int | None = 0) -> Tensor:
        """(n, 3) area-uniform samples of the mesh's surface; when the grid has no surface
        (nothing above 0.5), the centres of the most probable voxels instead."""
        grid = self._check_shape(shape).float().cpu()
        mesh = self.to_mesh(grid)
        if len(mesh.faces) > 0:
            return sample_surface(mesh, n, seed=seed)[0]
        centres = voxel_centers(grid.shape[0], *self.voxel_bbox)  # (R^3, 3)
        probs = grid.reshape(-1)
        k = max(1, int((probs > 0.5).sum()))
        top = probs.topk(k).indices
        g = torch.Generator().manual_seed(0 if seed is None else int(seed))
        return centres[top[torch.randint(k, (n,), generator=g)]]

    def ceiling(
        self, target: ShapeTarget, n: int, resolution: int
    ) -> tuple[trimesh.Trimesh, Tensor]:
        """The ground truth at this model's grid: the target's voxels (resampled to
        ``self.resolution`` when the data's grid differs) or its mesh voxelised in the voxel box,
        meshed and sampled exactly as a generated grid is (``resolution`` is unused)."""
        if target.voxels is not None:
            grid = resize_voxels(target.voxels.float(), self.resolution).cpu()
        else:
            target.require("mesh", model=self.name)
            grid = voxelize(target.mesh, self.resolution, *self.voxel_bbox).float()
        return self.to_mesh(grid), self.to_points(grid, n)

    def _check_shape(self, shape: Tensor) -> Tensor:
        if not isinstance(shape, Tensor) or shape.ndim != 3:
            got = tuple(shape.shape) if isinstance(shape, Tensor) else type(shape).__name__
            raise ValueError(f"voxel_gan: shape must be an (R, R, R) tensor, got {got}")
        return shape

    # ---------------------------------------------------------------- interpolation
    def interpolate(self, z_a: Tensor, z_b: Tensor, steps: int = 8) -> list[Tensor]:
        """Grids (R, R, R) of G((1 - t) z_a + t z_b) for ``steps`` t evenly in [0, 1]
        (3D-GAN Sec. 4.4 / Fig. 6: linear latent interpolation)."""
        for name, z in (("z_a", z_a), ("z_b", z_b)):
            if z.numel() != self.z_dim:
                raise ValueError(f"{name} must have {self.z_dim} values, got {z.numel()}")
        return list(self.generate(lerp_latents(z_a.to(self.device_), z_b, steps)).cpu())

    def export_interpolation(
        self,
        out_dir: str | Path,
        z_a: Tensor | None = None,
        z_b: Tensor | None = None,
        steps: int = 8,
        seed: int = 0,
        fmt: str = "obj",
    ) -> list[Path]:
        """Write the interpolation as meshes ``interp_000.<fmt>`` ... in ``out_dir``.

        Missing end points are drawn from the prior with ``seed``. Frames with an empty surface
        are skipped with a warning. Returns the written paths.
        """
        if z_a is None or z_b is None:
            za, zb = self.sample_latents(2, seed)
            z_a = za if z_a is None else z_a
            z_b = zb if z_b is None else z_b
        out = Path(out_dir)
        written = []
        for i, grid in enumerate(self.interpolate(z_a, z_b, steps)):
            mesh = self.to_mesh(grid)
            if len(mesh.faces) == 0:
                log.warning("voxel_gan: interpolation frame %d has no surface; skipped", i)
                continue
            written.append(export_mesh(mesh, out / f"interp_{i:03d}.{fmt}"))
        return written


__all__ = ["VoxelGAN"]
