"""PointFlow's JSD: a naive transcription (loops, brute-force nearest centre) and known answers."""

from __future__ import annotations

import math

import pytest
import torch
from _metrics_helpers import random_cubes, random_ellipsoids

from zoo.metrics import jsd
from zoo.metrics.jsd import jensen_shannon_divergence, unit_cube_grid


def jsd_naive(samples: torch.Tensor, refs: torch.Tensor, resolution: int) -> float:
    """The reference code's steps one at a time: the triple loop over grid cells, the sphere
    clip, brute-force nearest centre per point, counts, base-2 entropies."""
    spacing = 1.0 / (resolution - 1)
    centres = []
    for i in range(resolution):
        for j in range(resolution):
            for k in range(resolution):
                c = (i * spacing - 0.5, j * spacing - 0.5, k * spacing - 0.5)
                if math.sqrt(sum(v * v for v in c)) <= 0.5:
                    centres.append(c)
    grid = torch.tensor(centres, dtype=torch.float64)

    def counts(clouds: torch.Tensor) -> list[float]:
        out = [0.0] * len(grid)
        for cloud in clouds.double():
            for idx in torch.cdist(cloud, grid).argmin(dim=1).tolist():
                out[idx] += 1
        return out

    def entropy(p: list[float]) -> float:
        return -sum(v * math.log2(v) for v in p if v > 0)

    p, q = counts(samples), counts(refs)
    p = [v / sum(p) for v in p]
    q = [v / sum(q) for v in q]
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    return entropy(m) - (entropy(p) + entropy(q)) / 2


def test_grid_matches_the_reference_layout() -> None:
    grid = unit_cube_grid(28, in_unit_sphere=False)
    assert grid.shape == (28**3, 3)
    assert grid[0].tolist() == [-0.5, -0.5, -0.5] and grid[-1].tolist() == [0.5, 0.5, 0.5]
    assert grid[1].tolist() == pytest.approx([-0.5, -0.5, -0.5 + 1 / 27])
    sphere = unit_cube_grid(28)
    assert len(sphere) < 28**3 and (torch.from_numpy(sphere).norm(dim=1) <= 0.5).all()


def test_agrees_with_the_naive_transcription() -> None:
    g = torch.Generator().manual_seed(0)
    s = random_ellipsoids(3, 200, g)
    r = random_cubes(4, 150, g) * 1.4  # some points outside the sphere: nearest kept centre
    assert jsd(s, r, resolution=12) == pytest.approx(jsd_naive(s, r, 12), rel=1e-9, abs=1e-12)


def test_known_answers() -> None:
    g = torch.Generator().manual_seed(1)
    refs = random_ellipsoids(5, 300, g)
    assert jsd(refs.clone(), refs) == pytest.approx(0.0, abs=1e-12)
    # Same points, other cloud split: the counts are pooled over the set, so still 0.
    assert jsd(refs.reshape(15, 100, 3), refs) == pytest.approx(0.0, abs=1e-12)
    # Disjoint supports: 1 bit (= log 2 nats).
    left = torch.rand(4, 100, 3, generator=g) * 0.1 + torch.tensor([-0.3, 0.0, 0.0])
    right = torch.rand(4, 100, 3, generator=g) * 0.1 + torch.tensor([0.2, 0.0, 0.0])
    assert jsd(left, right) == pytest.approx(1.0, abs=1e-12)
    # P = (1/2, 1/2), Q = (1, 0): H(3/4, 1/4) - (1 + 0) / 2.
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    p, q = torch.tensor([2.0, 2.0, 0.0]), torch.tensor([4.0, 0.0, 0.0])
    assert jensen_shannon_divergence(p, q) == pytest.approx(h - 0.5, rel=1e-12)


def test_validation() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon_divergence(torch.tensor([1.0, -1.0]), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"clouds must be a \(K, N, 3\)"):
        jsd(torch.zeros(10, 3), torch.zeros(2, 10, 3))
