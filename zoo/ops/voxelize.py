"""Occupancy voxel grids from meshes and meshes from voxel grids.

Voxel convention (3D-GAN, Wu et al. NeurIPS 2016, uses 64^3 grids of ShapeNet shapes): the box
``[bbox_min, bbox_max]`` (default ``[-0.5, 0.5]^3``, the bounding sphere of the normalised
shapes fits inside) is split into ``R`` equal *cells* per axis, and voxel ``[i, j, k]`` (i along
x) is the cell whose centre is ``bbox_min + (i + 0.5, j + 0.5, k + 0.5) * (bbox_max - bbox_min)
/ R``. A voxel is occupied when its centre is inside the mesh.

This differs from :mod:`zoo.ops.marching_cubes`, whose grids are ``R`` *points* per axis
including the box corners (spacing ``(bbox_max - bbox_min) / (R - 1)``).
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from torch import Tensor

from zoo.ops.marching_cubes import BBox, _check_resolution, as_bbox, marching_cubes
from zoo.ops.mesh_queries import occupancy

VOXEL_BBOX_MIN = (-0.5, -0.5, -0.5)
VOXEL_BBOX_MAX = (0.5, 0.5, 0.5)


def voxel_centers(
    resolution: int, bbox_min: BBox = VOXEL_BBOX_MIN, bbox_max: BBox = VOXEL_BBOX_MAX
) -> Tensor:
    """Centres of the ``R^3`` cells splitting the box.

    Returns:
        (R^3, 3) float32; ``.reshape(R, R, R, 3)[i, j, k]`` is the centre of voxel [i, j, k].
    """
    r = _check_resolution(resolution, 1)
    lo, hi = as_bbox(bbox_min, bbox_max)
    size = (hi - lo) / r
    axes = [
        torch.from_numpy(lo[a] + (np.arange(r, dtype=np.float64) + 0.5) * size[a]) for a in range(3)
    ]
    xs, ys, zs = torch.meshgrid(*axes, indexing="ij")  # (R, R, R) each
    return torch.stack([xs, ys, zs], dim=-1).reshape(-1, 3).float()


def voxelize(
    mesh: trimesh.Trimesh,
    resolution: int,
    bbox_min: BBox = VOXEL_BBOX_MIN,
    bbox_max: BBox = VOXEL_BBOX_MAX,
) -> Tensor:
    """Occupancy of the voxel centres of an ``R^3`` grid (closed mesh assumed).

    Inside/outside is :func:`zoo.ops.mesh_queries.occupancy` (ray-parity majority vote).

    Returns:
        (R, R, R) bool, index [i, j, k] with i along x.
    """
    r = _check_resolution(resolution, 1)
    centres = voxel_centers(r, bbox_min, bbox_max)  # (R^3, 3)
    return occupancy(mesh, centres).reshape(r, r, r)


def voxels_to_mesh(
    voxels: Tensor | np.ndarray,
    bbox_min: BBox = VOXEL_BBOX_MIN,
    bbox_max: BBox = VOXEL_BBOX_MAX,
    level: float = 0.5,
) -> trimesh.Trimesh:
    """Surface of a voxel grid (bool occupancy or probabilities in [0, 1]).

    The grid is padded with one empty cell on every side, so shapes touching the box still give
    a closed mesh, then marching cubes (``inside="above"``) runs on the values placed at the
    cell centres. The surface therefore passes half way between occupied and empty centres
    (level 0.5), i.e. it is a smoothed version of the cube faces.

    Returns:
        A closed, outward-oriented mesh; empty (0 faces) if no voxel exceeds ``level``.
    """
    v = voxels.detach().cpu().numpy() if isinstance(voxels, Tensor) else np.asarray(voxels)
    if v.ndim != 3:
        raise ValueError(f"voxels must have shape (X, Y, Z), got {v.shape}")
    lo, hi = as_bbox(bbox_min, bbox_max)
    size = (hi - lo) / np.asarray(v.shape, dtype=np.float64)  # cell size per axis
    padded = np.pad(v.astype(np.float32), 1, mode="constant", constant_values=0.0)
    # Padded cell centres run from lo - size / 2 to hi + size / 2 with spacing `size`.
    return marching_cubes(padded, level, lo - 0.5 * size, hi + 0.5 * size, inside="above")
