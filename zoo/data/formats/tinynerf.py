"""Loader for the ``tiny_nerf_data.npz`` layout of the NeRF authors' tiny-NeRF notebook.

Keys: ``images`` (N, H, W, 3) float in [0, 1] (the lego renders at 100x100, composited on black),
``poses`` (N, 4, 4) camera-to-world matrices (OpenGL axes, as Blender's ``transform_matrix``) and
``focal`` a scalar focal length in pixels; the principal point is the image centre.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from zoo.data.io import DataError
from zoo.structures.cameras import Cameras


def load_tinynerf(path: str | os.PathLike[str]) -> tuple[Tensor, Cameras]:
    """Load a tiny-NeRF ``.npz``.

    Returns:
        images (N, H, W, 3) float32 in [0, 1] and N Cameras (fx = fy = focal, centred).
    Raises:
        DataError naming the file and the key for a missing file/key, a wrong shape, values
        outside [0, 1], non-finite poses or a non-positive focal length.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "file does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(path, "file", f"not a readable .npz archive ({e})") from e
    for key in ("images", "poses", "focal"):
        if key not in arrays:
            raise DataError(path, key, f"missing (the file has {sorted(arrays)})")

    images = arrays["images"]
    if images.ndim != 4 or images.shape[-1] != 3 or 0 in images.shape:
        raise DataError(path, "images", f"expected (N, H, W, 3), got {images.shape}")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    elif not np.issubdtype(images.dtype, np.floating):
        raise DataError(path, "images", f"expected float in [0, 1] or uint8, got {images.dtype}")
    images = images.astype(np.float32)
    if not np.isfinite(images).all() or images.min() < 0.0 or images.max() > 1.0:
        raise DataError(
            path, "images", f"values must lie in [0, 1], got [{images.min()}, {images.max()}]"
        )
    n, h, w = images.shape[:3]

    poses = arrays["poses"]
    if poses.shape not in ((n, 4, 4), (n, 3, 4)):
        raise DataError(path, "poses", f"expected ({n}, 4, 4) to match images, got {poses.shape}")
    if not np.issubdtype(poses.dtype, np.number) or not np.isfinite(poses).all():
        raise DataError(path, "poses", "expected finite numbers")

    focal = arrays["focal"]
    if focal.size != 1 or not np.issubdtype(focal.dtype, np.number):
        raise DataError(path, "focal", f"expected a scalar, got shape {focal.shape}")
    f = float(focal.reshape(()))
    if not np.isfinite(f) or f <= 0:
        raise DataError(path, "focal", f"expected a positive focal length, got {f}")

    c2w = torch.from_numpy(poses.astype(np.float32))  # (N, 4, 4) or (N, 3, 4)
    cameras = Cameras(c2w, f, f, 0.5 * w, 0.5 * h, w, h)
    return torch.from_numpy(images), cameras
