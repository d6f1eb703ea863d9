"""Surface reconstruction from oriented (or unoriented) points: screened Poisson.

Kazhdan & Hoppe, "Screened Poisson Surface Reconstruction" (ACM TOG 2013), through Open3D's
wrapper of the authors' code. Used to turn point-cloud models (PointFlow) into meshes for the
mesh metrics and renders.

Without normals, they are estimated by PCA of the ``knn`` nearest neighbours, made consistent
by propagation over a Riemannian graph of tangent planes (Hoppe et al., "Surface reconstruction
from unorganized points", SIGGRAPH 1992), and globally flipped to point outwards: the points
farthest from the centroid lie on the convex hull, where the outward normal points away from
the centroid.

Poisson closes the surface everywhere, inventing it far from the samples; vertices whose
sample density (Open3D's per-vertex octree depth density) is in the lowest
``density_quantile`` are removed, as in Open3D's tutorial.
"""

from __future__ import annotations

import numpy as np
import trimesh
from torch import Tensor

from zoo._open3d import import_open3d
from zoo.ops.mesh_queries import as_points_np


def _orient_outwards(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Flip all normals if, at the 1% points farthest from the centroid, they point inwards."""
    offset = points - points.mean(axis=0)  # (N, 3)
    dist = np.linalg.norm(offset, axis=1)
    far = np.argsort(dist)[-max(1, len(points) // 100) :]
    outward = np.einsum("ij,ij->i", normals[far], offset[far]).sum()
    return -normals if outward < 0 else normals


def poisson_reconstruct(
    points: Tensor | np.ndarray,
    normals: Tensor | np.ndarray | None = None,
    depth: int = 8,
    density_quantile: float = 0.0,
    knn: int = 20,
) -> trimesh.Trimesh:
    """Screened Poisson reconstruction of a surface from samples.

    Args:
        points: (N, 3) surface samples, N >= ``knn`` when normals are estimated.
        normals: (N, 3) outward normals, or None to estimate and orient them.
        depth: octree depth (grid resolution at most ``2^depth``); 8 suits ~10^4 points.
        density_quantile: fraction in [0, 1) of the lowest-density vertices to remove; 0 (the
            default) keeps closed shapes watertight, 0.02 trims spurious sheets of open scans.
        knn: neighbours for normal estimation and orientation.
    Returns:
        The reconstructed mesh (outward normals for outward input normals).
    """
    o3d = import_open3d()
    p = as_points_np(points).astype(np.float64)
    if len(p) < 4:
        raise ValueError(f"points: need at least 4 points, got {len(p)}")
    if not 0.0 <= density_quantile < 1.0:
        raise ValueError(f"density_quantile must be in [0, 1), got {density_quantile}")
    if int(depth) != depth or not 1 <= depth <= 12:
        raise ValueError(f"depth must be an integer in [1, 12], got {depth!r}")
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    if normals is None:
        if len(p) < knn:
            raise ValueError(f"points: need at least knn={knn} points to estimate normals")
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn))
        pcd.orient_normals_consistent_tangent_plane(knn)
        n = _orient_outwards(p, np.asarray(pcd.normals))
    else:
        n = as_points_np(normals, "normals").astype(np.float64)
        if n.shape != p.shape:
            raise ValueError(f"normals must have the shape of points {p.shape}, got {n.shape}")
        n = n / np.clip(np.linalg.norm(n, axis=1, keepdims=True), 1e-12, None)
    pcd.normals = o3d.utility.Vector3dVector(np.ascontiguousarray(n))
    # One thread: Open3D's multithreaded solve gives a slightly different mesh on every call,
    # which would make metrics of Poisson-meshed models irreproducible.
    mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
        pcd, depth=int(depth), n_threads=1
    )
    densities = np.asarray(densities)
    if density_quantile > 0 and len(densities):
        mesh.remove_vertices_by_mask(densities < np.quantile(densities, density_quantile))
    return trimesh.Trimesh(
        np.asarray(mesh.vertices), np.asarray(mesh.triangles, dtype=np.int64), process=False
    )
