"""The splat PLY that 3DGS viewers read (SIBR, SuperSplat, antimatter15/splat), both ways.

Layout of the reference (graphdeco-inria/gaussian-splatting, ``GaussianModel.save_ply``):
binary little-endian, one ``vertex`` element of float32 properties in the order ``x y z nx ny
nz f_dc_0..2 f_rest_0..44 opacity scale_0..2 rot_0..3``; values before activation (logit
opacity, log scale, quaternion w first, unnormalised); ``f_rest`` channel-major (all 15
coefficients of red, then green, then blue); normals are written as zeros.

Reading accepts the reference layout with any SH degree 0-3 (``3 ((d + 1)^2 - 1)`` f_rest
values, zero-padded to degree 3), any numeric property types and extra properties; a PLY with
only ``x y z`` (and optionally ``red green blue``) is a point cloud to initialise from.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from zoo.data.io import DataError, atomic_write

SH_REST = 15  # degree-3 coefficients beyond the DC term, per channel
SPLAT_FIELDS = (
    ["x", "y", "z", "nx", "ny", "nz"]
    + [f"f_dc_{i}" for i in range(3)]
    + [f"f_rest_{i}" for i in range(3 * SH_REST)]
    + ["opacity"]
    + [f"scale_{i}" for i in range(3)]
    + [f"rot_{i}" for i in range(4)]
)
REQUIRED = (
    ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    + [f"scale_{i}" for i in range(3)]
    + [f"rot_{i}" for i in range(4)]
)
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


@dataclass
class SplatArrays:
    """Pre-activation Gaussian parameters as float32 numpy arrays (N = number of Gaussians).

    ``sh_rest`` is (N, 15, 3) (coefficient-major, as the model holds it); for a point cloud
    only ``means`` (and ``colors`` in [0, 1], if the PLY has them) are set.
    """

    means: np.ndarray  # (N, 3)
    sh_dc: np.ndarray | None = None  # (N, 3)
    sh_rest: np.ndarray | None = None  # (N, 15, 3)
    opacity_logits: np.ndarray | None = None  # (N,)
    log_scales: np.ndarray | None = None  # (N, 3)
    quats: np.ndarray | None = None  # (N, 4), w first
    colors: np.ndarray | None = None  # (N, 3), point clouds only


def write_splat_ply(path: str | os.PathLike[str], g: SplatArrays) -> Path:
    """Write the reference splat PLY atomically (a temp file renamed over ``path``)."""
    n = len(g.means)
    if g.sh_dc is None or g.sh_rest is None or g.opacity_logits is None:
        raise ValueError("write_splat_ply needs all Gaussian parameters")
    rest = np.asarray(g.sh_rest, np.float32).reshape(n, SH_REST, 3).transpose(0, 2, 1)
    cols = [
        np.asarray(g.means, np.float32),
        np.zeros((n, 3), np.float32),
        np.asarray(g.sh_dc, np.float32).reshape(n, 3),
        rest.reshape(n, 3 * SH_REST),  # channel-major
        np.asarray(g.opacity_logits, np.float32).reshape(n, 1),
        np.asarray(g.log_scales, np.float32).reshape(n, 3),
        np.asarray(g.quats, np.float32).reshape(n, 4),
    ]
    data = np.ascontiguousarray(np.concatenate(cols, axis=1), dtype="<f4")  # (N, 62)
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {n}\n"
        + "".join(f"property float {name}\n" for name in SPLAT_FIELDS)
        + "end_header\n"
    )

    def write(f: BinaryIO) -> None:
        f.write(header.encode("ascii"))
        f.write(data.tobytes())

    return atomic_write(path, write)


def _read_vertices(path: Path) -> np.ndarray:
    """The ``vertex`` element of a binary little-endian PLY as a structured array."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(path, "file", f"cannot read: {e.strerror or e}") from None
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise DataError(path, "header", "not a PLY file (no 'ply' ... 'end_header' header)")
    body_start = raw.index(b"\n", end) + 1
    lines = raw[:end].decode("ascii", errors="replace").splitlines()
    fmt = next((ln.split()[1] for ln in lines if ln.startswith("format")), None)
    if fmt != "binary_little_endian":
        raise DataError(path, "format", f"expected binary_little_endian, got {fmt!r}")
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for ln in lines:
        parts = ln.split()
        if parts[:1] == ["element"] and len(parts) == 3:
            elements.append((parts[1], int(parts[2]), []))
        elif parts[:1] == ["property"] and elements:
            if parts[1] == "list":
                raise DataError(path, ln, "list properties are not supported before vertices")
            if parts[1] not in _PLY_TYPES or len(parts) != 3:
                raise DataError(path, ln, "unknown property type")
            elements[-1][2].append((parts[2], "<" + _PLY_TYPES[parts[1]]))
    if not elements or elements[0][0] != "vertex":
        raise DataError(path, "element vertex", "the first element must be 'vertex'")
    _, n, props = elements[0]
    dtype = np.dtype(props)
    if len(raw) - body_start < n * dtype.itemsize:
        raise DataError(
            path,
            "element vertex",
            f"truncated: {n} vertices of {dtype.itemsize} bytes need "
            f"{n * dtype.itemsize} bytes, the file has {len(raw) - body_start}",
        )
    return np.frombuffer(raw, dtype=dtype, count=n, offset=body_start)


def read_splat_ply(path: str | os.PathLike[str]) -> SplatArrays:
    """Read a splat PLY (or a point cloud PLY, see the module docstring).

    Raises:
        DataError: naming the file and the missing / malformed property.
    """
    path = Path(path)
    v = _read_vertices(path)
    names = set(v.dtype.names or ())

    def col(*keys: str) -> np.ndarray:
        return np.stack([v[k].astype(np.float32) for k in keys], axis=-1)

    for k in ("x", "y", "z"):
        if k not in names:
            raise DataError(path, k, "missing: a splat or point PLY needs x, y, z")
    means = col("x", "y", "z")
    if not np.isfinite(means).all():
        raise DataError(path, "x", "non-finite positions")
    is_splat = any(k in names for k in REQUIRED[3:])
    if not is_splat:
        colors = None
        if {"red", "green", "blue"} <= names:
            colors = col("red", "green", "blue")
            if v["red"].dtype.kind in "iu":
                colors = colors / 255.0
        return SplatArrays(means=means, colors=colors)
    for k in REQUIRED:
        if k not in names:
            raise DataError(path, k, "missing: required by the splat PLY layout")
    rest_names = sorted(
        (k for k in names if re.fullmatch(r"f_rest_\d+", k)), key=lambda k: int(k[7:])
    )
    n_rest = len(rest_names)
    if n_rest % 3 or n_rest // 3 not in (0, 3, 8, 15):
        raise DataError(path, "f_rest", f"expected 0, 9, 24 or 45 f_rest values, got {n_rest}")
    per = n_rest // 3
    sh_rest = np.zeros((len(v), SH_REST, 3), np.float32)
    if per:
        rest = col(*rest_names).reshape(len(v), 3, per)  # channel-major in the file
        sh_rest[:, :per] = rest.transpose(0, 2, 1)
    return SplatArrays(
        means=means,
        sh_dc=col("f_dc_0", "f_dc_1", "f_dc_2"),
        sh_rest=sh_rest,
        opacity_logits=v["opacity"].astype(np.float32),
        log_scales=col("scale_0", "scale_1", "scale_2"),
        quats=col("rot_0", "rot_1", "rot_2", "rot_3"),
    )


def read_ply_header(path: str | os.PathLike[str]) -> str:
    """The ASCII header of a PLY file (up to and including ``end_header``)."""
    raw = Path(path).read_bytes()
    return raw[: raw.find(b"end_header") + len("end_header")].decode("ascii")


__all__ = ["SPLAT_FIELDS", "SplatArrays", "read_ply_header", "read_splat_ply", "write_splat_ply"]
