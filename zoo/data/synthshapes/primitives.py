"""Signed distance functions of the primitives synthshapes builds its shapes from (Quilez,
"distance functions"), the polynomial smooth minimum and small rotation helpers.

Coordinates come as three separate 1-D arrays (structure of arrays: contiguous and several
times faster in numpy than the columns of an (N, 3) array).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Array = np.ndarray
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
