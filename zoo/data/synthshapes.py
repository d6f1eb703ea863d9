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

VERSION = 1  # bump when the generator changes its output
CATEGORIES: dict[str, str] = {
    "chair": "03001627",
    "table": "04379243",
    "airplane": "02691156",
    "car": "02958343",
    "lamp": "03636649",
    "mug": "03797390",
}
DEFAULT_CATEGORIES = tuple(CATEGORIES)
DEFAULT_SHAPES_PER_CATEGORY = 20
DEFAULT_RESOLUTION = 96
BLEND = 0.012  # smooth-union radius, in raw units (shapes are ~1 unit tall before normalising)
SHAPENET_DIR = "ShapeNetCore.v2"
ENTRY_FILE = "synthshapes.json"  # per-shape sidecar beside model_normalized.obj

Array = np.ndarray


# --------------------------------------------------------------------------------------------
# Primitive SDFs (Quilez, "distance functions") in their local frames. Coordinates come as
# three separate 1-D arrays (structure of arrays: contiguous and several times faster in numpy
# than the columns of an (N, 3) array).
# --------------------------------------------------------------------------------------------
Coords = tuple[Array, Array, Array]


def _len3(x: Array, y: Array, z: Array) -> Array:
    return np.sqrt(x * x + y * y + z * z)


def sd_box(p: Coords, half: Sequence[float]) -> Array:
    """Exact distance to an axis-aligned box of half extents ``half`` centred at 0."""
    qx, qy, qz = (np.abs(c) - h for c, h in zip(p, half, strict=True))
    outside = _len3(np.maximum(qx, 0.0), np.maximum(qy, 0.0), np.maximum(qz, 0.0))
    return outside + np.minimum(np.maximum(np.maximum(qx, qy), qz), 0.0)


def sd_round_box(p: Coords, half: Sequence[float], radius: float) -> Array:
    """Box with edges rounded by ``radius`` (outer extents still ``half``)."""
    return sd_box(p, [h - radius for h in half]) - radius


def sd_cylinder(p: Coords, half_height: float, radius: float, rounding: float = 0.0) -> Array:
    """Capped cylinder along y, optionally with rounded rims (outer size unchanged)."""
    x, y, z = p
    dx = np.sqrt(x * x + z * z) - (radius - rounding)
    dy = np.abs(y) - (half_height - rounding)
    inside = np.minimum(np.maximum(dx, dy), 0.0)
    return inside + np.hypot(np.maximum(dx, 0.0), np.maximum(dy, 0.0)) - rounding


def sd_capsule(p: Coords, a: Sequence[float], b: Sequence[float], radius: float) -> Array:
    """Segment ``a``-``b`` thickened by ``radius``."""
    ba = [float(bi - ai) for ai, bi in zip(a, b, strict=True)]
    pa = [c - ai for c, ai in zip(p, a, strict=True)]
    h = (pa[0] * ba[0] + pa[1] * ba[1] + pa[2] * ba[2]) / sum(v * v for v in ba)
    np.clip(h, 0.0, 1.0, out=h)
    return _len3(*(pc - h * bc for pc, bc in zip(pa, ba, strict=True))) - radius


def sd_torus(p: Coords, major: float, minor: float) -> Array:
    """Torus around the y axis (ring in the xz-plane)."""
    x, y, z = p
    return np.hypot(np.sqrt(x * x + z * z) - major, y) - minor


def sd_ellipsoid(p: Coords, radii: Sequence[float]) -> Array:
    """Ellipsoid (Quilez's bound ``k0 (k0 - 1) / k1``; exact on the surface)."""
    x, y, z = p
    rx, ry, rz = radii
    k0 = _len3(x / rx, y / ry, z / rz)
    k1 = np.maximum(_len3(x / (rx * rx), y / (ry * ry), z / (rz * rz)), 1e-9)
    return k0 * (k0 - 1.0) / k1


def sd_capped_cone(p: Coords, half_height: float, r_bottom: float, r_top: float) -> Array:
    """Exact capped cone (frustum) along y from ``-h`` (radius r_bottom) to ``+h`` (r_top)."""
    x, qy, z = p
    h = half_height
    qx = np.sqrt(x * x + z * z)
    k2x, k2y = r_top - r_bottom, 2.0 * h
    cax = qx - np.minimum(qx, np.where(qy < 0.0, r_bottom, r_top))
    cay = np.abs(qy) - h
    t = np.clip(((r_top - qx) * k2x + (h - qy) * k2y) / (k2x * k2x + k2y * k2y), 0.0, 1.0)
    cbx, cby = qx - r_top + k2x * t, qy - h + k2y * t
    sign = np.where((cbx < 0.0) & (cay < 0.0), -1.0, 1.0)
    return sign * np.sqrt(np.minimum(cax * cax + cay * cay, cbx * cbx + cby * cby))


def smooth_min(a: Array, b: Array, k: float) -> Array:
    """Polynomial smooth minimum; equals ``min(a, b)`` where ``|a - b| >= k``."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + (0.5 / k) * (b - a), 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def rot_x(angle: float) -> Array:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(angle: float) -> Array:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


# Columns = local axes in world coordinates (local = (p - centre) @ R).
AXIS_Y_TO_X = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
AXIS_Y_TO_Z = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
LocalSDF = Callable[[Coords], Array]


@dataclass
class Part:
    """A primitive placed in the world: ``sdf_world(p) = local((p - centre) @ rotation)``."""

    name: str
    local: LocalSDF
    colour: tuple[int, int, int]
    centre: Sequence[float] = (0.0, 0.0, 0.0)
    rotation: Array | None = None  # (3, 3) columns = local axes in world coordinates
    carve: bool = False  # subtract instead of add

    def __call__(self, p: Coords) -> Array:
        q = tuple(c - float(o) for c, o in zip(p, self.centre, strict=True))
        if self.rotation is not None:
            r = self.rotation
            q = tuple(q[0] * r[0, j] + q[1] * r[1, j] + q[2] * r[2, j] for j in range(3))
        return self.local(q)


@dataclass
class Recipe:
    """A category's parts; the solid is ``max(smooth_union(added), -carved...)``."""

    category: str
    parts: list[Part]
    blend: float = BLEND

    def sdf_coords(self, p: Coords) -> Array:
        d: Array | None = None
        for part in self.parts:
            if not part.carve:
                dp = part(p)
                d = dp if d is None else smooth_min(d, dp, self.blend)
        assert d is not None, "a recipe needs at least one added part"
        for part in self.parts:
            if part.carve:
                d = np.maximum(d, -part(p))
        return d

    def sdf(self, points: Array) -> Array:
        """Signed distance (bound) at raw-frame ``points`` (N, 3)."""
        p = np.asarray(points)
        return self.sdf_coords((p[:, 0].copy(), p[:, 1].copy(), p[:, 2].copy()))

    def labels(self, points: Array) -> Array:
        """Index of the part whose surface is nearest to each point (for colouring)."""
        p = np.asarray(points)
        c = (p[:, 0].copy(), p[:, 1].copy(), p[:, 2].copy())
        return np.argmin(np.stack([np.abs(part(c)) for part in self.parts], axis=0), axis=0)


# --------------------------------------------------------------------------------------------
# Categories. ``u(a, b)`` draws uniformly; all sizes in raw units (height ~1).
# --------------------------------------------------------------------------------------------
WOOD, METAL, FABRIC = (150, 100, 60), (120, 120, 130), (200, 60, 50)


def _chair(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    w, d, t = u(0.40, 0.55), u(0.38, 0.52), u(0.045, 0.075)
    h = u(0.38, 0.50)  # seat top
    seat_col = tuple(int(c) for c in rng.integers(60, 230, 3))
    parts = [
        Part(
            "seat",
            lambda q: sd_round_box(q, (w / 2, t / 2, d / 2), 0.015),
            seat_col,
            (0.0, h - t / 2, 0.0),
        )
    ]
    leg_r, inset = u(0.02, 0.032), u(0.015, 0.05)
    leg_h = (h - t / 2) / 2  # leg half height: floor to the seat's mid-plane
    round_legs = rng.random() < 0.5
    for sx in (-1, 1):
        for sz in (-1, 1):
            c = (sx * (w / 2 - inset - leg_r), leg_h, sz * (d / 2 - inset - leg_r))
            if round_legs:
                parts.append(Part("leg", lambda q: sd_cylinder(q, leg_h, leg_r), WOOD, c))
            else:
                parts.append(Part("leg", lambda q: sd_box(q, (leg_r, leg_h, leg_r)), WOOD, c))
    bh, bt, bw = u(0.35, 0.6), u(0.04, 0.06), w * u(0.8, 1.0)
    tilt = u(0.0, 0.3)
    pivot = np.array([0.0, h - t / 2, -d / 2 + bt / 2])
    rot = rot_x(-tilt)  # top leans backwards (-z)
    centre = pivot + rot @ np.array([0.0, bh / 2, 0.0])
    parts.append(
        Part(
            "back",
            lambda q: sd_round_box(q, (bw / 2, bh / 2, bt / 2), 0.015),
            seat_col,
            centre,
            rot,
        )
    )
    if rng.random() < 0.35:  # armrests on posts
        ah, ar = u(0.15, 0.22), u(0.018, 0.026)
        x = bw / 2 - ar
        for sx in (-1, 1):
            a, b = (sx * x, h + ah, -d / 2 + bt), (sx * x, h + ah, d / 2 - ar)
            parts.append(Part("arm", lambda q, a=a, b=b: sd_capsule(q, a, b, ar), WOOD))
            post_a, post_b = (sx * x, h - t / 2, d / 2 - 2 * ar), (sx * x, h + ah, d / 2 - 2 * ar)
            parts.append(Part("arm", lambda q, a=post_a, b=post_b: sd_capsule(q, a, b, ar), WOOD))
    return parts


def _table(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    h, t = u(0.6, 0.78), u(0.035, 0.06)
    top_col = tuple(int(c) for c in rng.integers(90, 220, 3))
    round_top = rng.random() < 0.3
    if round_top:
        rad = u(0.4, 0.6)
        parts = [
            Part("top", lambda q: sd_cylinder(q, t / 2, rad, 0.01), top_col, (0.0, h - t / 2, 0.0))
        ]
        half_x = half_z = rad / np.sqrt(2.0)
    else:
        w, d = u(0.9, 1.4), u(0.5, 0.9)
        parts = [
            Part(
                "top",
                lambda q: sd_round_box(q, (w / 2, t / 2, d / 2), 0.012),
                top_col,
                (0.0, h - t / 2, 0.0),
            )
        ]
        half_x, half_z = w / 2, d / 2
    leg_h = (h - t / 2) / 2
    if rng.random() < 0.65:  # four legs
        leg_r, inset = u(0.025, 0.045), u(0.02, 0.08)
        round_legs = rng.random() < 0.5
        for sx in (-1, 1):
            for sz in (-1, 1):
                c = (sx * (half_x - inset - leg_r), leg_h, sz * (half_z - inset - leg_r))
                if round_legs:
                    parts.append(Part("leg", lambda q: sd_cylinder(q, leg_h, leg_r), WOOD, c))
                else:
                    parts.append(Part("leg", lambda q: sd_box(q, (leg_r, leg_h, leg_r)), WOOD, c))
        if rng.random() < 0.35:  # lower shelf through the legs
            sy, st = h * u(0.15, 0.3), 0.03
            sx_, sz_ = half_x - inset, half_z - inset
            parts.append(
                Part("shelf", lambda q: sd_box(q, (sx_, st / 2, sz_)), top_col, (0.0, sy, 0.0))
            )
    else:  # pedestal
        pr = u(0.04, 0.07)
        parts.append(Part("pedestal", lambda q: sd_cylinder(q, leg_h, pr), METAL, (0, leg_h, 0)))
        if rng.random() < 0.5:
            br, bt = u(0.2, 0.32), u(0.025, 0.04)
            parts.append(
                Part("base", lambda q: sd_cylinder(q, bt / 2, br, 0.008), METAL, (0.0, bt / 2, 0.0))
            )
        else:
            fl, ft = u(0.22, 0.35), u(0.03, 0.045)
            for ang in (0.0, np.pi / 2):
                parts.append(
                    Part(
                        "foot",
                        lambda q: sd_round_box(q, (fl, ft / 2, ft), 0.01),
                        METAL,
                        (0.0, ft / 2, 0.0),
                        rot_y(ang),
                    )
                )
    return parts


def _airplane(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    length, r = u(1.0, 1.4), u(0.065, 0.1)
    body_col = tuple(int(c) for c in rng.integers(170, 245, 3))
    wing_col = tuple(int(c) for c in rng.integers(60, 200, 3))
    radii = (r, r * u(1.0, 1.15), length / 2)
    parts = [Part("fuselage", lambda q: sd_ellipsoid(q, radii), body_col)]
    span, chord, thick = length * u(0.8, 1.1), u(0.14, 0.24), u(0.032, 0.045)
    sweep, zw, yw = u(0.0, 0.55), length * u(-0.1, 0.1), r * u(-0.5, 0.3)

    def half_wing(
        span_: float,
        chord_: float,
        thick_: float,
        y: float,
        z: float,
        side: int,
        sweep_: float,
        name: str,
        col: tuple[int, int, int],
    ) -> Part:
        direction = np.array([side * np.cos(sweep_), 0.0, -np.sin(sweep_)])
        rot = np.stack([direction, [0.0, 1.0, 0.0], np.cross(direction, [0.0, 1.0, 0.0])], 1)
        centre = np.array([0.0, y, z]) + direction * span_ / 4
        half = (span_ / 4, thick_ / 2, chord_ / 2)
        return Part(name, lambda q: sd_round_box(q, half, thick_ / 2.5), col, centre, rot)

    for side in (-1, 1):
        parts.append(half_wing(span, chord, thick, yw, zw, side, sweep, "wing", wing_col))
        parts.append(
            half_wing(
                span * u(0.3, 0.4),
                chord * 0.7,
                thick * 0.85,
                0.0,
                -length * 0.42,
                side,
                sweep,
                "tail",
                wing_col,
            )
        )
    fin_h = u(0.12, 0.2)
    fin_rot = rot_x(u(0.2, 0.5))  # lean backwards
    fin_centre = np.array([0.0, 0.0, -length * 0.4]) + fin_rot @ np.array([0.0, fin_h / 2, 0])
    fin_half = (thick * 0.45, fin_h / 2 + r / 2, chord * 0.45)
    parts.append(
        Part("fin", lambda q: sd_round_box(q, fin_half, thick * 0.4), wing_col, fin_centre, fin_rot)
    )
    if rng.random() < 0.6:  # two engines under the wings
        er, el = u(0.035, 0.05), u(0.15, 0.25)
        s = span * 0.25 / np.cos(sweep)  # distance along the swept wing to x = span / 4
        for side in (-1, 1):
            c = (side * span * 0.25, yw - er + thick * 0.25, zw - s * np.sin(sweep))
            parts.append(
                Part("engine", lambda q: sd_cylinder(q, el / 2, er, 0.01), METAL, c, AXIS_Y_TO_Z)
            )
    return parts


def _car(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    length, w, hb = u(0.9, 1.1), u(0.38, 0.46), u(0.13, 0.2)
    wr, ww = u(0.08, 0.11), u(0.05, 0.075)
    clearance = wr * u(0.45, 0.7)
    paint = tuple(int(c) for c in rng.integers(30, 240, 3))
    body_round, cabin_round = u(0.03, 0.06), u(0.03, 0.05)
    parts = [
        Part(
            "body",
            lambda q: sd_round_box(q, (w / 2, hb / 2, length / 2), body_round),
            paint,
            (0.0, clearance + hb / 2, 0.0),
        )
    ]
    lc, hc = length * u(0.4, 0.6), u(0.1, 0.16)
    cabin_half = (w / 2 * u(0.8, 0.92), hc / 2, lc / 2)
    cabin_c = (0.0, clearance + hb + hc / 2 - 0.02, length * u(-0.15, 0.05))
    parts.append(
        Part("cabin", lambda q: sd_round_box(q, cabin_half, cabin_round), (90, 120, 150), cabin_c)
    )
    axle = length * u(0.3, 0.36)
    for sx in (-1, 1):
        for sz in (-1, 1):
            c = (sx * (w / 2 - ww * 0.3), wr, sz * axle)
            parts.append(
                Part(
                    "wheel",
                    lambda q: sd_cylinder(q, ww / 2, wr, 0.012),
                    (30, 30, 30),
                    c,
                    AXIS_Y_TO_X,
                )
            )
    return parts


def _lamp(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    br, bh = u(0.12, 0.2), u(0.015, 0.03)
    pr, ph = u(0.016, 0.026), u(0.5, 0.8)
    shade_col = tuple(int(c) for c in rng.integers(150, 250, 3))
    parts = [
        Part("base", lambda q: sd_cylinder(q, bh / 2, br, 0.006), METAL, (0.0, bh / 2, 0.0)),
        Part("pole", lambda q: sd_capsule(q, (0, 0, 0), (0, ph, 0), pr), METAL),
    ]
    sh, rb = u(0.15, 0.25), u(0.12, 0.2)
    rt = rb * u(0.35, 0.7)
    if rng.random() < 0.5:  # straight: shade on top of the pole
        top = (0.0, ph + sh * 0.2, 0.0)
    else:  # bent arm, shade hanging at its end
        ax, ay = u(0.2, 0.35), u(0.05, 0.15)
        end = (ax, ph + ay, 0.0)
        parts.append(Part("arm", lambda q: sd_capsule(q, (0, ph, 0), end, pr), METAL))
        top = (ax, ph + ay - sh / 2 + pr, 0.0)
    parts.append(Part("shade", lambda q: sd_capped_cone(q, sh / 2, rb, rt), shade_col, top))
    return parts


def _mug(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    r, h = u(0.3, 0.42), u(0.7, 1.0)
    wall, bottom = u(0.05, 0.075), u(0.06, 0.09)
    colour = tuple(int(c) for c in rng.integers(40, 250, 3))
    tr_major, tr_minor = h * u(0.2, 0.28), u(0.04, 0.06)
    handle_c = (r + tr_major * u(0.3, 0.5), h * u(0.45, 0.55), 0.0)
    cavity_h = (h - bottom + 0.2) / 2
    return [
        Part("cup", lambda q: sd_cylinder(q, h / 2, r, 0.02), colour, (0.0, h / 2, 0.0)),
        Part("handle", lambda q: sd_torus(q, tr_major, tr_minor), colour, handle_c, AXIS_Y_TO_Z),
        Part(
            "cavity",
            lambda q: sd_cylinder(q, cavity_h, r - wall, 0.015),
            (230, 230, 230),
            (0.0, bottom + cavity_h, 0.0),
            carve=True,
        ),
    ]


RECIPES: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    "chair": _chair,
    "table": _table,
    "airplane": _airplane,
    "car": _car,
    "lamp": _lamp,
    "mug": _mug,
}


def _category_name(category: str) -> str:
    """Accept a name or a synset id of one of the generator's categories."""
    for name, synset in CATEGORIES.items():
        if category in (name, synset):
            return name
    raise ValueError(f"synthshapes has no category {category!r}; choose from {list(CATEGORIES)}")


def recipe(category: str, seed: int) -> Recipe:
    """The random parts of shape ``seed`` of ``category`` (same seed -> same shape)."""
    name = _category_name(category)
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
    return Recipe(name, RECIPES[name](rng))


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
    from zoo.ops.marching_cubes import marching_cubes

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
