"""Sparse scene points from a file, by name: a COLMAP ``points3D.bin`` / ``points3D.txt``, a
PLY point cloud (``zoo.process``'s ``sparse_points.ply``, nerfstudio's ``ply_file_path``) or a
ScanNet export's depth maps back-projected (``format: scannet_depth``), mapped into a loader's
normalised frame. The Gaussian model starts from them (3DGS
initialises from the COLMAP points, Kerbl et al. 2023, Sec. 5.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.formats.colmap import read_points3d
from zoo.data.formats.nerfstudio import read_point_ply
from zoo.data.formats.scannet import scannet_depth_points
from zoo.ops.camera_math import transform_points


def points_source(path: Path, transform: np.ndarray, scale: float, **reader: Any) -> dict[str, Any]:
    """JSON-serialisable description of a points file (or folder) and the frame change to
    apply; ``reader``: how to read a folder (``format="scannet_depth"`` with
    :func:`~zoo.data.formats.scannet.scannet_depth_points`'s arguments)."""
    out = {"path": str(path), "transform": np.asarray(transform).tolist(), "scale": float(scale)}
    return {**out, **reader}


def read_scene_points(source: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (M, 3) and colours (M, 3) in [0, 1] (or None) of a :func:`points_source`, in the
    normalised frame."""
    path = Path(source["path"])
    if source.get("format") == "scannet_depth":
        keys = ("frame_step", "point_stride", "max_depth")
        points = scannet_depth_points(path, **{k: source[k] for k in keys if k in source})
        colors = None
    elif path.stem == "points3D" and path.suffix in (".bin", ".txt"):
        points, colors = read_points3d(path)
    else:
        points, colors = read_point_ply(path, "init_points")
    transform = np.asarray(source.get("transform", np.eye(4)[:3]), dtype=np.float64)
    return transform_points(points, transform, float(source.get("scale", 1.0))), colors
