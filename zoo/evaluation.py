"""The shared evaluation: every model is scored by the same code through ``Representation``.

Protocols, chosen by what the model declares (never by its type):
- per-scene models (``per_scene``): PSNR / SSIM of ``render`` on the held-out views, and the
  geometry of ``to_mesh`` against the scene's ground-truth mesh where the data has one;
- generative models: MMD / COV / 1-NNA (Chamfer) of ``sample`` against the held-out shapes,
  on ``n_points`` = 2048 points a cloud (PointFlow's protocol), against every held-out shape
  of the split (``gen_references``; as many samples as references), topped up to
  ``gen_references_per_category`` shapes a category where the data can draw more held-out
  shapes (synthshapes: ``zoo.data.synthshapes.references``; the benchmark asks for 100, so
  the 6 embedded categories give 600 references, not the split's 24); optionally
  (``generation_emd``, ``generation_jsd``, ``generation_fpd``; the benchmark turns them on)
  MMD / COV / 1-NNA with a paper's approximate EMD, PointFlow's JSD, and FPD / P-FID / P-IS
  through the zoo's own pretrained PointNet (``zoo.metrics.features``); with
  ``generation_baselines`` the same metrics of two model-free sample sets against the same
  references (:func:`generation_baselines`): an independent draw of held-out shapes of the
  same distribution (``gen_data/...``: what a perfect generator scores) and the training
  shapes (``gen_train/...``: what memorising the training set scores);
- classifiers (``classifier``, PointNet): accuracy on the held-out shapes' categories;
- every other shape model: reconstruction of held-out shapes through ``reconstruct``: Chamfer-L2
  (squared, PointFlow / pytorch3d sum of both directions), Chamfer-L1 (Euclidean), F-score at
  a Euclidean tau, normal consistency, and voxel IoU where the data has voxels, on
  ``recon_points`` = 30,000 points a side (DeepSDF's protocol, Park et al. 2019, Sec. 6: at
  2048 points two independent samples of the *same* surface already score F@0.01 ~ 0.55, so
  the sampling noise hides the differences between models);
- every shape model that declares one (``Representation.ceiling``): the same reconstruction
  metrics of its *representation ceiling*, the held-out ground truth pushed through the model's
  own representation (``ceil/...``), so a score can be read as a fraction of what the
  representation allows.
Every mean comes with its bootstrap standard error (``<key>_se``, ``zoo.metrics.bootstrap``).
All distances are in the data's units (ShapeNet v2 normalisation: bbox diagonal 1).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from zoo.data.formats.shapenet import name_of
from zoo.data.protocol import EvalData
from zoo.metrics import chamfer_distance, f_score, jsd, normal_consistency, psnr, ssim, voxel_iou
from zoo.metrics.bootstrap import bootstrap_se, generative_bootstrap_se, jsd_bootstrap_se
from zoo.metrics.features import fpd, p_fid, p_is
from zoo.metrics.generative import generative_metrics
from zoo.metrics.image import SSIM_WINDOW
from zoo.metrics.pairwise import pairwise_distances
from zoo.ops.surface import sample_surface
from zoo.ops.voxelize import voxelize
from zoo.pretrained import load_pretrained
from zoo.representation import Representation, ShapeTarget

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """Settings of :func:`evaluate` (``conf/eval/default.yaml`` documents each)."""

    split: str = "test"
    max_shapes: int = 16  # shapes reconstructed
    n_points: int = 2048  # points per cloud of the generation metrics (PointFlow)
    recon_points: int = 30000  # points per side of the reconstruction metrics (DeepSDF)
    gen_references: int | None = None  # None: every shape of the split
    # At least this many references a category, drawing more held-out shapes where the data
    # can (synthshapes); None: the split's shapes only.
    gen_references_per_category: int | None = None
    fscore_threshold: float = 0.01
    mesh_resolution: int = 64
    n_boot: int = 1000  # bootstrap resamples of the standard errors (0: none)
    ceilings: bool = True  # also score each model's representation ceiling
    save_images: bool = True
    # Extra generation metrics (off by default: EMD costs ~0.07 s of CPU per 2048-point pair):
    # "pointflow" / "pvd" adds gen/{mmd,cov,1nna}_emd with that approxmatch EMD; jsd adds gen/jsd.
    generation_emd: str | None = None
    # The EMD metrics on this many references (evenly spread over the set, so over the
    # categories) and as many samples; None: all of them.
    generation_emd_references: int | None = None
    generation_jsd: bool = False
    # A pretrained classifier's registry name (e.g. "pointnet-synthshapes"): adds gen/fpd,
    # gen/p_fid and gen/p_is over its features (the zoo's network, not the papers').
    generation_fpd: str | None = None
    # Also score the model-free generation baselines (gen_data/..., gen_train/...): the data
    # row computes what one generator's generation metrics compute, the train row the same
    # for its (often fewer) samples; the references' distances are shared.
    generation_baselines: bool = False
    # Also score generation per category (gen/<category>/...) where the references span
    # several categories and the model samples by category (``Representation.conditional``).
    gen_per_category: bool = False


def _subsample(points: Tensor, n: int, seed: int = 0) -> Tensor:
    """A fixed random subset (or all points if fewer) of an (N, 3) cloud."""
    if len(points) <= n:
        return points
    g = torch.Generator().manual_seed(seed)
    return points[torch.randperm(len(points), generator=g)[:n].to(points.device)]


def ground_truth_cloud(target: ShapeTarget, n: int) -> tuple[Tensor, Tensor | None]:
    """``n`` ground-truth surface points (and normals) of ``target``: sampled by area on its
    mesh where it has one (seeded, so every model meets the same points), else a fixed subset
    of its stored points (all of them when fewer than ``n``)."""
    if target.mesh is not None and len(target.mesh.faces) > 0:
        return sample_surface(target.mesh, n, seed=0)
    target.require("points")
    idx = _subsample(torch.arange(len(target.points)), n)
    normals = target.normals[idx].float().cpu() if target.normals is not None else None
    return target.points[idx].float().cpu(), normals


def surface_metrics(
    mesh: trimesh.Trimesh | None,
    pred: Tensor | None,
    target: ShapeTarget,
    cfg: EvalConfig,
    gt: tuple[Tensor, Tensor | None] | None = None,
) -> dict[str, float]:
    """Reconstruction metrics of a predicted surface (``mesh``, and ``pred``: (N, 3) points on
    it) against ``target`` on ``cfg.recon_points`` points a side (``gt``: the ground-truth
    cloud of :func:`ground_truth_cloud`, computed here when not given)."""
    tau = f"fscore@{cfg.fscore_threshold:g}"
    if pred is None:  # no surface at all: every geometry metric is undefined
        out = {k: math.nan for k in ("chamfer_l2", "chamfer_l1", tau)}
        out["empty_surface"] = 1.0
        return out
    gt_pts, gt_normals = gt if gt is not None else ground_truth_cloud(target, cfg.recon_points)
    pred = pred.float().cpu()
    out = {"empty_surface": 0.0}
    out["chamfer_l2"] = float(chamfer_distance(pred, gt_pts))
    out["chamfer_l1"] = float(chamfer_distance(pred, gt_pts, squared=False))
    out[tau] = float(f_score(pred, gt_pts, cfg.fscore_threshold))
    has_surface = mesh is not None and len(mesh.faces) > 0
    if gt_normals is not None and has_surface:
        p, n = sample_surface(mesh, len(gt_pts), seed=0)
        out["normal_consistency"] = float(normal_consistency(p, n, gt_pts, gt_normals))
    if target.voxels is not None:
        r = target.voxels.shape[-1]
        pred_vox = voxelize(mesh, r) if has_surface else torch.zeros_like(target.voxels, dtype=bool)
        out["iou"] = float(voxel_iou(pred_vox, target.voxels.bool()))
    return out


def geometry_metrics(
    model: Representation,
    shape: Any,
    target: ShapeTarget,
    cfg: EvalConfig,
    gt: tuple[Tensor, Tensor | None] | None = None,
) -> dict[str, float]:
    """Reconstruction metrics of one native ``shape`` against ``target`` (see
    :func:`surface_metrics`)."""
    mesh: trimesh.Trimesh | None = None
    try:
        mesh = model.to_mesh(shape, resolution=cfg.mesh_resolution)
    except ValueError as e:  # e.g. no surface at the level set
        log.warning("%s: to_mesh failed on %s: %s", model.name, target.name, e)
    try:
        pred = model.to_points(shape, cfg.recon_points)
    except ValueError as e:
        log.warning("%s: no surface points for %s: %s", model.name, target.name, e)
        pred = None
    return surface_metrics(mesh, pred, target, cfg, gt)


def ceiling_metrics(
    model: Representation,
    target: ShapeTarget,
    cfg: EvalConfig,
    gt: tuple[Tensor, Tensor | None] | None = None,
) -> dict[str, float] | None:
    """Metrics of ``model``'s representation ceiling on ``target`` (None: it declares none, or
    the target lacks what the ceiling is built from, e.g. a mesh on point-cloud data; logged)."""
    try:
        ceiling = model.ceiling(target, cfg.recon_points, cfg.mesh_resolution)
    except ValueError as e:
        log.warning("%s: no representation ceiling for %s: %s", model.name, target.name, e)
        return None
    if ceiling is None:
        return None
    mesh, points = ceiling
    return surface_metrics(mesh, points, target, cfg, gt)


def _mean(rows: list[dict[str, float]], n_boot: int = 0) -> dict[str, float]:
    """Per-key mean over shapes, ignoring NaN (``empty_surface`` counts those shapes), and
    with ``n_boot`` > 0 the bootstrap standard error of each mean as ``<key>_se``."""
    keys = dict.fromkeys(k for r in rows for k in r)
    means = {}
    for k in keys:
        vals = [r[k] for r in rows if k in r and not math.isnan(r[k])]
        means[k] = float(np.mean(vals)) if vals else math.nan
        if n_boot > 0 and k != "empty_surface":
            means[f"{k}_se"] = bootstrap_se(vals, n_boot)
    return means


def evaluate(
    model: Representation,
    datamodule: EvalData,
    cfg: EvalConfig | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, float]:
    """Score ``model`` on ``datamodule``'s held-out split; returns flat ``{"group/metric": v}``
    (groups ``view``, ``geom``, ``gen``, ``cls``, ``recon``, ``ceil``; ``_se`` keys are standard
    errors)."""
    cfg = cfg or EvalConfig()
    was_training = model.training  # type: ignore[attr-defined]
    model.eval()  # type: ignore[attr-defined]
    metrics: dict[str, float] = {}
    targets = datamodule.eval_shapes(cfg.split, limit=cfg.max_shapes)
    views = datamodule.eval_views(cfg.split)

    if model.per_scene:
        scene = model.sample(1)[0]
        # Multiscale data (zoo.data.multiscale): every scale scored, then the mean over the
        # scales of the per-scale PSNR / SSIM (the paper's per-scale columns, Mip-NeRF Table 1).
        scales = datamodule.eval_scales(cfg.split)
        if scales:
            per_scale = []
            for name, cameras, images in scales:
                with torch.no_grad():
                    maps = model.render_maps(scene, cameras.to(model.device_))
                pred = maps["rgb"].clamp(0, 1).cpu()
                row = {"psnr": float(psnr(pred, images).mean()), "ssim": math.nan}
                if min(images.shape[1:3]) >= SSIM_WINDOW:  # SSIM's 11 x 11 window must fit
                    row["ssim"] = float(ssim(pred, images).mean())
                metrics.update({f"view/{k}_{name}": v for k, v in row.items()})
                per_scale.append(row)
                if cfg.save_images and out_dir is not None:
                    save_view_images(Path(out_dir) / "renders" / name, maps, images)
            metrics.update({f"view/{k}": v for k, v in _mean(per_scale).items()})
        elif views is not None:
            cameras, images = views
            with torch.no_grad():
                maps = model.render_maps(scene, cameras.to(model.device_))
            pred = maps["rgb"].clamp(0, 1).cpu()
            view_rows = [
                {"psnr": float(p), "ssim": float(q)}
                for p, q in zip(psnr(pred, images), ssim(pred, images), strict=True)
            ]
            metrics.update({f"view/{k}": v for k, v in _mean(view_rows, cfg.n_boot).items()})
            if cfg.save_images and out_dir is not None:
                save_view_images(Path(out_dir) / "renders", maps, images)
        if targets and targets[0].mesh is not None:
            rows = [geometry_metrics(model, scene, targets[0], cfg)]
            metrics.update({f"geom/{k}": v for k, v in _mean(rows).items()})
    else:
        if model.generative:
            metrics.update(_generation(model, datamodule, targets, cfg))
        if model.classifier:
            metrics["cls/accuracy"] = classification_accuracy(model, targets)
        recon, ceil = [], []
        for t in targets if not model.classifier and _reconstructable(model, targets) else []:
            gt = ground_truth_cloud(t, cfg.recon_points)
            recon.append(geometry_metrics(model, model.reconstruct(t), t, cfg, gt))
            c = ceiling_metrics(model, t, cfg, gt) if cfg.ceilings else None
            if c is not None:
                ceil.append(c)
        if recon:
            metrics.update({f"recon/{k}": v for k, v in _mean(recon, cfg.n_boot).items()})
        if ceil:
            metrics.update({f"ceil/{k}": v for k, v in _mean(ceil, cfg.n_boot).items()})
            metrics.update(ceiling_fractions(metrics))
    if was_training:
        model.train()  # type: ignore[attr-defined]
    return metrics


HIGHER_BETTER = ("fscore", "normal_consistency", "iou")


def ceiling_fractions(metrics: dict[str, float]) -> dict[str, float]:
    """Each reconstruction score as a fraction of its representation ceiling (``frac/<k>``):
    score / ceiling where higher is better (F, NC, IoU), ceiling / score for distances (so 1 is
    the ceiling in both cases)."""
    out = {}
    for key, ceil in metrics.items():
        if not key.startswith("ceil/") or key.endswith("_se") or "empty" in key:
            continue
        name = key.partition("/")[2]
        score = metrics.get(f"recon/{name}", math.nan)
        higher = name.startswith(HIGHER_BETTER)
        num, den = (score, ceil) if higher else (ceil, score)
        out[f"frac/{name}"] = num / den if den and math.isfinite(den) else math.nan
    return out


def _reconstructable(model: Representation, targets: list[ShapeTarget]) -> bool:
    """Whether the targets hold what a voxel model reconstructs from: voxel_gan trained on the
    grids of ``data=point_arrays`` is scored on generation only, against test clouds that have
    no grids (:mod:`zoo.data.point_arrays`)."""
    if model.data_form != "voxels" or all(t.voxels is not None for t in targets):
        return True
    log.warning("%s: the evaluation targets have no voxels: reconstruction not scored", model.name)
    return False


def reference_set(
    datamodule: EvalData, targets: list[ShapeTarget], cfg: EvalConfig
) -> tuple[Tensor, list[str]]:
    """The generation metrics' reference clouds (R, n_points, 3) and the synset of each: the
    split's shapes (the first ``gen_references``, all by default, and always all with
    ``gen_references_per_category``; a fixed subset of each one's evaluation points), then,
    with ``gen_references_per_category``, the extra held-out shapes the data draws to reach
    that many a category (``datamodule.extra_references``, where the data can draw more)."""
    n_refs = cfg.gen_references if cfg.gen_references_per_category is None else None
    if n_refs is not None and n_refs <= len(targets):
        refs = targets[:n_refs]
    else:
        refs = datamodule.eval_shapes(cfg.split, limit=n_refs)
    clouds = [_subsample(t.points.float().cpu(), cfg.n_points) for t in refs]
    synsets = [str(t.extra.get("synset")) for t in refs]
    per_category = cfg.gen_references_per_category
    if per_category is not None:
        have = Counter(synsets)
        extra = datamodule.extra_references(int(per_category), dict(have), cfg.n_points)
        for synset, more in extra.items():  # (K_c, n, 3) by category
            clouds += list(more.float())
            synsets += [synset] * len(more)
    if not clouds:
        return torch.zeros(0, cfg.n_points, 3), []
    return torch.stack(clouds), synsets


def reference_clouds(datamodule: EvalData, targets: list[ShapeTarget], cfg: EvalConfig) -> Tensor:
    """The reference clouds (R, n_points, 3) of :func:`reference_set`."""
    return reference_set(datamodule, targets, cfg)[0]


def reference_categories(synsets: list[str]) -> list[str]:
    """The category names of ``synsets`` (the references'), each once, in order."""
    return [name_of(s) for s in dict.fromkeys(synsets)]


def _generation(
    model: Representation, datamodule: EvalData, targets: list[ShapeTarget], cfg: EvalConfig
) -> dict[str, float]:
    """Every generation metric :func:`evaluate` reports (none with fewer than 2 references)."""
    refs, synsets = reference_set(datamodule, targets, cfg)
    if len(refs) < 2:
        return {}
    categories = reference_categories(synsets)
    log.info("generation references: %d clouds of %s", len(refs), ", ".join(categories))
    d_rr = pairwise_distances(refs, None, "chamfer")  # (R, R), shared by every row below
    out = generation_metrics(model, refs, cfg, d_rr=d_rr)
    out["gen/categories"] = float(len(categories))
    if cfg.gen_per_category:
        out.update(per_category_generation(model, refs, synsets, cfg))
    if cfg.generation_baselines:
        out.update(generation_baselines(datamodule, refs, synsets, cfg, d_rr=d_rr))
    return out


def sample_clouds(model: Representation, n: int, n_points: int, **kw: Any) -> tuple[Tensor, int]:
    """``n`` samples of ``model`` (``sample(n, seed=0, **kw)``) as (n, n_points, 3) clouds, and
    how many had no surface (each a degenerate cloud at the origin, so it still counts)."""
    clouds, empty = [], 0
    for s in model.sample(n, seed=0, **kw):
        try:
            clouds.append(model.to_points(s, n_points).float().cpu())
        except ValueError:
            clouds.append(torch.zeros(n_points, 3))
            empty += 1
    return torch.stack(clouds), empty  # (S, N, 3)


def generation_metrics(
    model: Representation, refs: Tensor, cfg: EvalConfig, d_rr: Tensor | None = None
) -> dict[str, float]:
    """MMD / COV / 1-NNA (Chamfer) of as many samples as the reference clouds ``refs``
    (R, n_points, 3), with their two-sample bootstrap standard errors (:func:`set_metrics`;
    ``d_rr``: the references' (R, R) Chamfer matrix when the caller has it)."""
    pts, empty = sample_clouds(model, len(refs), cfg.n_points)  # (S, N, 3)
    out = {"gen/empty_samples": float(empty), "gen/references": float(len(refs))}
    out.update(set_metrics(pts, refs, cfg, d_rr=d_rr))
    return out


def set_metrics(
    pts: Tensor,
    refs: Tensor,
    cfg: EvalConfig,
    prefix: str = "gen",
    d_rr: Tensor | None = None,
    extras: bool = True,
) -> dict[str, float]:
    """``<prefix>/{mmd,cov,1nna}_cd`` (and ``_se``) of the clouds ``pts`` (S, N, 3) as samples
    against ``refs`` (R, N, 3), and with ``extras`` the EMD / JSD / FPD metrics ``cfg`` turns
    on. ``d_rr``: the references' (R, R) Chamfer matrix when the caller has it already."""
    d_sr = pairwise_distances(pts, refs, "chamfer")  # (S, R)
    d_ss = pairwise_distances(pts, None, "chamfer")  # (S, S)
    d_rr = pairwise_distances(refs, None, "chamfer") if d_rr is None else d_rr  # (R, R)
    gm = generative_metrics(pts, refs, "chamfer", matrices=(d_ss, d_sr, d_rr))
    out = {f"{prefix}/{k}_cd": float(v) for k, v in gm.items()}
    if cfg.n_boot > 0:
        se = generative_bootstrap_se(d_ss, d_sr, d_rr, cfg.n_boot)
        out.update({f"{prefix}/{k}_cd_se": v for k, v in se.items()})
    if extras and cfg.generation_emd:
        dist = f"emd_{cfg.generation_emd}"
        k = cfg.generation_emd_references
        e_pts, e_refs = pts, refs
        if k is not None and k < len(refs):  # evenly spread over the (category-ordered) set
            e_pts, e_refs = pts[:k], refs[torch.linspace(0, len(refs) - 1, k).round().long()]
            out[f"{prefix}/references_emd"] = float(k)
        e_sr = pairwise_distances(e_pts, e_refs, dist)  # type: ignore[arg-type]  # (S, R)
        e_ss = pairwise_distances(e_pts, None, dist)  # type: ignore[arg-type]  # (S, S)
        e_rr = pairwise_distances(e_refs, None, dist)  # type: ignore[arg-type]  # (R, R)
        emd = generative_metrics(e_pts, e_refs, matrices=(e_ss, e_sr, e_rr))
        out.update({f"{prefix}/{k}_emd": float(v) for k, v in emd.items()})
        if cfg.n_boot > 0:
            se = generative_bootstrap_se(e_ss, e_sr, e_rr, cfg.n_boot)
            out.update({f"{prefix}/{k}_emd_se": v for k, v in se.items()})
    if extras and cfg.generation_jsd:
        out[f"{prefix}/jsd"] = jsd(pts, refs)
        if cfg.n_boot > 0:
            out[f"{prefix}/jsd_se"] = jsd_bootstrap_se(pts, refs, cfg.n_boot)
    if extras and cfg.generation_fpd:
        feats = feature_metrics(pts, refs, cfg.generation_fpd)
        out.update({f"{prefix}/{k.partition('/')[2]}": v for k, v in feats.items()})
    return out


def one_nna_chance(n_samples: int, n_refs: int) -> float:
    """Expected 1-NNA of two sets drawn from one distribution: each cloud's leave-one-out
    nearest neighbour is any of the other S + R - 1 alike, so the accuracy is
    (S (S - 1) + R (R - 1)) / ((S + R)(S + R - 1)); just below 0.5 for S = R, higher when
    the sets' sizes differ (the 0.5 ideal of PointFlow's protocol assumes S = R)."""
    n = n_samples + n_refs
    return (n_samples * (n_samples - 1) + n_refs * (n_refs - 1)) / (n * (n - 1))


def split_references(synsets: list[str], seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of two disjoint halves of a reference set, a seeded shuffle within each
    category: (references, samples), the samples ``floor(n_c / 2)`` of each category's
    ``n_c``, the references the rest."""
    g = torch.Generator().manual_seed(seed)
    keep, take = [], []
    for synset in dict.fromkeys(synsets):
        idx = torch.tensor([i for i, s in enumerate(synsets) if s == synset])
        idx = idx[torch.randperm(len(idx), generator=g)]
        take += idx[: len(idx) // 2].tolist()
        keep += idx[len(idx) // 2 :].tolist()
    return sorted(keep), sorted(take)


def train_clouds(datamodule: EvalData, synsets: list[str], cfg: EvalConfig) -> Tensor:
    """The memorising baseline's samples (S, n_points, 3): of each category as many training
    shapes as there are references of it (``synsets``; all of them where the train split has
    fewer), the first ones in split order, subsampled like the references."""
    targets = _train_copy_targets(datamodule, synsets, points_only=True)
    clouds = [_subsample(t.points.float().cpu(), cfg.n_points) for t in targets]
    return torch.stack(clouds) if clouds else torch.zeros(0, cfg.n_points, 3)


def _train_copy_targets(
    datamodule: EvalData, synsets: list[str], points_only: bool
) -> list[ShapeTarget]:
    """The training shapes of the memorising baseline: of each category as many as there are
    references of it (``synsets``; all of them where the train split has fewer), the first
    ones in split order."""
    want = Counter(synsets)
    got: Counter[str] = Counter()
    chosen = []
    for t in datamodule.eval_shapes("train", points_only=points_only):
        synset = str(t.extra.get("synset"))
        if got[synset] < want[synset]:
            got[synset] += 1
            chosen.append(t)
    return chosen


def ceiling_train_clouds(
    model: Representation, datamodule: EvalData, synsets: list[str], cfg: EvalConfig
) -> Tensor:
    """The memorising baseline pushed through ``model``'s representation (S, n_points, 3): the
    training shapes of :func:`train_clouds` (the same ones, in the same order), each as
    ``model.ceiling`` gives it (a voxel grid at the model's size, the true SDF
    marching-cubed at the model's grid, ...). Scored as samples, what a generator that
    memorised the training set perfectly, *in this representation*, scores: the
    representation's limit on the generation metrics. Empty (0, n_points, 3) when the model
    declares no ceiling or the targets have no mesh."""
    clouds = []
    for t in _train_copy_targets(datamodule, synsets, points_only=False):
        ceiling = model.ceiling(t, cfg.n_points, cfg.mesh_resolution)
        if ceiling is None:
            return torch.zeros(0, cfg.n_points, 3)
        clouds.append(_subsample(ceiling[1].float().cpu(), cfg.n_points))
    return torch.stack(clouds) if clouds else torch.zeros(0, cfg.n_points, 3)


def data_row_clouds(
    datamodule: EvalData, refs: Tensor, synsets: list[str], n_points: int
) -> tuple[Tensor, Tensor, bool]:
    """The "data" row's sets: ``(samples, references, split_halves)``. Where the data draws
    more held-out shapes (``datamodule.independent_draw``, synthshapes: a seed stream of its
    own, never a dataset shape nor a reference), as many as references of each category
    against all of ``refs``; otherwise ``refs`` split in two seeded halves within each
    category (:func:`split_references`), one against the other."""
    draw = datamodule.independent_draw(dict(Counter(synsets)), n_points)
    if draw is not None:
        return torch.cat(list(draw.values())).float(), refs, False
    keep, take = split_references(synsets)
    log.info("generation baselines: data row on split halves (%d vs %d)", len(take), len(keep))
    return refs[take], refs[keep], True


def generation_baselines(
    datamodule: EvalData,
    refs: Tensor,
    synsets: list[str],
    cfg: EvalConfig,
    d_rr: Tensor | None = None,
) -> dict[str, float]:
    """The generation metrics of two model-free sample sets, scored exactly like a model's
    samples (:func:`set_metrics`) against the references ``refs`` (R, n_points, 3) of
    ``synsets``: the floor and the trap a generator's scores sit between.

    - ``gen_data/...``: a perfect generator (:func:`data_row_clouds`: an independent draw,
      ``gen_data/split_halves`` = 0, or the references' split halves, = 1;
      ``gen_data/references`` says how many).
    - ``gen_train/...``: memorising the training set, the training shapes as samples
      (:func:`train_clouds`; ``gen_train/samples`` may be fewer than the references).

    Each row's ``1nna_chance`` is the 1-NNA of indistinguishable sets of its sizes
    (:func:`one_nna_chance`). Samples are shuffled (seeded) so that the EMD metrics' first
    ``generation_emd_references`` samples span the categories. ``d_rr``: the references'
    (R, R) Chamfer matrix when the caller has it.
    """
    g = torch.Generator().manual_seed(0)
    out: dict[str, float] = {}
    if d_rr is None:
        d_rr = pairwise_distances(refs, None, "chamfer")  # (R, R), shared by both rows
    samples, against, halves = data_row_clouds(datamodule, refs, synsets, cfg.n_points)
    d_data = pairwise_distances(against, None, "chamfer") if halves else d_rr
    rows = {"gen_data": (samples, against, d_data, float(halves))}
    rows["gen_train"] = (train_clouds(datamodule, synsets, cfg), refs, d_rr, 0.0)
    for prefix, (pts, against, d, halves) in rows.items():
        if len(pts) < 2 or len(against) < 2:
            log.warning("generation baselines: %s skipped (%d samples)", prefix, len(pts))
            continue
        pts = pts[torch.randperm(len(pts), generator=g)]
        row = {f"{prefix}/references": float(len(against)), f"{prefix}/samples": float(len(pts))}
        if prefix == "gen_data":
            row[f"{prefix}/split_halves"] = halves
        row[f"{prefix}/1nna_chance"] = one_nna_chance(len(pts), len(against))
        row.update(set_metrics(pts, against, cfg, prefix, d_rr=d))
        out.update(row)
    return out


def per_category_generation(
    model: Representation, refs: Tensor, synsets: list[str], cfg: EvalConfig
) -> dict[str, float]:
    """``gen/<category>/{mmd,cov,1nna}_cd``: samples drawn for each category
    (``sample(n, seed=0, category=synset)``) against that category's references. Only where
    the references span several categories (with one, ``gen/...`` is that category's) and
    the model samples by category (``Representation.conditional``); otherwise nothing, and the
    reason is logged."""
    categories = list(dict.fromkeys(synsets))
    if len(categories) < 2:
        return {}
    if not model.conditional:
        log.info("%s: no per-category generation: it does not sample by category", model.name)
        return {}
    out = {}
    for synset in categories:
        idx = [i for i, s in enumerate(synsets) if s == synset]
        if len(idx) < 2:
            continue
        pts, _ = sample_clouds(model, len(idx), cfg.n_points, category=synset)
        out.update(set_metrics(pts, refs[idx], cfg, f"gen/{name_of(synset)}", extras=False))
    return out


def feature_metrics(samples: Tensor, refs: Tensor, classifier: str) -> dict[str, float]:
    """FPD, P-FID and P-IS of ``samples`` against ``refs`` through the pretrained classifier
    named ``classifier`` (``zoo.metrics.features``; the zoo's own network)."""
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


__all__ = [
    "EvalConfig",
    "ceiling_metrics",
    "evaluate",
    "format_metrics",
    "generation_baselines",
    "generation_metrics",
    "geometry_metrics",
    "ground_truth_cloud",
    "one_nna_chance",
    "per_category_generation",
    "reference_categories",
    "reference_clouds",
    "reference_set",
    "sample_clouds",
    "set_metrics",
    "split_references",
    "surface_metrics",
    "train_clouds",
]
