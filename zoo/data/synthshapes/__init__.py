"""``synthshapes``: a small, seeded, procedural stand-in for ShapeNetCore.

Each shape is a union of primitives (boxes, rounded boxes, cylinders, capsules, cones, tori,
ellipsoids) with random proportions, written as an analytic signed distance function: union is
a polynomial smooth minimum (Quilez, "smooth minimum", k = ``BLEND``), carving (the mug's
cavity) is ``max(d, -d_cavity)``. The zero level set is sampled on a grid of ``resolution``
points along the longest side of the shape's box and extracted with the shared marching cubes
(Lewiner), which gives one closed, consistently oriented surface. The mesh is then normalised
like ShapeNetCore v2 (bounding box centred at the origin, diagonal 1), and the analytic SDF is
transformed the same way, so :func:`shape_sdf` is an exact-up-to-discretisation ground truth.

Frame: +Y up, objects stand on their lowest point, the front faces +Z (ShapeNet models are Y-up).
Every vertex gets the colour of its nearest part, stored in the OBJ as ``v x y z r g b``.

On disk (:func:`ensure_synthshapes`), the ShapeNetCore v2 layout::

    <root>/ShapeNetCore.v2/manifest.json                  parameters of the latest request
    <root>/ShapeNetCore.v2/split.json                     its {synset: {train, val, test: [ids]}}
    <root>/ShapeNetCore.v2/<synset>/<model_id>/models/model_normalized.obj
    <root>/ShapeNetCore.v2/<synset>/<model_id>/models/synthshapes.json   how it was made, size

Shapes of every request are kept (generation only adds), so several runs asking for different
categories or counts share one root.

Modules: :mod:`~zoo.data.synthshapes.primitives` (the primitive SDFs),
:mod:`~zoo.data.synthshapes.recipes` (the categories' random parts), and this one (meshing,
normalisation and the dataset on disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh

from zoo.data.formats.shapenet import (
    DEFAULT_FRACTIONS,
    SPLIT_FILE,
    split_ids,
    v2_model_path,
    write_split_file,
)
from zoo.data.io import (
    atomic_export_mesh,
    atomic_write_json,
    manifest_matches,
    remove_stale_temps,
    write_manifest,
)
from zoo.data.synthshapes.primitives import (  # noqa: F401 - the generator's public parts
    Array,
    Coords,
    sd_box,
    sd_capped_cone,
    sd_capsule,
    sd_cylinder,
    sd_ellipsoid,
    sd_round_box,
    sd_torus,
    smooth_min,
)
from zoo.data.synthshapes.recipes import (  # noqa: F401
    BLEND,
    CATEGORIES,
    DEFAULT_CATEGORIES,
    Part,
    Recipe,
    _category_name,
    recipe,
)
from zoo.ops.marching_cubes import marching_cubes

VERSION = 1  # bump when the generator changes its output
DEFAULT_SHAPES_PER_CATEGORY = 20
DEFAULT_RESOLUTION = 96
SHAPENET_DIR = "ShapeNetCore.v2"
ENTRY_FILE = "synthshapes.json"  # per-shape sidecar beside model_normalized.obj


# --------------------------------------------------------------------------------------------
# Meshing
# --------------------------------------------------------------------------------------------
@dataclass
class SynthShape:
    """A generated shape: the normalised mesh and its analytic SDF in the same frame."""

    category: str
    seed: int
    mesh: trimesh.Trimesh  # normalised (bbox centred at 0, diagonal 1), vertex colours set
    recipe: Recipe
    centre: np.ndarray  # raw-frame bbox centre
    scale: float  # normalised = (raw - centre) * scale
    info: dict[str, Any] = field(default_factory=dict)

    def sdf(self, points: Array | torch.Tensor) -> Array | torch.Tensor:
        """Analytic signed distance at normalised ``points`` (N, 3); negative inside.

        Smooth unions and the ellipsoid bound make it a distance *bound* away from the surface
        (exact sign, exact zero set up to the marching-cubes discretisation of the mesh).
        """
        is_tensor = isinstance(points, torch.Tensor)
        p = points.detach().cpu().numpy() if is_tensor else np.asarray(points)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {p.shape}")
        raw = p.astype(np.float64) / self.scale + self.centre
        d = (self.recipe.sdf(raw) * self.scale).astype(np.float32)
        return torch.from_numpy(d).to(points.device) if is_tensor else d


def _raw_bounds(rec: Recipe, coarse: int = 40, extent: float = 1.6) -> tuple[Array, Array]:
    """Bounding box of the solid from a coarse grid over ``[-extent, extent]^3`` (+1 cell)."""
    axis = np.linspace(-extent, extent, coarse)
    pts = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    cell = axis[1] - axis[0]
    inside = rec.sdf(pts) < cell  # also catch parts thinner than a coarse cell
    if not inside.any():
        raise RuntimeError(f"{rec.category}: empty shape")
    lo, hi = pts[inside].min(0) - cell, pts[inside].max(0) + cell
    if (lo <= -extent).any() or (hi >= extent).any():
        raise RuntimeError(f"{rec.category}: shape exceeds the sampling box +-{extent}")
    return lo, hi


def _dense_grid(rec: Recipe, lo: Array, counts: Array, spacing: float) -> Array:
    """SDF at every point ``lo + (i, j, k) * spacing`` of a (X, Y, Z) grid."""
    axes = [(lo[a] + np.arange(counts[a]) * spacing).astype(np.float32) for a in range(3)]
    xs, ys, zs = np.meshgrid(*axes, indexing="ij")  # (X, Y, Z) each
    return rec.sdf_coords((xs.ravel(), ys.ravel(), zs.ravel())).reshape(*counts)


def generate_shape(category: str, seed: int, resolution: int = DEFAULT_RESOLUTION) -> SynthShape:
    """Build, mesh and normalise shape ``seed`` of ``category``.

    Args:
        category: a name (``"chair"``) or synset id of :data:`CATEGORIES`.
        seed: any integer; the same (category, seed, resolution) gives the identical mesh.
        resolution: grid samples along the longest side of the shape's box (other sides use
            the same spacing). 96 gives ~20k-60k triangles in ~0.3 s.
    Returns:
        A :class:`SynthShape` with a watertight, single-component, outward-oriented mesh.
    """
    if resolution < 16:
        raise ValueError(f"resolution must be >= 16, got {resolution}")
    rec = recipe(category, seed)
    lo, hi = _raw_bounds(rec)
    spacing = float((hi - lo).max()) / (resolution - 1)
    counts = np.ceil((hi - lo) / spacing).astype(int) + 1
    hi = lo + (counts - 1) * spacing
    grid = _dense_grid(rec, lo, counts, spacing)  # (X, Y, Z)

    raw = marching_cubes(grid, 0.0, lo, hi, inside="below")
    raw.merge_vertices()
    parts = trimesh.graph.connected_components(raw.face_adjacency, min_len=1)
    if len(parts) > 1:  # keep the main surface (stray slivers would break "one shape")
        keep = max(parts, key=len)
        raw.update_faces(np.isin(np.arange(len(raw.faces)), keep))
        raw.remove_unreferenced_vertices()
    lo_v, hi_v = raw.vertices.min(0), raw.vertices.max(0)
    centre, scale = (lo_v + hi_v) / 2.0, 1.0 / float(np.linalg.norm(hi_v - lo_v))
    labels = rec.labels(np.asarray(raw.vertices))
    palette = np.array([(*p.colour, 255) for p in rec.parts], dtype=np.uint8)
    mesh = trimesh.Trimesh(
        (np.asarray(raw.vertices) - centre) * scale,
        raw.faces,
        vertex_colors=palette[labels],
        process=False,
    )
    info = {
        "category": rec.category,
        "seed": int(seed),
        "resolution": int(resolution),
        "components_dropped": len(parts) - 1,
    }
    return SynthShape(rec.category, int(seed), mesh, rec, centre, scale, info)


def shape_sdf(
    category: str, seed: int, resolution: int = DEFAULT_RESOLUTION
) -> Callable[[Array | torch.Tensor], Array | torch.Tensor]:
    """The analytic SDF (normalised frame, negative inside) of shape ``seed`` of ``category``.

    The normalisation depends on the extracted mesh's box, so the mesh is built once here.
    """
    return generate_shape(category, seed, resolution).sdf


# --------------------------------------------------------------------------------------------
# Dataset on disk
# --------------------------------------------------------------------------------------------
def shape_seed(seed: int, category: str, index: int) -> int:
    """Seed of shape ``index`` of ``category`` in a dataset generated with ``seed``.

    Independent of the other categories and of ``shapes_per_category``, so growing the dataset
    keeps the existing shapes.
    """
    name = _category_name(category)
    ss = np.random.SeedSequence([int(seed), zlib.crc32(name.encode()), int(index)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def model_id(category: str, seed: int) -> str:
    """ShapeNet-like 32-hex-digit id of shape ``seed`` of ``category`` (deterministic)."""
    name = _category_name(category)
    return hashlib.md5(f"synthshapes/{name}/{int(seed)}".encode()).hexdigest()


@dataclass
class SynthShapesResult:
    """What :func:`ensure_synthshapes` did."""

    root: Path  # the ShapeNetCore.v2 folder
    generated: int  # shapes written this call
    reused: int  # shapes found up to date
    removed: int  # always 0: generation only adds shapes, it never deletes other runs' shapes
    split: dict[str, dict[str, list[str]]]
    params: dict[str, Any]


def dataset_params(
    categories: Sequence[str], shapes_per_category: int, seed: int, resolution: int
) -> dict[str, Any]:
    """The manifest of a synthshapes request (anything that changes the files is in here)."""
    return {
        "generator": "synthshapes",
        "version": VERSION,
        "seed": int(seed),
        "categories": [_category_name(c) for c in categories],
        "shapes_per_category": int(shapes_per_category),
        "resolution": int(resolution),
        "split_fractions": list(DEFAULT_FRACTIONS),
    }


def _entry_record(category: str, seed: int, resolution: int, obj_bytes: int) -> dict[str, Any]:
    """What a shape's sidecar (:data:`ENTRY_FILE`) stores: how its mesh was made, and the
    mesh file's size, so a truncated or foreign mesh is detected with one ``stat``."""
    return {
        "generator": "synthshapes",
        "version": VERSION,
        "category": _category_name(category),
        "seed": int(seed),
        "resolution": int(resolution),
        "obj_bytes": int(obj_bytes),
    }


def entry_is_valid(mesh_path: Path, category: str, seed: int, resolution: int) -> bool:
    """Whether ``mesh_path`` is the complete mesh of shape ``seed`` of ``category`` at
    ``resolution`` (its sidecar matches and the file has the recorded size)."""
    try:
        size = mesh_path.stat().st_size
        record = json.loads((mesh_path.parent / ENTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record == _entry_record(category, seed, resolution, size)


def _write_entry(path: Path, shape: SynthShape) -> None:
    """Write one shape: drop its old sidecar, write the OBJ, then the sidecar (each atomic),
    so a run killed in between leaves a shape that :func:`entry_is_valid` rejects."""
    (path.parent / ENTRY_FILE).unlink(missing_ok=True)
    atomic_export_mesh(path, shape.mesh, digits=6)
    record = _entry_record(
        shape.category, shape.seed, shape.info["resolution"], path.stat().st_size
    )
    atomic_write_json(path.parent / ENTRY_FILE, record)


def ensure_synthshapes(
    root: str | os.PathLike[str],
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    shapes_per_category: int = DEFAULT_SHAPES_PER_CATEGORY,
    seed: int = 0,
    resolution: int = DEFAULT_RESOLUTION,
    progress: bool = True,
) -> SynthShapesResult:
    """Make ``<root>/ShapeNetCore.v2`` hold the requested shapes; a no-op when it does.

    Generation only ever adds: shapes of other categories, counts or seeds (other runs on the
    same root) are kept, so runs asking for different subsets never destroy each other's data.
    A shape is reused when its sidecar ``models/synthshapes.json`` records the same generator
    version, category, seed and resolution and its OBJ has the recorded size; otherwise (never
    written, interrupted, truncated, older version or resolution) it is (re)generated. Files are
    written atomically, the OBJ before its sidecar. ``split.json`` and ``manifest.json``
    describe the latest request (its shapes and their split) and are written last.
    """
    if shapes_per_category < 1:
        raise ValueError(f"shapes_per_category must be >= 1, got {shapes_per_category}")
    if not categories:
        raise ValueError("categories must not be empty")
    params = dataset_params(categories, shapes_per_category, seed, resolution)
    out = Path(root) / SHAPENET_DIR
    wanted: dict[str, list[tuple[str, int]]] = {}
    for name in params["categories"]:
        seeds = [shape_seed(seed, name, i) for i in range(shapes_per_category)]
        wanted[CATEGORIES[name]] = [(model_id(name, s), s) for s in seeds]
    split = {
        synset: split_ids([m for m, _ in models], seed=seed, fractions=DEFAULT_FRACTIONS)
        for synset, models in wanted.items()
    }
    jobs = [(syn, s, v2_model_path(out, syn, mid)) for syn, ms in wanted.items() for mid, s in ms]
    todo = [(syn, s, p) for syn, s, p in jobs if not entry_is_valid(p, syn, s, resolution)]
    split_file = out / SPLIT_FILE
    if not todo and manifest_matches(out, params) and _split_on_disk(split_file) == split:
        return SynthShapesResult(out, 0, len(jobs), 0, split, params)

    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    # Until this run ends the manifest says "incomplete" (it never matches a request).
    write_manifest(out, {**params, "complete": False})
    from tqdm.auto import tqdm

    for syn, s, path in tqdm(todo, desc="synthshapes", unit="shape", disable=not progress):
        _write_entry(path, generate_shape(syn, s, resolution))
    write_split_file(split_file, split)
    write_manifest(out, params)
    return SynthShapesResult(out, len(todo), len(jobs) - len(todo), 0, split, params)


def _split_on_disk(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
