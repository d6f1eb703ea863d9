"""Point-to-mesh queries: unsigned / signed distance and inside-outside occupancy.

Everything goes through Open3D's ``RaycastingScene`` (Embree BVH): the distance is the exact
distance to the closest triangle; inside/outside is decided by the parity of ray-surface
crossings along ``nsamples`` random rays per point, with a majority vote. One ray is exact for
a watertight mesh except when it grazes an edge or vertex; the vote (default 3 rays) makes the
sign robust to those cases and to small holes of slightly imperfect meshes. The mesh is assumed
closed; for open meshes the sign is only as meaningful as the parity vote.

Sign convention: negative inside (DeepSDF, Park et al. CVPR 2019).

A mesh with no faces (e.g. the extraction of an empty grid) is allowed: nothing is inside, and
distances are ``+inf``.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from torch import Tensor

from zoo._open3d import import_open3d

Points = Tensor | np.ndarray


def as_points_np(points: Points, name: str = "points") -> np.ndarray:
    """``(N, 3)`` torch or numpy points as a contiguous float32 numpy array (validated)."""
    p = points.detach().cpu().numpy() if isinstance(points, Tensor) else np.asarray(points)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return np.ascontiguousarray(p, dtype=np.float32)


def _out_device(points: Points) -> torch.device:
    return points.device if isinstance(points, Tensor) else torch.device("cpu")


def _check_mesh(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    if len(faces) and (faces.ndim != 2 or faces.shape[1] != 3):
        raise ValueError(f"mesh faces must have shape (F, 3), got {faces.shape}")
    if len(faces) and not np.isfinite(vertices).all():
        raise ValueError("mesh has NaN or infinite vertices")
    return vertices, faces


def raycasting_scene(mesh: trimesh.Trimesh):
    """An Open3D ``RaycastingScene`` holding ``mesh`` (which must have at least one face)."""
    o3d = import_open3d()
    vertices, faces = _check_mesh(mesh)
    if len(faces) == 0:
        raise ValueError("mesh has no faces")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)),
    )
    return scene


def _check_nsamples(nsamples: int) -> int:
    if int(nsamples) != nsamples or nsamples < 1 or nsamples % 2 == 0:
        raise ValueError(f"nsamples must be a positive odd integer, got {nsamples!r}")
    return int(nsamples)


def unsigned_distance(mesh: trimesh.Trimesh, points: Points) -> Tensor:
    """Euclidean distance from each point to the closest point of the mesh surface.

    Args:
        points: (N, 3).
    Returns:
        (N,) float32 on the device of ``points`` (``+inf`` for a mesh without faces).
    """
    p = as_points_np(points)
    dev = _out_device(points)
    if len(_check_mesh(mesh)[1]) == 0:
        return torch.full((len(p),), float("inf"), device=dev)
    if len(p) == 0:
        return torch.zeros(0, device=dev)
    d = raycasting_scene(mesh).compute_distance(p).numpy()
    return torch.from_numpy(d).float().to(dev)


def occupancy(mesh: trimesh.Trimesh, points: Points, nsamples: int = 3) -> Tensor:
    """Whether each point is inside the (closed) mesh, by a ray-parity majority vote.

    Args:
        points: (N, 3).
        nsamples: odd number of random rays per point (see the module docstring).
    Returns:
        (N,) bool on the device of ``points`` (all False for a mesh without faces).
    """
    p = as_points_np(points)
    dev = _out_device(points)
    k = _check_nsamples(nsamples)
    if len(_check_mesh(mesh)[1]) == 0 or len(p) == 0:
        return torch.zeros(len(p), dtype=torch.bool, device=dev)
    occ = raycasting_scene(mesh).compute_occupancy(p, nsamples=k).numpy()
    return torch.from_numpy(occ > 0.5).to(dev)


def signed_distance(mesh: trimesh.Trimesh, points: Points, nsamples: int = 3) -> Tensor:
    """Signed distance to the mesh surface, negative inside (DeepSDF convention).

    ``|sdf|`` is the exact closest-triangle distance; the sign comes from the same majority
    vote as :func:`occupancy`.

    Args:
        points: (N, 3).
        nsamples: odd number of random rays per point for the sign.
    Returns:
        (N,) float32 on the device of ``points`` (``+inf`` for a mesh without faces).
    """
    p = as_points_np(points)
    dev = _out_device(points)
    k = _check_nsamples(nsamples)
    if len(_check_mesh(mesh)[1]) == 0:
        return torch.full((len(p),), float("inf"), device=dev)
    if len(p) == 0:
        return torch.zeros(0, device=dev)
    sdf = raycasting_scene(mesh).compute_signed_distance(p, nsamples=k).numpy()
    return torch.from_numpy(sdf).float().to(dev)
