"""``python -m zoo.benchmark``: every representation on one table.

Each model is trained with its own ``python -m zoo.train`` configuration (or loaded from the
pretrained registry with ``pretrained=true``) on the same data, then scored by the shared
evaluator (``zoo.evaluation.evaluate``: reconstruction of the same held-out shapes, generation
against them) and on one showcase shape seen by the same held-out cameras
(``zoo.benchmark.showcase``), with its cost. Nothing here branches on the model type: only on
the flags of the ``Representation`` interface.

All-models mode runs one child process per model (``python -m zoo.benchmark model=<name>``) so
that each model's peak memory is its own, then, with ``eval.generation_baselines`` and where a
model was scored on generation, the two model-free generation rows once for the data
(:func:`run_baselines`: "data (perfect generator)" and "train copy (memorising)", see
``zoo.evaluation.generation_baselines``; a one-model run leaves them to its parent), then
merges their ``result.json`` files into ``results.json``, ``results.csv``, ``results.md``,
``plots/*.png`` and ``report.html``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from zoo.benchmark.report import markdown_table, write_report
from zoo.benchmark.showcase import Showcase, find_target, score, showcase_id, to_uint8
from zoo.checkpoint import load_model
from zoo.cli_utils import pick_device, quiet_lightning, write_json
from zoo.evaluation import (
    evaluate,
    generation_baselines,
    reference_categories,
    reference_set,
)
from zoo.export import export_mesh, export_points
from zoo.pretrained import PretrainedError, load_pretrained, write_weights
from zoo.train import train

log = logging.getLogger(__name__)

SKIP_FORWARD = (
    "models=",
    "collect=",
    "train_overrides",
    "hydra.run",
    "hydra.sweep",
    "pretrained_names",
)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _weights_mb(model: Any, meta: dict[str, Any]) -> float:
    """Size of the model's float32 safetensors weights file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_weights(model, meta, Path(tmp) / "w.safetensors")
        return path.stat().st_size / 2**20


def _sample_seconds(model: Any, mesh_resolution: int) -> float:
    """Wall time to draw one shape and turn it into a mesh."""
    t0 = time.perf_counter()
    with torch.no_grad():
        shape = model.sample(1, seed=0)[0]
    try:
        model.to_mesh(shape, resolution=mesh_resolution)
    except ValueError:
        pass  # an empty sample still cost its time
    return time.perf_counter() - t0


def _set_scene(data_cfg: DictConfig, category: str, index: int | None) -> None:
    if index is None or "scene_index" not in data_cfg:
        return
    with open_dict(data_cfg):
        data_cfg.scene_category = category
        data_cfg.scene_index = int(index)


def _showcase(cfg: DictConfig, model: Any, dm: Any, mid: str, index: int | None) -> Any:
    """The showcase shape for ``model`` (``dm``: its set-up datamodule); its views only where
    the data renders scenes."""
    from hydra.utils import instantiate

    cameras = images = scene_mesh = None
    scene_target = None
    if "scene_index" in cfg.data and index is not None:
        if model.per_scene:  # its own data are the showcase scene's views
            vdm = dm
        else:
            views_cfg = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
            _set_scene(views_cfg, cfg.showcase_category, index)
            vdm = instantiate(views_cfg, form="views")
            vdm.prepare_data()
            vdm.setup("test")
        cameras, images = vdm.eval_views("test")
        scene_target = vdm.eval_shapes("test")[0]
        scene_mesh = scene_target.mesh
    if model.per_scene:
        if scene_target is None:
            raise ValueError(f"{model.name}: the data has no rendered scene to score it on")
        target = scene_target
    else:
        target = find_target(dm.eval_shapes("test"), mid)
    return Showcase(
        target=target,
        scene_mesh=scene_mesh,
        cameras=cameras,
        images=images,
        model_id=mid,
        category=cfg.showcase_category,
        scene_index=index,
    )


def run_model(cfg: DictConfig) -> dict[str, Any]:
    """Benchmark the one model ``cfg.model`` (trained here, or from the registry)."""
    import imageio.v3 as iio
    from hydra.utils import instantiate

    quiet_lightning()
    device = pick_device("auto")
    run_dir = Path(cfg.run_dir)
    choice = _model_choice(cfg)
    with open_dict(cfg):  # the baselines do not depend on the model: run_all scores them once
        cfg.eval.generation_baselines = False
    shape_dm = instantiate(cfg.data, form="points")
    shape_dm.prepare_data()
    mid, index = showcase_id(shape_dm, cfg.showcase_category)
    _set_scene(cfg.data, cfg.showcase_category, index)
    eval_cfg = instantiate(cfg.eval)
    source: str
    if cfg.pretrained:
        name = cfg.pretrained_names.get(choice)
        if not name:
            raise PretrainedError(f"pretrained_names has no entry for model {choice!r}")
        model, meta, entry = load_pretrained(name, with_meta=True)
        source = f"pretrained:{name}"
        scene_idx = (meta.get("data_cfg") or {}).get("scene_index")
        if model.per_scene and index is not None and scene_idx != index:
            log.warning("%s was fitted to scene %s, not the showcase %s", name, scene_idx, index)
        dm = _setup_data(cfg, model)
        metrics = evaluate(model, dm, eval_cfg, out_dir=run_dir / "eval")
        train_s = entry.train.get("wall_s")
        peak = entry.train.get("peak_rss_mb")
        command = entry.command
    else:
        t0 = time.perf_counter()
        trained = train(cfg)
        train_s = time.perf_counter() - t0
        peak = _peak_mb(device)
        model, meta = load_model(trained["checkpoint"])
        dm = _setup_data(cfg, model)
        metrics = trained["metrics"]
        source = "trained"
        command = "python -m zoo.train " + " ".join(_task_overrides())
    model.to(device)
    recon_shapes = 1 if model.per_scene else min(eval_cfg.max_shapes, len(dm.items("test")))
    row: dict[str, float] = {}
    for k, v in metrics.items():
        group, _, key = k.partition("/")
        row[f"recon/{key}" if group == "geom" else k] = v
    show = _showcase(cfg, model, dm, mid, index)
    geometry: dict[str, Any] = {}
    show_metrics, images = score(
        model, show, eval_cfg.n_points, eval_cfg.mesh_resolution, geometry=geometry
    )
    row.update({f"show/{k}": v for k, v in show_metrics.items()})
    thumbs = run_dir / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    if images:
        iio.imwrite(thumbs / f"{choice}.png", to_uint8(images["pred"][0]))
        iio.imwrite(thumbs / "ground_truth.png", to_uint8(show.images[0]))
        if not model.per_scene:
            iio.imwrite(thumbs / "ground_truth_grey.png", to_uint8(images["gt"][0]))
    row["cost/params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    row["cost/weights_mb"] = _weights_mb(model, meta)
    row["cost/train_min"] = train_s / 60 if train_s is not None else math.nan
    row["cost/sample_s"] = _sample_seconds(model, eval_cfg.mesh_resolution)
    row["cost/peak_mb"] = peak if peak is not None else math.nan
    result = {
        "model": choice,
        "kind": model.kind,
        "source": source,
        "command": command,
        "recon_shapes": recon_shapes,
        "device": str(model.device_),
        "metrics": row,
        "thumbnail": f"thumbs/{choice}.png",
        "showcase": {"category": show.category, "model_id": mid, "scene_index": index},
        "showcase_files": _write_showcase_files(run_dir, choice, geometry, show.scene_mesh),
        "eval": OmegaConf.to_container(cfg.eval, resolve=True),
    }
    if "gen/references" in row:
        result["gen_categories"] = _gen_categories(dm, eval_cfg)
    write_json(run_dir / "result.json", result)
    print(f"{choice}: {json.dumps({k: round(v, 5) for k, v in row.items()})}")
    return result


def _gen_categories(dm: Any, eval_cfg: Any) -> list[str]:
    """The categories of ``dm``'s generation references under ``eval_cfg``."""
    targets = dm.eval_shapes(eval_cfg.split, limit=eval_cfg.max_shapes)
    return reference_categories(reference_set(dm, targets, eval_cfg)[1])


BASELINE_ROWS = {
    "gen_data": ("data (perfect generator)", "data"),
    "gen_train": ("train copy (memorising)", "train_copy"),
}


def run_baselines(cfg: DictConfig, out_dir: Path) -> tuple[list[dict[str, Any]], list[Path]]:
    """The generation baselines' rows (``zoo.evaluation.generation_baselines``) for the
    benchmark's data and evaluation settings, each written as
    ``<out_dir>/baselines/<name>/result.json``; returns the rows and their folders."""
    from hydra.utils import instantiate

    dm = instantiate(cfg.data, form="points")
    dm.prepare_data()
    dm.setup("test")
    eval_cfg = instantiate(cfg.eval)
    refs, synsets = reference_set(dm, dm.eval_shapes(eval_cfg.split, eval_cfg.max_shapes), eval_cfg)
    t0 = time.perf_counter()
    metrics = generation_baselines(dm, refs, synsets, eval_cfg)
    wall_s = time.perf_counter() - t0
    print(f"generation baselines: {wall_s:.1f} s for {len(refs)} references", flush=True)
    rows, dirs = [], []
    for prefix, (title, folder) in BASELINE_ROWS.items():
        row = {
            f"gen/{k.partition('/')[2]}": v
            for k, v in metrics.items()
            if k.startswith(prefix + "/")
        }
        if not row:
            continue
        protocol = "train split"
        if prefix == "gen_data":
            halves = row.pop("gen/split_halves")
            protocol = "split halves" if halves else "independent draw"
        result = {
            "model": title,
            "kind": "baseline",
            "source": protocol,
            "metrics": row,
            "gen_categories": reference_categories(synsets),
            "gen_references": len(refs),  # the models' reference count (split halves: half of it)
            "baseline_s": wall_s,
            "eval": OmegaConf.to_container(cfg.eval, resolve=True),
        }
        write_json(out_dir / "baselines" / folder / "result.json", result)
        rows.append(result)
        dirs.append(out_dir / "baselines" / folder)
    return rows, dirs


def _write_showcase_files(
    run_dir: Path, choice: str, geometry: dict[str, Any], scene_mesh: Any
) -> dict[str, str]:
    """The model's output on the showcase shape and the ground truth, in the scene frame, as
    PLY files under ``run_dir/showcase/`` (for the report's 3D views); relative paths."""
    folder = run_dir / "showcase"
    files: dict[str, Path] = {}
    mesh, points = geometry.get("mesh"), geometry.get("points")
    if mesh is not None and len(mesh.faces) > 0:
        files["prediction"] = export_mesh(mesh, folder / f"{choice}.ply")
    if points is not None:
        files["points"] = export_points(points, folder / f"{choice}_points.ply")
    if scene_mesh is not None:
        files["ground_truth"] = export_mesh(scene_mesh, folder / "ground_truth.ply")
    return {k: p.relative_to(run_dir).as_posix() for k, p in files.items()}


def _setup_data(cfg: DictConfig, model: Any) -> Any:
    """The benchmark data in ``model``'s form, set up for its test split."""
    from hydra.utils import instantiate

    dm = instantiate(cfg.data, form=model.data_form)
    dm.prepare_data()
    dm.setup("test")
    return dm


def _model_choice(cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    try:
        choice = HydraConfig.get().runtime.choices.get("model")
    except ValueError:  # composed outside a Hydra run (tests)
        choice = None
    return str(choice or cfg.model._target_.rsplit(".", 1)[-1].lower())


def _task_overrides() -> list[str]:
    """This run's command-line overrides (plus ``hydra.searchpath``, which children need)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        overrides = HydraConfig.get().overrides
    except ValueError:
        return []
    search = [o for o in overrides.hydra if o.startswith("hydra.searchpath")]
    return search + list(overrides.task)


def _gather(results: list[dict[str, Any]], dirs: list[Path], out_dir: Path) -> None:
    """Copy each row's thumbnail (named ``<i>_<model>.png``, so rows of a sweep of one model
    stay apart) and the ground-truth thumbnails into ``out_dir/thumbs``; paths stay relative."""
    thumbs = out_dir / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    for i, (r, d) in enumerate(zip(results, dirs, strict=True)):
        src = d / r.get("thumbnail", "")
        if src.is_file():
            dst = thumbs / f"{i:02d}_{src.name}"
            shutil.copyfile(src, dst)
            r["thumbnail"] = dst.relative_to(out_dir).as_posix()
        for gt in ("ground_truth.png", "ground_truth_grey.png"):
            if (d / "thumbs" / gt).is_file() and not (thumbs / gt).is_file():
                shutil.copyfile(d / "thumbs" / gt, thumbs / gt)
        files = r.get("showcase_files") or {}
        for key, rel in list(files.items()):  # the 3D views' inputs, kept apart per row
            if (d / rel).is_file():
                dst = out_dir / "showcase" / f"{i:02d}_{Path(rel).name}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(d / rel, dst)
                files[key] = dst.relative_to(out_dir).as_posix()
            else:
                del files[key]


def run_all(cfg: DictConfig) -> list[dict[str, Any]]:
    """One child process per model, then the merged report."""
    out_dir = Path(cfg.run_dir)
    forwarded = [o for o in _task_overrides() if not o.startswith(SKIP_FORWARD)]
    results, dirs, failed = [], [], []
    for name in cfg.models:
        child_dir = out_dir / "models" / name
        extra = list(cfg.train_overrides.get(name, []) or [])
        cmd = [sys.executable, "-m", "zoo.benchmark", f"model={name}"] + forwarded + extra
        cmd.append(f"hydra.run.dir={child_dir}")
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        proc = subprocess.Popen(cmd)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        result_file = child_dir / "result.json"
        if proc.returncode != 0 or not result_file.is_file():
            print(f"=== {name} failed (exit {proc.returncode}); see {child_dir}", flush=True)
            failed.append(name)
            continue
        result = json.loads(result_file.read_text())
        result["process_peak_rss_mb"] = usage.ru_maxrss / 1024
        results.append(result)
        dirs.append(child_dir)
    if cfg.eval.get("generation_baselines") and any(
        "gen/references" in r["metrics"] for r in results
    ):
        rows, row_dirs = run_baselines(cfg, out_dir)
        for r in results:  # the baselines stand beside rows scored on the same references
            refs = r["metrics"].get("gen/references")
            if rows and refs is not None and refs != rows[0]["gen_references"]:
                log.warning("%s: %s generation references, the baselines' differ", r["model"], refs)
        results += rows
        dirs += row_dirs
    _gather(results, dirs, out_dir)
    command = "python -m zoo.benchmark " + " ".join(_task_overrides())
    files = write_report(results, out_dir, command.strip())
    print("\n" + markdown_table(results))
    for kind, path in files.items():
        print(f"{kind}: {path}")
    if failed:
        raise SystemExit(f"benchmark: {', '.join(failed)} failed")
    return results


def collect(folder: str | Path, out_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Merge every ``result.json`` under ``folder`` (e.g. a multirun sweep) into one report."""
    folder = Path(folder)
    files = sorted(folder.rglob("result.json"))
    if not files:
        raise FileNotFoundError(f"{folder}: no result.json below it")
    results = [json.loads(f.read_text()) for f in files]
    dirs = [f.parent for f in files]
    if len({r["model"] for r in results}) < len(results):  # a sweep: tell the rows apart
        for r, d in zip(results, dirs, strict=True):
            r["model"] = f"{r['model']} ({d.name})"
    out = Path(out_dir) if out_dir is not None else folder
    _gather(results, dirs, out)
    write_report(results, out, f"python -m zoo.benchmark collect={folder}")
    print(markdown_table(results))
    return results


__all__ = ["collect", "run_all", "run_baselines", "run_model"]
