"""Geometry for the viewer's scene: a model's shapes as meshes, voxel cubes or point clouds, and
a radiance model's training cameras. Plain numpy / trimesh; no viser here."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import trimesh

from zoo.data.render_cache import scene_cameras
from zoo.data.views import SynthViewsDataModule
from zoo.representation import Representation
from zoo.structures.cameras import Cameras

log = logging.getLogger(__name__)

# The 8 corners of the unit cube and its 12 outward-facing triangles.
_CUBE = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
_CUBE_V, _CUBE_F = np.asarray(_CUBE.vertices), np.asarray(_CUBE.faces)


def voxel_cubes(
    grid: torch.Tensor | np.ndarray,
    bbox_min: Any = (-0.5, -0.5, -0.5),
    bbox_max: Any = (0.5, 0.5, 0.5),
    level: float = 0.5,
) -> trimesh.Trimesh:
    """One cube per occupied voxel (value > ``level``) of an (R, R, R) grid over the box, the
    way voxel models are usually drawn. Only voxels with an empty face neighbour are kept
    (interior cubes are invisible). Returns an empty mesh for an empty grid."""
    occ = torch.as_tensor(grid).detach().float().cpu().numpy() > level  # (R, R, R)
    if occ.ndim != 3:
        raise ValueError(f"a voxel grid is (R, R, R), got {occ.shape}")
    pad = np.pad(occ, 1)
    inner = occ.copy()
    for ax in range(3):
        for step in (-1, 1):
            inner &= np.roll(pad, step, axis=ax)[1:-1, 1:-1, 1:-1]
    idx = np.argwhere(occ & ~inner)  # (K, 3) surface voxels
    if len(idx) == 0:
        return trimesh.Trimesh()
    lo, hi = np.asarray(bbox_min, np.float64), np.asarray(bbox_max, np.float64)
    cell = (hi - lo) / np.asarray(occ.shape)
    centres = lo + (idx + 0.5) * cell  # (K, 3)
    verts = centres[:, None, :] + _CUBE_V[None] * cell  # (K, 8, 3)
    faces = _CUBE_F[None] + 8 * np.arange(len(idx))[:, None, None]  # (K, 12, 3)
    return trimesh.Trimesh(verts.reshape(-1, 3), faces.reshape(-1, 3), process=False)


def shape_geometry(
    model: Representation,
    shape: Any,
    display: str,
    mesh_resolution: int,
    n_points: int,
) -> trimesh.Trimesh | np.ndarray:
    """What the viewer draws for one ``shape``: an (N, 3) float32 array for ``display="points"``,
    else a mesh (``"cubes"``: voxel cubes of a voxel model's grid; ``"surface"``: ``to_mesh``)."""
    with torch.no_grad():
        if display == "points":
            return model.to_points(shape, n_points).detach().float().cpu().numpy()
        if display == "cubes":
            bbox = getattr(model, "voxel_bbox", ((-0.5,) * 3, (0.5,) * 3))
            return voxel_cubes(shape, *bbox)
        return model.to_mesh(shape, resolution=mesh_resolution)


def training_cameras(meta: dict[str, Any] | None) -> Cameras | None:
    """The training cameras of a radiance model's scene, from the data config stored with its
    weights, or None when they cannot be had cheaply.

    Rendered synthetic scenes recompute their cameras from the render settings (nothing is
    rendered or read); other view datasets are read from disk when present.
    """
    if not meta or (meta.get("data_info") or {}).get("form") != "views":
        return None
    from hydra.utils import instantiate

    try:
        dm = instantiate(meta.get("data_cfg") or {}, form="views")
        if isinstance(dm, SynthViewsDataModule):
            kw = dm.render_kwargs
            return scene_cameras(
                kw["n_train"], kw["n_val"], kw["n_test"], kw["resolution"],
                kw["camera_angle_x"], kw["radius"], kw["seed"],
            )["train"]  # fmt: skip
        dm.setup("fit")
        return dm.scene.splits["train"].cameras
    except Exception as e:  # noqa: BLE001  (any data problem only hides the frustums)
        log.warning("training cameras unavailable: %s", e)
        return None


__all__ = ["shape_geometry", "training_cameras", "voxel_cubes"]
