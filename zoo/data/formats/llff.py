"""LLFF forward-facing captures (Mildenhall et al., "Local Light Field Fusion", SIGGRAPH 2019),
read as NeRF does (``load_llff.py`` of bmild/nerf, its ``config_fern.txt`` setting)::

    <root>/poses_bounds.npy     (N, 17): a 3x5 matrix [R | t | (H, W, focal)] per image,
                                then the near / far scene depths of that view
    <root>/images/              full-size images (sorted by name)
    <root>/images_4/, images_8/ the same downscaled by 4 / 8 (``factor``)

The rotation columns are LLFF's (down, right, backwards); they are reordered to OpenGL's
(right, up, backwards). As in NeRF: the scene is scaled so that the nearest bound is
``1 / bd_factor`` (``bd_factor = 0.75``), the poses are re-centred on their average pose
(``recenter_poses``), and every 8th image (``llffhold = 8``: images 0, 8, 16...) is held out.
The focal length is divided by the factor between ``hwf`` and the files' size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from zoo.data.formats.capture import Capture, list_images, load_images
from zoo.data.io import DataError
from zoo.structures.cameras import Cameras


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def average_pose(c2w: np.ndarray) -> np.ndarray:
    """NeRF's ``poses_avg``: centre = mean centre, z = normalised sum of z axes, x = up x z
    with up = sum of y axes, y = z x x. (4, 4)."""
    centre = c2w[:, :3, 3].mean(0)
    z = _normalize(c2w[:, :3, 2].sum(0))
    up = c2w[:, :3, 1].sum(0)
    x = _normalize(np.cross(up, z))
    y = np.cross(z, x)
    out = np.eye(4)
    out[:3, :3] = np.stack([x, y, z], 1)
    out[:3, 3] = centre
    return out


def load_llff(
    root: str | Path,
    factor: int = 8,
    bd_factor: float = 0.75,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Capture:
    """Load an LLFF scene as a :class:`Capture` (normalised as NeRF does; forward-facing; test
    views every 8th image; near / far from the scaled bounds)."""
    root = Path(root)
    npy = root / "poses_bounds.npy"
    if not npy.is_file():
        raise DataError(npy, "file", "poses_bounds.npy does not exist")
    try:
        arr = np.load(npy, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(npy, "file", f"not a readable .npy ({e})") from e
    if arr.ndim != 2 or arr.shape[1] != 17 or not np.isfinite(arr).all():
        raise DataError(npy, "poses_bounds", f"expected finite (N, 17), got {arr.shape}")
    folder = root / ("images" if factor == 1 else f"images_{factor}")
    files = list_images(folder, f"images_{factor}")
    if len(files) != len(arr):
        raise DataError(
            npy, "poses_bounds", f"{len(arr)} poses but {len(files)} images in {folder.name}/"
        )
    poses = arr[:, :15].reshape(-1, 3, 5)
    bounds = arr[:, 15:17]
    if (bounds <= 0).any():
        raise DataError(npy, "poses_bounds[:, 15:17]", "near / far bounds must be positive")
    images, alpha = load_images(files, "images", background)
    h, w = images.shape[1:3]
    focal = poses[:, 2, 4] * w / poses[:, 1, 4]  # hwf is at the original resolution
    # (down, right, back) -> (right, up, back)
    rot = np.stack([poses[:, :, 1], -poses[:, :, 0], poses[:, :, 2]], axis=-1)
    c2w = np.tile(np.eye(4), (len(arr), 1, 1))
    c2w[:, :3, :3] = rot
    c2w[:, :3, 3] = poses[:, :, 3]
    scale = 1.0 / (bounds.min() * bd_factor)
    c2w[:, :3, 3] *= scale
    bounds = bounds * scale
    c2w = np.linalg.inv(average_pose(c2w)) @ c2w
    cameras = Cameras(torch.tensor(c2w, dtype=torch.float32), focal, focal, w / 2, h / 2, w, h)
    return Capture(
        images=images,
        cameras=cameras,
        names=[str(p) for p in files],
        pose_source=(str(npy), "poses_bounds"),
        test_indices=list(range(0, len(arr), 8)),
        near=float(bounds.min() * 0.9),
        far=float(bounds.max()),
        normalized=True,
        forward_facing=True,
        meta={"alpha": alpha, "scale": scale},
    )
