"""DTU scans in the IDR / NeuS layout (Yariv et al. 2020; Wang et al., "NeuS", NeurIPS 2021,
``models/dataset.py``)::

    <root>/image/000000.png ...       N images, sorted by name
    <root>/mask/000.png ...           N foreground masks (optional), sorted by name
    <root>/cameras_sphere.npz         world_mat_i: 4x4 projection K [R | t] of image i
                                      scale_mat_i: 4x4 map of the unit sphere onto the object

As NeuS: ``P = (world_mat_i @ scale_mat_i)[:3, :4]`` is split into K and the OpenCV
camera-to-world (``load_K_Rt_from_P``, here :func:`zoo.ops.camera_math.decompose_projection`),
so the object of interest lies in the unit sphere. With ``use_mask`` the images are composited
on the background through the masks (NeuS's ``--mode train`` with masks on white / black).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from zoo.data.formats.capture import Capture, list_images, load_images
from zoo.data.io import DataError
from zoo.ops.camera_math import decompose_projection, opencv_to_opengl
from zoo.structures.cameras import Cameras


def load_dtu(
    root: str | Path,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    downscale: int = 1,
    use_mask: bool = True,
    cameras_file: str = "cameras_sphere.npz",
) -> Capture:
    """Load a DTU scan folder (see the module docstring) as a :class:`Capture`."""
    root = Path(root)
    files = list_images(root / "image", "image")
    npz = root / cameras_file
    if not npz.is_file():
        raise DataError(npz, "file", f"{cameras_file} does not exist")
    try:
        with np.load(npz, allow_pickle=False) as data:
            mats = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(npz, "file", f"not a readable .npz archive ({e})") from e
    ks, c2w = [], []
    for i in range(len(files)):
        for key in (f"world_mat_{i}", f"scale_mat_{i}"):
            if key not in mats:
                raise DataError(npz, key, f"missing ({len(files)} images need one per image)")
            if mats[key].shape != (4, 4) or not np.isfinite(mats[key]).all():
                raise DataError(npz, key, f"expected a finite 4x4 matrix, got {mats[key].shape}")
        p = (mats[f"world_mat_{i}"] @ mats[f"scale_mat_{i}"])[:3, :4]
        if abs(np.linalg.det(p[:, :3])) < 1e-12:
            raise DataError(npz, f"world_mat_{i}", "singular projection matrix")
        k, pose = decompose_projection(p)
        # NeuS casts rays through integer pixel coordinates; zoo through centres at +0.5.
        ks.append([k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5])
        c2w.append(pose)
    masks = None
    if use_mask and (root / "mask").is_dir():
        masks = list_images(root / "mask", "mask")
        if len(masks) != len(files):
            raise DataError(root / "mask", "mask", f"{len(masks)} masks for {len(files)} images")
    images, alpha = load_images(files, "image", background, downscale, masks=masks)
    k = torch.tensor(ks, dtype=torch.float64) / downscale
    h, w = images.shape[1:3]
    c2w_gl = torch.tensor(opencv_to_opengl(np.stack(c2w)), dtype=torch.float32)
    cameras = Cameras(c2w_gl, k[:, 0], k[:, 1], k[:, 2], k[:, 3], w, h)
    dist = cameras.centers.double().norm(dim=-1)
    return Capture(
        images=images,
        cameras=cameras,
        names=[str(p) for p in files],
        pose_source=(str(npz), "world_mat_i"),
        near=float(max(0.05, dist.min() - 1.0)),
        far=float(dist.max() + 1.0),
        normalized=True,
        meta={"alpha": alpha},
    )
