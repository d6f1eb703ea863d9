"""``python -m zoo.sample ckpt=<path> | pretrained=<name> n=8 out=<dir>``: write generated
shapes to files.

The model comes from a checkpoint (``ckpt=``) or from the pretrained registry (``pretrained=``,
see ``python -m zoo.pretrained list``); exactly one of them. For each of the n shapes: the mesh
as OBJ / PLY / GLB, surface points as PLY, a PNG with four rendered views and
(``turntable=true``) a turntable GIF (or MP4 with ``turntable_format=mp4`` where an encoder is
installed); plus ``grid.png`` with the first view of every shape and ``points_grid.png`` with
every shape's surface points (the PLY's) drawn as shaded discs, one camera and one scale for
all cells. For a radiance model (NeRF, NGP, Gaussians) the one "sample" is its fitted scene; a
model with ``export_files`` also writes its native files (``gaussians``:
``<stem>_splat.ply``).

``references=K`` also draws K held-out (test split) shapes of the model's own training data
(the data config stored with its weights, as ``zoo.eval`` uses it), evenly spread over the
split so that a split sorted by category shows every category, ``n_points`` surface points
each, in the same style, and writes ``samples_vs_references.png``: the samples' grid on the
left, the references' on the right, each under a caption line.

``category=chair`` (a name or the data's synset id) draws the samples from that training
category only, for a class-conditional model (``Representation.conditional``: deepsdf,
mesh_gcn); another model, or a category it does not know, is one ``error:`` line (exit 2). The
zoo's PointNet (``classifier=``, a registry name, default ``pointnet-synthshapes``; the zoo's
own network, not a paper's) then labels every sample's surface points: one line
``classified_as (pointnet-synthshapes): chair 14/16, table 2/16`` and ``classified_as.json``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from zoo.cli_utils import (
    CONF_DIR,
    check_one_source,
    fail,
    load_source,
    pick_device,
    quiet_lightning,
    write_json,
)
from zoo.data.io import DataError
from zoo.evaluation import ground_truth_cloud
from zoo.export import (
    caption_image,
    export_image,
    export_mesh,
    export_points,
    export_turntable,
    image_grid,
    orbit_cameras,
    points_grid_image,
    side_by_side,
    up_axis_of,
)
from zoo.metrics.features import predicted_classes
from zoo.pretrained import PretrainedError, load_pretrained
from zoo.representation import Representation

GRID_COLS = 4  # cells per row of the grids


def _try(what: str, i: int, fn: Callable[[], Any]) -> Any:
    """``fn()``, or None after one ``warning:`` line when the model cannot make ``what`` (a
    young field with no surface at its iso-level, an empty voxel grid, ...)."""
    try:
        return fn()
    except ValueError as e:
        print(f"warning: shape {i}: no {what}: {e}")
        return None


def held_out_clouds(
    model: Representation, meta: dict[str, Any], source: str, k: int, n_points: int
) -> tuple[list[Tensor], str]:
    """``n_points`` surface points (N, 3) of each of ``k`` test shapes, evenly spread over the
    split, of the data ``model`` was trained on (the data config in ``meta``, in the model's
    data form, as ``zoo.eval`` reads it), and a caption naming that data and split."""
    if not meta.get("data_cfg"):
        fail(f"{source}: no data config stored with the model; references= cannot find its data")
    try:
        datamodule = instantiate(OmegaConf.create(meta["data_cfg"]), form=model.data_form)
        datamodule.prepare_data()
        datamodule.setup("test")
        targets = datamodule.eval_shapes("test", limit=k, spread=True)
        clouds = [ground_truth_cloud(t, n_points)[0] for t in targets]
    except (DataError, FileNotFoundError) as e:
        fail(f"{source}: references: {e}")
    if len(clouds) < k:
        print(f"warning: references={k}: the test split has only {len(clouds)} shapes")
    return clouds, f"held-out: {datamodule.info().get('dataset', '?')} test"


def run_sample(cfg: DictConfig) -> list[Path]:
    """Write every output the model can make for each of ``n`` shapes; see the module doc.

    An output the model cannot make yet (e.g. a mesh before a field has any surface at its
    iso-level) is skipped with one ``warning:`` line naming it, and the rest is still written
    (exit 0). Only when nothing at all could be written is it an error (exit 2).
    """
    quiet_lightning()
    check_one_source(cfg, "zoo.sample")
    source = str(cfg.pretrained or cfg.ckpt)
    k = cfg.get("references") or 0
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        fail(f"references: expected a count of held-out shapes >= 0, got {k!r}")
    model, meta = load_source(cfg, "zoo.sample", pick_device(cfg.device))
    if model.classifier:
        fail(f"{source}: {model.name} is a classifier; it draws no shapes (see zoo.eval)")
    category = cfg.get("category")
    if category is not None and not model.conditional:
        fail(
            f"{source}: category={category}: {model.name} is not class-conditional (it samples all "
            "categories at once); leave category out"
        )
    # Before sampling, so that missing data stops the run early.
    refs = held_out_clouds(model, meta, source, k, int(cfg.n_points)) if k > 0 else None
    if category is None:
        shapes = model.sample(int(cfg.n), seed=cfg.get("seed"))
    else:
        try:
            shapes = model.sample(int(cfg.n), seed=cfg.get("seed"), category=str(category))
        except ValueError as e:
            fail(f"{source}: category={category}: {e}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cams = orbit_cameras(
        4, size=int(cfg.render_size), device=model.device_, up_axis=up_axis_of(model)
    )
    written: list[Path] = []
    firsts = []
    clouds: list[Tensor | None] = []  # cell i of points_grid.png is shape i
    for i, shape in enumerate(shapes):
        stem = out / f"{model.name}_{i:03d}"
        mesh = _try(
            "mesh", i, lambda s=shape: model.to_mesh(s, resolution=int(cfg.mesh_resolution))
        )
        if mesh is not None and len(mesh.faces) > 0:
            for fmt in cfg.formats:
                written.append(export_mesh(mesh, stem.with_suffix(f".{fmt}")))
        elif mesh is not None:
            print(f"warning: shape {i}: no surface at the model's iso-level; no mesh written")
        points = _try("surface points", i, lambda s=shape: model.to_points(s, int(cfg.n_points)))
        clouds.append(points)
        if points is not None:
            written.append(export_points(points, stem.with_name(stem.name + "_points.ply")))
        files = _try("native files", i, lambda s=shape, t=stem: model.export_files(s, t))
        written.extend(files or [])

        def _render(s: Any = shape) -> Tensor:
            with torch.no_grad():
                return model.render(s, cams).clamp(0, 1).cpu()

        views = _try("renders", i, _render)
        if views is not None:
            firsts.append(views[0])
            written.append(export_image(image_grid(list(views), 4), stem.with_suffix(".png")))
        if cfg.get("turntable") and views is not None:
            path = stem.with_name(f"{stem.name}_turntable.{cfg.turntable_format}")
            frames, size = int(cfg.turntable_frames), int(cfg.turntable_size)

            def _turntable(s: Any = shape, p: Path = path, f: int = frames, z: int = size) -> Path:
                return export_turntable(model, s, p, n_frames=f, size=z)

            turntable = _try("turntable", i, _turntable)
            if turntable is not None:
                written.append(turntable)
    if firsts:
        written.append(
            export_image(image_grid(firsts, min(len(firsts), GRID_COLS)), out / "grid.png")
        )
    if any(c is not None for c in clouds):
        written.extend(_points_pictures(cfg, model, clouds, refs, out))
        if category is not None and cfg.get("classifier"):
            written.extend(_classify(str(cfg.classifier), clouds, str(category), out))
    for p in written:
        print(f"wrote {p}")
    if not written:
        fail(f"{source}: the model produced no mesh, points or renders; nothing written to {out}")
    return written


def _points_pictures(
    cfg: DictConfig,
    model: Representation,
    clouds: list[Tensor | None],
    refs: tuple[list[Tensor], str] | None,
    out: Path,
) -> list[Path]:
    """``points_grid.png`` and, with references, ``samples_vs_references.png`` (both grids
    with the same columns, cell size, camera and scale)."""
    size, up = int(cfg.render_size), up_axis_of(model)
    n_cells = max(len(clouds), len(refs[0]) if refs else 0)
    cols = min(n_cells, GRID_COLS)
    grid = points_grid_image(clouds, cols, size, up_axis=up)
    written = [export_image(grid, out / "points_grid.png")]
    if refs and refs[0]:
        label = f"samples: {cfg.pretrained or model.name}"
        right = points_grid_image(refs[0], cols, size, up_axis=up)
        both = side_by_side([caption_image(grid, label), caption_image(right, refs[1])])
        written.append(export_image(both, out / "samples_vs_references.png"))
    return written


def _classify(name: str, clouds: list[Tensor | None], category: str, out: Path) -> list[Path]:
    """Label every sample's points with the registry classifier ``name``; print the counts per
    predicted category and write them, with the fraction labelled ``category`` (a name or
    synset of the classifier's categories; None when it has no such category), to
    ``classified_as.json``."""
    try:
        classifier = load_pretrained(name)
    except PretrainedError as e:
        print(f"warning: classified_as: {e}")
        return []
    kept = [c for c in clouds if c is not None]
    n = min(len(c) for c in kept)
    pred = predicted_classes(torch.stack([c[:n] for c in kept]).cpu(), classifier).tolist()
    names = [classifier.categories[i] for i in pred]
    counts = Counter(names).most_common()
    print(f"classified_as ({name}): " + ", ".join(f"{c} {k}/{len(names)}" for c, k in counts))
    key = category.strip().lower()
    cats = [c.lower() for c in classifier.categories]
    wanted = [i for i, s in enumerate(classifier.synsets) if key in (s, cats[i])]
    frac = sum(p == wanted[0] for p in pred) / len(pred) if wanted else None
    path = out / "classified_as.json"
    write_json(path, {
        "classifier": name, "category": category, "n": len(names), "counts": dict(counts),
        "predicted": names, "classified_as": frac,
    })  # fmt: skip
    return [path]


@hydra.main(config_path=CONF_DIR, config_name="sample", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_sample(cfg)


if __name__ == "__main__":
    main()
