"""A COLMAP sparse model -> nerfstudio's ``transforms.json`` and a PLY of the sparse points,
normalised as nerfstudio normalises captures (:func:`zoo.ops.camera_math.orient_and_scale`:
centred cameras, mean up vector -> +z, largest camera coordinate 1).

The change of frame is stored in the json: ``applied_transform`` (3x4 ``[R | t]``) and
``applied_scale`` ``s``, with ``x_written = s (R x_colmap + t)``; so a point or pose of the
written scene maps back to COLMAP's frame by ``x_colmap = R^T (x_written / s - t)``. Written
poses are OpenGL camera-to-world (COLMAP's OpenCV axes flipped), as nerfstudio writes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from zoo.data.formats.colmap import read_cameras, read_images, read_points3d
from zoo.data.io import atomic_write_text
from zoo.ops.camera_math import (
    opencv_to_opengl,
    orient_and_scale,
    qvec_to_rotmat,
    transform_points,
    world_to_camera_to_c2w,
)


def _model_file(folder: Path, stem: str) -> Path:
    return folder / f"{stem}.bin" if (folder / f"{stem}.bin").is_file() else folder / f"{stem}.txt"


def export_transforms(model_dir: Path, out: Path, image_prefix: str = "images") -> dict[str, Any]:
    """Write ``out/transforms.json`` and ``out/sparse_points.ply`` from the COLMAP model in
    ``model_dir``. Returns a summary (registered names, number of points, transform)."""
    cams = read_cameras(_model_file(model_dir, "cameras"))
    entries = sorted(read_images(_model_file(model_dir, "images")).values(), key=lambda e: e.name)
    points, colors = read_points3d(_model_file(model_dir, "points3D"))
    c2w = np.stack(
        [opencv_to_opengl(world_to_camera_to_c2w(qvec_to_rotmat(e.qvec), e.tvec)) for e in entries]
    )
    c2w_n, transform, scale = orient_and_scale(c2w)
    frames = []
    for e, m in zip(entries, c2w_n, strict=True):
        cam = cams[e.camera_id]
        fx, fy, cx, cy, k = cam.intrinsics()
        frames.append(
            {
                "file_path": f"{image_prefix}/{e.name}",
                "transform_matrix": m.tolist(),
                "colmap_im_id": e.id,
                "fl_x": fx,
                "fl_y": fy,
                "cx": cx,
                "cy": cy,
                "w": cam.width,
                "h": cam.height,
                "k1": float(k[0]),
                "k2": float(k[1]),
                "p1": float(k[2]),
                "p2": float(k[3]),
            }
        )
    pts = transform_points(points, transform, scale) if len(points) else points
    cloud = trimesh.PointCloud(
        pts, colors=(np.clip(colors, 0, 1) * 255).astype(np.uint8) if len(pts) else None
    )
    ply = out / "sparse_points.ply"
    ply.write_bytes(cloud.export(file_type="ply"))
    meta = {
        "camera_model": "OPENCV",
        "frames": frames,
        "ply_file_path": ply.name,
        "applied_transform": transform.tolist(),
        "applied_scale": scale,
    }
    atomic_write_text(out / "transforms.json", json.dumps(meta, indent=2))
    return {
        "registered": [e.name for e in entries],
        "num_points": int(len(pts)),
        "applied_transform": transform.tolist(),
        "applied_scale": scale,
    }
