"""Known-answer tests of the ray sampling ops (zoo.ops.sampling)."""

from __future__ import annotations

import pytest
import torch

from zoo.ops.sampling import (
    importance_samples,
    ray_box_intersect,
    stratified_samples,
    uniform_march,
)


def test_stratified_samples_lie_in_their_bins():
    g = torch.Generator().manual_seed(0)
    near, far = torch.tensor([2.0, 1.0, 0.5]), torch.tensor([6.0, 3.0, 0.75])
    t = stratified_samples(near, far, 16, perturb=True, generator=g)  # (3, 16)
    assert t.shape == (3, 16)
    width = (far - near) / 16
    lower = near[:, None] + torch.arange(16) * width[:, None]
    assert torch.all(t >= lower - 1e-6) and torch.all(t <= lower + width[:, None] + 1e-6)
    # Not all at the same place in their bins (they are random).
    frac = (t - lower) / width[:, None]
    assert frac.std() > 0.1


def test_stratified_samples_deterministic_are_bin_centres():
    t = stratified_samples(2.0, 6.0, 4, n_rays=2, perturb=False)
    assert torch.allclose(t, torch.tensor([[2.5, 3.5, 4.5, 5.5]] * 2))


def test_stratified_samples_validate():
    with pytest.raises(ValueError, match="n_rays"):
        stratified_samples(2.0, 6.0, 4)
    with pytest.raises(ValueError, match="far"):
        stratified_samples(torch.zeros(3), torch.ones(2), 4)


def test_importance_samples_concentrate_on_a_delta_pdf():
    # 32 bins on [0, 4]; all the weight in bin 20 = [2.5, 2.625].
    bins = torch.linspace(0.0, 4.0, 33).expand(5, 33)
    w = torch.zeros(5, 32)
    w[:, 20] = 1.0
    s = importance_samples(bins, w, 64, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 64)
    inside = (s >= 2.5 - 1e-6) & (s <= 2.625 + 1e-6)
    assert inside.float().mean() > 0.95  # eps = 1e-5 leaves ~0.03 % elsewhere
    assert torch.all(s[:, 1:] >= s[:, :-1])  # sorted


def test_importance_samples_follow_the_pdf():
    # Two bins with weights 1 : 3 -> a quarter of the samples in the first.
    bins = torch.tensor([[0.0, 1.0, 2.0]])
    w = torch.tensor([[1.0, 3.0]])
    s = importance_samples(bins, w, 20000, generator=torch.Generator().manual_seed(1))
    assert abs((s < 1.0).float().mean().item() - 0.25) < 0.02
    # Uniform inside a bin: mean of the second-bin samples is its centre.
    assert abs(s[s >= 1.0].mean().item() - 1.5) < 0.02


def test_importance_samples_deterministic_inverse_cdf():
    bins = torch.tensor([[0.0, 1.0, 2.0]])
    w = torch.tensor([[1.0, 1.0]])
    s = importance_samples(bins, w, 5, deterministic=True, eps=0.0)
    assert torch.allclose(s, torch.tensor([[0.0, 0.5, 1.0, 1.5, 2.0]]), atol=1e-6)


def test_importance_samples_zero_weights_are_uniform_and_shapes_checked():
    bins = torch.linspace(0.0, 1.0, 11).expand(2, 11)
    s = importance_samples(
        bins, torch.zeros(2, 10), 4000, generator=torch.Generator().manual_seed(0)
    )
    hist = torch.histc(s, bins=10, min=0.0, max=1.0) / s.numel()
    assert torch.allclose(hist, torch.full((10,), 0.1), atol=0.02)
    with pytest.raises(ValueError, match="bins"):
        importance_samples(torch.zeros(2, 10), torch.zeros(2, 10), 4)


def test_ray_box_intersect_known_values():
    o = torch.tensor([[0.0, 0.0, 5.0], [3.0, 3.0, 5.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    t0, t1 = ray_box_intersect(o, d, -torch.ones(3), torch.ones(3))
    assert torch.allclose(t0[0], torch.tensor(4.0)) and torch.allclose(t1[0], torch.tensor(6.0))
    assert t0[1] > t1[1]  # second ray misses


def test_uniform_march_steps_and_validity():
    t, valid = uniform_march(
        torch.tensor([1.0, 0.0]),
        torch.tensor([2.0, 0.35]),
        torch.tensor([0.25, 0.1]),
        6,
        perturb=False,
    )
    assert torch.allclose(t[0], torch.tensor([1.125, 1.375, 1.625, 1.875, 2.125, 2.375]))
    assert valid[0].tolist() == [True, True, True, True, False, False]
    assert valid[1].tolist() == [True, True, True, False, False, False]
    t, _ = uniform_march(torch.zeros(100), torch.ones(100), torch.full((100,), 0.1), 10)
    offsets = t[:, 0] / 0.1
    assert torch.all((offsets >= 0) & (offsets < 1)) and offsets.std() > 0.1
    assert torch.allclose(t[:, 1:] - t[:, :-1], torch.full((100, 9), 0.1), atol=1e-6)
