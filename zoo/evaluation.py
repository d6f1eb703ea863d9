"""The shared evaluation: every model is scored by the same code through ``Representation``.

Protocols, chosen by what the model declares (never by its type):
- per-scene models (``per_scene``): PSNR / SSIM of ``render`` on the held-out views, and the
  geometry of ``to_mesh`` against the scene's ground-truth mesh where the data has one;
- generative models: MMD / COV / 1-NNA (Chamfer) of ``sample`` against the held-out shapes;
  optionally (``generation_emd``, ``generation_jsd``, ``generation_fpd``; the benchmark turns
  them on) MMD / COV / 1-NNA with a paper's approximate EMD, PointFlow's JSD, and FPD / P-FID /
  P-IS through the zoo's own pretrained PointNet (``zoo.metrics.features``);
- classifiers (``classifier``, PointNet): accuracy on the held-out shapes' categories;
- every other shape model: reconstruction of held-out shapes through ``reconstruct``: Chamfer-L2
  (squared, PointFlow / pytorch3d sum of both directions), Chamfer-L1 (Euclidean), F-score at
  a Euclidean tau, normal consistency, and voxel IoU where the data has voxels.
All distances are in the data's units (ShapeNet v2 normalisation: bbox diagonal 1).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from zoo.representation import Representation, ShapeTarget

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    split: str = "test"
    max_shapes: int = 16
    n_points: int = 2048
    fscore_threshold: float = 0.01
    mesh_resolution: int = 64
    save_images: bool = True
    # Extra generation metrics (off by default: EMD costs ~0.07 s of CPU per 2048-point pair):
    # "pointflow" / "pvd" adds gen/{mmd,cov,1nna}_emd with that approxmatch EMD; jsd adds gen/jsd.
    generation_emd: str | None = None
    generation_jsd: bool = False
    # A pretrained classifier's registry name (e.g. "pointnet-synthshapes"): adds gen/fpd,
    # gen/p_fid and gen/p_is over its features (the zoo's network, not the papers').
    generation_fpd: str | None = None


def _subsample(points: Tensor, n: int, seed: int = 0) -> Tensor:
    """A fixed random subset (or all points if fewer) of an (N, 3) cloud."""
    if len(points) <= n:
        return points
    g = torch.Generator().manual_seed(seed)
    return points[torch.randperm(len(points), generator=g)[:n].to(points.device)]


def geometry_metrics(
    model: Representation, shape: Any, target: ShapeTarget, cfg: EvalConfig
) -> dict[str, float]:
    """Reconstruction metrics of one native ``shape`` against ``target``."""
    from zoo.metrics import chamfer_distance, f_score, normal_consistency, voxel_iou
    from zoo.ops.surface import sample_surface
    from zoo.ops.voxelize import voxelize

    target.require("points", model=model.name)
    gt = _subsample(target.points.float(), cfg.n_points).cpu()
    out: dict[str, float] = {}
    mesh: trimesh.Trimesh | None = None
    try:
        mesh = model.to_mesh(shape, resolution=cfg.mesh_resolution)
    except ValueError as e:  # e.g. no surface at the level set
        log.warning("%s: to_mesh failed on %s: %s", model.name, target.name, e)
    try:
        pred = model.to_points(shape, cfg.n_points).float().cpu()
    except ValueError as e:  # no surface at all: every geometry metric is undefined
        log.warning("%s: no surface points for %s: %s", model.name, target.name, e)
        out = {
            k: math.nan for k in ("chamfer_l2", "chamfer_l1", f"fscore@{cfg.fscore_threshold:g}")
        }
        out["empty_surface"] = 1.0
        return out
    out["empty_surface"] = 0.0
    out["chamfer_l2"] = float(chamfer_distance(pred, gt))
    out["chamfer_l1"] = float(chamfer_distance(pred, gt, squared=False))
    out[f"fscore@{cfg.fscore_threshold:g}"] = float(f_score(pred, gt, cfg.fscore_threshold))
    has_surface = mesh is not None and len(mesh.faces) > 0
    if target.normals is not None and has_surface:
        p, n = sample_surface(mesh, cfg.n_points, seed=0)
        gt_idx = _subsample(torch.arange(len(target.points)), cfg.n_points)
        out["normal_consistency"] = float(
            normal_consistency(p, n, target.points[gt_idx].float(), target.normals[gt_idx].float())
        )
    if target.voxels is not None:
        r = target.voxels.shape[-1]
        pred_vox = voxelize(mesh, r) if has_surface else torch.zeros_like(target.voxels, dtype=bool)
        out["iou"] = float(voxel_iou(pred_vox, target.voxels.bool()))
    return out


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-key mean over shapes, ignoring NaN (``empty_surface`` counts those shapes)."""
    keys = dict.fromkeys(k for r in rows for k in r)
    means = {}
    for k in keys:
        vals = [r[k] for r in rows if k in r and not math.isnan(r[k])]
        means[k] = float(np.mean(vals)) if vals else math.nan
    return means


def evaluate(
    model: Representation,
    datamodule: Any,
    cfg: EvalConfig | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, float]:
    """Score ``model`` on ``datamodule``'s held-out split; returns flat ``{"group/metric": v}``."""
    from zoo.metrics import generative_metrics, jsd, psnr, ssim

    cfg = cfg or EvalConfig()
    was_training = model.training  # type: ignore[attr-defined]
    model.eval()  # type: ignore[attr-defined]
    metrics: dict[str, float] = {}
    targets = datamodule.eval_shapes(cfg.split, limit=cfg.max_shapes)
    views = datamodule.eval_views(cfg.split)

    if model.per_scene:
        scene = model.sample(1)[0]
        if views is not None:
            cameras, images = views
            with torch.no_grad():
                maps = model.render_maps(scene, cameras.to(model.device_))
            pred = maps["rgb"].clamp(0, 1).cpu()
            metrics["view/psnr"] = float(psnr(pred, images).mean())
            metrics["view/ssim"] = float(ssim(pred, images).mean())
            if cfg.save_images and out_dir is not None:
                save_view_images(Path(out_dir) / "renders", maps, images)
        if targets and targets[0].mesh is not None:
            rows = [geometry_metrics(model, scene, targets[0], cfg)]
            metrics.update({f"geom/{k}": v for k, v in _mean(rows).items()})
    else:
        if model.generative and len(targets) >= 2:
            samples = model.sample(len(targets), seed=0)
            clouds, empty = [], 0
            for s in samples:
                try:
                    clouds.append(model.to_points(s, cfg.n_points).float().cpu())
                except ValueError:  # no surface: a degenerate cloud at the origin, counted
                    clouds.append(torch.zeros(cfg.n_points, 3))
                    empty += 1
            pts = torch.stack(clouds)
            metrics["gen/empty_samples"] = float(empty)
            refs = torch.stack([_subsample(t.points.float().cpu(), cfg.n_points) for t in targets])
            gm = generative_metrics(pts, refs, distance="chamfer")
            metrics.update({f"gen/{k}_cd": float(v) for k, v in gm.items()})
            if cfg.generation_emd:
                emd = generative_metrics(pts, refs, distance=f"emd_{cfg.generation_emd}")  # type: ignore[arg-type]
                metrics.update({f"gen/{k}_emd": float(v) for k, v in emd.items()})
            if cfg.generation_jsd:
                metrics["gen/jsd"] = jsd(pts, refs)
            if cfg.generation_fpd:
                metrics.update(feature_metrics(pts, refs, cfg.generation_fpd))
        if model.classifier:
            metrics["cls/accuracy"] = classification_accuracy(model, targets)
        rows = [
            geometry_metrics(model, model.reconstruct(t), t, cfg)
            for t in targets
            if not model.classifier
        ]
        if rows:
            metrics.update({f"recon/{k}": v for k, v in _mean(rows).items()})
    if was_training:
        model.train()  # type: ignore[attr-defined]
    return metrics


def feature_metrics(samples: Tensor, refs: Tensor, classifier: str) -> dict[str, float]:
    """FPD, P-FID and P-IS of ``samples`` against ``refs`` through the pretrained classifier
    named ``classifier`` (``zoo.metrics.features``; the zoo's own network)."""
    from zoo.metrics.features import fpd, p_fid, p_is
    from zoo.pretrained import load_pretrained

    net = load_pretrained(classifier)
    return {
        "gen/fpd": fpd(samples, refs, net),
        "gen/p_fid": p_fid(samples, refs, net),
        "gen/p_is": p_is(samples, net),
    }


def classification_accuracy(model: Representation, targets: list[ShapeTarget]) -> float:
    """Fraction of ``targets`` whose category (``extra["synset"]``) ``reconstruct`` names."""
    if not targets:
        return math.nan
    hits = [model.reconstruct(t).synset == t.extra.get("synset") for t in targets]
    return float(np.mean(hits))


def save_view_images(folder: Path, maps: dict[str, Tensor], gt: Tensor | None = None) -> None:
    """Rendered views (and depth maps, normalised per image) as PNG files."""
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    rgb = (maps["rgb"].clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    for i, img in enumerate(rgb):
        iio.imwrite(folder / f"view{i:03d}_rgb.png", img)
        if gt is not None:
            g = (gt[i].clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
            iio.imwrite(folder / f"view{i:03d}_gt.png", g)
    if "depth" in maps:
        for i, d in enumerate(maps["depth"].cpu().numpy()):
            valid = d > 0
            lo, hi = (d[valid].min(), d[valid].max()) if valid.any() else (0.0, 1.0)
            norm = np.where(valid, 1.0 - (d - lo) / max(hi - lo, 1e-8), 0.0)
            iio.imwrite(folder / f"view{i:03d}_depth.png", (norm * 255).astype(np.uint8))


def format_metrics(metrics: dict[str, float]) -> str:
    """A two-column text table."""
    if not metrics:
        return "(no metrics)"
    width = max(len(k) for k in metrics)
    return "\n".join(f"{k:<{width}}  {v:.6g}" for k, v in metrics.items())


__all__ = ["EvalConfig", "evaluate", "format_metrics", "geometry_metrics"]
