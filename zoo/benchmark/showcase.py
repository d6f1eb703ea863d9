"""One held-out shape that every model is scored and shown on, seen by the same cameras.

The showcase shape is the first test-split shape of a category. Shape models reconstruct it
from their own input form; radiance models are fitted to its multi-view renders (they never see
the shape itself). Every model's output is then rendered by the same held-out cameras:
- radiance models natively, compared with the ground-truth colour renders of those views;
- the other models through the shared mesh ray caster (``zoo.ops.raycast.render_mesh``) with
  untextured grey shading (point models, ``kind == "points"``, as shaded discs of their
  points, ``zoo.ops.point_render``, with the same shading: not through a mesher's surface),
  compared with the ground-truth mesh rendered the same way (shape models predict no colour,
  so comparing them with colour renders would score the palette).
The silhouette IoU (rendered opacity > 0.5 against the ground-truth mask) is the one image
score with the same meaning for both groups.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from zoo.data import synthshapes as ss
from zoo.data.formats.shapenet import name_of
from zoo.data.render_cache import Y_UP_TO_Z_UP, y_up_to_z_up
from zoo.metrics import chamfer_distance, f_score, psnr, ssim
from zoo.ops.point_render import render_points
from zoo.ops.raycast import render_mesh
from zoo.ops.surface import sample_surface
from zoo.representation import Representation, ShapeTarget
from zoo.structures.cameras import Cameras

log = logging.getLogger(__name__)


@dataclass
class Showcase:
    """The shape, in the model's data form (``target``) and as a scene (cameras, images)."""

    target: ShapeTarget  # ShapeNet frame (+Y up)
    scene_mesh: trimesh.Trimesh | None  # the same mesh in the scene frame (+Z up), coloured
    cameras: Cameras | None  # the scene's held-out test cameras (None: data without renders)
    images: Tensor | None  # (B, H, W, 3) ground-truth colour renders, in [0, 1]
    model_id: str
    category: str
    scene_index: int | None  # generation index (synthshapes) for radiance models' data


def showcase_id(shape_dm: Any, category: str) -> tuple[str, int | None]:
    """(model_id, generation index) of the first test-split shape of ``category``."""
    items = [it for it in shape_dm.items("test") if _category(it.synset) == category]
    if not items:
        raise ValueError(f"the data has no test-split shape of category {category!r}")
    mid = items[0].model_id
    return mid, _synth_index(category, mid, shape_dm)


def _category(synset: str) -> str:
    return name_of(synset)


def _synth_index(category: str, model_id: str, dm: Any) -> int | None:
    """The synthshapes generation index of ``model_id`` (None for other datasets)."""

    seed = getattr(dm, "seed", 0)
    for i in range(4096):
        if ss.model_id(category, ss.shape_seed(seed, category, i)) == model_id:
            return i
    return None


def find_target(targets: list[ShapeTarget], model_id: str) -> ShapeTarget:
    for t in targets:
        if t.extra.get("model_id") == model_id:
            return t
    raise ValueError(f"shape {model_id} is not among the held-out targets")


def grey(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """An uncoloured copy (the ray caster shades it light grey)."""
    return trimesh.Trimesh(mesh.vertices.copy(), mesh.faces.copy(), process=False)


def _mask_iou(pred: Tensor, gt: Tensor) -> float:
    inter = (pred & gt).sum().item()
    union = (pred | gt).sum().item()
    return float(inter / union) if union else 1.0


def score(
    model: Representation,
    show: Showcase,
    n_points: int = 2048,
    mesh_resolution: int = 64,
    geometry: dict[str, Any] | None = None,
) -> tuple[dict[str, float], dict[str, Tensor]]:
    """Showcase metrics of ``model`` and its renders ``{"pred": (B,H,W,3), "gt": ...}`` (no
    renders and no image metrics when the data has no rendered views). When a ``geometry``
    dict is given it receives the model's output in the scene frame (+Z up) for the report's 3D
    view: ``"mesh"`` (trimesh, possibly empty) and ``"points"`` ((N, 3) tensor or None)."""
    out: dict[str, float] = {}
    cams = show.cameras
    if cams is None:
        shape = model.reconstruct(show.target)
        gt_points, _ = sample_surface(show.target.mesh, n_points, seed=0)
        points = model.to_points(shape, n_points).float().cpu()
        out["chamfer_l2"] = float(chamfer_distance(points, gt_points.float().cpu()))
        out["fscore@0.01"] = float(f_score(points, gt_points.float().cpu(), 0.01))
        return out, {}
    with torch.no_grad():
        if model.per_scene:
            shape = model.sample(1)[0]
            maps = model.render_maps(shape, cams.to(model.device_))
            pred = maps["rgb"].clamp(0, 1).cpu()
            opacity = maps.get("opacity", maps.get("mask"))
            pred_mask = (opacity.cpu() > 0.5) if opacity is not None else None
            gt = show.images.float()
            gt_mask = render_mesh(grey(show.scene_mesh), cams)["mask"].bool().cpu()
            gt_points, _ = sample_surface(show.scene_mesh, n_points, seed=0)
        else:
            shape = None
            pred = pred_mask = None
            gt_maps = render_mesh(grey(show.scene_mesh), cams)
            gt, gt_mask = gt_maps["rgb"].clamp(0, 1).cpu(), gt_maps["mask"].bool().cpu()
            gt_points, _ = sample_surface(show.target.mesh, n_points, seed=0)
    if shape is None:
        shape = model.reconstruct(show.target)
    try:
        points = model.to_points(shape, n_points).float().cpu()
    except ValueError as e:
        log.warning("%s: no surface for the showcase shape: %s", model.name, e)
        points = None
    mesh = None
    if pred is None or geometry is not None:
        try:
            mesh = model.to_mesh(shape, resolution=mesh_resolution)
        except ValueError:
            mesh = trimesh.Trimesh()
    if geometry is not None:
        to_scene = (lambda m: m) if model.per_scene else y_up_to_z_up
        geometry["mesh"] = to_scene(mesh) if len(mesh.faces) > 0 else mesh
        geometry["points"] = None
        if points is not None:
            turn = torch.eye(3) if model.per_scene else torch.tensor(Y_UP_TO_Z_UP).float()
            geometry["points"] = points @ turn.T
    if pred is None:
        pred, pred_mask = draw_shape(model.kind, mesh, points, cams)
    gt_points = gt_points.float().cpu()
    if points is not None:
        out["chamfer_l2"] = float(chamfer_distance(points, gt_points))
        out["fscore@0.01"] = float(f_score(points, gt_points, 0.01))
    else:
        out["chamfer_l2"] = out["fscore@0.01"] = math.nan
    out["psnr"] = float(psnr(pred, gt).mean())
    out["ssim"] = float(ssim(pred, gt).mean())
    if pred_mask is not None:
        out["mask_iou"] = _mask_iou(pred_mask, gt_mask)
    return out, {"pred": pred, "gt": gt}


def draw_shape(
    kind: str, mesh: trimesh.Trimesh | None, points: Tensor | None, cams: Cameras
) -> tuple[Tensor, Tensor]:
    """A shape model's output in the ShapeNet frame drawn by the showcase cameras (scene
    frame): ``rgb`` (B, H, W, 3) and ``mask`` (B, H, W) bool. Point models (``kind ==
    "points"``) as shaded discs of their points, not the mesher's guess of a surface; the others
    ray-cast in grey; an empty output is a blank image."""
    if kind == "points" and points is not None:
        turn = torch.tensor(Y_UP_TO_Z_UP).float()
        maps = render_points(points.float().cpu() @ turn.T, cams)
        return maps["rgb"], maps["mask"]
    if mesh is not None and len(mesh.faces) > 0:
        maps = render_mesh(grey(y_up_to_z_up(mesh)), cams)
        return maps["rgb"].clamp(0, 1).cpu(), maps["mask"].bool().cpu()
    b, h, w = len(cams), cams.height, cams.width
    return torch.ones(b, h, w, 3), torch.zeros(b, h, w, dtype=torch.bool)


def to_uint8(image: Tensor) -> np.ndarray:
    return (image.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


__all__ = ["Showcase", "find_target", "score", "showcase_id", "to_uint8"]
