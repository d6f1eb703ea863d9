"""Shape recipes of synthshapes: a category's random parts (primitives placed in the world) and
the solid they make (a smooth union of the added parts, minus the carved ones).

Each category's generator draws its proportions from a seeded ``numpy`` generator, so the same
(category, seed) always gives the same recipe.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from zoo.data.synthshapes.primitives import (
    AXIS_Y_TO_X,
    AXIS_Y_TO_Z,
    Array,
    Coords,
    LocalSDF,
    rot_x,
    rot_y,
    sd_box,
    sd_capped_cone,
    sd_capsule,
    sd_cylinder,
    sd_ellipsoid,
    sd_round_box,
    sd_torus,
    smooth_min,
)

CATEGORIES: dict[str, str] = {
    "chair": "03001627",
    "table": "04379243",
    "airplane": "02691156",
    "car": "02958343",
    "lamp": "03636649",
    "mug": "03797390",
}
DEFAULT_CATEGORIES = tuple(CATEGORIES)
BLEND = 0.012  # smooth-union radius, in raw units (shapes are ~1 unit tall before normalising)


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
