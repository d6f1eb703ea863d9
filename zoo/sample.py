"""``python -m zoo.sample ckpt=<path> n=8 out=<dir>``: write generated shapes to files.

For each of the n shapes: the mesh as OBJ / PLY / GLB, surface points as PLY, a PNG with four
rendered views and (``turntable=true``) a turntable GIF (or MP4 with ``turntable_format=mp4``
where an encoder is installed); plus ``grid.png`` with the first view of every shape. For a
radiance model (NeRF, NGP, Gaussians) the one "sample" is its fitted scene; a model with
``export_files`` also writes its native files (``gaussians``: ``<stem>_splat.ply``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch import Tensor

from zoo.checkpoint import CheckpointError, load_model
from zoo.cli_utils import CONF_DIR, fail, pick_device, quiet_lightning
from zoo.export import (
    export_image,
    export_mesh,
    export_points,
    export_turntable,
    image_grid,
    orbit_cameras,
    up_axis_of,
)


def _try(what: str, i: int, fn: Callable[[], Any]) -> Any:
    """``fn()``, or None after one ``warning:`` line when the model cannot make ``what`` (a
    young field with no surface at its iso-level, an empty voxel grid, ...)."""
    try:
        return fn()
    except ValueError as e:
        print(f"warning: shape {i}: no {what}: {e}")
        return None


def run_sample(cfg: DictConfig) -> list[Path]:
    """Write every output the model can make for each of ``n`` shapes; see the module doc.

    An output the model cannot make yet (e.g. a mesh before a field has any surface at its
    iso-level) is skipped with one ``warning:`` line naming it, and the rest is still written
    (exit 0). Only when nothing at all could be written is it an error (exit 2).
    """
    quiet_lightning()
    if not cfg.get("ckpt"):
        fail("give a checkpoint: python -m zoo.sample ckpt=<path> n=8 out=<dir>")
    try:
        model, _ = load_model(cfg.ckpt, map_location=pick_device(cfg.device))
    except CheckpointError as e:
        fail(str(e))
    if model.classifier:
        fail(f"{cfg.ckpt}: {model.name} is a classifier; it draws no shapes (see zoo.eval)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    shapes = model.sample(int(cfg.n), seed=cfg.get("seed"))
    cams = orbit_cameras(
        4, size=int(cfg.render_size), device=model.device_, up_axis=up_axis_of(model)
    )
    written: list[Path] = []
    firsts = []
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
        if points is not None:
            written.append(export_points(points, stem.with_name(stem.name + "_points.ply")))
        if hasattr(model, "export_files"):  # a model's native files (e.g. the splat PLY)
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
        written.append(export_image(image_grid(firsts, min(len(firsts), 4)), out / "grid.png"))
    for p in written:
        print(f"wrote {p}")
    if not written:
        fail(f"{cfg.ckpt}: the model produced no mesh, points or renders; nothing written to {out}")
    return written


@hydra.main(config_path=CONF_DIR, config_name="sample", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_sample(cfg)


if __name__ == "__main__":
    main()
