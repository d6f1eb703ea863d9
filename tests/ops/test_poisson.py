"""Screened Poisson reconstruction of points sampled from known surfaces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from zoo.ops.poisson import poisson_reconstruct
from zoo.ops.surface import sample_surface


def chamfer(a: torch.Tensor, b: torch.Tensor) -> float:
    """Symmetric mean nearest-neighbour L2 distance (inline: the metrics package is separate)."""
    d = torch.cdist(a, b)
    return (d.min(1).values.mean() + d.min(0).values.mean()).item()


def test_sphere_with_normals():
    r = 0.4
    gt = trimesh.creation.icosphere(subdivisions=5, radius=r)
    pts, nrm = sample_surface(gt, 4000, seed=0)
    ref, _ = sample_surface(gt, 4000, seed=1)
    baseline = chamfer(pts, ref)  # two independent samplings of the true surface
    mesh = poisson_reconstruct(pts, nrm, depth=7)
    rec, _ = sample_surface(mesh, 4000, seed=2)
    assert chamfer(rec, ref) < 1.15 * baseline
    # Accuracy against the analytic sphere, and outward faces.
    assert (rec.norm(dim=-1) - r).abs().mean() < 3e-3
    dots = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center)
    assert (dots > 0).mean() > 0.999
    # Trimming 2% of the lowest-density vertices leaves most of the surface.
    assert mesh.area > 0.85 * 4 * math.pi * r**2


def test_untrimmed_is_watertight_with_right_area():
    gt = trimesh.creation.icosphere(subdivisions=5, radius=0.4)
    pts, nrm = sample_surface(gt, 4000, seed=3)
    mesh = poisson_reconstruct(pts.numpy(), nrm.numpy(), depth=7, density_quantile=0.0)
    assert mesh.is_watertight
    assert abs(mesh.area / gt.area - 1) < 0.02
    assert abs(mesh.volume / gt.volume - 1) < 0.02


def test_estimated_normals_on_nonconvex_torus_are_outward():
    big, small = 0.3, 0.12
    gt = trimesh.creation.torus(big, small, major_sections=64, minor_sections=32)
    pts, _ = sample_surface(gt, 4000, seed=4)
    ref, _ = sample_surface(gt, 4000, seed=5)
    mesh = poisson_reconstruct(pts, None, depth=7)
    rec, _ = sample_surface(mesh, 4000, seed=6)
    assert chamfer(rec, ref) < 1.15 * chamfer(pts, ref)
    # Outward: face normals agree with the analytic torus SDF gradient.
    c = torch.tensor(mesh.triangles_center, dtype=torch.float32)
    ring = torch.nn.functional.normalize(c[:, :2], dim=-1) * big  # closest core-circle point
    grad = c - torch.cat([ring, torch.zeros(len(c), 1)], dim=-1)
    dots = (torch.tensor(mesh.face_normals, dtype=torch.float32) * grad).sum(-1)
    assert (dots > 0).float().mean() > 0.99


def test_validation():
    with pytest.raises(ValueError, match="at least 4"):
        poisson_reconstruct(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="normals must have the shape"):
        poisson_reconstruct(np.random.rand(50, 3), np.random.rand(40, 3))
    with pytest.raises(ValueError, match="density_quantile"):
        poisson_reconstruct(np.random.rand(50, 3), density_quantile=1.0)


def test_repeated_calls_give_the_same_mesh():
    """Reproducible metrics need a deterministic mesh (Open3D's threaded solve is not)."""
    gt = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    pts, _ = sample_surface(gt, 2048, seed=0)
    pts = pts + 0.01 * torch.randn(pts.shape, generator=torch.Generator().manual_seed(0))
    first = poisson_reconstruct(pts)
    for _ in range(3):
        again = poisson_reconstruct(pts)
        assert np.array_equal(np.asarray(again.vertices), np.asarray(first.vertices))
        assert np.array_equal(np.asarray(again.faces), np.asarray(first.faces))
