"""Mip-NeRF's cone ops against known answers: numerical integration over a frustum, Monte-Carlo
expectations of sinusoids under a Gaussian, and the plain positional encoding at zero variance."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.nn.encodings import PositionalEncoding
from zoo.ops.mip import (
    blur_weights,
    conical_frustums,
    frustum_moments,
    integrated_pos_enc,
    pos_enc,
)
from zoo.ops.rays import generate_radii, generate_rays, pixel_radii
from zoo.structures.cameras import Cameras, look_at


def _frustum_moments_by_quadrature(t0: float, t1: float, r: float, n: int = 200001):
    """Naive reference: a cone's cross-section at depth t is a disc of radius r t (area
    proportional to t^2); mean and variance along the axis and E[x^2] of one perpendicular
    coordinate (r^2 t^2 / 4 for a uniform disc), integrated with the trapezoid rule."""
    t = torch.linspace(t0, t1, n, dtype=torch.float64)
    w = t**2
    mass = torch.trapezoid(w, t)
    mean = torch.trapezoid(w * t, t) / mass
    var = torch.trapezoid(w * (t - mean) ** 2, t) / mass
    r_var = torch.trapezoid(w * (r * t) ** 2 / 4.0, t) / mass
    return float(mean), float(var), float(r_var)


@pytest.mark.parametrize(
    ("t0", "t1", "r"), [(2.0, 6.0, 0.01), (0.5, 0.7, 0.3), (3.0, 3.05, 0.002), (0.01, 4.0, 1.0)]
)
def test_frustum_moments_match_numerical_integration(t0, t1, r):
    t_mean, t_var, r_var = frustum_moments(
        torch.tensor([[t0]], dtype=torch.float64),
        torch.tensor([[t1]], dtype=torch.float64),
        torch.tensor([r], dtype=torch.float64),
    )
    ref = _frustum_moments_by_quadrature(t0, t1, r)
    assert float(t_mean) == pytest.approx(ref[0], rel=1e-7)
    assert float(t_var) == pytest.approx(ref[1], rel=1e-5)
    assert float(r_var) == pytest.approx(ref[2], rel=1e-7)


def test_stable_formulas_survive_float32_for_short_far_intervals():
    """The raw moments (t1^5 - t0^5) / (t1^3 - t0^3) cancel catastrophically in float32; the
    midpoint form stays within float32 precision of the float64 answer."""
    t0 = torch.tensor([[100.0]])
    t1 = torch.tensor([[100.01]])
    r = torch.tensor([1e-3])
    m32, v32, rv32 = frustum_moments(t0, t1, r)
    m64, v64, rv64 = frustum_moments(t0.double(), t1.double(), r.double())
    assert float(m32) == pytest.approx(float(m64), rel=1e-6)
    assert float(v32) == pytest.approx(float(v64), rel=1e-3)  # hw^2 / 3 = 8.3e-6: positive
    assert float(v32) > 0
    assert float(rv32) == pytest.approx(float(rv64), rel=1e-5)


def test_lifted_gaussian_matches_monte_carlo_points_in_the_cone():
    """Uniform points in a world-space conical frustum along an oblique, non-unit direction:
    their mean and per-axis variance against ``conical_frustums``."""
    gen = torch.Generator().manual_seed(0)
    o = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)
    d = torch.tensor([[0.6, -1.2, 0.9]], dtype=torch.float64)  # |d| != 1
    radius = torch.tensor([0.15], dtype=torch.float64)  # at ray parameter 1
    t_vals = torch.tensor([[1.0, 1.6]], dtype=torch.float64)
    mean, cov = conical_frustums(o, d, t_vals, radius)
    # t with density ~ t^2 (inverse CDF), then a uniform point of the disc of radius r t.
    n = 400_000
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    a, b = 1.0, 1.6
    t = (a**3 + u * (b**3 - a**3)) ** (1.0 / 3.0)
    rho = radius * t * torch.rand(n, generator=gen, dtype=torch.float64).sqrt()
    phi = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    axis = d[0] / d[0].norm()
    e1 = torch.linalg.cross(axis, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(axis, e1)
    pts = o + t[:, None] * d + rho[:, None] * (phi.cos()[:, None] * e1 + phi.sin()[:, None] * e2)
    torch.testing.assert_close(mean[0, 0], pts.mean(0), atol=3e-3, rtol=0)
    torch.testing.assert_close(cov[0, 0], pts.var(0), atol=0, rtol=2e-2)


def test_zero_variance_ipe_is_the_plain_positional_encoding():
    x = torch.randn(5, 7, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ipe = integrated_pos_enc(x, torch.zeros_like(x), 0, 16)
    assert ipe.shape == (5, 7, 3 * 2 * 16)
    torch.testing.assert_close(ipe, pos_enc(x, 0, 16, append_identity=False))
    # The same numbers as NeRF's encoding (zoo.nn.encodings), in another order: per degree,
    # NeRF has (sin x, sin y, sin z, cos x, ...), the reference all sines then all cosines.
    ref = PositionalEncoding(3, 16, include_input=False).double()(x).reshape(5, 7, 16, 2, 3)
    mine = ipe.reshape(5, 7, 2, 16, 3).transpose(2, 3)
    torch.testing.assert_close(mine, ref)


def test_ipe_is_the_expectation_of_the_encoding_under_the_gaussian():
    """Monte-Carlo naive reference: E[sin(2^l x)] over x ~ N(mu, var)."""
    gen = torch.Generator().manual_seed(2)
    mu = torch.tensor([0.4, -1.1, 2.0], dtype=torch.float64)
    var = torch.tensor([0.01, 0.003, 0.05], dtype=torch.float64)
    samples = mu + var.sqrt() * torch.randn(200_000, 3, generator=gen, dtype=torch.float64)
    mc = pos_enc(samples, 0, 4, append_identity=False).mean(0)
    torch.testing.assert_close(integrated_pos_enc(mu, var, 0, 4), mc, atol=5e-3, rtol=0)


def test_large_variance_drives_high_frequencies_to_zero():
    x = torch.tensor([[0.3, -0.7, 1.2]])
    var = torch.full_like(x, 1e-2)  # std 0.1: periods shorter than ~0.6 are averaged out
    enc = integrated_pos_enc(x, var, 0, 16).reshape(2, 16, 3)  # (sin/cos, degree, xyz)
    plain = pos_enc(x, 0, 16, append_identity=False).reshape(2, 16, 3)
    torch.testing.assert_close(enc[:, 0], plain[:, 0], atol=0.01, rtol=0)  # degree 0 kept
    assert enc[:, 5:].abs().max() < 1e-2  # 4^5 * 0.01 / 2 = 5.1: damped by exp(-5.1)
    assert enc[:, 6:].abs().max() < 1e-8
    assert plain[:, 5:].abs().max() > 0.5  # the plain encoding keeps them at full amplitude
    # Monotone in the variance: more blur, smaller high-frequency features.
    wider = integrated_pos_enc(x, 4 * var, 0, 16).reshape(2, 16, 3)
    assert (wider[:, 2:].abs() <= enc[:, 2:].abs() + 1e-12).all()


def test_blur_weights_max_then_average_plus_padding():
    w = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.2, 0.2, 0.2, 0.8]])
    out = blur_weights(w, padding=0.01)
    # padded [0, 0, 1, 0, 0, 0] -> max [0, 1, 1, 0, 0] -> mean [0.5, 1, 0.5, 0]
    torch.testing.assert_close(out[0], torch.tensor([0.5, 1.0, 0.5, 0.0]) + 0.01)
    torch.testing.assert_close(out[1], torch.tensor([0.2, 0.2, 0.5, 0.8]) + 0.01)


def test_pixel_radii_are_the_neighbour_direction_distance_times_2_over_sqrt12():
    eye = torch.tensor([[2.0, -1.0, 0.5], [-0.5, 1.5, 1.0]])
    cams = Cameras.from_fov(look_at(eye, torch.zeros(3)), 9, 7, math.radians(50))
    _, d = generate_rays(cams)  # (B, H, W, 3), camera z = -1
    dx = (d[:, :, 1:] - d[:, :, :-1]).norm(dim=-1)  # (B, H, W - 1)
    radii = generate_radii(cams)
    assert radii.shape == (2, 7, 9)
    torch.testing.assert_close(radii[:, :, :-1], dx * 2 / math.sqrt(12))
    half = Cameras.from_fov(look_at(eye, torch.zeros(3)), 18, 14, math.radians(50)).resized(9, 7)
    twice = Cameras.from_fov(look_at(eye, torch.zeros(3)), 18, 14, math.radians(50))
    # Half the resolution: twice the footprint.
    torch.testing.assert_close(
        pixel_radii(half, torch.arange(2)), 2 * pixel_radii(twice, torch.arange(2))
    )
