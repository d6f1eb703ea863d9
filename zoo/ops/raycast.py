"""Render triangle meshes by ray casting (Open3D / Embree): colour, depth, normals, mask.

This is the mesh -> images conversion of :class:`zoo.representation.Representation`, so that
mesh, voxel, point and SDF models can be compared with radiance fields on the same views.

Shading (no shadows, no interreflection): a headlight, i.e. a directional light coming from the
camera along each ray, Lambertian with an ambient term:
``rgb = albedo * (ambient + (1 - ambient) * |n . d|)`` with ``n`` the unit face normal and ``d``
the unit ray direction (the absolute value lights back faces too, so open or inconsistently
oriented meshes still render). The albedo is the barycentric interpolation of the mesh's vertex
colours, or its face colour, or light grey 0.8 when it has no colours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import trimesh
from torch import Tensor

from zoo.ops.mesh_queries import raycasting_scene
from zoo.ops.rays import generate_rays
from zoo.structures.cameras import Cameras

DEFAULT_ALBEDO = 0.8


def _colours(mesh: trimesh.Trimesh) -> tuple[str, np.ndarray | None]:
    """('vertex', (V, 3)) / ('face', (F, 3)) colours in [0, 1] or ('none', None)."""
    visual = getattr(mesh, "visual", None)
    kind = getattr(visual, "kind", None)
    if kind == "vertex":
        return "vertex", np.asarray(visual.vertex_colors, dtype=np.float32)[:, :3] / 255.0
    if kind == "face":
        return "face", np.asarray(visual.face_colors, dtype=np.float32)[:, :3] / 255.0
    return "none", None


def render_mesh(
    mesh: trimesh.Trimesh,
    cameras: Cameras,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    ambient: float = 0.3,
    chunk: int = 1 << 20,
) -> dict[str, Tensor]:
    """Ray-cast ``mesh`` from every pixel centre of every camera.

    Args:
        mesh: triangle mesh in world coordinates (may be empty: all background).
        cameras: B cameras of size H x W.
        background: RGB of pixels whose ray misses the mesh.
        ambient: ambient fraction of the headlight shading, in [0, 1].
        chunk: rays per Embree call.
    Returns:
        Dict of tensors on the cameras' device:
        ``rgb`` (B, H, W, 3) float32 in [0, 1]; ``depth`` (B, H, W) z-depth along the camera
        axis (the ray parameter t for directions with camera-frame z = -1, see
        :func:`zoo.ops.rays.generate_rays`), 0 on background; ``normal`` (B, H, W, 3) unit face
        normals in world space as oriented by the mesh's winding (outward for an outward mesh),
        0 on background; ``mask`` (B, H, W) bool, True where a ray hits.
    """
    if not 0.0 <= ambient <= 1.0:
        raise ValueError(f"ambient must be in [0, 1], got {ambient}")
    bg = torch.as_tensor(background, dtype=torch.float32)
    if bg.shape != (3,):
        raise ValueError(f"background must have 3 values, got shape {tuple(bg.shape)}")
    b, h, w = len(cameras), cameras.height, cameras.width
    origins, dirs = generate_rays(cameras.to("cpu"))  # (B, H, W, 3) each, camera z = -1
    origins = origins.reshape(-1, 3).float()
    dirs = dirs.reshape(-1, 3).float()
    n_rays = len(dirs)

    depth = torch.zeros(n_rays)
    normal = torch.zeros(n_rays, 3)
    rgb = bg.expand(n_rays, 3).clone()
    mask = torch.zeros(n_rays, dtype=torch.bool)
    if len(mesh.faces) > 0:
        scene = raycasting_scene(mesh)
        vertices = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float64)
        faces = torch.as_tensor(np.asarray(mesh.faces, dtype=np.int64))
        tri = vertices[faces]  # (F, 3, 3)
        face_n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        face_n = torch.nn.functional.normalize(face_n, dim=-1).float()  # (F, 3)
        kind, colours = _colours(mesh)
        colours = None if colours is None else torch.from_numpy(colours)
        rays = torch.cat([origins, dirs], dim=-1).numpy()  # (R, 6) float32
        for s in range(0, n_rays, chunk):
            hit = scene.cast_rays(np.ascontiguousarray(rays[s : s + chunk]))
            t = torch.from_numpy(hit["t_hit"].numpy())  # (C,)
            ok = torch.isfinite(t)
            idx = torch.nonzero(ok)[:, 0] + s  # (K,) global ray index
            prim = torch.from_numpy(hit["primitive_ids"].numpy().astype(np.int64))[ok]  # (K,)
            n = face_n[prim]  # (K, 3)
            d = torch.nn.functional.normalize(dirs[idx], dim=-1)
            if kind == "vertex":
                uv = torch.from_numpy(hit["primitive_uvs"].numpy())[ok]  # (K, 2)
                # Embree barycentrics: p = (1 - u - v) v0 + u v1 + v v2.
                bary = torch.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], dim=-1)
                albedo = (bary[:, :, None] * colours[faces[prim]]).sum(dim=1)  # (K, 3)
            elif kind == "face":
                albedo = colours[prim]
            else:
                albedo = torch.full((len(prim), 3), DEFAULT_ALBEDO)
            shade = ambient + (1.0 - ambient) * (n * d).sum(-1).abs()  # (K,)
            rgb[idx] = (albedo * shade[:, None]).clamp(0.0, 1.0)
            depth[idx] = t[ok]
            normal[idx] = n
            mask[idx] = True
    dev = cameras.c2w.device
    return {
        "rgb": rgb.reshape(b, h, w, 3).to(dev),
        "depth": depth.reshape(b, h, w).to(dev),
        "normal": normal.reshape(b, h, w, 3).to(dev),
        "mask": mask.reshape(b, h, w).to(dev),
    }
