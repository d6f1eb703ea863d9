"""The images ``zoo.process`` registers: a folder of photos or the frames of a video, checked
before anything is written (one size, every file readable), then saved as RGB PNGs
(composited on a background where they have alpha, optionally downscaled) into the output's
``images/`` folder, where COLMAP and the loaders read them."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from zoo.data.formats.blender import read_image
from zoo.data.formats.capture import IMAGE_SUFFIXES, box_downscale
from zoo.data.io import DataError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".MP4", ".MOV")


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix in VIDEO_SUFFIXES


def list_inputs(path: Path) -> list[Path]:
    """The image files of a folder (sorted by name); DataError for a missing folder, a
    folder without images or two files with the same stem."""
    if not path.exists():
        raise DataError(path, "images", "does not exist (a folder of images or a video)")
    if not path.is_dir():
        raise DataError(path, "images", f"not a folder of images nor a video ({VIDEO_SUFFIXES})")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in IMAGE_SUFFIXES)
    if not files:
        raise DataError(path, "images", "no images (*.png, *.jpg) in the folder")
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise DataError(p, "images", f"same name as {stems[p.stem].name} (ambiguous frame)")
        stems[p.stem] = p
    return files


# EXIF tags (CIPA DC-008): the Exif sub-IFD and the focal-length fields in it.
_EXIF_IFD, _FOCAL_MM, _FOCAL_35MM = 0x8769, 0x920A, 0xA405
_PLANE_X_RES, _PLANE_UNIT = 0xA20E, 0xA210
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}  # FocalPlaneResolutionUnit -> mm
_FULL_FRAME_DIAGONAL_MM = float(np.hypot(36.0, 24.0))


def exif_focal_px(path: Path) -> float | None:
    """The focal length in pixels a photo's EXIF gives, or None: the 35 mm-equivalent focal
    length (``FocalLengthIn35mmFilm``, defined on the diagonal of the 36 x 24 mm frame) times
    the image diagonal in pixels over 43.3 mm, else the focal length in mm times the focal
    plane's pixels per mm (``FocalPlaneXResolution`` / ``FocalPlaneResolutionUnit``). What
    COLMAP reads from EXIF itself, which the PNGs ``zoo.process`` writes no longer carry."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            exif = im.getexif().get_ifd(_EXIF_IFD)
            w, h = im.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    try:
        f35 = float(exif.get(_FOCAL_35MM, 0) or 0)
        if f35 > 0:
            return f35 * float(np.hypot(w, h)) / _FULL_FRAME_DIAGONAL_MM
        f_mm, res = float(exif.get(_FOCAL_MM, 0) or 0), float(exif.get(_PLANE_X_RES, 0) or 0)
        unit = _UNIT_MM.get(int(exif.get(_PLANE_UNIT, 2)))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if f_mm > 0 and res > 0 and unit:
        return f_mm * res / unit
    return None


def read_inputs(files: list[Path], background: tuple[float, float, float]) -> list[np.ndarray]:
    """Every image as float RGB (H, W, 3) composited on ``background``; DataError naming the
    first unreadable file or the first whose size differs from the first image's."""
    bg = np.asarray(background, dtype=np.float32)
    out: list[np.ndarray] = []
    for p in files:
        rgba = read_image(p, "images")  # DataError when unreadable
        if out and rgba.shape[:2] != out[0].shape[:2]:
            h, w = out[0].shape[:2]
            raise DataError(
                p,
                "images",
                f"image is {rgba.shape[1]}x{rgba.shape[0]} but {files[0].name} is {w}x{h} "
                "(one camera per capture: give images of one size)",
            )
        out.append(rgba[..., :3] * rgba[..., 3:] + bg * (1.0 - rgba[..., 3:]))
    return out


def video_frames(path: Path, num_frames: int) -> list[np.ndarray]:
    """``num_frames`` frames evenly spaced over a video, as float RGB (needs an imageio video
    plugin: ``pip install imageio-ffmpeg``, part of the ``process`` extra)."""
    try:
        frames = [f for f in iio.imiter(path)]
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        raise DataError(path, "images", f"not a readable video ({str(e).splitlines()[0]})") from e
    if len(frames) < 2:
        raise DataError(path, "images", f"the video has {len(frames)} frame(s)")
    idx = np.unique(np.linspace(0, len(frames) - 1, min(num_frames, len(frames))).round())
    return [frames[int(i)][..., :3].astype(np.float32) / 255.0 for i in idx]


def write_images(images: list[np.ndarray], names: list[str], folder: Path, downscale: int) -> None:
    """Save RGB images (area-downscaled by ``downscale``) as 8-bit PNGs ``folder/<name>``."""
    folder.mkdir(parents=True, exist_ok=True)
    for img, name in zip(images, names, strict=True):
        x = box_downscale(torch.from_numpy(np.ascontiguousarray(img)), downscale).numpy()
        iio.imwrite(folder / name, (np.clip(x, 0, 1) * 255).round().astype(np.uint8))
