"""zoo.ops.splatting: known answers (one isotropic Gaussian's analytic footprint, depth-ordered
compositing of two), the fast pair scheme against the brute-force reference, and gradients
against finite differences."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.ops.splatting import (
    ALPHA_MIN,
    project_gaussians,
    quaternion_to_matrix,
    rasterize,
    rasterize_dense,
    render_gaussians,
)
from zoo.structures.cameras import Cameras, look_at


def _camera(size: int = 32, dist: float = 4.0, dtype=torch.float32) -> Cameras:
    """A camera on the -y axis looking at the origin (focal = size)."""
    c2w = look_at(torch.tensor([[0.0, -dist, 0.0]])).to(dtype)
    return Cameras(c2w, float(size), float(size), size / 2, size / 2, size, size)


def _identity(n: int, dtype=torch.float32) -> torch.Tensor:
    q = torch.zeros(n, 4, dtype=dtype)
    q[:, 0] = 1
    return q


def test_quaternions_give_rotations():
    q = torch.randn(16, 4)
    r = quaternion_to_matrix(q)
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(16, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(16), atol=1e-5)
    # 90 degrees about z: x -> y
    half = math.sqrt(0.5)
    rz = quaternion_to_matrix(torch.tensor([[half, 0.0, 0.0, half]]))[0]
    assert torch.allclose(
        rz @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6
    )


def test_single_isotropic_gaussian_renders_its_analytic_footprint():
    size, dist, s, o = 33, 4.0, 0.08, 0.8
    cam = _camera(size, dist)
    colour = torch.tensor([[0.2, 0.5, 1.0]])
    out, proj = render_gaussians(
        torch.zeros(1, 3), torch.full((1, 3), s), _identity(1), torch.tensor([o]), colour, cam
    )
    # On the axis the Jacobian is diag(f/d, f/d): screen variance (f s / d)^2 + 0.3 dilation.
    var = (size * s / dist) ** 2 + 0.3
    assert torch.allclose(proj.means2d, torch.tensor([[size / 2, size / 2]]))
    assert proj.depths.item() == pytest.approx(dist)
    # Reference radius: 3 sqrt(lambda_max), lambda = mid + sqrt(max(0.1, mid^2 - det)).
    assert proj.radii.item() == math.ceil(3 * math.sqrt(var + math.sqrt(0.1)))
    c = torch.arange(size) + 0.5 - size / 2  # pixel centres relative to the mean
    r2 = c[None, :] ** 2 + c[:, None] ** 2  # (H, W)
    alpha = o * torch.exp(-r2 / (2 * var))
    alpha = torch.where(
        (alpha >= ALPHA_MIN) & (c.abs()[None] <= proj.radii) & (c.abs()[:, None] <= proj.radii),
        alpha,
        0.0,
    )
    assert torch.allclose(out["opacity"], alpha, atol=1e-5)
    assert torch.allclose(out["rgb"], alpha[..., None] * colour[0], atol=1e-5)
    assert torch.allclose(out["depth"], alpha * dist, atol=1e-4)
    # The footprint: Gaussian falloff, nothing beyond the 1/255 level.
    assert (out["opacity"] > 0).sum() == (alpha > 0).sum() > 20


def test_two_gaussians_composite_in_depth_order_whatever_the_input_order():
    cam = _camera(15)
    means = torch.tensor([[0.0, 0.5, 0.0], [0.0, -0.5, 0.0]])  # second one is nearer
    scales = torch.full((2, 3), 0.3)
    opac = torch.tensor([0.7, 0.6])
    cols = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    bg = torch.tensor([0.0, 1.0, 0.0])
    out, proj = render_gaussians(means, scales, _identity(2), opac, cols, cam, bg)
    centre = out["rgb"][7, 7]
    a_far, a_near = 0.7 * 1.0, 0.6 * 1.0  # pixel (7, 7) is the image centre: power 0
    want = a_near * cols[1] + (1 - a_near) * a_far * cols[0] + (1 - a_near) * (1 - a_far) * bg
    assert torch.allclose(centre, want, atol=1e-5)
    assert out["opacity"][7, 7] == pytest.approx(1 - (1 - a_near) * (1 - a_far), abs=1e-5)
    flipped, _ = render_gaussians(
        means.flip(0), scales, _identity(2), opac.flip(0), cols.flip(0), cam, bg
    )
    assert torch.allclose(flipped["rgb"], out["rgb"], atol=1e-6)
    # Opacity 1 is capped at alpha 0.99: a little of what is behind shows through.
    opaque, _ = render_gaussians(
        means, scales, _identity(2), torch.tensor([0.5, 1.0]), cols, cam, bg
    )
    assert opaque["rgb"][7, 7, 0] == pytest.approx(0.99, abs=1e-6)
    assert opaque["rgb"][7, 7, 2] == pytest.approx(0.01 * 0.5, abs=1e-6)


def test_early_termination_at_transmittance_1e_4():
    cam = _camera(11)
    n = 4
    means = torch.tensor([[0.0, -0.3 + 0.2 * i, 0.0] for i in range(n)])  # front to back
    cols = torch.eye(3)[[0, 1, 2, 0]]
    opac = torch.tensor([1.0, 0.5, 1.0, 1.0])
    out, _ = render_gaussians(means, torch.full((n, 3), 0.5), _identity(n), opac, cols, cam)
    # Centre: alpha 0.99 (T = 0.01), then 0.5 (T = 0.005); the third would leave T = 5e-5 <
    # 1e-4, so it and the one behind it are skipped.
    px = out["rgb"][5, 5]
    assert px[0] == pytest.approx(0.99, abs=1e-6)
    assert px[1] == pytest.approx(0.005, abs=1e-6)
    assert px[2] == 0.0
    assert out["opacity"][5, 5] == pytest.approx(1 - 0.005, abs=1e-6)


def _random_scene(n: int, seed: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 1.2
    scales = torch.exp(torch.randn(n, 3, generator=g, dtype=dtype) * 0.3 - 2.0)
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    opac = torch.rand(n, generator=g, dtype=dtype) * 0.9 + 0.05
    cols = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, scales, quats, opac, cols


def test_fast_rasterizer_matches_the_brute_force_reference_values_and_gradients():
    cam = _camera(24)
    means, scales, quats, opac, cols = _random_scene(150, 0)
    # Opacities up to 0.5 keep every pixel's transmittance above 1e-4: where it reaches that
    # level, the two rasterizers' products differ by float rounding and may stop one
    # Gaussian apart (a 1e-4 difference; termination has its own test above).
    params = [t.requires_grad_() for t in (means, scales, quats, opac * 0.5, cols)]
    bg = torch.tensor([0.3, 0.3, 0.3])
    weights = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(1))
    grads = []
    outs = []
    for fn in (rasterize, rasterize_dense):
        proj = project_gaussians(params[0], params[1], params[2], cam)
        out = fn(proj, params[4], params[3], 24, 24, bg)
        loss = (out["rgb"] * weights).sum() + out["depth"].sum() * 0.1
        grads.append(torch.autograd.grad(loss, params))
        outs.append(out)
    for key in ("rgb", "opacity", "depth"):
        assert torch.allclose(outs[0][key], outs[1][key], atol=1e-5), key
    covered = int((outs[0]["opacity"] > 0).sum())
    assert covered > 100 and int(outs[0]["pairs"]) > 3 * covered  # busy, with overlaps
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4)


def test_gradients_match_finite_differences():
    cam = _camera(8, dist=3.0, dtype=torch.float64)
    means, _, quats, opac, cols = _random_scene(3, 2, torch.float64)
    means = means * 0.3
    log_scales = torch.log(torch.tensor([[0.25, 0.3, 0.2], [0.3, 0.2, 0.25], [0.2, 0.25, 0.3]]))
    log_scales = log_scales.double()
    opac = opac.clamp(0.2, 0.6)
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)

    def image(m, ls, q, o, c):
        out, _ = render_gaussians(m, ls.exp(), q, o, c, cam, bg)
        return out["rgb"], out["depth"]

    inputs = tuple(t.clone().requires_grad_() for t in (means, log_scales, quats, opac, cols))
    assert torch.autograd.gradcheck(image, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_culling_behind_the_camera_and_input_checks():
    cam = _camera(16)
    out, proj = render_gaussians(
        torch.tensor([[0.0, -5.0, 0.0]]),  # behind the camera at y = -4
        torch.full((1, 3), 0.1),
        _identity(1),
        torch.tensor([0.9]),
        torch.ones(1, 3),
        cam,
    )
    assert proj.radii.item() == 0 and out["opacity"].abs().sum() == 0
    with pytest.raises(ValueError, match="means and scales"):
        project_gaussians(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 4), cam)
