"""Point clouds held as arrays, one ``.npz`` file per category and split, and voxel arrays.

Layout (e.g. ModelNet10 sampled to 1024 points per shape, the official train/test split):

    <root>/<category>_<split>.npz    split in {train, val, test}; train required, val optional
        points     float (N, K, 3)   K surface points of each of the N shapes, any units
        shape_ids  (N,) str          optional; default "<category>_<row:04d>"

A voxel array file holds ``voxels`` (N, R, R, R) occupancy, bool or 0/1 numbers (a binvox
dataset stacked, e.g. ``-d 32 -cb``). Every reader validates and raises
:class:`~zoo.data.io.DataError` naming the file and the key.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np

from zoo.data.formats.shapenet import check_root
from zoo.data.io import DataError

_NAME = re.compile(r"^(?P<category>.+)_(?P<split>train|val|test)\.npz$")


def arrays_path(root: str | os.PathLike[str], category: str, split: str) -> Path:
    """``<root>/<category>_<split>.npz``."""
    return Path(root) / f"{category}_{split}.npz"


def list_array_categories(root: str | os.PathLike[str]) -> list[str]:
    """Categories with a ``<category>_train.npz`` under ``root``, sorted."""
    root = check_root(root)
    found = (_NAME.match(p.name) for p in root.glob("*_train.npz"))
    return sorted(m["category"] for m in found if m)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(path, "file", "file does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(path, "file", f"not a readable .npz archive ({e})") from e


def load_point_arrays(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """The clouds (N, K, 3) float32 and shape ids (N) of one ``<category>_<split>.npz``.

    Raises:
        DataError: missing/unreadable file; ``points`` missing, not float, not (N, K, 3) with
            N, K >= 1, holding NaN/inf or a shape whose points all coincide; ``shape_ids`` not
            1-D, of another length than ``points`` or with repeated ids.
    """
    path = Path(path)
    data = _load_npz(path)
    if "points" not in data:
        raise DataError(path, "points", f"missing array (keys: {sorted(data)})")
    pts = data["points"]
    if pts.dtype.kind != "f":
        raise DataError(path, "points", f"expected (N, K, 3) float array, got dtype {pts.dtype}")
    if pts.ndim != 3 or pts.shape[2] != 3 or pts.shape[0] == 0 or pts.shape[1] == 0:
        raise DataError(path, "points", f"expected (N, K, 3) float array, got {pts.shape}")
    finite = np.isfinite(pts).all(axis=(1, 2))
    if not finite.all():
        raise DataError(path, "points", f"shape {int(np.argmin(finite))} has NaN or inf values")
    flat = np.ptp(pts, axis=1).max(axis=1) == 0
    if flat.any():
        raise DataError(path, "points", f"shape {int(np.argmax(flat))} has all points equal")
    category = _NAME.match(path.name)
    stem = category["category"] if category else path.stem
    ids = [f"{stem}_{i:04d}" for i in range(len(pts))]
    if "shape_ids" in data:
        raw = data["shape_ids"]
        if raw.ndim != 1 or len(raw) != len(pts):
            raise DataError(
                path, "shape_ids", f"expected ({len(pts)},) to match points, got {raw.shape}"
            )
        ids = [str(s) for s in raw]
        if len(set(ids)) != len(ids):
            raise DataError(path, "shape_ids", "ids are not unique")
    return np.ascontiguousarray(pts, dtype=np.float32), ids


def load_voxel_arrays(path: str | os.PathLike[str], key: str = "voxels") -> np.ndarray:
    """The grids (N, R, R, R) bool of a voxel array ``.npz`` (or ``.npy``) file.

    Raises:
        DataError: missing/unreadable file; ``key`` missing, not 4-D with equal sides, empty,
            or holding values other than 0 and 1.
    """
    path = Path(path)
    if path.suffix == ".npy" and path.is_file():
        try:
            vox = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(path, "file", f"not a readable .npy array ({e})") from e
    else:
        data = _load_npz(path)
        if key not in data:
            raise DataError(path, key, f"missing array (keys: {sorted(data)})")
        vox = data[key]
    want = "(N, R, R, R) bool or 0/1 array"
    if vox.ndim != 4 or len(vox) == 0 or len(set(vox.shape[1:])) != 1 or vox.shape[1] == 0:
        raise DataError(path, key, f"expected {want}, got {vox.shape}")
    if vox.dtype != np.bool_:
        if vox.dtype.kind not in "biuf" or not np.isin(vox, (0, 1)).all():
            raise DataError(path, key, f"expected {want}, got {vox.dtype} values not in {{0, 1}}")
        vox = vox != 0
    return np.ascontiguousarray(vox)
