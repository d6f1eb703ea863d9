"""What every capture loader (nerfstudio, COLMAP, LLFF, DTU, ScanNet) returns: a
:class:`Capture`, plus the image reading they share.

Images of one capture must share one size (zoo's :class:`~zoo.structures.cameras.Cameras`
hold one image size); intrinsics may differ per image. Images with lens distortion are
resampled to the ideal pinhole camera with the same intrinsics
(:func:`zoo.ops.camera_math.undistort_image`) before any downscaling, so every model sees
pinhole cameras.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from zoo.data.formats.blender import read_image
from zoo.data.io import DataError
from zoo.ops.camera_math import undistort_image
from zoo.structures.cameras import Cameras

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".JPG", ".JPEG", ".PNG")


@dataclass
class Capture:
    """Posed images of one scene as a loader found them (before any normalisation).

    Attributes:
        images: (N, H, W, 3) float32 in [0, 1] (composited on ``background`` when the files
            have alpha or a mask).
        cameras: N pinhole cameras, OpenGL camera-to-world.
        names: the N image file paths (for messages).
        pose_source: ``(file, field)`` the poses come from (for error messages).
        test_indices: the held-out views the format prescribes, or None (the datamodule then
            holds out every ``holdout_every``-th view).
        points, colors: (M, 3) sparse scene points and their colours in [0, 1], or None.
        depth: (N, H, W) z-depth per pixel (0 = unknown), or None.
        near, far: z-depth bounds the format provides (LLFF), or None.
        normalized: the poses are already in a normalised frame (LLFF, DTU) and must not be
            re-oriented / re-scaled.
        forward_facing: an LLFF-style capture (NDC rays apply).
    """

    images: Tensor
    cameras: Cameras
    names: list[str]
    pose_source: tuple[str, str]
    test_indices: list[int] | None = None
    points: np.ndarray | None = None
    colors: np.ndarray | None = None
    depth: Tensor | None = None
    near: float | None = None
    far: float | None = None
    normalized: bool = False
    forward_facing: bool = False
    meta: dict = field(default_factory=dict)


def list_images(folder: Path, field_name: str = "images") -> list[Path]:
    """The image files (png / jpg) of ``folder`` sorted by name; DataError when there is
    none or the folder is missing."""
    if not folder.is_dir():
        raise DataError(folder, field_name, "folder does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(folder, field_name, "no images (*.png, *.jpg) in the folder")
    return files


def box_downscale(x: Tensor, factor: int) -> Tensor:
    """Area resampling (H, W, C) -> (H/f, W/f, C) by averaging f x f blocks (a remainder at the
    right / bottom edge is cropped)."""
    if factor == 1:
        return x
    h, w = x.shape[0] // factor, x.shape[1] // factor
    x = x[: h * factor, : w * factor].reshape(h, factor, w, factor, x.shape[-1])
    return x.mean(dim=(1, 3))


def load_images(
    paths: Sequence[Path],
    field_name: str,
    background: tuple[float, float, float],
    downscale: int = 1,
    intrinsics: Tensor | None = None,
    distortion: Tensor | None = None,
    masks: Sequence[Path] | None = None,
) -> tuple[Tensor, Tensor]:
    """Read, undistort, composite and downscale images of one capture.

    Args:
        paths: N image files (all of one size, else DataError naming the odd one).
        field_name: the field named in errors (``file_path``, ``images``...).
        background: RGB the alpha (or mask) is composited on.
        downscale: integer area-downscale factor.
        intrinsics: (N, 4) ``fx fy cx cy`` at full size; needed with ``distortion``.
        distortion: (N, 5) ``k1 k2 p1 p2 k3`` or None (pinhole).
        masks: optional N mask images (foreground = bright), multiplied into the alpha.
    Returns:
        images (N, H/d, W/d, 3) in [0, 1] and alpha (N, H/d, W/d).
    """
    bg = torch.tensor(background, dtype=torch.float32)
    images, alphas = [], []
    size: tuple[int, int] | None = None
    for i, path in enumerate(paths):
        rgba = torch.from_numpy(read_image(Path(path), field_name))  # (H, W, 4)
        if masks is not None:
            mask = torch.from_numpy(read_image(Path(masks[i]), "mask"))[..., :3].mean(-1)
            if mask.shape != rgba.shape[:2]:
                raise DataError(
                    masks[i], "mask", f"mask is {tuple(mask.shape)}, image {tuple(rgba.shape[:2])}"
                )
            rgba[..., 3] *= (mask > 0.5).float()
        if size is None:
            size = tuple(rgba.shape[:2])
            if min(size) < downscale:
                raise DataError(
                    path, field_name, f"image {size} smaller than downscale {downscale}"
                )
        elif tuple(rgba.shape[:2]) != size:
            raise DataError(
                path,
                field_name,
                f"image is {rgba.shape[1]}x{rgba.shape[0]} but {Path(paths[0]).name} is "
                f"{size[1]}x{size[0]} (all images of a capture must share one size)",
            )
        if distortion is not None and bool(distortion[i].abs().sum() > 0):
            fx, fy, cx, cy = (float(v) for v in intrinsics[i])
            rgba = undistort_image(rgba, fx, fy, cx, cy, distortion[i])
        rgba[..., :3] *= rgba[..., 3:]  # premultiply, then area-average, then composite
        rgba = box_downscale(rgba, downscale)
        alpha = rgba[..., 3]
        images.append((rgba[..., :3] + bg * (1.0 - alpha[..., None])).clamp(0.0, 1.0))
        alphas.append(alpha)
    return torch.stack(images).float(), torch.stack(alphas).float()


def check_finite_poses(c2w: np.ndarray, source: Path, field_name: str) -> None:
    """DataError naming the first pose with NaN / inf entries or a non-rotation block."""
    for i, m in enumerate(np.asarray(c2w)):
        if not np.isfinite(m).all():
            raise DataError(source, f"{field_name}[{i}]", "pose has NaN or inf entries")
        r = m[:3, :3]
        if abs(abs(np.linalg.det(r)) - 1.0) > 1e-2:
            raise DataError(
                source,
                f"{field_name}[{i}]",
                f"rotation block has determinant {np.linalg.det(r):.3g}",
            )
