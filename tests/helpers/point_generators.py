"""Shared scaffolding of the latent point generators' learning tests (pointflow,
point_diffusion): a dataset of fixed clouds, a short CPU trainer, and the distance of samples to
the training clouds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from zoo.metrics import chamfer_distance
from zoo.models.point_generator import PointGenerator


class Clouds(Dataset):
    """Fixed clouds (S, N, 3); each item a random ``n`` of one cloud's points."""

    def __init__(self, clouds: torch.Tensor, n: int) -> None:
        self.clouds, self.n = clouds, n

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, i: int) -> dict:
        return {"points": self.clouds[i, torch.randperm(self.clouds.shape[1])[: self.n]], "idx": i}


def short_trainer(tmp_path: Path, steps: int, val_every: int) -> pl.Trainer:
    """A quiet CPU trainer for ``steps`` steps validating one batch every ``val_every``."""
    return pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        default_root_dir=tmp_path,
    )


def sample_distance(model: PointGenerator, clouds: torch.Tensor, n_samples: int = 8) -> float:
    """Mean over ``n_samples`` generated clouds of the Chamfer distance to the nearest training
    cloud."""
    model.eval()
    dists = []
    for shape in model.sample(n_samples, seed=1):
        pts = model.to_points(shape, 256, seed=2)
        dists.append(min(float(chamfer_distance(pts, c)) for c in clouds))
    return float(np.mean(dists))
