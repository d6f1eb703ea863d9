"""Stateless geometry and rendering ops shared by every model (one implementation each).

Two grid conventions coexist, on purpose:

- implicit-field grids (:func:`grid_points`, :func:`evaluate_grid`, :func:`marching_cubes`):
  ``R`` points per axis *including the box corners*, default box ``[-0.55, 0.55]^3``;
- voxel grids (:func:`voxel_centers`, :func:`voxelize`, :func:`voxels_to_mesh`): ``R`` cells
  per axis splitting the box, values at the *cell centres*, default box ``[-0.5, 0.5]^3``.

In both, index ``[i, j, k]`` has ``i`` along x, ``j`` along y, ``k`` along z.
"""

from zoo.ops.marching_cubes import evaluate_grid, grid_points, marching_cubes
from zoo.ops.mesh_queries import occupancy, signed_distance, unsigned_distance
from zoo.ops.poisson import poisson_reconstruct
from zoo.ops.raycast import render_mesh
from zoo.ops.rays import generate_rays, pixel_directions, rays_for_pixels
from zoo.ops.sampling import (
    importance_samples,
    ray_box_intersect,
    stratified_samples,
    uniform_march,
)
from zoo.ops.splatting import project_gaussians, rasterize, render_gaussians
from zoo.ops.surface import sample_surface
from zoo.ops.volume_rendering import (
    alpha_from_density,
    composite,
    compute_deltas,
    render_weights,
    volume_render,
)
from zoo.ops.voxelize import voxel_centers, voxelize, voxels_to_mesh

__all__ = [
    "alpha_from_density",
    "composite",
    "compute_deltas",
    "evaluate_grid",
    "generate_rays",
    "grid_points",
    "importance_samples",
    "marching_cubes",
    "occupancy",
    "pixel_directions",
    "poisson_reconstruct",
    "project_gaussians",
    "rasterize",
    "ray_box_intersect",
    "rays_for_pixels",
    "render_gaussians",
    "render_mesh",
    "render_weights",
    "sample_surface",
    "signed_distance",
    "stratified_samples",
    "uniform_march",
    "unsigned_distance",
    "volume_render",
    "voxel_centers",
    "voxelize",
    "voxels_to_mesh",
]
