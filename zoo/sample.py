"""``python -m zoo.sample ckpt=<path> n=8 out=<dir>``: write generated shapes to files.

For each of the n shapes: the mesh as OBJ / PLY / GLB, surface points as PLY, a PNG with four
rendered views and (``turntable=true``) a turntable GIF (or MP4 with ``turntable_format=mp4``
where an encoder is installed); plus ``grid.png`` with the first view of every shape. For a
radiance model (NeRF, NGP, Gaussians) the one "sample" is its fitted scene; a model with
``export_files`` also writes its native files (``gaussians``: ``<stem>_splat.ply``).
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

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


def run_sample(cfg: DictConfig) -> list[Path]:
    quiet_lightning()
    if not cfg.get("ckpt"):
        fail("give a checkpoint: python -m zoo.sample ckpt=<path> n=8 out=<dir>")
    try:
        model, _ = load_model(cfg.ckpt, map_location=pick_device(cfg.device))
    except CheckpointError as e:
        fail(str(e))
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
        mesh = model.to_mesh(shape, resolution=int(cfg.mesh_resolution))
        if len(mesh.faces) > 0:
            for fmt in cfg.formats:
                written.append(export_mesh(mesh, stem.with_suffix(f".{fmt}")))
        else:
            print(f"warning: shape {i} has an empty surface; no mesh written")
        points = model.to_points(shape, int(cfg.n_points))
        written.append(export_points(points, stem.with_name(stem.name + "_points.ply")))
        if hasattr(model, "export_files"):  # a model's native files (e.g. the splat PLY)
            written.extend(model.export_files(shape, stem))
        with torch.no_grad():
            views = model.render(shape, cams).clamp(0, 1).cpu()
        firsts.append(views[0])
        written.append(export_image(image_grid(list(views), 4), stem.with_suffix(".png")))
        if cfg.get("turntable"):
            written.append(
                export_turntable(
                    model,
                    shape,
                    stem.with_name(f"{stem.name}_turntable.{cfg.turntable_format}"),
                    n_frames=int(cfg.turntable_frames),
                    size=int(cfg.turntable_size),
                )
            )
    written.append(export_image(image_grid(firsts, min(len(firsts), 4)), out / "grid.png"))
    for p in written:
        print(f"wrote {p}")
    return written


@hydra.main(config_path=CONF_DIR, config_name="sample", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_sample(cfg)


if __name__ == "__main__":
    main()
