"""ScanNet sequences as exported by ScanNet's ``SensReader`` (Dai et al., "ScanNet", CVPR
2017; ``SensReader/python/reader.py --export_color_images --export_depth_images
--export_poses --export_intrinsics``)::

    <root>/color/<i>.jpg                 colour frames (1296x968 in ScanNet v2)
    <root>/depth/<i>.png                 16-bit depth in millimetres (640x480), 0 = no data
    <root>/pose/<i>.txt                  4x4 camera-to-world, OpenCV axes, metres
    <root>/intrinsic/intrinsic_color.txt 4x4 (K in the top-left 3x3)
    <root>/intrinsic/intrinsic_depth.txt 4x4

Frames are taken in numeric order, every ``frame_step``-th; frames whose pose has non-finite
entries (ScanNet marks lost tracking with ``-inf``) are skipped and counted in ``meta``. Depth is
used twice: back-projected with the depth intrinsics into scene points (every
``point_stride``-th pixel; they initialise the Gaussian model), and resized by nearest
neighbour onto the colour grid as per-pixel depth (as nerfstudio's ScanNet parser does, which
treats the two sensors as aligned). The OpenCV intrinsics (pixel centres at integers) get
``+0.5`` on the principal point for zoo's pixel-centre convention.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data.formats.capture import Capture, load_images
from zoo.data.formats.nerfstudio import read_depth_file
from zoo.data.io import DataError
from zoo.ops.camera_math import opencv_to_opengl
from zoo.structures.cameras import Cameras


def _read_matrix(path: Path, field: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(path, field, "file does not exist")
    try:
        m = np.loadtxt(path, dtype=np.float64)
    except ValueError as e:
        raise DataError(path, field, f"not a 4x4 text matrix ({e})") from e
    if m.shape != (4, 4):
        raise DataError(path, field, f"expected a 4x4 matrix, got {m.shape}")
    return m


def _frame_files(folder: Path, suffix: str, field: str) -> dict[int, Path]:
    if not folder.is_dir():
        raise DataError(folder, field, "folder does not exist")
    out = {}
    for p in folder.iterdir():
        if p.suffix == suffix and p.stem.isdigit():
            out[int(p.stem)] = p
    return out


def _frames(root: Path, frame_step: int) -> tuple[list[int], list[np.ndarray], int, dict]:
    """Frame ids used (numeric order, every ``frame_step``-th, finite poses), their OpenCV
    camera-to-world poses, the number skipped, and the colour files."""
    colors = _frame_files(root / "color", ".jpg", "color")
    if not colors:
        colors = _frame_files(root / "color", ".png", "color")
    if not colors:
        raise DataError(root / "color", "color", "no frames <i>.jpg")
    poses = _frame_files(root / "pose", ".txt", "pose")
    ids, c2w, skipped = [], [], 0
    for i in sorted(colors)[::frame_step]:
        if i not in poses:
            raise DataError(root / "pose" / f"{i}.txt", "pose", "missing for colour frame")
        m = _read_matrix(poses[i], "pose")
        if not np.isfinite(m).all():
            skipped += 1
            continue
        ids.append(i)
        c2w.append(m)
    if not ids:
        raise DataError(root / "pose", "pose", "no frame has a finite pose")
    return ids, c2w, skipped, colors


def load_scannet(
    root: str | Path,
    frame_step: int = 1,
    downscale: int = 1,
    point_stride: int = 8,
    max_depth: float = 10.0,
) -> Capture:
    """Load a ScanNet export (see the module docstring) as a :class:`Capture`."""
    root = Path(root)
    ids, c2w, skipped, colors = _frames(root, frame_step)
    depths = _frame_files(root / "depth", ".png", "depth") if (root / "depth").is_dir() else {}
    k_color = _read_matrix(root / "intrinsic" / "intrinsic_color.txt", "intrinsic_color")
    images, _ = load_images([colors[i] for i in ids], "color", (0.0, 0.0, 0.0), downscale)
    h, w = images.shape[1:3]
    # OpenCV intrinsics put pixel centres at integers; zoo's at +0.5 (zoo.structures.cameras).
    fx, fy = k_color[0, 0], k_color[1, 1]
    cx, cy = k_color[0, 2] + 0.5, k_color[1, 2] + 0.5
    c2w_gl = torch.tensor(opencv_to_opengl(np.stack(c2w)), dtype=torch.float32)
    cameras = Cameras(c2w_gl, fx / downscale, fy / downscale, cx / downscale, cy / downscale, w, h)
    depth = points = None
    if depths and all(i in depths for i in ids):
        k_depth = _read_matrix(root / "intrinsic" / "intrinsic_depth.txt", "intrinsic_depth")
        maps, pts = [], []
        for i, pose in zip(ids, c2w, strict=True):
            d = read_depth_file(depths[i], "depth", 1e-3)  # (Hd, Wd) metres
            pts.append(_backproject(d, k_depth, pose, point_stride, max_depth))
            dt = torch.from_numpy(d)[None, None]
            maps.append(F.interpolate(dt, size=(h, w), mode="nearest")[0, 0])
        depth = torch.stack(maps)  # (N, H, W)
        points = np.concatenate(pts)
    return Capture(
        images=images,
        cameras=cameras,
        names=[str(colors[i]) for i in ids],
        pose_source=(str(root / "pose"), "<i>.txt"),
        points=points,
        depth=depth,
        meta={"skipped_frames": skipped, "frame_ids": ids},
    )


def scannet_depth_points(
    root: str | Path, frame_step: int = 1, point_stride: int = 8, max_depth: float = 10.0
) -> np.ndarray:
    """The back-projected depth points (M, 3) of :func:`load_scannet`'s frames, in the export's
    world frame, read again from the files (depth and poses only, no colour images): how the
    Gaussian model gets them (``info()["init_points"]`` names the folder, not the points)."""
    root = Path(root)
    ids, c2w, _, _ = _frames(root, frame_step)
    depths = _frame_files(root / "depth", ".png", "depth")
    k_depth = _read_matrix(root / "intrinsic" / "intrinsic_depth.txt", "intrinsic_depth")
    pts = []
    for i, pose in zip(ids, c2w, strict=True):
        if i not in depths:
            raise DataError(root / "depth" / f"{i}.png", "depth", "missing for colour frame")
        d = read_depth_file(depths[i], "depth", 1e-3)
        pts.append(_backproject(d, k_depth, pose, point_stride, max_depth))
    return np.concatenate(pts)


def _backproject(
    depth: np.ndarray, k: np.ndarray, c2w: np.ndarray, stride: int, max_depth: float
) -> np.ndarray:
    """World points (M, 3) of every ``stride``-th pixel with 0 < depth < max_depth (OpenCV
    pinhole with integer pixel centres: ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``)."""
    v, u = np.mgrid[0 : depth.shape[0] : stride, 0 : depth.shape[1] : stride]
    z = depth[v, u]
    ok = (z > 0) & (z < max_depth)
    z, u, v = z[ok], u[ok], v[ok]
    cam = np.stack([(u - k[0, 2]) * z / k[0, 0], (v - k[1, 2]) * z / k[1, 1], z], -1)
    return cam @ c2w[:3, :3].T + c2w[:3, 3]
