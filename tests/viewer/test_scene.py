"""Viewer geometry: voxel cubes, training cameras of a stored scene config."""

from __future__ import annotations

import numpy as np
import torch

from zoo.viewer.scene import training_cameras, voxel_cubes


def test_one_voxel_is_one_cube_of_the_cell_size():
    grid = torch.zeros(4, 4, 4)
    grid[1, 2, 3] = 1.0
    mesh = voxel_cubes(grid)
    assert len(mesh.faces) == 12 and mesh.is_watertight
    np.testing.assert_allclose(mesh.bounds, [[-0.25, 0.0, 0.25], [0.0, 0.25, 0.5]])
    assert abs(mesh.volume - 0.25**3) < 1e-12


def test_only_surface_voxels_become_cubes():
    grid = torch.zeros(5, 5, 5)
    grid[1:4, 1:4, 1:4] = 1.0  # a 3^3 block: 26 surface voxels, 1 hidden
    assert len(voxel_cubes(grid).faces) == 12 * 26
    assert len(voxel_cubes(torch.zeros(3, 3, 3)).faces) == 0


def test_training_cameras_of_a_synthetic_scene_without_rendering(tmp_path):
    meta = {
        "data_info": {"form": "views"},
        "data_cfg": {
            "_target_": "zoo.data.default.synthshapes",
            "root": str(tmp_path / "never_written"),
            "scene_category": "chair",
            "scene_index": 1,
        },
    }
    cams = training_cameras(meta)
    assert cams is not None and len(cams) == 50
    radii = cams.centers.norm(dim=-1)
    assert torch.allclose(radii, torch.full_like(radii, 1.6), atol=1e-4)
    assert not (tmp_path / "never_written").exists()  # nothing rendered or generated
    assert training_cameras({"data_info": {"form": "points"}}) is None
