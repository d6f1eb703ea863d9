"""Voxel grids stored in MATLAB ``.mat`` files (the 3D-GAN / 3D ShapeNets formats).

Two public sources use this format:

- 3D-GAN (Wu et al. 2016, zck119/3dgan-release): ``main.lua`` writes its generated shapes as a
  variable ``voxels`` of shape (N, 1, 64, 64, 64) with occupancy probabilities in [0, 1] (next
  to ``inputs``, the (N, 200) latent codes); its ``visualize.py`` also accepts (N, X, Y, Z) and
  a single (X, Y, Z) grid.
- 3D ShapeNets (Wu et al., CVPR 2015) ``volumetric_data``: one shape per file, a 30^3 uint8
  grid in the variable ``instance``, usually zero-padded to 32^3 for a 3D-GAN (``pad_to=32``).

``scipy.io.loadmat`` keeps MATLAB's index order, so ``grid[i, j, k]`` is MATLAB's
``grid(i+1, j+1, k+1)``; no axis is permuted here. MATLAB v7.3 files are HDF5 and not readable
by scipy: they raise a :class:`~zoo.data.io.DataError` saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from zoo.data.io import DataError

#: Variables tried, in order, when no key is given.
MAT_VOXEL_KEYS = ("voxels", "instance", "voxel")


def _load(path: Path) -> dict[str, object]:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    if not path.is_file():
        raise DataError(path, "file", "file does not exist")
    try:
        return loadmat(str(path))
    except NotImplementedError as e:  # scipy's message for v7.3 (HDF5) files
        raise DataError(
            path, "file", f"MATLAB v7.3 (HDF5) files are not supported; re-save with -v7 ({e})"
        ) from e
    except (MatReadError, ValueError, TypeError, OSError) as e:
        raise DataError(path, "file", f"not a readable MATLAB .mat file ({e})") from e


def read_mat_voxels(
    path: str | os.PathLike[str], key: str | None = None, pad_to: int | None = None
) -> np.ndarray:
    """All voxel grids of a ``.mat`` file.

    Args:
        path: the ``.mat`` file.
        key: variable name; by default the first of :data:`MAT_VOXEL_KEYS` present.
        pad_to: zero-pad every axis symmetrically to this size (e.g. 30 -> 32 for 3D ShapeNets
            grids); a grid larger than ``pad_to`` is an error.
    Returns:
        (N, X, Y, Z) float32 occupancy in [0, 1] (N = 1 for a single-grid file).
    Raises:
        DataError: missing/unreadable file, missing variable (the message lists the file's
            variables), wrong shape, non-numeric, non-finite or out-of-[0, 1] values.
    """
    path = Path(path)
    data = _load(path)
    names = sorted(k for k in data if not k.startswith("__"))
    if key is None:
        found = [k for k in MAT_VOXEL_KEYS if k in data]
        if not found:
            raise DataError(
                path, "/".join(MAT_VOXEL_KEYS), f"no voxel variable; the file has {names}"
            )
        key = found[0]
    elif key not in data:
        raise DataError(path, key, f"no such variable; the file has {names}")
    arr = np.asarray(data[key])
    numeric = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    if not (numeric or np.issubdtype(arr.dtype, np.bool_)):
        raise DataError(path, key, f"expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 5 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or min(arr.shape) < 1:
        raise DataError(
            path, key, f"expected (X, Y, Z), (N, X, Y, Z) or (N, 1, X, Y, Z), got {data[key].shape}"
        )
    vox = arr.astype(np.float32)
    if not np.isfinite(vox).all():
        raise DataError(path, key, "values contain NaN or infinity")
    lo, hi = float(vox.min()), float(vox.max())
    if lo < 0 or hi > 1:
        raise DataError(path, key, f"expected occupancy in [0, 1], got values in [{lo}, {hi}]")
    if pad_to is not None:
        size = np.asarray(vox.shape[1:])
        if (size > pad_to).any():
            raise DataError(path, key, f"grid {tuple(size)} is larger than pad_to={pad_to}")
        before = (pad_to - size) // 2
        widths = [(0, 0)] + [
            (int(b), int(pad_to - s - b)) for b, s in zip(before, size, strict=True)
        ]
        vox = np.pad(vox, widths)
    return vox


def load_mat_voxels(
    path: str | os.PathLike[str],
    key: str | None = None,
    index: int = 0,
    threshold: float = 0.5,
    pad_to: int | None = None,
) -> np.ndarray:
    """One grid of a ``.mat`` file as (X, Y, Z) bool occupancy (value > ``threshold``).

    ``index`` picks the grid in a batched file (0-based); see :func:`read_mat_voxels`.
    """
    grids = read_mat_voxels(path, key, pad_to)
    if not -len(grids) <= index < len(grids):
        raise DataError(path, key or "voxels", f"index {index} out of range for {len(grids)} grids")
    return grids[index] > threshold


__all__ = ["MAT_VOXEL_KEYS", "load_mat_voxels", "read_mat_voxels"]
