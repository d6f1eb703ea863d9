"""A mesh of a splatted scene by TSDF fusion of rendered depth (as 2DGS does for its meshes:
Huang et al., "2D Gaussian Splatting for Geometrically Accurate Radiance Fields", SIGGRAPH
2024, ``render.py``: open3d TSDF integration of the rendered depth of every view).

2DGS uses open3d's ``ScalableTSDFVolume``; with the open3d pinned here (0.20) that volume
extracts nothing on CPU even for a single flat depth map, so this uses ``UniformTSDFVolume``
over the scene box (a cube of its largest side), which gives the same surface inside the box.

Depth maps are the expected z-depth of the opaque pixels (opacity >= 0.5; the rest are left
out). Views: three rings of cameras (elevations -20, 20 and 60 degrees) around the centre of
the scene box, far enough to see all of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import trimesh
from torch import Tensor

from zoo._open3d import import_open3d
from zoo.structures.cameras import Cameras, look_at

RenderFn = Callable[[Cameras], dict[str, Tensor]]


def fusion_cameras(
    bbox_min: list[float], bbox_max: list[float], size: int, per_ring: int = 16
) -> Cameras:
    """Cameras on three rings around the box centre (z up), 2.5 half-diagonals away."""
    lo, hi = torch.tensor(bbox_min), torch.tensor(bbox_max)
    centre, half_diag = (lo + hi) / 2, float((hi - lo).norm() / 2)
    radius = 2.5 * half_diag
    eyes = []
    for el in (-20.0, 20.0, 60.0):
        az = torch.arange(per_ring) * (2 * math.pi / per_ring) + math.radians(el)
        e = math.radians(el)
        ring = torch.stack(
            [
                torch.cos(az) * math.cos(e),
                torch.sin(az) * math.cos(e),
                torch.full_like(az, math.sin(e)),
            ],
            dim=-1,
        )
        eyes.append(centre + radius * ring)
    eye = torch.cat(eyes)
    c2w = look_at(eye, centre.expand_as(eye))
    fov = 2 * math.asin(min(1.0, half_diag / radius)) * 1.05
    return Cameras.from_fov(c2w, size, size, fov)


def tsdf_mesh(
    render: RenderFn,
    cameras: Cameras,
    bbox_min: list[float],
    bbox_max: list[float],
    resolution: int,
    depth_trunc: float,
    batch: int = 8,
) -> trimesh.Trimesh:
    """Fuse ``render(cameras)`` (``rgb`` (B, H, W, 3), ``depth`` (B, H, W) z-depth, 0 where
    nothing is seen) into a ``resolution``^3 TSDF over the cube of the box's largest side
    (truncation 4 voxels) and extract its zero level set as a coloured mesh (empty when
    nothing was seen)."""
    o3d = import_open3d()
    side = max(b - a for a, b in zip(bbox_min, bbox_max, strict=True))
    volume = o3d.pipelines.integration.UniformTSDFVolume(
        length=side,
        resolution=int(resolution),
        sdf_trunc=4.0 * side / resolution,
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.RGB8,
        origin=np.asarray(bbox_min, dtype=np.float64).reshape(3, 1),
    )
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))  # GL -> CV
    for start in range(0, len(cameras), batch):
        cams = cameras[start : start + batch]
        maps = render(cams)
        for i in range(len(cams)):
            rgb = (maps["rgb"][i].clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
            depth = maps["depth"][i].float().cpu().numpy()
            rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
                o3d.geometry.Image(np.ascontiguousarray(rgb)),
                o3d.geometry.Image(np.ascontiguousarray(depth)),
                depth_scale=1.0,
                depth_trunc=depth_trunc,
                convert_rgb_to_intensity=False,
            )
            # open3d puts pixel centres at integer coordinates, zoo at +0.5: shift the
            # principal point by half a pixel.
            intr = o3d.camera.PinholeCameraIntrinsic(
                cams.width,
                cams.height,
                float(cams.fx[i]),
                float(cams.fy[i]),
                float(cams.cx[i]) - 0.5,
                float(cams.cy[i]) - 0.5,
            )
            w2c = torch.linalg.inv(cams.c2w[i].double().cpu() @ flip).numpy()
            volume.integrate(rgbd, intr, w2c)
    mesh = volume.extract_triangle_mesh()
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    colors = np.asarray(mesh.vertex_colors)
    if len(faces) == 0:
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    return trimesh.Trimesh(
        vertices,
        faces,
        vertex_colors=(colors * 255).astype(np.uint8) if len(colors) else None,
        process=False,
    )


__all__ = ["fusion_cameras", "tsdf_mesh"]
