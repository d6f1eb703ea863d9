"""The common part of the latent point-cloud generators (PointFlow, point diffusion).

Both model a shape as a distribution of points given a shape latent ``z``, encoded by a
PointNet VAE encoder and decoded by drawing points. What they share lives here:

- PointFlow's ShapeNet-15k normalisation (Yang et al. 2019): points are standardised with one
  per-axis mean and one scalar std of all training coordinates (``reshape(-1).std()``); the
  statistics live in buffers (so in the checkpoint), taken from ``info["points_mean"]`` /
  ``info["points_std"]`` when the datamodule provides them, else computed by one pass over the
  training loader when training starts (summed over DDP ranks). Outputs are in data units;
- ``reconstruct``: the posterior mean of a fixed subset of the target's points;
- ``to_mesh``: the screened Poisson surface of decoded points; ``ceiling``: true surface points;
- a training step that encodes a trailing batch of one shape with batch norm's running
  statistics (training-mode batch norm is undefined for one shape).

A subclass sets ``self.encoder`` (a :class:`zoo.nn.pointnet.PointNetEncoder` with ``vae=True``),
implements ``_shared_step(batch, stage)``, ``sample`` and ``to_points``, and wraps a latent as
its native shape through ``make_shape``.
"""

from __future__ import annotations

import abc
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import trimesh
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from zoo.models.base import ZooModel
from zoo.nn.pointnet import PointNetEncoder
from zoo.ops.poisson import poisson_reconstruct
from zoo.ops.surface import sample_surface
from zoo.representation import ShapeTarget

log = logging.getLogger(__name__)


@dataclass
class LatentShape:
    """A native shape of a latent point model: its latent code (zdim,); points are drawn by
    ``to_points``."""

    z: Tensor


class PointGenerator(ZooModel):
    """Base class of latent point-cloud generators (see the module docstring).

    Args:
        input_points: points of a target cloud fed to the encoder by ``reconstruct``.
        mesh_points: points decoded for the Poisson mesh of ``to_mesh``.
        mesh_density_quantile: fraction of the lowest-density Poisson vertices removed.
        stats_max_batches: training batches read to compute the normalisation when the data
            info does not provide it.
    """

    kind = "points"
    data_form = "points"
    generative = True
    encoder: PointNetEncoder

    def __init__(
        self,
        input_points: int = 2048,
        mesh_points: int = 8192,
        mesh_density_quantile: float = 0.1,
        stats_max_batches: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_points, self.mesh_points = input_points, mesh_points
        self.mesh_density_quantile = mesh_density_quantile
        self.stats_max_batches = stats_max_batches
        self.register_buffer("points_mean", torch.zeros(3))  # (3,) per-axis mean
        self.register_buffer("points_std", torch.ones(()))  # one scalar std
        self.register_buffer("stats_ready", torch.zeros((), dtype=torch.bool))

    # ----------------------------------------------------------------- to implement
    @abc.abstractmethod
    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        """The loss of a batch ``{"points": (B, N, 3)}`` in data units, logged under ``stage``."""

    # ----------------------------------------------------------------- normalisation
    def configure_from_data(self, info: dict[str, Any]) -> None:
        super().configure_from_data(info)
        if info.get("points_mean") is not None and info.get("points_std") is not None:
            self.set_normalization(torch.as_tensor(info["points_mean"]), info["points_std"])

    def set_normalization(self, mean: Tensor, std: float | Tensor) -> None:
        """Use ``(x - mean) / std`` with ``mean`` (3,) and a scalar ``std > 0``."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(())
        if mean.shape != (3,) or not float(std) > 0:
            raise ValueError(f"need mean (3,) and std > 0, got {tuple(mean.shape)}, {float(std)}")
        self.points_mean.copy_(mean)
        self.points_std.copy_(std)
        self.stats_ready.fill_(True)

    @torch.no_grad()
    def fit_normalization(self, batches: Iterable[dict[str, Tensor]]) -> None:
        """PointFlow's global statistics from training batches: per-axis mean of all points and
        the std of all coordinates pooled (ddof 0), accumulated in float64, summed over ranks."""
        acc = torch.zeros(5, dtype=torch.float64)  # count, sum x, sum y, sum z, sum of squares
        for i, batch in enumerate(batches):
            if i >= self.stats_max_batches:
                break
            pts = batch["points"].detach().to("cpu", torch.float64).reshape(-1, 3)  # (B*N, 3)
            acc += torch.cat([acc.new_tensor([len(pts)]), pts.sum(0), (pts * pts).sum()[None]])
        if self._trainer is not None:  # sum over DDP ranks
            acc = self.trainer.strategy.reduce(acc.to(self.device), reduce_op="sum").cpu()
        if acc[0] == 0:
            raise ValueError("fit_normalization: the training loader gave no points")
        mean = acc[1:4] / acc[0]
        n_coords = 3 * acc[0]
        var = acc[4] / n_coords - (acc[1:4].sum() / n_coords) ** 2
        self.set_normalization(mean, var.clamp_min(1e-12).sqrt())

    def on_train_start(self) -> None:
        if bool(self.stats_ready):
            return
        dm = self.trainer.datamodule
        loader = dm.train_dataloader() if dm is not None else self.trainer.train_dataloader
        self.fit_normalization(loader)
        log.info(
            "%s: data mean %s, std %.5f", self.name, self.points_mean.tolist(), self.points_std
        )

    def normalize(self, points: Tensor) -> Tensor:
        return (points - self.points_mean) / self.points_std

    def denormalize(self, points: Tensor) -> Tensor:
        return points * self.points_std + self.points_mean

    # ----------------------------------------------------------------- Lightning
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if len(batch["points"]) >= 2:
            return self._shared_step(batch, "train")
        # Training-mode batch norm is undefined for one shape (a trailing batch of one, e.g. a
        # DDP rank's share): encode it with the running statistics instead. Skipping the step
        # (returning None) is not possible under DDP, where every rank must join the backward.
        modes = [(m, m.training) for m in self.encoder.modules() if isinstance(m, _BatchNorm)]
        for m, _ in modes:
            m.eval()
        try:
            return self._shared_step(batch, "train")
        finally:
            for m, mode in modes:
                m.train(mode)

    # ----------------------------------------------------------------- Representation
    def _generator(self, seed: int | None) -> torch.Generator | None:
        return None if seed is None else torch.Generator().manual_seed(int(seed))

    @torch.no_grad()
    def reconstruct(self, target: ShapeTarget) -> LatentShape:
        """Encode ``target.points`` (a fixed subset of ``input_points``) to the posterior mean."""
        target.require("points", model=self.name)
        pts = target.points.float()
        if pts.dim() != 2 or pts.shape[1] != 3:
            raise ValueError(f"target {target.name!r}: points must be (N, 3), got {pts.shape}")
        if len(pts) > self.input_points:
            g = torch.Generator().manual_seed(0)
            pts = pts[torch.randperm(len(pts), generator=g)[: self.input_points]]
        was_training = self.encoder.training
        self.encoder.eval()  # batch norm with running statistics: one shape is a batch of 1
        mean, _ = self.encoder(self.normalize(pts.to(self.device_))[None])
        self.encoder.train(was_training)
        return self.make_shape(mean[0])

    def make_shape(self, z: Tensor) -> Any:
        """The native shape of latent ``z`` (zdim,)."""
        return LatentShape(z)

    def _poisson_depth(self, resolution: int) -> int:
        return min(10, max(5, round(math.log2(max(resolution, 2)))))

    def ceiling(
        self, target: ShapeTarget, n: int, resolution: int
    ) -> tuple[trimesh.Trimesh, Tensor] | None:
        """Perfect points: an independent sample of the true surface (seed 1; the evaluator's
        ground truth uses seed 0), so the ceiling is the sampling noise of the metrics; its mesh
        is the Poisson surface of ``mesh_points`` true points, as ``to_mesh`` meshes. None for
        a target without a mesh (point-cloud data): no second sample of its surface exists."""
        if target.mesh is None:
            return None
        points = sample_surface(target.mesh, n, seed=1)[0]
        dense = sample_surface(target.mesh, self.mesh_points, seed=2)[0]
        mesh = poisson_reconstruct(
            dense,
            depth=self._poisson_depth(resolution),
            density_quantile=self.mesh_density_quantile,
        )
        return mesh, points

    def to_mesh(self, shape: Any, resolution: int = 128) -> trimesh.Trimesh:
        """Screened Poisson surface of ``mesh_points`` decoded points; octree depth
        ``log2(resolution)`` (clamped to [5, 10]) so the grid matches ``resolution``."""
        points = self.to_points(shape, self.mesh_points).cpu()
        return poisson_reconstruct(
            points,
            depth=self._poisson_depth(resolution),
            density_quantile=self.mesh_density_quantile,
        )
