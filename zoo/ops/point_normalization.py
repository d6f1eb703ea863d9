"""Point-cloud normalisations and the change of up axis into the zoo's frame, as pure numpy
functions on clouds ``(..., K, 3)`` (one cloud or a batch) and voxel grids ``(..., R, R, R)``.

Per shape (each cloud on its own; the extent must not be zero):

- :func:`bbox_diagonal`: bounding box centred at 0, diagonal 1: ShapeNetCore v2's
  ``model_normalized`` units, the units of the zoo's embedded data, of ModelNet meshes in
  :mod:`zoo.data.modelnet` and of the metric thresholds (F-score tau 0.01).
- :func:`unit_sphere`: centroid (mean point) at 0, farthest point at radius 1: PointNet /
  PointNet++'s ``pc_normalize`` for ModelNet40 (Qi et al. 2017).
- :func:`unit_box`: bounding box centred, longest side 1, so the shape just fits the voxel box
  ``[-0.5, 0.5]^3``, as a binvox ``-cb`` grid fills its cube (3D ShapeNets / 3D-GAN voxels).
  diffusion-point-cloud's ``scale_mode="shape_bbox"`` (Luo & Hu, CVPR 2021) is the same up to a
  factor 2: it divides by *half* the longest side, so its shapes span ``[-1, 1]``.

Over a dataset (PointFlow's ShapeNet-15k, Yang et al. ICCV 2019, ``normalize_per_shape=False``):
:func:`global_stats` gives one mean per axis and one scalar std over every point of the
training clouds, and :func:`apply_global` maps any split with those train statistics.
"""

from __future__ import annotations

import numpy as np

# p' = M p maps a cloud whose up axis is the key onto +y up (ShapeNet's frame, which the zoo's
# renders and voxels use); each M is a rotation (det +1) and a signed permutation.
UP_TO_Y = {
    0: np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]),  # x up: +90 deg about z, (x,y,z)->(-y,x,z)
    1: np.eye(3, dtype=np.int64),
    2: np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]),  # z up: -90 deg about x, (x,y,z)->(x,z,-y)
}


def _bbox(clouds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cloud bounding-box centre (..., 1, 3) and side lengths (..., 1, 3)."""
    lo, hi = clouds.min(axis=-2, keepdims=True), clouds.max(axis=-2, keepdims=True)
    return (lo + hi) / 2, hi - lo


def bbox_diagonal(clouds: np.ndarray) -> np.ndarray:
    """``(p - bbox_centre) / |bbox_max - bbox_min|`` per cloud (ShapeNet v2 units)."""
    centre, sides = _bbox(clouds)
    return (clouds - centre) / np.linalg.norm(sides, axis=-1, keepdims=True)


def unit_sphere(clouds: np.ndarray) -> np.ndarray:
    """``(p - mean) / max_k |p_k - mean|`` per cloud (PointNet's ``pc_normalize``)."""
    centred = clouds - clouds.mean(axis=-2, keepdims=True)
    return centred / np.linalg.norm(centred, axis=-1, keepdims=True).max(axis=-2, keepdims=True)


def unit_box(clouds: np.ndarray) -> np.ndarray:
    """``(p - bbox_centre) / max(bbox sides)`` per cloud (longest side 1)."""
    centre, sides = _bbox(clouds)
    return (clouds - centre) / sides.max(axis=-1, keepdims=True)


PER_SHAPE = {"bbox_diagonal": bbox_diagonal, "unit_sphere": unit_sphere, "unit_box": unit_box}
NORMALIZATIONS = (*PER_SHAPE, "global")


def global_stats(clouds: np.ndarray) -> tuple[np.ndarray, float]:
    """PointFlow's dataset statistics of ``clouds`` (N, K, 3): the mean (3,) of every point
    per axis and one scalar std over all coordinates (``normalize_std_per_axis=False``)."""
    flat = clouds.reshape(-1, 3).astype(np.float64)  # (N * K, 3)
    return flat.mean(axis=0), float(flat.std())


def apply_global(clouds: np.ndarray, mean: np.ndarray, std: float) -> np.ndarray:
    """``(p - mean) / std`` with statistics from :func:`global_stats` (of the train split)."""
    return (clouds - np.asarray(mean, dtype=clouds.dtype)) / np.asarray(std, dtype=clouds.dtype)


def up_to_y(clouds: np.ndarray, up_axis: int) -> np.ndarray:
    """Rotate clouds (..., K, 3) whose up axis is ``up_axis`` (0, 1, 2) so that +y is up."""
    return clouds @ UP_TO_Y[_check_axis(up_axis)].T.astype(clouds.dtype)


def voxels_up_to_y(voxels: np.ndarray, up_axis: int) -> np.ndarray:
    """The same rotation as :func:`up_to_y` on grids (..., R, R, R) indexed [x, y, z] whose
    box is symmetric about 0 (the zoo's ``[-0.5, 0.5]^3``), so negating a coordinate is
    reversing its index: ``p'_a = s_a p_{pi(a)}`` is a transpose by ``pi`` then a flip of
    every axis ``a`` with ``s_a = -1``."""
    m = UP_TO_Y[_check_axis(up_axis)]
    lead = voxels.ndim - 3
    perm = [int(np.flatnonzero(row)[0]) for row in m]  # pi(a)
    out = np.transpose(voxels, [*range(lead), *(lead + p for p in perm)])
    flips = [lead + a for a in range(3) if m[a, perm[a]] < 0]
    return np.ascontiguousarray(np.flip(out, axis=flips) if flips else out)


def _check_axis(up_axis: int) -> int:
    if up_axis not in UP_TO_Y:
        raise ValueError(f"up_axis must be 0, 1 or 2, got {up_axis!r}")
    return int(up_axis)
