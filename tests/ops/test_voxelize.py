"""Voxelisation (cell-centre occupancy) and voxel -> mesh extraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from zoo.ops.voxelize import voxel_centers, voxelize, voxels_to_mesh


def test_voxel_centers_values_and_order():
    c = voxel_centers(4).reshape(4, 4, 4, 3)
    axis = torch.tensor([-0.375, -0.125, 0.125, 0.375])
    torch.testing.assert_close(c[:, 0, 0, 0], axis)
    torch.testing.assert_close(c[1, 2, 3], torch.tensor([-0.125, 0.125, 0.375]))
    c2 = voxel_centers(2, (0, 0, 0), (1, 2, 4)).reshape(2, 2, 2, 3)
    torch.testing.assert_close(c2[1, 1, 1], torch.tensor([0.75, 1.5, 3.0]))


def test_voxelize_box_matches_analytic_count_and_position():
    r = 32
    lo, hi = np.array([-0.31, -0.12, 0.07]), np.array([0.22, 0.4, 0.33])
    box = trimesh.creation.box(bounds=np.stack([lo, hi]))
    vox = voxelize(box, r)
    assert vox.shape == (r, r, r) and vox.dtype == torch.bool
    centres = (np.arange(r) + 0.5) / r - 0.5
    per_axis = [((centres > lo[a]) & (centres < hi[a])) for a in range(3)]
    expected = per_axis[0][:, None, None] & per_axis[1][None, :, None] & per_axis[2][None, None]
    np.testing.assert_array_equal(vox.numpy(), expected)  # also checks i along x, j y, k z


def test_voxelize_sphere_fraction_matches_volume():
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    vox = voxelize(mesh, 48)
    frac = vox.float().mean().item()  # the box has volume 1
    assert abs(frac / mesh.volume - 1) < 0.02


def test_single_voxel_gives_octahedron_at_its_centre():
    """A lone voxel's surface passes through the 6 midpoints towards its empty neighbours:
    an octahedron of half-diagonal s / 2, volume s^3 / 6."""
    r, s = 8, 1.0 / 8
    v = torch.zeros(r, r, r, dtype=torch.bool)
    v[2, 5, 7] = True
    mesh = voxels_to_mesh(v)
    centre = -0.5 + (np.array([2, 5, 7]) + 0.5) * s
    assert mesh.is_watertight
    assert abs(mesh.volume - s**3 / 6) < 1e-9
    np.testing.assert_allclose(mesh.vertices.mean(0), centre, atol=1e-9)


def test_voxels_to_mesh_of_border_touching_cube_is_closed_and_roundtrips():
    r = 16
    v = torch.zeros(r, r, r, dtype=torch.bool)
    v[:10, 3:12, 5:] = True  # touches the x = -0.5 and z = +0.5 faces of the box
    mesh = voxels_to_mesh(v, (-0.5,) * 3, (0.5,) * 3)
    assert mesh.is_watertight and mesh.volume > 0
    # The surface lies half a cell outside the occupied centres: voxelising it gives v back.
    assert torch.equal(voxelize(mesh, r), v)
    assert len(voxels_to_mesh(torch.zeros(4, 4, 4)).faces) == 0


def test_sphere_roundtrip_iou():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.35)
    v = voxelize(mesh, 32)
    back = voxelize(voxels_to_mesh(v), 32)
    iou = (v & back).sum() / (v | back).sum()
    assert iou > 0.99


def test_validation():
    with pytest.raises(ValueError, match="voxels must have shape"):
        voxels_to_mesh(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="resolution"):
        voxel_centers(0)
