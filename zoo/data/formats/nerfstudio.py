"""nerfstudio's ``transforms.json`` (the layout ``ns-process-data`` writes and
``nerfstudio/data/dataparsers/nerfstudio_dataparser.py`` reads), also what ``zoo.process``
writes::

    {"camera_model": "OPENCV",                 # or PINHOLE / SIMPLE_PINHOLE
     "fl_x": 1111.1, "fl_y": 1111.1, "cx": 400, "cy": 400, "w": 800, "h": 800,
     "k1": 0, "k2": 0, "k3": 0, "p1": 0, "p2": 0,  # OpenCV distortion (optional)
     "frames": [{"file_path": "images/frame_00001.png",
                 "transform_matrix": [[...4x4 camera-to-world, OpenGL axes...]],
                 "fl_x": ...,                     # any intrinsic may be given per frame
                 "depth_file_path": "depth/frame_00001.png",   # optional
                 "mask_path": "masks/frame_00001.png"}],       # optional
     "ply_file_path": "sparse_pc.ply",           # optional sparse points (3DGS init)
     "test_filenames": ["images/frame_00090.png"],  # optional held-out frames
     "applied_transform": [[...3x4...]]}          # optional: what was applied to the poses

Per-frame values override the top-level ones. ``test_filenames`` (nerfstudio's explicit split)
names the held-out frames by ``file_path``. Depth files are 16-bit PNGs scaled by
``depth_unit_scale_factor`` (nerfstudio's default 1e-3: millimetres) or float ``.npy``
metres. Fisheye and equirectangular cameras are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch
import trimesh

from zoo.data.formats.capture import Capture, load_images
from zoo.data.io import DataError, read_json
from zoo.structures.cameras import Cameras

INTRINSICS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
DISTORTION = ("k1", "k2", "p1", "p2", "k3")
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")


def _number(path: Path, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise DataError(path, field, f"expected a finite number, got {value!r:.40}")
    return float(value)


def read_depth_file(path: Path, field: str, unit: float) -> np.ndarray:
    """A depth map: 16-bit PNG times ``unit`` (metres per step) or a float ``.npy``."""
    if not path.is_file():
        raise DataError(path, field, "depth file does not exist")
    try:
        depth = np.load(path, allow_pickle=False) if path.suffix == ".npy" else iio.imread(path)
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(path, field, f"not a readable depth map ({e})") from e
    if depth.ndim != 2:
        raise DataError(path, field, f"expected an (H, W) depth map, got {depth.shape}")
    scale = 1.0 if np.issubdtype(depth.dtype, np.floating) else unit
    return depth.astype(np.float32) * np.float32(scale)


def read_point_ply(path: Path, field: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (M, 3) and colours (M, 3) in [0, 1] (or None) of a PLY point cloud."""
    if not path.is_file():
        raise DataError(path, field, "point cloud file does not exist")
    try:
        cloud = trimesh.load(path, process=False)
    except Exception as e:  # noqa: BLE001 - trimesh raises many types on bad files
        raise DataError(path, field, f"not a readable PLY ({type(e).__name__}: {e})") from e
    points = np.asarray(getattr(cloud, "vertices", np.zeros((0, 3))), dtype=np.float64)
    colors = getattr(cloud, "colors", None)
    if colors is not None and len(colors) == len(points) and len(points):
        return points, np.asarray(colors, dtype=np.float64)[:, :3] / 255.0
    return points, None


def load_nerfstudio(
    path: str | Path,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    downscale: int = 1,
) -> Capture:
    """Load a ``transforms.json`` (or the folder holding one) as a :class:`Capture`.

    Raises:
        DataError naming the json and the field (``camera_model``, ``frames[i].file_path``,
        ``frames[i].fl_x``...), or the image file and its field.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    root = path.parent
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise DataError(path, "file", f"expected a JSON object, got {type(meta).__name__}")
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise DataError(path, "frames", "missing or empty (list of {file_path, transform_matrix})")
    unit = float(meta.get("depth_unit_scale_factor", 1e-3))
    paths, masks, depth_paths, intr, dist, c2w = [], [], [], [], [], []
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict):
            raise DataError(path, f"frames[{i}]", "expected an object")
        model = fr.get("camera_model", meta.get("camera_model", "OPENCV"))
        if model not in PINHOLE_MODELS:
            raise DataError(
                path,
                f"frames[{i}].camera_model" if "camera_model" in fr else "camera_model",
                f"unsupported camera model {model!r} (supported: {', '.join(PINHOLE_MODELS)})",
            )
        vals = []
        for key in INTRINSICS:
            field = f"frames[{i}].{key}"
            if key not in fr and key not in meta:
                raise DataError(path, field, "missing (neither in the frame nor at the top level)")
            vals.append(_number(path, field, fr.get(key, meta.get(key))))
        intr.append(vals)
        dist.append(
            [_number(path, f"frames[{i}].{k}", fr.get(k, meta.get(k, 0.0))) for k in DISTORTION]
        )
        fp = fr.get("file_path")
        if not isinstance(fp, str):
            raise DataError(path, f"frames[{i}].file_path", "missing or not a string")
        img = root / fp
        if not img.is_file():
            raise DataError(path, f"frames[{i}].file_path", f"image file {img} does not exist")
        paths.append(img)
        try:
            m = np.asarray(fr.get("transform_matrix"), dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(path, f"frames[{i}].transform_matrix", f"not a matrix ({e})") from e
        if m.shape not in ((4, 4), (3, 4)) or not np.isfinite(m).all():
            raise DataError(
                path,
                f"frames[{i}].transform_matrix",
                f"expected a finite 4x4 matrix, got {m.shape}",
            )
        c2w.append(np.vstack([m[:3], [0, 0, 0, 1]]))
        if isinstance(fr.get("mask_path"), str):
            masks.append(root / fr["mask_path"])
        if isinstance(fr.get("depth_file_path"), str):
            depth_paths.append(root / fr["depth_file_path"])
    k = torch.tensor(intr, dtype=torch.float64)  # (N, 6) fx fy cx cy w h
    distortion = torch.tensor(dist, dtype=torch.float64)  # (N, 5)
    images, alpha = load_images(
        paths,
        "file_path",
        background,
        downscale,
        k[:, :4],
        distortion if distortion.abs().sum() > 0 else None,
        masks if len(masks) == len(paths) else None,
    )
    h, w = images.shape[1:3]
    for i, (p, row) in enumerate(zip(paths, intr, strict=True)):
        if (int(row[4]) // downscale, int(row[5]) // downscale) != (w, h):
            raise DataError(
                path, f"frames[{i}].w/h", f"say {int(row[4])}x{int(row[5])}, {p.name} is not"
            )
    kd = k / downscale
    cameras = Cameras(
        torch.tensor(np.stack(c2w), dtype=torch.float32),
        kd[:, 0],
        kd[:, 1],
        kd[:, 2],
        kd[:, 3],
        w,
        h,
    )
    depth = None
    if depth_paths and len(depth_paths) == len(paths):
        maps = []
        for i, dp in enumerate(depth_paths):
            d = read_depth_file(dp, f"frames[{i}].depth_file_path", unit)
            if d.shape != (h * downscale, w * downscale) and d.shape != (h, w):
                raise DataError(dp, "depth_file_path", f"shape {d.shape}, images are {h}x{w}")
            maps.append(d[::downscale, ::downscale][:h, :w] if d.shape != (h, w) else d)
        depth = torch.from_numpy(np.stack(maps))
    points = colors = None
    if isinstance(meta.get("ply_file_path"), str):
        points, colors = read_point_ply(root / meta["ply_file_path"], "ply_file_path")
    test = None
    if "test_filenames" in meta:
        wanted = meta["test_filenames"]
        if not isinstance(wanted, list) or not all(isinstance(f, str) for f in wanted):
            raise DataError(path, "test_filenames", "expected a list of file paths")
        known = {str(Path(f["file_path"])): i for i, f in enumerate(frames)}
        missing = [f for f in wanted if str(Path(f)) not in known]
        if missing:
            raise DataError(path, "test_filenames", f"not a frame's file_path: {missing[0]!r}")
        test = sorted(known[str(Path(f))] for f in wanted)
    return Capture(
        images=images,
        cameras=cameras,
        names=[str(p) for p in paths],
        pose_source=(str(path), "transform_matrix"),
        test_indices=test,
        points=points,
        colors=colors,
        depth=depth,
        meta={"alpha": alpha, "applied_transform": meta.get("applied_transform")},
    )
