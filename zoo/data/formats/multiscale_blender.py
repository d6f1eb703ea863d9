"""Mip-NeRF's multiscale Blender format: reader and writer.

Written by google/mipnerf ``scripts/convert_blender_data.py`` (Barron et al., ICCV 2021,
Sec. 5: "multiscale Blender"): every image of a Blender scene (``zoo.data.formats.blender``)
is stored at ``n_down`` (4) resolutions, each level the 2x2 box average of the previous one's
straight (non-premultiplied) RGBA. A folder holds ``images_<split>/<iii>_d<j>.png`` and one
``metadata.json``::

    {"train": {"file_path": [...], "cam2world": [[4x4], ...], "width": [...],
               "height": [...], "focal": [...], "lossmult": [...], "near": [...],
               "far": [...], "label": [...], "pix2cam": [[3x3], ...]},
     "val": {...}, "test": {...}}

one entry per image in each list: level ``j`` has ``focal / 2^j``, ``lossmult = 4^j`` (the
pixel's area in full-resolution pixels, which weights its squared error in the loss),
``label = j``, near 2, far 6 and ``pix2cam`` the inverse intrinsics (pixel -> camera ray with
z = -1). As the reference, the reader takes the principal point at the image centre; ``pix2cam``
is optional and, when present, must agree with ``focal``, ``width`` and ``height``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.data.formats.blender import read_image, read_transforms, resolve_image
from zoo.data.io import DataError, atomic_write_bytes, atomic_write_text, read_json
from zoo.structures.cameras import Cameras

METADATA = "metadata.json"
FIELDS = ("file_path", "cam2world", "width", "height", "focal", "lossmult", "near", "far", "label")


@dataclass
class ScaleLevel:
    """The images of one split at one scale: ``label`` j, composited images (B, H, W, 3),
    their cameras, their loss weight and the near/far bounds of the level's entries."""

    label: int
    images: Tensor
    cameras: Cameras
    lossmult: float
    near: float
    far: float


def down2(img: np.ndarray) -> np.ndarray:
    """2x2 box average of an (H, W, C) image with even H and W (the reference's ``down2``)."""
    h, w = img.shape[:2]
    return img.reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))


def _field(path: Path, meta: dict[str, Any], split: str, name: str, n: int | None) -> list[Any]:
    if name not in meta:
        raise DataError(path, f"{split}.{name}", "missing")
    values = meta[name]
    if not isinstance(values, list) or not values or (n is not None and len(values) != n):
        want = "a non-empty list" if n is None else f"a list of {n} entries (one per image)"
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise DataError(path, f"{split}.{name}", f"expected {want}, got {got}")
    return values


def read_metadata(root: str | os.PathLike[str], split: str) -> list[dict[str, Any]]:
    """The validated entries of ``split`` in ``<root>/metadata.json``, one dict per image with
    the :data:`FIELDS` (and ``pix2cam`` when present). Raises DataError naming the file and
    the field (``<split>.<field>`` or ``<split>.<field>[i]``)."""
    path = Path(root) / METADATA
    data = read_json(path)
    if not isinstance(data, dict) or split not in data or not isinstance(data[split], dict):
        raise DataError(path, split, "missing split (an object of per-image lists)")
    meta = data[split]
    n = len(_field(path, meta, split, "file_path", None))
    cols = {name: _field(path, meta, split, name, n) for name in FIELDS}
    if "pix2cam" in meta:
        cols["pix2cam"] = _field(path, meta, split, "pix2cam", n)
    entries = []
    for i in range(n):
        e = {name: col[i] for name, col in cols.items()}
        where = f"{split}.{{}}[{i}]"
        if not isinstance(e["file_path"], str):
            raise DataError(path, where.format("file_path"), "expected a string")
        for key in ("width", "height", "label"):
            v = e[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < 0:
                raise DataError(path, where.format(key), f"expected a whole number, got {v!r}")
            e[key] = int(v)
        for key in ("focal", "lossmult", "near", "far"):
            v = e[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise DataError(path, where.format(key), f"expected a finite number, got {v!r}")
            e[key] = float(v)
        if e["width"] < 1 or e["height"] < 1 or e["focal"] <= 0 or e["lossmult"] <= 0:
            raise DataError(path, where.format("focal"), "need width, height, focal, lossmult > 0")
        if not 0 <= e["near"] < e["far"]:
            raise DataError(path, where.format("near"), f"need 0 <= near < far, got {e['near']}")
        try:
            c2w = np.asarray(e["cam2world"], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(path, where.format("cam2world"), f"not a matrix ({err})") from err
        if c2w.shape not in ((3, 4), (4, 4)) or not np.isfinite(c2w).all():
            raise DataError(
                path, where.format("cam2world"), f"expected finite 3x4 or 4x4, got {c2w.shape}"
            )
        e["cam2world"] = c2w
        if "pix2cam" in e:
            expected = _pix2cam(e["focal"], e["width"], e["height"])
            try:
                k_inv = np.asarray(e["pix2cam"], dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise DataError(path, where.format("pix2cam"), f"not a matrix ({err})") from err
            if k_inv.shape != (3, 3) or not np.allclose(k_inv, expected, rtol=1e-4, atol=1e-6):
                raise DataError(
                    path, where.format("pix2cam"), "disagrees with focal/width/height (or not 3x3)"
                )
        entries.append(e)
    return entries


def _pix2cam(focal: float, width: int, height: int) -> np.ndarray:
    """The reference's inverse intrinsics: pixel (x, y, 1) -> camera ray with z = -1."""
    cx, cy = 0.5 * width, 0.5 * height
    return np.array(
        [[1 / focal, 0, -cx / focal], [0, -1 / focal, cy / focal], [0, 0, -1]], dtype=np.float64
    )


def load_multiscale(
    root: str | os.PathLike[str], split: str, background: tuple[float, float, float]
) -> list[ScaleLevel]:
    """The images of ``split`` grouped by ``label`` (ascending), composited on ``background``
    (``rgb a + bg (1 - a)`` of the straight RGBA, as the reference with ``white_bkgd``)."""
    root = Path(root)
    path = root / METADATA
    entries = read_metadata(root, split)
    bg = torch.tensor(background, dtype=torch.float32)
    levels = []
    for label in sorted({e["label"] for e in entries}):
        group = [(i, e) for i, e in enumerate(entries) if e["label"] == label]
        w, h = group[0][1]["width"], group[0][1]["height"]
        images, c2w, focal = [], [], []
        for i, e in group:
            if (e["width"], e["height"]) != (w, h):
                raise DataError(path, f"{split}.width[{i}]", f"label {label} mixes sizes")
            img_path = resolve_image(root, e["file_path"])
            rgba = torch.from_numpy(read_image(img_path, f"{split}.file_path[{i}]"))
            if rgba.shape[:2] != (h, w):
                raise DataError(
                    img_path,
                    f"{split}.file_path[{i}]",
                    f"image is {rgba.shape[1]}x{rgba.shape[0]}, metadata says {w}x{h}",
                )
            alpha = rgba[..., 3:]
            images.append(rgba[..., :3] * alpha + bg * (1 - alpha))
            m = np.eye(4)
            m[: e["cam2world"].shape[0]] = e["cam2world"]
            c2w.append(m)
            focal.append(e["focal"])
        f = torch.tensor(focal, dtype=torch.float32)
        cams = Cameras(
            torch.tensor(np.stack(c2w), dtype=torch.float32), f, f, 0.5 * w, 0.5 * h, w, h
        )
        levels.append(
            ScaleLevel(
                label=label,
                images=torch.stack(images),
                cameras=cams,
                lossmult=float(group[0][1]["lossmult"]),
                near=min(e["near"] for _, e in group),
                far=max(e["far"] for _, e in group),
            )
        )
    return levels


def _png(img: np.ndarray) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite(
        "<bytes>", np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), extension=".png"
    )


def write_multiscale(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    levels: int = 4,
    base_downscale: int = 1,
    near: float = 2.0,
    far: float = 6.0,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> Path:
    """Convert the Blender-format scene ``src`` into the multiscale format in ``dst``.

    Level 0 is the source image box-downsampled ``base_downscale`` times (a power of 2; 1
    keeps the full resolution), level ``j`` halves level ``j - 1``; images are 8-bit RGBA
    PNGs rounded to the nearest value (the reference truncates). Splits without a
    ``transforms_<split>.json`` are skipped (at least ``train`` is needed). Refuses to write
    into a ``dst`` that already has a ``metadata.json``; the metadata is written last, so an
    interrupted conversion leaves no readable scene. Returns ``dst``.
    """
    src, dst = Path(src), Path(dst)
    if levels < 1 or base_downscale < 1 or base_downscale & (base_downscale - 1):
        raise ValueError(
            f"need levels >= 1 and a power-of-2 base_downscale, got {levels}, {base_downscale}"
        )
    if (dst / METADATA).exists():
        raise DataError(dst / METADATA, "file", "already exists (not overwritten)")
    if not (src / "transforms_train.json").is_file():
        raise DataError(src / "transforms_train.json", "file", "missing (not a Blender scene)")
    steps = int(math.log2(base_downscale))
    bigmeta: dict[str, dict[str, list[Any]]] = {}
    for split in splits:
        tpath = src / f"transforms_{split}.json"
        if not tpath.is_file():
            continue
        angle, frames = read_transforms(tpath)
        meta: dict[str, list[Any]] = {k: [] for k in (*FIELDS, "pix2cam")}
        for i, frame in enumerate(frames):
            img = read_image(resolve_image(src, frame["file_path"]), f"frames[{i}].file_path")
            h, w = img.shape[:2]
            if h % (2 ** (steps + levels - 1)) or w % (2 ** (steps + levels - 1)):
                raise DataError(
                    tpath,
                    f"frames[{i}].file_path",
                    f"{w}x{h} is not divisible by {2 ** (steps + levels - 1)} for {levels} levels",
                )
            focal = 0.5 * w / math.tan(0.5 * angle)
            for _ in range(steps):
                img, focal = down2(img), focal / 2
            for j in range(levels):
                name = f"images_{split}/{i:03d}_d{j}.png"
                atomic_write_bytes(dst / name, _png(img))
                f_j = focal / 2**j
                row = {
                    "file_path": name,
                    "cam2world": np.asarray(frame["transform_matrix"], float).tolist(),
                    "width": img.shape[1],
                    "height": img.shape[0],
                    "focal": f_j,
                    "lossmult": 4.0**j,
                    "near": float(near),
                    "far": float(far),
                    "label": j,
                    "pix2cam": _pix2cam(f_j, img.shape[1], img.shape[0]).tolist(),
                }
                for k, v in row.items():
                    meta[k].append(v)
                if j + 1 < levels:
                    img = down2(img)
        bigmeta[split] = meta
    import json

    atomic_write_text(dst / METADATA, json.dumps(bigmeta, indent=1))
    return dst


__all__ = [
    "FIELDS",
    "METADATA",
    "ScaleLevel",
    "down2",
    "load_multiscale",
    "read_metadata",
    "write_multiscale",
]
