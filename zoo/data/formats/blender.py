"""Loader for the Blender / NeRF-synthetic multi-view format (Mildenhall et al., ECCV 2020).

A scene folder holds ``transforms_{train,val,test}.json``::

    {"camera_angle_x": 0.691,                       # horizontal field of view (radians)
     "frames": [{"file_path": "./train/r_0",         # relative to the folder, ".png" optional
                 "transform_matrix": [[...4x4...]]}]}  # camera-to-world, OpenGL axes

and RGBA PNGs with straight (non-premultiplied) alpha. Images are composited on a background,
``rgb * a + bg * (1 - a)``; NeRF trains its Blender scenes on white (``white_bkgd=True``). The
focal length follows from the field of view, ``focal = 0.5 * W / tan(0.5 * camera_angle_x)``,
and the principal point is the image centre. Our own renders (``zoo.data.render_cache``) may add
a ``depth_file_path`` per frame pointing at a float32 ``.npy`` z-depth map (0 on background);
other readers ignore the extra key.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch
from torch import Tensor

from zoo.data.io import DataError, read_json
from zoo.structures.cameras import Cameras

SPLITS = ("train", "val", "test")


def transforms_path(root: str | os.PathLike[str], split: str) -> Path:
    """``<root>/transforms_<split>.json``."""
    return Path(root) / f"transforms_{split}.json"


def read_transforms(path: str | os.PathLike[str]) -> tuple[float, list[dict[str, Any]]]:
    """Parse and validate one ``transforms_*.json``.

    Returns:
        camera_angle_x and the list of frames; every frame has a string ``file_path`` and a
        finite 4x4 ``transform_matrix`` (checked here, so later code can trust them).
    Raises:
        DataError naming the file and the field (``camera_angle_x``, ``frames``,
        ``frames[i].file_path``, ``frames[i].transform_matrix``).
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, "file", f"expected a JSON object, got {type(data).__name__}")
    if "camera_angle_x" not in data:
        raise DataError(path, "camera_angle_x", "missing (horizontal field of view in radians)")
    angle = data["camera_angle_x"]
    if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not 0 < angle < math.pi:
        raise DataError(path, "camera_angle_x", f"expected an angle in (0, pi), got {angle!r}")
    if "frames" not in data:
        raise DataError(path, "frames", "missing (list of {file_path, transform_matrix})")
    frames = data["frames"]
    if not isinstance(frames, list) or not frames:
        raise DataError(path, "frames", f"expected a non-empty list, got {frames!r:.60}")
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise DataError(path, f"frames[{i}]", f"expected an object, got {frame!r:.60}")
        if not isinstance(frame.get("file_path"), str):
            raise DataError(path, f"frames[{i}].file_path", "missing or not a string")
        if "transform_matrix" not in frame:
            raise DataError(path, f"frames[{i}].transform_matrix", "missing")
        try:
            m = np.asarray(frame["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(path, f"frames[{i}].transform_matrix", f"not a matrix ({e})") from e
        if m.shape != (4, 4):
            raise DataError(
                path, f"frames[{i}].transform_matrix", f"expected a 4x4 matrix, got {m.shape}"
            )
        if not np.isfinite(m).all():
            raise DataError(path, f"frames[{i}].transform_matrix", "has NaN or inf entries")
    return float(angle), frames


def resolve_image(root: Path, file_path: str) -> Path:
    """The image of a frame: ``file_path`` relative to ``root``, with ``.png`` added when it
    has no existing file as given (the original scenes omit the extension)."""
    p = root / file_path
    if p.suffix and p.is_file():
        return p
    return p.with_name(p.name + ".png")


def read_image(path: Path, field: str = "file_path") -> np.ndarray:
    """An image file as float32 RGBA in [0, 1] (H, W, 4); alpha = 1 when the file has none.

    8- and 16-bit PNGs are scaled by 255 / 65535. Missing, truncated or non-image files raise
    ``DataError(path, field, ...)``.
    """
    if not path.is_file():
        raise DataError(path, field, "image file does not exist")
    try:
        img = iio.imread(path)
    except (OSError, ValueError, SyntaxError) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(path, field, f"not a readable image ({first_line})") from e
    if img.dtype == np.uint8:
        x = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        x = img.astype(np.float32) / 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        x = img.astype(np.float32)
    else:
        raise DataError(path, field, f"unsupported pixel type {img.dtype}")
    if x.ndim == 2:  # grayscale
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 2, 3, 4):
        raise DataError(path, field, f"expected an (H, W, C<=4) image, got {x.shape}")
    c = x.shape[-1]
    if c in (1, 2):  # gray (+ alpha)
        x = np.concatenate([np.repeat(x[..., :1], 3, axis=-1), x[..., 1:]], axis=-1)
    if x.shape[-1] == 3:
        x = np.concatenate([x, np.ones_like(x[..., :1])], axis=-1)
    return x  # (H, W, 4)


def parse_background(background: Any) -> tuple[float, float, float]:
    """``"white"`` / ``"black"`` / a grey level / ``[r, g, b]`` in [0, 1] -> an RGB triple."""
    if isinstance(background, str):
        names = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
        if background not in names:
            raise ValueError(
                f"background must be 'white', 'black' or [r, g, b], got {background!r}"
            )
        return names[background]
    values = np.asarray(background, dtype=np.float64).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3 or not np.all((values >= 0) & (values <= 1)):
        raise ValueError(
            f"background must be 'white', 'black' or [r, g, b] in [0, 1], got {background!r}"
        )
    return float(values[0]), float(values[1]), float(values[2])


def composite(rgba: Tensor, background: Any = (1.0, 1.0, 1.0)) -> Tensor:
    """Straight-alpha compositing ``rgb * a + bg * (1 - a)``: (..., 4) -> (..., 3)."""
    bg = torch.tensor(parse_background(background), dtype=rgba.dtype, device=rgba.device)
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + bg * (1.0 - alpha)


def load_blender(
    root: str | os.PathLike[str],
    split: str = "train",
    background: Any = (1.0, 1.0, 1.0),
    downscale: int = 1,
) -> tuple[Tensor, Cameras, dict[str, Any]]:
    """Load one split of a Blender-format scene.

    Args:
        root: the scene folder (holding ``transforms_<split>.json``).
        split: ``"train"``, ``"val"`` or ``"test"`` (any name with a transforms file works).
        background: compositing colour, see :func:`parse_background` (NeRF: white).
        downscale: integer factor; images are composited at full size and then box-averaged
            over ``downscale x downscale`` blocks (area resampling; a remainder at the right /
            bottom edge is cropped). Intrinsics are divided by the same factor, so every
            pixel centre keeps its ray.
    Returns:
        images (B, H, W, 3) float32 in [0, 1]; Cameras (focal from ``camera_angle_x``); meta
        with ``camera_angle_x``, ``split``, ``transforms`` (the json path), ``file_paths``
        (resolved image paths), ``alpha`` (B, H, W) and ``depth`` ((B, H, W) z-depth, 0 on
        background, when every frame has a ``depth_file_path`` and ``downscale == 1``; else
        None).
    """
    root = Path(root)
    if int(downscale) != downscale or downscale < 1:
        raise ValueError(f"downscale must be a positive integer, got {downscale!r}")
    downscale = int(downscale)
    bg = parse_background(background)
    json_path = transforms_path(root, split)
    angle, frames = read_transforms(json_path)

    images_list, alpha_list, paths = [], [], []
    height = width = 0
    for frame in frames:
        path = resolve_image(root, frame["file_path"])
        rgba = torch.from_numpy(read_image(path))  # (H, W, 4)
        if not paths:
            height, width = rgba.shape[:2]
            if height < downscale or width < downscale:
                raise ValueError(f"downscale {downscale} exceeds the image size {width}x{height}")
        elif rgba.shape[:2] != (height, width):
            raise DataError(
                path,
                "file_path",
                f"image is {rgba.shape[1]}x{rgba.shape[0]}, "
                f"but {paths[0].name} is {width}x{height}",
            )
        # Premultiply, box-average (area resampling), then composite: averaging is linear, so
        # this equals compositing at full size and averaging, with 4 instead of 3+1 channels.
        rgba[..., :3] *= rgba[..., 3:]
        if downscale > 1:
            h, w = height // downscale, width // downscale
            rgba = rgba[: h * downscale, : w * downscale].reshape(h, downscale, w, downscale, 4)
            rgba = rgba.mean(dim=(1, 3))  # (H/s, W/s, 4)
        alpha = rgba[..., 3]  # (H/s, W/s)
        image = rgba[..., :3] + torch.tensor(bg) * (1.0 - alpha[..., None])  # (H/s, W/s, 3)
        images_list.append(image.contiguous())
        alpha_list.append(alpha.contiguous())
        paths.append(path)
    images = torch.stack(images_list)  # (B, H/s, W/s, 3)
    alpha = torch.stack(alpha_list)  # (B, H/s, W/s)

    c2w = torch.tensor(np.stack([f["transform_matrix"] for f in frames]), dtype=torch.float32)
    focal = 0.5 * width / math.tan(0.5 * angle) / downscale
    cameras = Cameras(
        c2w,
        focal,
        focal,
        0.5 * width / downscale,
        0.5 * height / downscale,
        width // downscale,
        height // downscale,
    )

    depth = None
    if downscale == 1 and all(isinstance(f.get("depth_file_path"), str) for f in frames):
        depth = torch.from_numpy(
            np.stack([_read_depth(root / f["depth_file_path"], (height, width)) for f in frames])
        )
    meta = {
        "camera_angle_x": angle,
        "split": split,
        "transforms": str(json_path),
        "file_paths": [str(p) for p in paths],
        "alpha": alpha,
        "depth": depth,
    }
    return images.float().clamp_(0.0, 1.0), cameras, meta


def _read_depth(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A float32 (H, W) depth map saved with ``np.save``; validated against the image size."""
    if not path.is_file():
        raise DataError(path, "depth_file_path", "depth file does not exist")
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(path, "depth_file_path", f"not a readable .npy file ({e})") from e
    if depth.shape != shape:
        raise DataError(path, "depth_file_path", f"expected shape {shape}, got {depth.shape}")
    return depth.astype(np.float32)


def available_splits(root: str | os.PathLike[str]) -> list[str]:
    """The standard splits (train/val/test) that have a transforms file in ``root``."""
    return [s for s in SPLITS if transforms_path(root, s).is_file()]
