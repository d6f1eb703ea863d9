"""Area-weighted surface sampling: on the surface, right normals, uniform, reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from zoo.ops.mesh_queries import unsigned_distance
from zoo.ops.surface import sample_surface


def test_points_on_sphere_mesh_with_unit_outward_normals():
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    pts, nrm = sample_surface(mesh, 5000, seed=0)
    assert pts.shape == (5000, 3) and nrm.shape == (5000, 3)
    assert pts.dtype == torch.float32 and nrm.dtype == torch.float32
    assert unsigned_distance(mesh, pts).max() < 1e-5
    torch.testing.assert_close(nrm.norm(dim=-1), torch.ones(5000))
    assert ((nrm * pts).sum(-1) > 0).all()  # outward


def test_box_normals_match_faces_and_counts_proportional_to_area():
    ext = np.array([4.0, 1.0, 0.5])
    mesh = trimesh.creation.box(extents=ext)
    n = 40000
    pts, nrm = sample_surface(mesh, n, seed=1)
    # Each point lies on one face |p_a| = ext_a / 2, whose normal is sign(p_a) e_a.
    on_face = (pts.abs() - torch.tensor(ext / 2, dtype=torch.float32)).abs() < 1e-5  # (n, 3)
    assert (on_face.sum(-1) >= 1).all()
    axis = on_face.float().argmax(-1)
    expected_n = torch.zeros(n, 3)
    expected_n[torch.arange(n), axis] = pts[torch.arange(n), axis].sign()
    single = on_face.sum(-1) == 1  # points within 1e-5 of an edge are ambiguous
    assert single.float().mean() > 0.99
    torch.testing.assert_close(nrm[single], expected_n[single], atol=1e-6, rtol=0)
    # Face pairs have areas 2 * (0.5, 2, 4): expect fractions 1/13, 4/13, 8/13.
    counts = torch.bincount(axis, minlength=3).double()
    expected = torch.tensor([1.0, 4.0, 8.0], dtype=torch.float64) / 13.0
    sigma = (expected * (1 - expected) / n).sqrt()
    assert ((counts / n - expected).abs() < 5 * sigma).all()


def test_uniform_inside_a_triangle():
    """With the sqrt trick the density is uniform: the sub-triangle x + y < 1/2 has 1/4 of the
    area and the mean is the centroid (without sqrt, points cluster near a vertex)."""
    mesh = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], process=False)
    n = 40000
    pts, nrm = sample_surface(mesh, n, seed=2)
    frac = ((pts[:, 0] + pts[:, 1]) < 0.5).double().mean()
    assert abs(frac - 0.25) < 5 * (0.25 * 0.75 / n) ** 0.5
    torch.testing.assert_close(pts.mean(0), torch.tensor([1 / 3, 1 / 3, 0.0]), atol=6e-3, rtol=0)
    torch.testing.assert_close(nrm, torch.tensor([[0.0, 0.0, 1.0]]).expand(n, 3))


def test_degenerate_faces_never_sampled():
    v = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5], [6, 6, 6]]
    f = [[3, 4, 3], [0, 1, 2], [3, 4, 4]]  # zero-area faces first and last
    pts, nrm = sample_surface(trimesh.Trimesh(v, f, process=False), 2000, seed=0)
    assert (pts[:, 2].abs() < 1e-7).all() and (pts[:, :2].sum(-1) <= 1 + 1e-6).all()
    assert torch.isfinite(nrm).all()


def test_seeded_determinism():
    mesh = trimesh.creation.icosphere(subdivisions=1)
    a, an = sample_surface(mesh, 100, seed=7)
    b, bn = sample_surface(mesh, 100, seed=7)
    c, _ = sample_surface(mesh, 100, seed=8)
    assert torch.equal(a, b) and torch.equal(an, bn)
    assert not torch.equal(a, c)
    assert sample_surface(mesh, 0, seed=0)[0].shape == (0, 3)


def test_invalid_meshes_raise():
    with pytest.raises(ValueError, match="no triangle faces"):
        sample_surface(trimesh.Trimesh(), 10)
    bad = trimesh.creation.icosphere(subdivisions=0)
    v = np.array(bad.vertices)
    v[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sample_surface(trimesh.Trimesh(v, bad.faces, process=False), 10)
    flat = trimesh.Trimesh([[0, 0, 0], [1, 1, 1], [2, 2, 2]], [[0, 1, 2]], process=False)
    with pytest.raises(ValueError, match="zero surface area"):
        sample_surface(flat, 10)
    with pytest.raises(ValueError, match="non-negative"):
        sample_surface(bad, -1)
