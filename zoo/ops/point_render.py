"""Points drawn as shaded discs (surfels), for pictures of point clouds a person can read.

A point-cloud model's output is points; meshing them first (Poisson) shows the mesher's guess,
a lump where the cloud is fuzzy, not the model's output. Here every point becomes a flat
elliptical Gaussian splat (the shared EWA splatting of :mod:`zoo.ops.splatting`) lying in the
point's tangent plane, with the normal estimated by PCA of its ``k`` nearest neighbours (Hoppe
et al., SIGGRAPH 1992), radius the mean distance to its nearest neighbour (the cloud's own
spacing, so a dense cloud closes into a surface and a sparse one stays visibly points), and
the same headlight shading as the mesh ray caster (:mod:`zoo.ops.raycast`): grey albedo 0.8,
``ambient + (1 - ambient) |n . d|``. Opacity 1: the front-most discs hide what is behind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from zoo.ops.raycast import DEFAULT_ALBEDO
from zoo.ops.splatting import render_gaussians
from zoo.structures.cameras import Cameras

THICKNESS = 0.1  # the disc's thickness as a fraction of its radius


def estimate_normals(points: Tensor, k: int = 16) -> tuple[Tensor, Tensor]:
    """Unoriented unit normals (N, 3) by PCA of each point's ``k`` nearest neighbours, and
    each point's distance to its nearest other point (N,)."""
    p = points.detach().double().cpu().numpy()
    k = max(2, min(int(k), len(p)))
    dist, idx = cKDTree(p).query(p, k=k)  # (N, k), the point itself first
    nbrs = p[idx] - p[idx].mean(axis=1, keepdims=True)  # (N, k, 3)
    _, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", nbrs, nbrs))  # ascending eigenvalues
    normals = torch.from_numpy(vecs[:, :, 0]).float()  # smallest: the normal
    return normals, torch.from_numpy(dist[:, 1]).float()


def _quats_z_to(normals: Tensor) -> Tensor:
    """(N, 4) unit quaternions (w, x, y, z) rotating +z onto each unit normal (N, 3)."""
    n = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    n = torch.where(n[:, 2:3] < 0, -n, n)  # unoriented: keep away from the -z singularity
    q = torch.stack([1.0 + n[:, 2], -n[:, 1], n[:, 0], torch.zeros_like(n[:, 0])], dim=-1)
    return q / q.norm(dim=-1, keepdim=True)


def render_points(
    points: Tensor,
    cameras: Cameras,
    radius: float | None = None,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    ambient: float = 0.3,
    k: int = 16,
) -> dict[str, Tensor]:
    """Render a point cloud (N, 3) as shaded discs from every camera.

    Args:
        radius: disc radius in world units (default: the mean nearest-neighbour distance).
    Returns:
        ``rgb`` (B, H, W, 3) in [0, 1], ``mask`` (B, H, W) bool (opacity > 0.5) and
        ``opacity`` (B, H, W), on the CPU.
    """
    pts = points.detach().float().cpu()
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 3:
        raise ValueError(f"points must be (N >= 3, 3), got {tuple(pts.shape)}")
    normals, spacing = estimate_normals(pts, k)
    r = float(spacing.mean()) if radius is None else float(radius)
    scales = torch.tensor([r, r, r * THICKNESS]).expand(len(pts), 3).contiguous()
    quats = _quats_z_to(normals)
    bg = torch.as_tensor(background, dtype=torch.float32)
    rgbs, opacities = [], []
    cams = cameras.to("cpu")
    for i in range(len(cams)):
        cam = cams[i : i + 1]
        eye = cam.c2w[0, :3, 3]
        view = torch.nn.functional.normalize(pts - eye, dim=-1)  # (N, 3)
        shade = ambient + (1.0 - ambient) * (normals * view).sum(-1).abs()  # (N,)
        colors = (DEFAULT_ALBEDO * shade)[:, None].expand(-1, 3).contiguous()
        out, _ = render_gaussians(pts, scales, quats, torch.ones(len(pts)), colors, cam, bg)
        rgbs.append(out["rgb"].clamp(0, 1))
        opacities.append(out["opacity"])
    opacity = torch.stack(opacities)  # (B, H, W)
    return {"rgb": torch.stack(rgbs), "opacity": opacity, "mask": opacity > 0.5}


__all__ = ["estimate_normals", "render_points"]
