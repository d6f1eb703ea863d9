"""Uniform (area-weighted) random sampling of points on a triangle mesh.

Osada et al., "Shape distributions" (ACM TOG 2002), Sec. 4.2: pick a triangle with probability
proportional to its area, then a point in it with barycentric weights
``(1 - sqrt(r1), sqrt(r1) (1 - r2), sqrt(r1) r2)`` for ``r1, r2 ~ U[0, 1]``, which is uniform
over the triangle. The result is uniform over the whole surface; it is how the point clouds of
PointFlow / the Chamfer and EMD metrics are drawn from meshes.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from torch import Tensor


def _generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator()
    if seed is None:
        gen.seed()  # fresh, non-deterministic
    else:
        gen.manual_seed(int(seed))
    return gen


def sample_surface(mesh: trimesh.Trimesh, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
    """Sample ``n`` points uniformly by area on ``mesh``, with the normals of their faces.

    Args:
        mesh: a triangle mesh with at least one face of non-zero area and finite vertices.
        n: number of points (>= 0).
        seed: seed of the private ``torch.Generator``; the same seed gives the same points.
    Returns:
        points (n, 3) and unit face normals (n, 3), float32 on the CPU. Normals follow the
        faces' winding (right-hand rule), i.e. point outwards for an outward-oriented mesh.
    """
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    n = int(n)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"mesh has no triangle faces (faces shape {faces.shape})")
    if not np.isfinite(vertices).all():
        raise ValueError("mesh has NaN or infinite vertices")
    tri = torch.from_numpy(vertices[faces])  # (F, 3, 3) float64
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3)
    double_area = cross.norm(dim=-1)  # (F,)
    total = double_area.sum()
    if not total > 0:
        raise ValueError("mesh has zero surface area (all faces degenerate)")

    gen = _generator(seed)
    # Inverse-CDF choice among the faces of positive area (no category limit, unlike
    # torch.multinomial; degenerate faces can never be picked, even through rounding).
    valid = torch.nonzero(double_area > 0)[:, 0]  # (F',)
    cdf = torch.cumsum(double_area[valid], dim=0) / total  # (F',)
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    face = valid[torch.searchsorted(cdf, u, right=True).clamp_(max=len(valid) - 1)]  # (n,)
    r1, r2 = torch.rand(2, n, generator=gen, dtype=torch.float64)
    s = r1.sqrt()
    w = torch.stack([1.0 - s, s * (1.0 - r2), s * r2], dim=-1)  # (n, 3)
    points = (w[:, :, None] * tri[face]).sum(dim=1)  # (n, 3)
    normals = cross[face] / double_area[face, None].clamp_min(1e-300)
    return points.float(), normals.float()
