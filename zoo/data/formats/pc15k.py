"""PointFlow's ``ShapeNetCore.v2.PC15k`` point clouds (Yang et al., ICCV 2019).

Layout: ``<root>/<synset>/{train,val,test}/<model_id>.npy``, each a ``(15000, 3)`` float array
of points sampled uniformly on a ShapeNetCore v2 mesh. PointFlow's ``Uniform15KPC``
(stevenygd/PointFlow ``datasets.py``) uses the **first 10,000 points of every cloud for
training** (``tr_sample_size <= 10000``, random subsets of them each time) and the remaining
5,000 as the held-out points of the same shape (``te_sample_size <= 5000``); it optionally
standardises the clouds (per dataset or per shape), which we leave to the models.

An optional sibling tree ``<root>_normals/<synset>/<split>/<model_id>.npy`` (our addition) holds
the unit normals of the same points in the same order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from zoo.data.formats.shapenet import SPLITS, check_root, name_of, synset_of
from zoo.data.io import DataError

PC15K_DIR = "ShapeNetCore.v2.PC15k"
NORMALS_SUFFIX = "_normals"
NUM_POINTS = 15000
TRAIN_POINTS = 10000  # PointFlow: cloud[:10000] for training, cloud[10000:] held out


def cloud_path(root: str | os.PathLike[str], synset: str, split: str, model_id: str) -> Path:
    """``<root>/<synset>/<split>/<model_id>.npy``."""
    return Path(root) / synset / split / f"{model_id}.npy"


def normals_root(root: str | os.PathLike[str]) -> Path:
    """The sibling normals tree of a PC15k root (``<root>_normals``)."""
    root = Path(root)
    return root.with_name(root.name + NORMALS_SUFFIX)


def load_cloud(
    path: str | os.PathLike[str], n_points: int | None = NUM_POINTS, field: str = "points"
) -> np.ndarray:
    """Load one cloud as float32 ``(n_points, 3)``.

    Args:
        n_points: required number of points (PointFlow asserts 15000); None accepts any N >= 1.
    Raises:
        DataError: missing/unreadable file, non-float dtype, wrong shape, NaN values.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "file does not exist")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(path, "file", f"not a readable .npy array ({e})") from e
    want = f"({n_points if n_points is not None else 'N'}, 3) float array"
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
        raise DataError(path, field, f"expected {want}, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0:
        raise DataError(path, field, f"expected {want}, got {arr.shape}")
    if n_points is not None and len(arr) != n_points:
        raise DataError(path, field, f"expected {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(path, field, "contains NaN or infinite values")
    return np.ascontiguousarray(arr, dtype=np.float32)


def list_clouds(root: str | os.PathLike[str], category: str, split: str) -> list[tuple[str, Path]]:
    """``(model_id, path)`` of every cloud of one category and split, sorted by id.

    A missing split folder gives an empty list (PC15k has no ``val`` for some categories);
    a missing root or category folder raises :class:`DataError`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = check_root(root)
    synset = synset_of(category)
    cat_dir = root / synset
    if not cat_dir.is_dir():
        raise DataError(
            cat_dir, "category", f"no folder for category {name_of(synset)!r} ({synset})"
        )
    split_dir = cat_dir / split
    if not split_dir.is_dir():
        return []
    return sorted((p.stem, p) for p in split_dir.glob("*.npy") if p.is_file())


def train_test_points(cloud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PointFlow's split of one cloud: ``cloud[:10000]`` (train), ``cloud[10000:]`` (held out)."""
    return cloud[:TRAIN_POINTS], cloud[TRAIN_POINTS:]
