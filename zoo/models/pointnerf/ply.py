"""The neural point cloud as a PLY, and point PLYs to start from.

Written: binary little-endian, one ``vertex`` element with ``x y z`` (float), ``red green blue``
(uchar, the field's colour at each point), ``confidence`` (float, gamma in [0, 1]) and
``f_0 .. f_{C-1}`` (float, the point features), so that any point-cloud viewer shows the
points in colour and the features travel with them.

Read (``model.init_ply``): any PLY point cloud that trimesh reads (the vertices; faces, colours
and extra properties are ignored), refused with a :class:`~zoo.data.io.DataError` naming the
file when it has no points or non-finite ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from zoo.data.formats.nerfstudio import read_point_ply
from zoo.data.io import DataError, atomic_write_bytes


def write_neural_points_ply(
    path: str | os.PathLike[str],
    positions: np.ndarray,
    colors: np.ndarray,
    confidence: np.ndarray,
    features: np.ndarray,
) -> Path:
    """Write positions (N, 3), colours (N, 3) in [0, 1], confidence (N,) and features (N, C)
    atomically (a temp file renamed over ``path``)."""
    n, c = features.shape
    if positions.shape != (n, 3) or colors.shape != (n, 3) or confidence.shape != (n,):
        raise ValueError(
            f"need positions (N, 3), colors (N, 3), confidence (N,) for {n} points, got "
            f"{positions.shape}, {colors.shape}, {confidence.shape}"
        )
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    fields += [("red", "u1"), ("green", "u1"), ("blue", "u1"), ("confidence", "<f4")]
    fields += [(f"f_{i}", "<f4") for i in range(c)]
    data = np.empty(n, dtype=np.dtype(fields))
    for i, axis in enumerate("xyz"):
        data[axis] = positions[:, i]
    rgb = np.clip(np.round(colors * 255.0), 0, 255).astype(np.uint8)
    for i, name in enumerate(("red", "green", "blue")):
        data[name] = rgb[:, i]
    data["confidence"] = confidence
    for i in range(c):
        data[f"f_{i}"] = features[:, i]
    types = {"<f4": "float", "u1": "uchar"}
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {n}\n"
        + "".join(f"property {types[t]} {name}\n" for name, t in fields)
        + "end_header\n"
    )
    return atomic_write_bytes(path, header.encode("ascii") + data.tobytes())


def read_init_points(path: str | os.PathLike[str]) -> np.ndarray:
    """Positions (N, 3) float32 of a point PLY, validated (at least one point, all finite)."""
    path = Path(path)
    points, _ = read_point_ply(path, "init_ply")
    if points.ndim != 2 or points.shape[-1] != 3 or len(points) == 0:
        raise DataError(path, "vertex", f"no points to start from (got shape {points.shape})")
    if not np.isfinite(points).all():
        bad = int((~np.isfinite(points)).any(axis=1).sum())
        raise DataError(path, "x y z", f"{bad} of {len(points)} points are NaN or infinite")
    return points.astype(np.float32)


__all__ = ["read_init_points", "write_neural_points_ply"]
