"""Known-answer tests of the volume rendering quadrature (zoo.ops.volume_rendering)."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.ops.volume_rendering import (
    alpha_from_density,
    composite,
    composite_packed,
    compute_deltas,
    render_weights,
    render_weights_packed,
    volume_render,
)


def test_uniform_medium_opacity_is_beer_lambert():
    # Density sigma over length L, any number of segments: opacity = 1 - exp(-sigma L).
    for sigma, length, s in [(0.5, 2.0, 7), (3.0, 1.0, 64), (0.05, 10.0, 1)]:
        t = torch.linspace(0.0, length, s + 1)[None]  # S + 1 edges
        delta = t[:, 1:] - t[:, :-1]  # (1, S)
        w, trans = render_weights(torch.full_like(delta, sigma), delta)
        assert math.isclose(w.sum().item(), 1.0 - math.exp(-sigma * length), rel_tol=1e-5)
        # Transmittance before each segment is exp(-sigma t_i).
        assert torch.allclose(trans, torch.exp(-sigma * t[:, :-1]), atol=1e-6)


def test_weights_match_the_cumprod_form_and_sum_to_opacity():
    g = torch.Generator().manual_seed(0)
    sigma = torch.rand(4, 32, generator=g) * 5
    t = torch.sort(torch.rand(4, 32, generator=g) * 4, dim=-1).values
    delta = compute_deltas(t)
    w, _ = render_weights(sigma, delta)
    alpha = alpha_from_density(sigma, delta)
    trans = torch.cumprod(torch.cat([torch.ones(4, 1), 1.0 - alpha[:, :-1]], dim=-1), dim=-1)
    assert torch.allclose(w, trans * alpha, atol=1e-6)
    out = volume_render(sigma, torch.rand(4, 32, 3, generator=g), t, delta)
    assert torch.allclose(out["opacity"], w.sum(-1))
    # The last segment is 1e10 long: every ray ends fully opaque.
    assert torch.allclose(out["opacity"], torch.ones(4), atol=1e-6)


def test_empty_field_renders_the_background():
    t = torch.linspace(2, 6, 16).expand(3, 16)
    out = volume_render(
        torch.zeros(3, 16), torch.rand(3, 16, 3), t, compute_deltas(t), background=[0.2, 0.4, 1.0]
    )
    assert torch.allclose(out["rgb"], torch.tensor([0.2, 0.4, 1.0]).expand(3, 3))
    assert torch.all(out["opacity"] == 0) and torch.all(out["depth"] == 0)


def test_opaque_slab_gives_its_colour_and_depth():
    # A very dense thin layer at t = 3 (one sample), empty elsewhere.
    t = torch.linspace(2, 6, 41)[None]  # step 0.1
    sigma = torch.zeros_like(t)
    sigma[0, 10] = 1e4  # t = 3.0
    rgb = torch.zeros(1, 41, 3)
    rgb[0, 10] = torch.tensor([0.9, 0.1, 0.3])
    out = volume_render(sigma, rgb, t, compute_deltas(t), background=1.0)
    assert torch.allclose(out["rgb"][0], torch.tensor([0.9, 0.1, 0.3]), atol=1e-5)
    assert torch.allclose(out["depth"], torch.tensor([3.0]), atol=1e-5)
    assert torch.allclose(out["opacity"], torch.tensor([1.0]), atol=1e-6)


def test_half_opaque_mixes_with_background():
    # One segment with alpha = 0.5 of white in front of a black background -> 0.5 grey.
    sigma = torch.tensor([[math.log(2.0)]])
    out = composite(render_weights(sigma, torch.ones(1, 1))[0], torch.ones(1, 1, 3), background=0.0)
    assert torch.allclose(out["rgb"], torch.full((1, 3), 0.5), atol=1e-6)
    assert torch.allclose(out["opacity"], torch.tensor([0.5]), atol=1e-6)


def test_gradients_flow_to_density_and_colour():
    sigma = torch.rand(2, 8, requires_grad=True)
    rgb = torch.rand(2, 8, 3, requires_grad=True)
    t = torch.linspace(0, 1, 8).expand(2, 8)
    volume_render(sigma, rgb, t, compute_deltas(t, last=0.1))["rgb"].sum().backward()
    assert sigma.grad.abs().sum() > 0 and rgb.grad.abs().sum() > 0


def test_shape_validation():
    with pytest.raises(ValueError, match="sigma and delta"):
        render_weights(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="rgb"):
        composite(torch.zeros(2, 3), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="background"):
        composite(torch.zeros(2, 3), torch.zeros(2, 3, 3), background=[1.0, 0.0])


def test_packed_rendering_equals_dense():
    # Rays with different numbers of samples, packed; the dense layout pads with sigma = 0.
    g = torch.Generator().manual_seed(3)
    counts = [5, 0, 12, 1, 7]
    r, s = len(counts), max(counts)
    sigma = torch.rand(r, s, generator=g) * 4
    delta = torch.rand(r, s, generator=g) * 0.3 + 0.01
    rgb = torch.rand(r, s, 3, generator=g)
    t = torch.cumsum(delta, dim=-1)
    mask = torch.arange(s)[None] < torch.tensor(counts)[:, None]
    sigma_d = torch.where(mask, sigma, torch.zeros_like(sigma))
    w_d, trans_d = render_weights(sigma_d, delta)
    dense = composite(w_d, rgb, t, background=[0.1, 0.2, 0.3])
    ray_index = torch.arange(r)[:, None].expand(r, s)[mask]
    w_p, trans_p = render_weights_packed(sigma[mask], delta[mask], ray_index, r)
    assert torch.allclose(w_p, w_d[mask], atol=1e-6)
    assert torch.allclose(trans_p, trans_d[mask], atol=1e-6)
    packed = composite_packed(w_p, rgb[mask], t[mask], ray_index, r, background=[0.1, 0.2, 0.3])
    for key in ("rgb", "opacity", "depth"):
        assert torch.allclose(packed[key], dense[key], atol=1e-5), key


def test_packed_rendering_keeps_precision_after_many_opaque_rays():
    # 2000 opaque rays before a faint one: a float32 global cumsum would swamp the last ray.
    r = 2001
    counts = torch.full((r,), 10)
    ray_index = torch.repeat_interleave(torch.arange(r), counts)
    sigma = torch.full((len(ray_index),), 1000.0)
    sigma[-10:] = 0.01
    delta = torch.full_like(sigma, 0.1)
    w, _ = render_weights_packed(sigma, delta, ray_index, r)
    last = w[-10:].sum()
    assert torch.isclose(last, torch.tensor(1 - math.exp(-0.01)), rtol=1e-3)
