"""A minimal real model used only by the CLI tests: one learnable point set fitted by Chamfer.

It is the smallest honest Representation: training measurably moves its points onto the
training shapes (the test asserts that the loss falls), and every interface method works, so the
train / eval / sample / checkpoint plumbing can be tested in seconds. ``nan_at_step`` makes
the loss NaN from that training step on (to test the CLI's non-finite-loss guard).
"""

from __future__ import annotations

from typing import Any

import torch
import trimesh
from torch import Tensor, nn

from zoo.metrics import chamfer_distance
from zoo.models.base import ZooModel
from zoo.models.registry import register_model
from zoo.representation import ShapeTarget


@register_model("tiny_points")
class TinyPointSet(ZooModel):
    kind = "points"
    data_form = "points"
    generative = True

    def __init__(self, n_points: int = 256, nan_at_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nan_at_step = nan_at_step
        g = torch.Generator().manual_seed(0)
        self.cloud = nn.Parameter(0.05 * torch.randn(n_points, 3, generator=g))  # (K, 3)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        pts = batch["points"]  # (B, N, 3)
        loss = chamfer_distance(self.cloud.expand(len(pts), -1, -1), pts).mean()
        if self.nan_at_step is not None and self.global_step >= self.nan_at_step:
            loss = loss * float("nan")  # poisons the gradients (and so the weights) too
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        pts = batch["points"]
        self.log("val/chamfer", chamfer_distance(self.cloud.expand(len(pts), -1, -1), pts).mean())

    def sample(self, n: int, seed: int | None = None) -> list[Tensor]:
        return [self.cloud.detach()] * n

    def reconstruct(self, target: ShapeTarget) -> Tensor:
        return self.cloud.detach()

    def to_mesh(self, shape: Tensor, resolution: int = 128) -> trimesh.Trimesh:
        return trimesh.convex.convex_hull(shape.cpu().numpy())

    def to_points(self, shape: Tensor, n: int = 2048, seed: int | None = 0) -> Tensor:
        g = torch.Generator().manual_seed(seed or 0)
        return shape[torch.randint(len(shape), (n,), generator=g)]
