"""Writing shapes to files that open in common viewers (MeshLab, Blender, any glTF viewer)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from zoo.representation import Representation
from zoo.structures.cameras import Cameras, look_at


def _atomic(path: Path, write: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)
    return path


def export_mesh(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Mesh as OBJ / PLY / GLB / STL / OFF (by suffix)."""
    path = Path(path)
    return _atomic(path, lambda p: mesh.export(p, file_type=path.suffix[1:]))


def export_points(points: Tensor | np.ndarray, path: str | Path) -> Path:
    """(N, 3) point cloud as a PLY file."""
    pts = torch.as_tensor(points).detach().cpu().numpy().reshape(-1, 3)
    cloud = trimesh.PointCloud(pts)
    path = Path(path)
    return _atomic(path, lambda p: cloud.export(p, file_type="ply"))


def export_image(image: Tensor | np.ndarray, path: str | Path) -> Path:
    """(H, W, 3) or (H, W) image in [0, 1] as PNG."""
    import imageio.v3 as iio

    arr = torch.as_tensor(image).detach().cpu().clamp(0, 1).numpy()
    path = Path(path)
    return _atomic(path, lambda p: iio.imwrite(p, (arr * 255).round().astype(np.uint8)))


def orbit_cameras(
    n: int,
    size: int = 128,
    radius: float = 1.6,
    elevation_deg: float = 25.0,
    fov_deg: float = 40.0,
    device: torch.device | str = "cpu",
    up_axis: str = "z",
) -> Cameras:
    """n cameras on a ring around the origin, looking at it, with world up ``up_axis``: "z" for
    radiance scenes (Blender frame), "y" for shapes in the ShapeNet frame."""
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    az = torch.linspace(0, 2 * math.pi, n + 1)[:-1]
    el = math.radians(elevation_deg)
    ring_a = radius * math.cos(el) * torch.cos(az)
    ring_b = radius * math.cos(el) * torch.sin(az)
    height = torch.full_like(az, radius * math.sin(el))
    if up_axis == "z":
        eye, up = torch.stack([ring_a, ring_b, height], dim=-1), torch.tensor([0.0, 0.0, 1.0])
    else:
        eye, up = torch.stack([ring_b, height, ring_a], dim=-1), torch.tensor([0.0, 1.0, 0.0])
    c2w = look_at(eye, up=up)
    return Cameras.from_fov(c2w, size, size, math.radians(fov_deg)).to(device)


def up_axis_of(model: Representation) -> str:
    """World up of a model's shapes: radiance scenes are +Z up, shape datasets +Y up."""
    return "z" if model.kind == "radiance" else "y"


def export_turntable(
    model: Representation,
    shape: Any,
    path: str | Path,
    n_frames: int = 36,
    size: int = 128,
    radius: float = 1.6,
    fps: int = 12,
) -> Path:
    """A turntable GIF (or MP4 by suffix, if an encoder is installed) of ``shape``."""
    import imageio.v3 as iio

    cams = orbit_cameras(n_frames, size, radius, device=model.device_, up_axis=up_axis_of(model))
    frames = []
    with torch.no_grad():
        for i in range(0, n_frames, 8):
            frames.append(model.render(shape, cams[i : i + 8]).clamp(0, 1).cpu())
    video = (torch.cat(frames).numpy() * 255).round().astype(np.uint8)
    path = Path(path)
    kwargs = {"duration": 1000 / fps, "loop": 0} if path.suffix == ".gif" else {"fps": fps}
    return _atomic(path, lambda p: iio.imwrite(p, video, **kwargs))


def image_grid(images: Sequence[Tensor], cols: int) -> Tensor:
    """Tile (H, W, 3) images into one (rows*H, cols*W, 3) image (white padding)."""
    h, w = images[0].shape[:2]
    rows = math.ceil(len(images) / cols)
    grid = torch.ones(rows * h, cols * w, 3)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = img.cpu()
    return grid
