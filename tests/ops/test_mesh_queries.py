"""Signed / unsigned distance and occupancy against analytic shapes and a naive winding number."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from zoo.ops.mesh_queries import occupancy, signed_distance, unsigned_distance


def winding_number(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Naive generalized winding number (Jacobson et al. 2013): the sum of the solid angles of
    the triangles seen from each point (Van Oosterom & Strackee formula) over 4 pi; ~1 inside a
    closed outward mesh, ~0 outside."""
    tri = mesh.vertices[mesh.faces][None] - points[:, None, None, :]  # (N, F, 3, 3)
    a, b, c = tri[:, :, 0], tri[:, :, 1], tri[:, :, 2]
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    det = np.einsum("nfi,nfi->nf", a, np.cross(b, c))
    dot = lambda x, y: np.einsum("nfi,nfi->nf", x, y)  # noqa: E731
    denom = la * lb * lc + dot(a, b) * lc + dot(b, c) * la + dot(c, a) * lb
    return (2 * np.arctan2(det, denom)).sum(-1) / (4 * np.pi)


def hausdorff_to_unit_sphere(mesh: trimesh.Trimesh) -> float:
    """For a mesh inscribed in the unit sphere: max gap = 1 - min distance of a face plane."""
    plane_dist = np.abs(np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles[:, 0]))
    return float(1.0 - plane_dist.min())


def test_signed_distance_of_sphere_matches_analytic():
    mesh = trimesh.creation.icosphere(subdivisions=4)
    tol = hausdorff_to_unit_sphere(mesh) + 1e-5
    p = torch.from_numpy(np.random.default_rng(0).uniform(-1.6, 1.6, (4000, 3))).float()
    sdf = signed_distance(mesh, p)
    analytic = p.norm(dim=-1) - 1.0
    assert sdf.shape == (4000,) and sdf.dtype == torch.float32
    assert (sdf - analytic).abs().max() < tol
    torch.testing.assert_close(unsigned_distance(mesh, p), sdf.abs())
    # Negative inside (DeepSDF convention), away from the mesh tolerance band.
    far = analytic.abs() > tol
    assert torch.equal(sdf[far] < 0, analytic[far] < 0)


def test_signs_agree_with_winding_number_on_torus():
    mesh = trimesh.creation.torus(major_radius=0.3, minor_radius=0.12)
    p = np.random.default_rng(1).uniform(-0.5, 0.5, (800, 3))
    wn = winding_number(mesh, p)
    confident = np.abs(wn - 0.5) > 0.1  # nearly all points; excludes ones on the surface
    assert confident.mean() > 0.98
    inside = torch.from_numpy(wn > 0.5)
    sdf = signed_distance(mesh, p)
    occ = occupancy(mesh, p)
    assert occ.dtype == torch.bool
    m = torch.from_numpy(confident)
    assert torch.equal(occ[m], inside[m])
    assert torch.equal(sdf[m] < 0, inside[m])
    assert inside.any() and (~inside).any()


def test_box_occupancy_and_distance():
    half = np.array([0.3, 0.2, 0.1])
    centre = np.array([0.05, -0.1, 0.02])
    mesh = trimesh.creation.box(extents=2 * half)
    mesh.apply_translation(centre)
    p = np.random.default_rng(2).uniform(-0.5, 0.5, (5000, 3))
    q = np.abs(p - centre) - half  # (N, 3): > 0 outside along that axis
    inside = (q < 0).all(axis=1)
    outside_dist = np.linalg.norm(np.maximum(q, 0), axis=1)
    inside_dist = -q.max(axis=1)
    exact = np.where(inside, -inside_dist, outside_dist)  # box SDF
    clear = np.abs(exact) > 1e-4
    occ = occupancy(mesh, p).numpy()
    np.testing.assert_array_equal(occ[clear], inside[clear])
    np.testing.assert_allclose(signed_distance(mesh, p).numpy(), exact, atol=1e-5)
    np.testing.assert_allclose(unsigned_distance(mesh, p).numpy(), np.abs(exact), atol=1e-5)


def test_devices_inputs_and_empty_cases():
    mesh = trimesh.creation.icosphere(subdivisions=1)
    p = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    assert occupancy(mesh, p).tolist() == [True, False]
    assert signed_distance(mesh, p).device == p.device
    assert signed_distance(mesh, np.zeros((0, 3))).shape == (0,)
    empty = trimesh.Trimesh()
    assert not occupancy(empty, p).any()
    assert torch.isinf(signed_distance(empty, p)).all() and (signed_distance(empty, p) > 0).all()
    assert torch.isinf(unsigned_distance(empty, p)).all()


def test_validation():
    mesh = trimesh.creation.icosphere(subdivisions=1)
    with pytest.raises(ValueError, match=r"points must have shape \(N, 3\)"):
        signed_distance(mesh, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        occupancy(mesh, np.full((1, 3), np.nan))
    with pytest.raises(ValueError, match="odd"):
        occupancy(mesh, np.zeros((1, 3)), nsamples=2)
