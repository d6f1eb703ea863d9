"""Writing shapes to files that open in common viewers (MeshLab, Blender, any glTF viewer)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from zoo.data.io import atomic_write_via_path
from zoo.ops.point_render import render_points
from zoo.representation import Representation
from zoo.structures.cameras import Cameras, look_at


def export_mesh(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Mesh as OBJ / PLY / GLB / STL / OFF (by suffix)."""
    path = Path(path)
    return atomic_write_via_path(path, lambda p: mesh.export(p, file_type=path.suffix[1:]))


def export_points(points: Tensor | np.ndarray, path: str | Path) -> Path:
    """(N, 3) point cloud as a PLY file."""
    pts = torch.as_tensor(points).detach().cpu().numpy().reshape(-1, 3)
    cloud = trimesh.PointCloud(pts)
    path = Path(path)
    return atomic_write_via_path(path, lambda p: cloud.export(p, file_type="ply"))


def export_image(image: Tensor | np.ndarray, path: str | Path) -> Path:
    """(H, W, 3) or (H, W) image in [0, 1] as PNG."""
    import imageio.v3 as iio

    arr = torch.as_tensor(image).detach().cpu().clamp(0, 1).numpy()
    path = Path(path)
    return atomic_write_via_path(
        path, lambda p: iio.imwrite(p, (arr * 255).round().astype(np.uint8))
    )


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
    return atomic_write_via_path(path, lambda p: iio.imwrite(p, video, **kwargs))


def image_grid(images: Sequence[Tensor], cols: int) -> Tensor:
    """Tile (H, W, 3) images into one (rows*H, cols*W, 3) image (white padding)."""
    h, w = images[0].shape[:2]
    rows = math.ceil(len(images) / cols)
    grid = torch.ones(rows * h, cols * w, 3)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = img.cpu()
    return grid


def points_grid_image(
    clouds: Sequence[Tensor | None],
    cols: int,
    size: int,
    up_axis: str = "y",
    radius: float = 1.6,
) -> Tensor:
    """Point clouds drawn as shaded discs (:func:`zoo.ops.point_render.render_points`) and
    tiled like :func:`image_grid`: one (rows*size, cols*size, 3) image in [0, 1].

    Every cell is seen by the same camera (the first of :func:`orbit_cameras`, ``radius`` from
    the origin, world up ``up_axis``) and the clouds are not rescaled, so sizes compare across
    cells. A cloud that is None or has fewer than 3 finite points is a blank cell, keeping
    cell ``i`` for cloud ``i``.

    Args:
        clouds: (N_i, 3) point clouds in the shapes' own units.
    """
    if not clouds:
        raise ValueError("points_grid_image needs at least one cloud")
    cam = orbit_cameras(1, size=size, radius=radius, up_axis=up_axis)
    cells = []
    for cloud in clouds:
        pts = None if cloud is None else cloud.detach().float().cpu().reshape(-1, 3)
        pts = None if pts is None else pts[torch.isfinite(pts).all(dim=-1)]  # (N, 3)
        if pts is None or len(pts) < 3:
            cells.append(torch.ones(size, size, 3))
        else:
            cells.append(render_points(pts, cam)["rgb"][0])
    return image_grid(cells, cols)


def caption_image(image: Tensor, text: str, height: int | None = None) -> Tensor:
    """``image`` (H, W, 3) with a white strip of ``height`` px on top holding ``text`` in black
    (Pillow's default font, made smaller until the text fits the width; default height: a tenth
    of the width, 14 to 32 px)."""
    from PIL import Image, ImageDraw, ImageFont

    h = int(height) if height is not None else min(32, max(14, image.shape[1] // 10))
    strip = Image.new("RGB", (image.shape[1], h), "white")
    draw = ImageDraw.Draw(strip)
    for font_px in range(round(0.7 * h), 5, -1):
        font = ImageFont.load_default(size=font_px)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left <= image.shape[1] - h // 2:
            break
    draw.text((h // 4, (h - top - bottom) // 2), text, fill="black", font=font)
    top_rgb = torch.from_numpy(np.asarray(strip, dtype=np.float32) / 255.0)  # (h, W, 3)
    return torch.cat([top_rgb, image.cpu().float()], dim=0)


def side_by_side(images: Sequence[Tensor], gap: int = 16) -> Tensor:
    """(H_i, W_i, 3) images left to right, top-aligned, ``gap`` white px apart and padded with
    white to the tallest."""
    h = max(img.shape[0] for img in images)
    w = sum(img.shape[1] for img in images) + gap * (len(images) - 1)
    out = torch.ones(h, w, 3)
    x = 0
    for img in images:
        out[: img.shape[0], x : x + img.shape[1]] = img.cpu()
        x += img.shape[1] + gap
    return out
