"""Point normalisations and up-axis rotations against hand-computed values; the voxel rotation
against the zoo's own voxeliser run on the rotated mesh."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from zoo.ops.point_normalization import (
    UP_TO_Y,
    apply_global,
    bbox_diagonal,
    global_stats,
    unit_box,
    unit_sphere,
    up_to_y,
    voxels_up_to_y,
)
from zoo.ops.voxelize import voxelize

# bbox (0, 0, 0)-(2, 4, 4): centre (1, 2, 2), sides (2, 4, 4), diagonal 6, longest side 4.
BOX = np.array([[0, 0, 0], [2, 0, 0], [0, 4, 0], [0, 0, 4]], dtype=np.float32)


def test_bbox_diagonal_and_unit_box_by_hand() -> None:
    np.testing.assert_allclose(bbox_diagonal(BOX)[0], [-1 / 6, -2 / 6, -2 / 6], rtol=1e-6)
    np.testing.assert_allclose(bbox_diagonal(BOX)[1], [1 / 6, -2 / 6, -2 / 6], rtol=1e-6)
    np.testing.assert_allclose(unit_box(BOX)[2], [-0.25, 0.5, -0.5], rtol=1e-6)
    batch = np.stack([BOX, 10 * BOX + 7])  # per shape: scale and offset do not matter
    np.testing.assert_allclose(bbox_diagonal(batch)[1], bbox_diagonal(BOX), atol=1e-6)
    np.testing.assert_allclose(unit_box(batch)[1], unit_box(BOX), atol=1e-6)


def test_unit_sphere_by_hand() -> None:
    # Centroid (1, 2, 3); the farthest points are 3 away.
    cloud = np.array([[3, 0, 0], [-3, 0, 0], [0, 1, 0], [0, -1, 0]], np.float32) + [1, 2, 3]
    out = unit_sphere(cloud)
    np.testing.assert_allclose(out, [[1, 0, 0], [-1, 0, 0], [0, 1 / 3, 0], [0, -1 / 3, 0]], 1e-6)


def test_global_stats_by_hand() -> None:
    # Per-axis means 1; the 12 coordinates deviate from the grand mean 1 by 0, -2, 2, 0 on
    # every axis: std sqrt(2) (PointFlow's one scalar std over all coordinates).
    clouds = np.array([[[1, 1, 1], [-1, -1, -1]], [[3, 3, 3], [1, 1, 1]]], np.float32)
    mean, std = global_stats(clouds)
    np.testing.assert_allclose(mean, [1, 1, 1])
    assert std == pytest.approx(np.sqrt(2))
    out = apply_global(clouds, mean, std)
    np.testing.assert_allclose(out[1, 0], [2 / np.sqrt(2)] * 3, rtol=1e-6)
    assert out.dtype == np.float32


def test_up_to_y_by_hand() -> None:
    pts = np.eye(3, dtype=np.float32)  # x, y, z unit vectors
    np.testing.assert_array_equal(up_to_y(pts, 2), [[1, 0, 0], [0, 0, -1], [0, 1, 0]])
    np.testing.assert_array_equal(up_to_y(pts, 0), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(up_to_y(pts, 1), pts)
    for m in UP_TO_Y.values():
        assert np.linalg.det(m) == pytest.approx(1)  # rotations, no mirror
    with pytest.raises(ValueError, match="up_axis must be 0, 1 or 2"):
        up_to_y(pts, 3)


@pytest.mark.parametrize("up_axis", [0, 1, 2])
def test_voxels_up_to_y_matches_voxelising_the_rotated_mesh(up_axis: int) -> None:
    """An asymmetric box voxelised by the zoo, then rotated as a grid, equals the voxels of
    the same box rotated as points first (faces kept off the cell centres)."""
    box = trimesh.creation.box(bounds=[[-0.3, -0.1, 0.05], [0.2, 0.4, 0.3]])
    grid = voxelize(box, 8).numpy()  # (8, 8, 8)
    rotated = box.copy()
    rotated.vertices = up_to_y(np.asarray(box.vertices), up_axis)
    expected = voxelize(rotated, 8).numpy()
    assert grid.sum() > 0 and (up_axis == 1 or not np.array_equal(grid, expected))
    np.testing.assert_array_equal(voxels_up_to_y(grid, up_axis), expected)
    batch = voxels_up_to_y(np.stack([grid, grid]), up_axis)  # leading batch axis
    np.testing.assert_array_equal(batch[1], expected)
