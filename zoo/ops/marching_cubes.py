"""Dense grid evaluation and iso-surface extraction (marching cubes).

Grid convention (used by every implicit model: DeepSDF, NeRF density, occupancy):
the grid holds ``R`` samples per axis *including the box corners*, so point ``[i, j, k]`` is
``bbox_min + (i, j, k) * (bbox_max - bbox_min) / (R - 1)`` with ``i`` along x, ``j`` along y,
``k`` along z. The default box is ``[-0.55, 0.55]^3``, a margin around the ShapeNet-normalised
shapes (inside the sphere of radius 0.5). Note that :mod:`zoo.ops.voxelize` uses a *different*
convention (cell centres of ``R`` cells splitting the box).

Extraction is Lewiner et al., "Efficient implementation of Marching Cubes' cases with
topological guarantees" (J. Graphics Tools 2003), through scikit-image, with the vertices
mapped to world coordinates and the faces wound so that normals point out of the shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
import trimesh
from torch import Tensor

DEFAULT_BBOX_MIN = (-0.55, -0.55, -0.55)
DEFAULT_BBOX_MAX = (0.55, 0.55, 0.55)

BBox = Sequence[float] | np.ndarray | Tensor


def as_bbox(bbox_min: BBox, bbox_max: BBox) -> tuple[np.ndarray, np.ndarray]:
    """Validate a box given as two corners and return them as float64 arrays of shape (3,)."""
    lo = np.asarray(
        bbox_min.detach().cpu() if isinstance(bbox_min, Tensor) else bbox_min, dtype=np.float64
    )
    hi = np.asarray(
        bbox_max.detach().cpu() if isinstance(bbox_max, Tensor) else bbox_max, dtype=np.float64
    )
    if lo.shape != (3,) or hi.shape != (3,):
        raise ValueError(
            f"bbox_min and bbox_max must have 3 values, got shapes {lo.shape} and {hi.shape}"
        )
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
        raise ValueError(f"need finite bbox_min < bbox_max per axis, got {lo} and {hi}")
    return lo, hi


def _check_resolution(resolution: int, minimum: int) -> int:
    if int(resolution) != resolution or resolution < minimum:
        raise ValueError(f"resolution must be an integer >= {minimum}, got {resolution!r}")
    return int(resolution)


def grid_points(
    resolution: int,
    bbox_min: BBox = DEFAULT_BBOX_MIN,
    bbox_max: BBox = DEFAULT_BBOX_MAX,
    device: torch.device | str | None = None,
) -> Tensor:
    """The ``R^3`` points of a dense grid spanning the box, corners included.

    Returns:
        (R^3, 3) float32 points; ``.reshape(R, R, R, 3)[i, j, k]`` is
        ``bbox_min + (i, j, k) * (bbox_max - bbox_min) / (R - 1)`` (i along x).
    """
    r = _check_resolution(resolution, 2)
    lo, hi = as_bbox(bbox_min, bbox_max)
    axes = [torch.linspace(lo[a], hi[a], r, dtype=torch.float64, device=device) for a in range(3)]
    xs, ys, zs = torch.meshgrid(*axes, indexing="ij")  # (R, R, R) each
    return torch.stack([xs, ys, zs], dim=-1).reshape(-1, 3).float()


@torch.no_grad()
def evaluate_grid(
    fn: Callable[[Tensor], Tensor],
    resolution: int,
    bbox_min: BBox = DEFAULT_BBOX_MIN,
    bbox_max: BBox = DEFAULT_BBOX_MAX,
    chunk: int = 65536,
    device: torch.device | str | None = None,
) -> Tensor:
    """Evaluate a field ``fn: (M, 3) -> (M,) or (M, 1)`` on the grid of :func:`grid_points`.

    ``fn`` is called under ``torch.no_grad`` on chunks of at most ``chunk`` points created on
    ``device``. Returns an (R, R, R) float32 tensor on ``device`` (index [i, j, k], i along x).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    r = _check_resolution(resolution, 2)
    pts = grid_points(r, bbox_min, bbox_max, device=device)  # (R^3, 3)
    out = torch.empty(len(pts), dtype=torch.float32, device=pts.device)
    for start in range(0, len(pts), chunk):
        p = pts[start : start + chunk]
        v = torch.as_tensor(fn(p))
        if v.numel() != len(p):
            raise ValueError(
                f"fn must return one value per point: got shape {tuple(v.shape)} "
                f"for {len(p)} points"
            )
        out[start : start + len(p)] = v.reshape(-1).to(out)
    return out.reshape(r, r, r)


def marching_cubes(
    grid: Tensor | np.ndarray,
    level: float = 0.0,
    bbox_min: BBox = DEFAULT_BBOX_MIN,
    bbox_max: BBox = DEFAULT_BBOX_MAX,
    inside: Literal["below", "above"] = "below",
) -> trimesh.Trimesh:
    """Extract the ``level`` iso-surface of a grid sampled as in :func:`grid_points`.

    Args:
        grid: (X, Y, Z) values at the grid points (X = Y = Z = R usually; each axis spans the
            box with its own number of samples otherwise).
        level: iso-value.
        inside: which side is the shape: ``"below"`` for signed distances (negative inside,
            DeepSDF convention), ``"above"`` for densities / occupancies (positive inside).
    Returns:
        A mesh in world coordinates whose face normals point out of the shape (so its signed
        volume is positive for a closed surface). When ``level`` is not strictly between the
        grid's minimum and maximum the surface does not exist and an *empty* ``Trimesh`` (0
        vertices, 0 faces) is returned instead of raising, so that e.g. an untrained model's
        empty output can still be scored.
    """
    if inside not in ("below", "above"):
        raise ValueError(f"inside must be 'below' or 'above', got {inside!r}")
    g = grid.detach().cpu().numpy() if isinstance(grid, Tensor) else np.asarray(grid)
    if g.ndim != 3 or min(g.shape) < 2:
        raise ValueError(f"grid must be 3D with >= 2 samples per axis, got shape {g.shape}")
    g = g.astype(np.float32, copy=False)
    if np.isnan(g).any():
        raise ValueError("grid contains NaN values")
    lo, hi = as_bbox(bbox_min, bbox_max)
    level = float(level)
    # Work with "positive inside" values so one winding rule applies to both conventions.
    if inside == "below":
        g, level = -g, -level
    if not (g.min() < level < g.max()):
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), process=False)
    spacing = (hi - lo) / (np.asarray(g.shape, dtype=np.float64) - 1.0)
    # skimage's "descent" winding: the object has values greater than the exterior. It yields
    # triangles whose right-hand normals point *into* the object, so we flip the winding.
    verts, faces, _, _ = _skimage_mc(g, level, spacing)
    verts = verts.astype(np.float64) + lo
    faces = faces[:, ::-1]
    return trimesh.Trimesh(verts, np.ascontiguousarray(faces), process=False)


def _skimage_mc(g: np.ndarray, level: float, spacing: np.ndarray) -> tuple:
    from skimage.measure import marching_cubes as sk_marching_cubes

    return sk_marching_cubes(
        g, level=level, spacing=tuple(spacing), gradient_direction="descent", method="lewiner"
    )
