"""Multi-view renders of a mesh in the Blender / NeRF-synthetic format (a radiance-field scene).

NeRF's synthetic scenes (Mildenhall et al., ECCV 2020, Sec. 5.1) are 800x800 Blender renders:
100 train / 100 val views from random points on the upper hemisphere around the object, 200 test
views on a ring, all looking at the origin, world up = +z, background transparent. We render our
procedural shapes the same way with the shared ray caster (``zoo.ops.raycast.render_mesh``), at
CPU-friendly sizes:

- cameras on a sphere of ``radius`` around the origin looking at it (up = +z); train and val
  uniform over the upper hemisphere (``z = U(0, 1)``, azimuth ``U(0, 2 pi)``, independent
  streams), test on a ring at ``test_elevation`` degrees with evenly spaced azimuths (NeRF's
  ``render_poses`` ring is at 30 degrees);
- ``camera_angle_x`` defaults to the lego scene's 0.6911 rad (39.6 degrees);
- ``<split>/r_<i>.png`` RGBA, 8 bit, alpha = coverage mask, rgb = shaded vertex colour (0 on
  background); for the test split (``depth_splits``) also ``<split>/r_<i>_depth.npy`` float32
  z-depth (0 on background) referenced by the frame's ``depth_file_path``;
  ``mesh.ply``: the ground-truth mesh, for geometry scores.

The object is a ShapeNet-normalised mesh inside the sphere of radius 0.5, so every object point
has z-depth in ``[radius - 0.5, radius + 0.5]`` from every camera (the optical axis passes
through the origin); with a 0.05 margin these are the scene's near/far (NeRF uses 2 / 6 around
its lego at radius ~4.03). The default radius 1.6 keeps the whole sphere of radius 0.5 in view
(angular radius asin(0.5 / 1.6) = 0.32 rad < half field of view 0.35 rad).

Every file is written atomically and ``manifest.json`` (written last) records the parameters,
a hash of the mesh and every file's size: a scene is reused only when all three match, so an
interrupted or corrupted build is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch
import trimesh
from torch import Tensor

from zoo.data import synthshapes as ss
from zoo.data.formats.shapenet import v2_model_path
from zoo.data.io import (
    atomic_export_mesh,
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_json,
    read_manifest,
    remove_stale_temps,
    write_manifest,
)
from zoo.ops.raycast import render_mesh
from zoo.run_log import say
from zoo.structures.cameras import Cameras, look_at

FORMAT_VERSION = 1
LEGO_CAMERA_ANGLE_X = 0.6911112070083618  # the NeRF-synthetic scenes' horizontal field of view
OBJECT_RADIUS = 0.5  # ShapeNet normalisation: bounding-box diagonal 1
SCENE_MARGIN = 0.05  # near/far and bounding-box slack around the object
MESH_NAME = "mesh.ply"

DEFAULT_RESOLUTION = 100
DEFAULT_RADIUS = 1.6
DEFAULT_VIEWS = {"train": 50, "val": 10, "test": 10}


def mesh_fingerprint(mesh: trimesh.Trimesh) -> str:
    """sha256 of the vertices, faces and vertex colours (what the renders depend on)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(mesh.vertices, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(mesh.faces, dtype=np.int64).tobytes())
    if mesh.visual.kind == "vertex":
        h.update(np.ascontiguousarray(mesh.visual.vertex_colors, dtype=np.uint8).tobytes())
    return h.hexdigest()


def hemisphere_eyes(n: int, radius: float, seed: int) -> Tensor:
    """(n, 3) camera centres uniform on the upper hemisphere of ``radius`` (area-uniform:
    ``z ~ U(0, 1)`` by Archimedes' hat-box theorem, azimuth uniform)."""
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.rand(n, generator=gen, dtype=torch.float64)
    phi = 2.0 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    r_xy = (1.0 - z * z).clamp_min(0.0).sqrt()
    eyes = torch.stack([r_xy * phi.cos(), r_xy * phi.sin(), z], dim=-1)  # (n, 3)
    return (radius * eyes).float()


def ring_eyes(n: int, radius: float, elevation_deg: float) -> Tensor:
    """(n, 3) camera centres on a horizontal ring at ``elevation_deg``, evenly spaced."""
    el = math.radians(elevation_deg)
    phi = torch.arange(n, dtype=torch.float64) * (2.0 * math.pi / max(n, 1))
    eyes = torch.stack(
        [math.cos(el) * phi.cos(), math.cos(el) * phi.sin(), torch.full_like(phi, math.sin(el))],
        dim=-1,
    )
    return (radius * eyes).float()


def scene_cameras(
    n_train: int,
    n_val: int,
    n_test: int,
    resolution: int,
    camera_angle_x: float,
    radius: float,
    seed: int,
    test_elevation: float = 30.0,
) -> dict[str, Cameras]:
    """The cameras of every split (all look at the origin with up = +z)."""
    eyes = {
        "train": hemisphere_eyes(n_train, radius, seed),
        "val": hemisphere_eyes(n_val, radius, seed + 7919),  # independent stream
        "test": ring_eyes(n_test, radius, test_elevation),
    }
    return {
        split: Cameras.from_fov(look_at(e), resolution, resolution, camera_angle_x)
        for split, e in eyes.items()
    }


def scene_bounds(radius: float) -> dict[str, Any]:
    """near/far (z-depth) and the axis-aligned box holding the object, with margins."""
    r = OBJECT_RADIUS + SCENE_MARGIN
    return {"near": radius - r, "far": radius + r, "bbox_min": [-r] * 3, "bbox_max": [r] * 3}


def _png_bytes(rgba: np.ndarray) -> bytes:
    """An (H, W, 4) uint8 array encoded as PNG."""
    return iio.imwrite("<bytes>", rgba, extension=".png")


def _cache_valid(out_dir: Path, params: dict[str, Any]) -> bool:
    """The stored manifest has exactly ``params`` and every listed file has its size."""
    stored = read_manifest(out_dir)
    if stored is None or stored.get("params") != json.loads(json.dumps(params, sort_keys=True)):
        return False
    files = stored.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for rel, size in files.items():
        p = out_dir / rel
        if not p.is_file() or p.stat().st_size != size:
            return False
    return True


def _clear_previous(out_dir: Path) -> None:
    """Remove the manifest and the files an older build listed, plus stray temp files."""
    stored = read_manifest(out_dir)
    (out_dir / "manifest.json").unlink(missing_ok=True)
    if stored and isinstance(stored.get("files"), dict):
        for rel in stored["files"]:
            p = (out_dir / rel).resolve()
            if p.is_file() and out_dir.resolve() in p.parents:
                p.unlink()
    remove_stale_temps(out_dir)


def render_scene(
    mesh: trimesh.Trimesh,
    out_dir: str | os.PathLike[str],
    n_train: int = DEFAULT_VIEWS["train"],
    n_val: int = DEFAULT_VIEWS["val"],
    n_test: int = DEFAULT_VIEWS["test"],
    resolution: int = DEFAULT_RESOLUTION,
    camera_angle_x: float = LEGO_CAMERA_ANGLE_X,
    radius: float = DEFAULT_RADIUS,
    seed: int = 0,
    test_elevation: float = 30.0,
    depth_splits: tuple[str, ...] = ("test",),
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Render ``mesh`` into a Blender-format scene folder (reused when already up to date).

    Args:
        mesh: a ShapeNet-normalised mesh (inside the sphere of radius 0.5), ideally with
            vertex colours.
        out_dir: the scene folder.
        n_train, n_val, n_test: views per split (train/val random on the upper hemisphere,
            test on a ring).
        resolution: square image size in pixels.
        camera_angle_x: horizontal field of view (radians).
        radius: camera distance from the origin.
        seed: seed of the random train / val cameras.
        test_elevation: elevation of the test ring, degrees.
        depth_splits: the splits that also get z-depth maps (``r_<i>_depth.npy``, referenced
            by the frames' ``depth_file_path``).
        force: rebuild even when the cache is up to date.
        progress: show a progress bar (views rendered) when rendering.
    Returns:
        ``out_dir`` as a Path.
    """

    out_dir = Path(out_dir)
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    for split, n in counts.items():
        if n < 1:
            raise ValueError(f"n_{split} must be >= 1, got {n}")
    if int(resolution) != resolution or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    if not 0 < camera_angle_x < math.pi:
        raise ValueError(f"camera_angle_x must be in (0, pi) radians, got {camera_angle_x}")
    half_fov = 0.5 * camera_angle_x
    if radius <= OBJECT_RADIUS / math.sin(half_fov) * 0.999:
        raise ValueError(
            f"radius {radius} is too small: the object (radius {OBJECT_RADIUS}) leaves the "
            f"view; need radius > {OBJECT_RADIUS / math.sin(half_fov):.3f}"
        )
    unknown = set(depth_splits) - set(counts)
    if unknown:
        raise ValueError(
            f"depth_splits must name splits of {sorted(counts)}, got {sorted(unknown)}"
        )
    if len(mesh.faces) == 0:
        raise ValueError("mesh has no faces")
    reach = float(np.linalg.norm(np.asarray(mesh.vertices), axis=1).max())
    if not reach <= OBJECT_RADIUS + 1e-4:  # near/far and the box below assume it
        raise ValueError(
            f"mesh must be ShapeNet-normalised (inside the sphere of radius {OBJECT_RADIUS}); "
            f"its farthest vertex is at distance {reach:.4f} from the origin"
        )
    resolution = int(resolution)
    params = {
        "format_version": FORMAT_VERSION,
        "mesh_sha256": mesh_fingerprint(mesh),
        "n_train": counts["train"],
        "n_val": counts["val"],
        "n_test": counts["test"],
        "resolution": resolution,
        "camera_angle_x": float(camera_angle_x),
        "radius": float(radius),
        "seed": int(seed),
        "test_elevation": float(test_elevation),
        "depth_splits": sorted(set(depth_splits)),
    }
    if not force and _cache_valid(out_dir, params):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous(out_dir)

    cameras = scene_cameras(
        counts["train"],
        counts["val"],
        counts["test"],
        resolution,
        camera_angle_x,
        radius,
        seed,
        test_elevation,
    )
    mask_all, rgb_all, depth_all = _render_views(mesh, cameras, progress)
    rgba_all = np.concatenate([rgb_all * mask_all[..., None], mask_all[..., None]], axis=-1)
    rgba_all = np.round(rgba_all * 255.0).astype(np.uint8)  # (B, H, W, 4)

    files: list[Path] = []
    start = 0
    for split, cams in cameras.items():
        rgba, z = rgba_all[start : start + len(cams)], depth_all[start : start + len(cams)]
        start += len(cams)
        frames = []
        for i in range(len(cams)):
            frame: dict[str, Any] = {
                "file_path": f"./{split}/r_{i}",
                "transform_matrix": cams.c2w[i].tolist(),
            }
            files.append(atomic_write_bytes(out_dir / split / f"r_{i}.png", _png_bytes(rgba[i])))
            if split in depth_splits:
                frame["depth_file_path"] = f"./{split}/r_{i}_depth.npy"
                files.append(atomic_save_npy(out_dir / split / f"r_{i}_depth.npy", z[i]))
            frames.append(frame)
        transforms = {"camera_angle_x": float(camera_angle_x), "frames": frames}
        files.append(atomic_write_json(out_dir / f"transforms_{split}.json", transforms))
    files.append(atomic_export_mesh(out_dir / MESH_NAME, mesh))

    write_manifest(
        out_dir,
        {
            "params": params,
            "scene": {"radius": float(radius), "mesh": MESH_NAME, **scene_bounds(radius)},
            "files": {p.relative_to(out_dir).as_posix(): p.stat().st_size for p in files},
        },
    )
    return out_dir


def _render_views(
    mesh: trimesh.Trimesh, cameras: dict[str, Cameras], progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast every split's views, split after split (a progress bar in views): masks
    (B, H, W) bool, colours (B, H, W, 3) in [0, 1] and z-depths (B, H, W) float32, 0 on
    the background."""
    from tqdm.auto import tqdm

    masks, rgbs, depths = [], [], []
    total = sum(len(c) for c in cameras.values())
    with tqdm(total=total, desc="rendering views", unit="view", disable=not progress) as bar:
        for cams in cameras.values():
            out = render_mesh(mesh, cams)
            mask = out["mask"].bool().cpu().numpy()  # (B, H, W)
            masks.append(mask)
            rgbs.append(out["rgb"].clamp(0, 1).cpu().numpy())  # (B, H, W, 3)
            depths.append(np.where(mask, out["depth"].cpu().numpy(), 0.0).astype(np.float32))
            bar.update(len(cams))
    return np.concatenate(masks), np.concatenate(rgbs), np.concatenate(depths)


def read_scene_info(scene_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``scene`` block (radius, near, far, bbox, mesh file) of a rendered scene's manifest,
    or None for a folder not made by :func:`render_scene`."""
    stored = read_manifest(scene_dir)
    if not stored or not isinstance(stored.get("scene"), dict):
        return None
    return stored["scene"]


# ShapeNet models are +Y up; Blender scenes (and our cameras) are +Z up. A +90 degree turn
# about x maps (x, y, z) -> (x, -z, y): up goes to +z and the bounding box stays centred with
# the same diagonal, so the scene keeps the ShapeNet normalisation.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def y_up_to_z_up(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """A copy of ``mesh`` turned from ShapeNet's +Y-up frame into the scenes' +Z-up frame."""
    out = mesh.copy()
    out.vertices = np.asarray(mesh.vertices) @ Y_UP_TO_Z_UP.T
    return out


def _synthshapes_params(
    root: Path, category: str, index: int, shapes_per_category: int | None, seed: int
) -> dict[str, Any]:
    """Arguments for ``ensure_synthshapes`` that contain shape ``index`` of ``category`` and
    extend the latest request recorded under ``root`` rather than replace it, so the root's
    ``split.json`` / manifest keep describing the shape datasets other datamodules asked for
    (``ensure_synthshapes`` itself never deletes shapes)."""
    name = ss._category_name(category)
    need = max(index + 1, shapes_per_category or 0)
    stored = read_manifest(root / ss.SHAPENET_DIR) or {}
    same = (
        stored.get("generator") == "synthshapes"
        and stored.get("version") == ss.VERSION
        and stored.get("seed") == seed
        and isinstance(stored.get("categories"), list)
        and isinstance(stored.get("shapes_per_category"), int)
    )
    if same and name in stored["categories"] and stored["shapes_per_category"] >= need:
        return {
            "categories": stored["categories"],
            "shapes_per_category": stored["shapes_per_category"],
            "resolution": stored.get("resolution", ss.DEFAULT_RESOLUTION),
        }
    categories = list(stored["categories"]) if same else []
    if name not in categories:
        categories.append(name)
    return {
        "categories": categories,
        "shapes_per_category": max(need, stored["shapes_per_category"] if same else 0),
        "resolution": stored.get("resolution", ss.DEFAULT_RESOLUTION)
        if same
        else ss.DEFAULT_RESOLUTION,
    }


def ensure_synth_scene(
    root: str | os.PathLike[str] = "data/synthshapes",
    category: str = "chair",
    index: int = 0,
    shapes_per_category: int | None = None,
    data_seed: int = 0,
    progress: bool = True,
    **render_kwargs: Any,
) -> Path:
    """Render one procedural shape (see ``zoo.data.synthshapes``) as a multi-view scene.

    Ensures the synthetic ShapeNet-layout meshes under ``root`` (generated with ``data_seed``)
    hold shape number ``index`` (generation order, i.e. ``shape_seed(data_seed, category,
    index)``; stable when the dataset grows) of ``category``, growing the dataset if needed
    but never shrinking it, then renders that mesh, turned from ShapeNet's +Y-up into the
    +Z-up scene frame, into ``<root>/renders/<synset>/<model_id>/`` (``mesh.ply`` there is
    the turned mesh).
    ``render_kwargs`` go to :func:`render_scene` (its ``seed`` draws the cameras). Returns the
    scene folder. With ``progress``, a scene built now is announced by one line saying where
    it goes (it is made once, later runs reuse it) and progress bars (shapes, views).
    """
    root = Path(root)
    if int(index) != index or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    index, seed = int(index), int(data_seed)
    args = _synthshapes_params(root, category, index, shapes_per_category, seed)
    name = ss._category_name(category)
    synset = ss.CATEGORIES[name]
    mid = ss.model_id(name, ss.shape_seed(seed, name, index))
    scene_dir = root / "renders" / synset / mid
    fresh = read_scene_info(scene_dir) is None
    if progress and fresh:
        say(
            f"embedded data: making the {name} scene (shape {index}, "
            f"{render_kwargs.get('resolution', DEFAULT_RESOLUTION)} px views) once, into "
            f"{scene_dir}; later runs reuse it"
        )
    result = ss.ensure_synthshapes(root, seed=seed, progress=progress and fresh, **args)
    path = v2_model_path(result.root, synset, mid)
    mesh = trimesh.load(path, force="mesh", process=False)
    return render_scene(y_up_to_z_up(mesh), scene_dir, progress=progress, **render_kwargs)
