"""COLMAP sparse models: ``cameras``, ``images`` and ``points3D`` in the binary (``.bin``) or
text (``.txt``) layout of COLMAP's ``src/colmap/scene/reconstruction_io.cc`` (documented in
COLMAP's "Output Format" page), read without COLMAP or pycolmap.

A scene folder as the 3D Gaussian Splatting code reads it (Kerbl et al. 2023,
``scene/dataset_readers.py: readColmapSceneInfo``)::

    <root>/sparse/0/{cameras,images,points3D}.{bin,txt}   (or <root>/sparse/...)
    <root>/images/<name>                                  (``images`` entries' names)

Poses are world-to-camera ``x_cam = R(q) x + t`` with OpenCV camera axes; they become zoo's
OpenGL camera-to-world. Supported camera models: ``SIMPLE_PINHOLE``, ``PINHOLE``,
``SIMPLE_RADIAL``, ``RADIAL`` and ``OPENCV`` (distorted images are undistorted on load); any
other model is refused naming the camera. When the image files are smaller than the camera's
``width x height`` by a common factor (the ``images_2/4/8`` folders of 3DGS datasets), the
intrinsics are scaled by it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from zoo.data.formats.blender import read_image
from zoo.data.formats.capture import Capture, load_images
from zoo.data.io import DataError
from zoo.ops.camera_math import opencv_to_opengl, qvec_to_rotmat, world_to_camera_to_c2w
from zoo.structures.cameras import Cameras

# COLMAP's camera models: id -> (name, number of parameters) (src/colmap/sensor/models.h).
CAMERA_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
MODEL_IDS = {name: i for i, (name, _) in CAMERA_MODELS.items()}
SUPPORTED = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray

    def intrinsics(self) -> tuple[float, float, float, float, np.ndarray]:
        """``fx, fy, cx, cy`` and the OpenCV coefficients ``k1 k2 p1 p2 k3`` (5,)."""
        p, k = self.params, np.zeros(5)
        if self.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
            fx = fy = p[0]
            cx, cy = p[1], p[2]
            k[: len(p) - 3] = p[3:]  # SIMPLE_RADIAL: k1; RADIAL: k1 k2
        else:  # PINHOLE, OPENCV
            fx, fy, cx, cy = p[:4]
            k[: len(p) - 4] = p[4:]  # OPENCV: k1 k2 p1 p2
        return float(fx), float(fy), float(cx), float(cy), k


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # (4,) w x y z, world-to-camera
    tvec: np.ndarray  # (3,)
    camera_id: int
    name: str


class _Reader:
    """Little-endian reads from a binary model file; a short read is a DataError."""

    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f, self.path = f, path

    def read(self, fmt: str, field: str) -> tuple[Any, ...]:
        size = struct.calcsize("<" + fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise DataError(self.path, field, "file ends early (truncated binary model)")
        return struct.unpack("<" + fmt, data)

    def read_name(self, field: str) -> str:
        chars = bytearray()
        while (c := self.f.read(1)) != b"\x00":
            if not c:
                raise DataError(self.path, field, "file ends early inside an image name")
            chars += c
        return chars.decode("utf-8", errors="replace")


def _text_lines(path: Path) -> list[str]:
    try:
        return [ln.rstrip("\n") for ln in path.read_text().splitlines() if not ln.startswith("#")]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, "file", f"not a readable text file ({e})") from e


def _model_name(path: Path, field: str, model: int | str) -> tuple[str, int]:
    if isinstance(model, int):
        if model not in CAMERA_MODELS:
            raise DataError(path, field, f"unknown camera model id {model}")
        return CAMERA_MODELS[model]
    if model not in MODEL_IDS:
        raise DataError(path, field, f"unknown camera model {model!r}")
    return CAMERA_MODELS[MODEL_IDS[model]]


def read_cameras(path: Path) -> dict[int, ColmapCamera]:
    """``cameras.bin`` / ``cameras.txt`` -> {camera_id: ColmapCamera}."""
    cams: dict[int, ColmapCamera] = {}
    if path.suffix == ".bin":
        with open(path, "rb") as f:
            r = _Reader(f, path)
            (n,) = r.read("Q", "num_cameras")
            for i in range(n):
                cid, mid, w, h = r.read("iiQQ", f"cameras[{i}]")
                name, n_par = _model_name(path, f"cameras[{cid}].model", mid)
                params = np.array(r.read("d" * n_par, f"cameras[{cid}].params"))
                cams[cid] = ColmapCamera(cid, name, int(w), int(h), params)
        return cams
    for ln in _text_lines(path):
        parts = ln.split()
        if not parts:
            continue
        try:
            cid, model, w, h = int(parts[0]), parts[1], int(parts[2]), int(parts[3])
            params = np.array([float(v) for v in parts[4:]])
        except (ValueError, IndexError) as e:
            raise DataError(path, "cameras", f"malformed line {ln!r}") from e
        name, n_par = _model_name(path, f"cameras[{cid}].model", model)
        if len(params) != n_par:
            raise DataError(
                path, f"cameras[{cid}].params", f"{name} needs {n_par}, got {len(params)}"
            )
        cams[cid] = ColmapCamera(cid, name, w, h, params)
    return cams


def read_images(path: Path) -> dict[int, ColmapImage]:
    """``images.bin`` / ``images.txt`` -> {image_id: ColmapImage} (2D points skipped)."""
    images: dict[int, ColmapImage] = {}
    if path.suffix == ".bin":
        with open(path, "rb") as f:
            r = _Reader(f, path)
            (n,) = r.read("Q", "num_reg_images")
            for i in range(n):
                iid, *rest = r.read("i7di", f"images[{i}]")
                q, t, cid = np.array(rest[:4]), np.array(rest[4:7]), rest[7]
                name = r.read_name(f"images[{iid}].name")
                (n2d,) = r.read("Q", f"images[{iid}].num_points2D")
                f.seek(24 * n2d, 1)  # (x, y, point3D_id) per 2D point
                images[iid] = ColmapImage(iid, q, t, cid, name)
        return images
    lines = _text_lines(path)
    i = 0
    while i < len(lines):
        parts = lines[i].split()
        if not parts:  # blank line where a header would be
            i += 1
            continue
        try:
            iid = int(parts[0])
            vals = [float(v) for v in parts[1:8]]
            cid, name = int(parts[8]), " ".join(parts[9:])
        except (ValueError, IndexError) as e:
            raise DataError(path, "images", f"malformed line {lines[i]!r}") from e
        if not name:
            raise DataError(path, f"images[{iid}].name", "missing")
        images[iid] = ColmapImage(iid, np.array(vals[:4]), np.array(vals[4:7]), cid, name)
        i += 2  # the header and its 2D-points line
    return images


def read_points3d(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``points3D.bin`` / ``.txt`` -> xyz (M, 3) float64 and rgb (M, 3) float in [0, 1]."""
    xyz, rgb = [], []
    if path.suffix == ".bin":
        with open(path, "rb") as f:
            r = _Reader(f, path)
            (n,) = r.read("Q", "num_points")
            for i in range(n):
                vals = r.read("Q3d3BdQ", f"points3D[{i}]")
                xyz.append(vals[1:4])
                rgb.append(vals[4:7])
                f.seek(8 * vals[8], 1)  # track: (image_id, point2D_idx) int32 pairs
    else:
        for ln in _text_lines(path):
            parts = ln.split()
            if not parts:
                continue
            try:
                xyz.append([float(v) for v in parts[1:4]])
                rgb.append([int(v) for v in parts[4:7]])
            except (ValueError, IndexError) as e:
                raise DataError(path, "points3D", f"malformed line {ln[:80]!r}") from e
    if not xyz:
        return np.zeros((0, 3)), np.zeros((0, 3))
    return np.asarray(xyz, dtype=np.float64), np.asarray(rgb, dtype=np.float64) / 255.0


def find_model(root: Path) -> Path:
    """The folder holding the model files: ``root`` itself, ``root/sparse/0`` or
    ``root/sparse``; DataError when none has ``cameras`` + ``images``."""
    for cand in (root, root / "sparse" / "0", root / "sparse"):
        if any((cand / f"cameras{s}").is_file() for s in (".bin", ".txt")):
            return cand
    raise DataError(root, "sparse/0", "no COLMAP model (cameras.bin / cameras.txt) found")


def _model_file(folder: Path, stem: str) -> Path:
    for suffix in (".bin", ".txt"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise DataError(folder / f"{stem}.bin", stem, "missing (neither .bin nor .txt)")


def load_colmap(
    root: str | Path,
    images: str = "images",
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    downscale: int = 1,
) -> Capture:
    """Load a COLMAP scene folder (see the module docstring) as a :class:`Capture` (images
    sorted by name, sparse points attached)."""
    root = Path(root)
    model = find_model(root)
    cam_path, img_path = _model_file(model, "cameras"), _model_file(model, "images")
    cams = read_cameras(cam_path)
    entries = sorted(read_images(img_path).values(), key=lambda e: e.name)
    if not entries:
        raise DataError(img_path, "images", "the model has no registered images")
    folder = root / images
    paths, intr, dist, c2w = [], [], [], []
    for e in entries:
        if e.camera_id not in cams:
            raise DataError(img_path, f"images[{e.id}].camera_id", f"no camera {e.camera_id}")
        cam = cams[e.camera_id]
        if cam.model not in SUPPORTED:
            raise DataError(
                cam_path,
                f"cameras[{cam.id}].model",
                f"unsupported camera model {cam.model} (supported: {', '.join(SUPPORTED)}; "
                "undistort with colmap image_undistorter first)",
            )
        fx, fy, cx, cy, k = cam.intrinsics()
        paths.append(folder / e.name)
        intr.append([fx, fy, cx, cy, cam.width, cam.height])
        dist.append(k)
        c2w.append(world_to_camera_to_c2w(qvec_to_rotmat(e.qvec), e.tvec))
    for e, p in zip(entries, paths, strict=True):
        if not p.is_file():
            raise DataError(img_path, f"images[{e.id}].name", f"image file {p} does not exist")
    # Scale intrinsics to the files' size (images_N folders), read from the first file.

    h0, w0 = read_image(paths[0], "name").shape[:2]
    k_full = torch.tensor(intr, dtype=torch.float64)  # (N, 6)
    sx, sy = w0 / k_full[:, 4], h0 / k_full[:, 5]
    k_file = torch.stack(
        [k_full[:, 0] * sx, k_full[:, 1] * sy, k_full[:, 2] * sx, k_full[:, 3] * sy], 1
    )
    distortion = torch.tensor(np.stack(dist))
    imgs, alpha = load_images(
        paths,
        "name",
        background,
        downscale,
        k_file,
        distortion if distortion.abs().sum() > 0 else None,
    )
    kd = k_file / downscale
    c2w_gl = torch.tensor(opencv_to_opengl(np.stack(c2w)), dtype=torch.float32)
    cameras = Cameras(c2w_gl, kd[:, 0], kd[:, 1], kd[:, 2], kd[:, 3], imgs.shape[2], imgs.shape[1])
    points = colors = None
    for suffix in (".bin", ".txt"):
        if (model / f"points3D{suffix}").is_file():
            points, colors = read_points3d(model / f"points3D{suffix}")
            break
    return Capture(
        images=imgs,
        cameras=cameras,
        names=[str(p) for p in paths],
        pose_source=(str(img_path), "qvec/tvec"),
        points=points,
        colors=colors,
        meta={"alpha": alpha, "model": str(model)},
    )
