"""Grid evaluation and marching cubes against analytic spheres and tori."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo.ops.marching_cubes import evaluate_grid, grid_points, marching_cubes


def sphere_sdf(centre=(0.0, 0.0, 0.0), radius=0.4):
    c = torch.tensor(centre)
    return lambda p: (p - c.to(p)).norm(dim=-1) - radius


def torus_sdf(p: torch.Tensor, big: float = 0.3, small: float = 0.12) -> torch.Tensor:
    """Exact SDF of a torus around the z axis."""
    q = torch.stack([p[:, :2].norm(dim=-1) - big, p[:, 2]], dim=-1)
    return q.norm(dim=-1) - small


def test_grid_points_order_and_values():
    lo, hi = (-1.0, 0.0, 2.0), (1.0, 0.5, 3.0)
    r = 5
    pts = grid_points(r, lo, hi).reshape(r, r, r, 3)
    step = (np.array(hi) - np.array(lo)) / (r - 1)
    for i, j, k in [(0, 0, 0), (4, 4, 4), (1, 2, 3), (3, 0, 4)]:
        expected = np.array(lo) + np.array([i, j, k]) * step
        np.testing.assert_allclose(pts[i, j, k].numpy(), expected, atol=1e-6)
    assert pts.dtype == torch.float32


def test_evaluate_grid_chunks_match_direct_and_no_grad():
    calls, grad_enabled = [], []

    def fn(p):
        grad_enabled.append(torch.is_grad_enabled())
        calls.append(len(p))
        return (p * torch.tensor([1.0, 10.0, 100.0])).sum(-1, keepdim=True)  # (M, 1)

    g = evaluate_grid(fn, 7, chunk=50)
    assert g.shape == (7, 7, 7)
    assert max(calls) <= 50 and sum(calls) == 343
    assert not any(grad_enabled)
    direct = fn(grid_points(7)).reshape(7, 7, 7)
    torch.testing.assert_close(g, direct)


def test_evaluate_grid_rejects_wrong_output_size():
    with pytest.raises(ValueError, match="one value per point"):
        evaluate_grid(lambda p: p, 4)


def test_sphere_area_volume_orientation_128():
    r = 0.4
    grid = evaluate_grid(sphere_sdf(radius=r), 128)
    mesh = marching_cubes(grid)
    area, volume = 4 * math.pi * r**2, 4 / 3 * math.pi * r**3
    assert abs(mesh.area / area - 1) < 0.01
    assert abs(mesh.volume / volume - 1) < 0.01  # positive signed volume: outward winding
    assert mesh.is_watertight
    # Every face normal points away from the centre.
    dots = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center)
    assert (dots > 0).all()
    # Vertices lie on the sphere (linear interpolation of an exact SDF).
    spacing = 1.1 / 127
    assert np.abs(np.linalg.norm(mesh.vertices, axis=1) - r).max() < 0.1 * spacing


def test_world_coordinates_offcentre_anisotropic_grid():
    """A grid with different sample counts and extents per axis maps back to world space."""
    centre, r = (0.1, -0.05, 0.2), 0.25
    lo, hi = np.array([-0.3, -0.4, -0.2]), np.array([0.5, 0.3, 0.6])
    shape = (41, 36, 50)
    axes = [torch.linspace(lo[a], hi[a], shape[a]) for a in range(3)]
    pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    grid = sphere_sdf(centre, r)(pts).reshape(shape)
    mesh = marching_cubes(grid, 0.0, lo, hi)
    dist = np.linalg.norm(mesh.vertices - np.array(centre), axis=1)
    assert np.abs(dist - r).max() < 2e-3
    assert mesh.volume > 0


def test_torus_nonconvex_orientation_and_volume():
    grid = evaluate_grid(torus_sdf, 64)
    mesh = marching_cubes(grid)
    expected = 2 * math.pi**2 * 0.3 * 0.12**2
    assert abs(mesh.volume / expected - 1) < 0.02
    # Face normals agree with the analytic SDF gradient (outward) on the non-convex torus.
    c = torch.tensor(mesh.triangles_center, dtype=torch.float32, requires_grad=True)
    (grad,) = torch.autograd.grad(torus_sdf(c).sum(), c)
    dots = np.einsum("ij,ij->i", mesh.face_normals, grad.numpy())
    assert (dots > 0.5).mean() > 0.99


def test_inside_above_on_negated_grid_gives_same_mesh():
    grid = evaluate_grid(sphere_sdf(radius=0.3), 32)
    a = marching_cubes(grid, level=0.05)
    b = marching_cubes(-grid, level=-0.05, inside="above")
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-6)
    np.testing.assert_array_equal(a.faces, b.faces)
    assert b.volume > 0


def test_density_grid_inside_above_is_outward():
    pts = grid_points(32)
    occ = (pts.norm(dim=-1) < 0.35).float().reshape(32, 32, 32)  # occupancy, 1 inside
    mesh = marching_cubes(occ, level=0.5, inside="above")
    assert mesh.volume > 0
    dots = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center)
    assert (dots > 0).mean() > 0.99


def test_level_not_crossed_gives_empty_mesh():
    grid = evaluate_grid(sphere_sdf(radius=0.4), 16)
    for level in (-1.0, 5.0, float(grid.max())):
        mesh = marching_cubes(grid, level=level)
        assert len(mesh.faces) == 0 and len(mesh.vertices) == 0
    assert len(marching_cubes(torch.ones(8, 8, 8), 0.0).faces) == 0


def test_marching_cubes_validation():
    with pytest.raises(ValueError, match="3D"):
        marching_cubes(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="inside"):
        marching_cubes(torch.zeros(4, 4, 4), inside="outside")
    g = torch.randn(4, 4, 4)
    g[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        marching_cubes(g)
    with pytest.raises(ValueError, match="bbox"):
        marching_cubes(torch.randn(4, 4, 4), bbox_min=(0, 0, 0), bbox_max=(1, -1, 1))
    with pytest.raises(ValueError, match="resolution"):
        grid_points(1)
