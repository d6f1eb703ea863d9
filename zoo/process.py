"""``python -m zoo.process images=<folder or video> out=<dir>``: photos -> a posed scene.

Runs :func:`zoo.sfm.process` (pycolmap SIFT features, exhaustive or sequential matching,
global (GLOMAP) or incremental mapping; a progress bar per stage) and prints what it wrote,
the images that did not register, one line per view re-posed or dropped by the pose check
(:mod:`zoo.sfm.check`), a summary line (``poses: K kept, R re-posed, D dropped, U not
registered``) and the ``zoo.train`` command for the result. Bad input (no
images, images of different sizes, an unreadable file, a missing pycolmap) ends with one
``error:`` line and exit status 2 before anything is written; so does a reconstruction that
registers too few images.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from zoo.cli_utils import CONF_DIR, fail
from zoo.data.formats.blender import parse_background
from zoo.data.io import DataError
from zoo.sfm import RegistrationError, process


def run_process(cfg: DictConfig) -> None:
    try:
        result = process(
            cfg.images,
            cfg.out,
            matcher=str(cfg.matcher),
            camera_model=str(cfg.camera_model),
            downscale=cfg.downscale,
            num_frames=int(cfg.num_frames),
            exhaustive_max=int(cfg.exhaustive_max),
            min_registered=float(cfg.min_registered),
            background=parse_background(cfg.background),
            num_threads=int(cfg.num_threads),
            overwrite=bool(cfg.overwrite),
            high_quality=bool(cfg.high_quality),
            mapper=str(cfg.mapper),
            refine=bool(cfg.refine),
            fallback=bool(cfg.fallback),
            calibrate=bool(cfg.calibrate),
            min_pair_matches=int(cfg.min_pair_matches),
        )
    except (DataError, RegistrationError, ImportError, ValueError) as e:
        fail(str(e))
    info = result.summary
    n = len(result.registered) + len(result.unregistered) + len(info["dropped"])
    print(f"registered {len(result.registered)} of {n} images, {result.num_points} points")
    if result.unregistered:
        print(f"not registered ({len(result.unregistered)}): {', '.join(result.unregistered)}")
    for note in info["notes"]:
        print(note)
    print(
        f"poses: {len(info['kept'])} kept, {len(info['reposed'])} re-posed, "
        f"{len(info['dropped'])} dropped, {len(result.unregistered)} not registered "
        f"(mapper {info['mapper']})"
    )
    times = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in result.times.items())
    print(f"time: {times}")
    print(f"wrote {result.out / 'transforms.json'} and {result.out / 'sparse_points.ply'}")
    print(f"train: python -m zoo.train model=ngp data=nerfstudio data.path={result.out}")


@hydra.main(config_path=CONF_DIR, config_name="process", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_process(cfg)


if __name__ == "__main__":
    main()
