"""Shared scaffolding of the latent point generators' learning tests (pointflow,
point_diffusion): a dataset of fixed clouds, a short CPU trainer, and the distance of samples to
the training clouds."""

from __future__ import annotations

import numpy as np
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


def sample_distance(model: PointGenerator, clouds: torch.Tensor, n_samples: int = 8) -> float:
    """Mean over ``n_samples`` generated clouds of the Chamfer distance to the nearest training
    cloud."""
    model.eval()
    dists = []
    for shape in model.sample(n_samples, seed=1):
        pts = model.to_points(shape, 256, seed=2)
        dists.append(min(float(chamfer_distance(pts, c)) for c in clouds))
    return float(np.mean(dists))
