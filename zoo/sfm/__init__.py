"""Photos or a video -> a posed scene: what ``python -m zoo.process`` runs.

:func:`process` checks the input (one image size, every file readable, something to
register) before writing anything, saves the images into ``<out>/images``, runs structure from
motion with pycolmap (:mod:`.colmap_run`), writes the largest reconstruction as a COLMAP model
(``<out>/sparse/0``, so ``data=colmap`` reads the folder too) and as nerfstudio's
``<out>/transforms.json`` + ``<out>/sparse_points.ply`` (:mod:`.export`; ``data=nerfstudio``),
names the images that did not register and those whose pose contradicts most of their own
verified matches (:mod:`.check`: a warning), and records counts and stage times in
``<out>/process.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.data.io import DataError, atomic_write_text
from zoo.sfm.inputs import is_video, list_inputs, read_inputs, video_frames, write_images


class RegistrationError(Exception):
    """Too few images registered (the message names the ones that did not)."""


@dataclass
class ProcessResult:
    out: Path
    registered: list[str]
    unregistered: list[str]
    num_points: int
    times: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def process(
    images: str | Path,
    out: str | Path,
    matcher: str = "auto",
    camera_model: str = "OPENCV",
    downscale: int = 1,
    num_frames: int = 150,
    exhaustive_max: int = 200,
    min_registered: float = 0.5,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    num_threads: int = -1,
    overwrite: bool = False,
    high_quality: bool = False,
    mapper: str = "global",
    refine: bool = True,
    progress: bool = True,
) -> ProcessResult:
    """Register ``images`` (a folder or a video) and write the scene into ``out``.

    Args:
        matcher: ``exhaustive``, ``sequential`` or ``auto`` (sequential for a video or more
            than ``exhaustive_max`` images, else exhaustive).
        camera_model: the COLMAP model of the shared camera (nerfstudio: ``OPENCV``;
            ``PINHOLE`` / ``SIMPLE_PINHOLE`` for undistorted images).
        downscale: integer area downscale of the images before SfM (and in the output).
        num_frames: frames taken from a video (evenly spaced).
        min_registered: fewest registered images allowed, as a fraction of the input (>= 3).
        background: what alpha is composited on (RGBA photos, e.g. renders).
        overwrite: replace an existing ``out/transforms.json`` (refused otherwise).
        high_quality: DSP-SIFT with affine shapes and guided matching (slower).
        mapper: ``global`` (GLOMAP, the default) or ``incremental`` (COLMAP's); see
            :mod:`zoo.sfm.colmap_run`.
        refine: a last bundle adjustment under a Cauchy loss (:mod:`zoo.sfm.colmap_run`).
    Raises:
        DataError: bad input (nothing written); RegistrationError: too few registered.
    """
    src, out = Path(images), Path(out)
    if (out / "transforms.json").exists() and not overwrite:
        raise DataError(out / "transforms.json", "out", "exists (give overwrite=true to replace)")
    if mapper not in ("global", "incremental"):
        raise DataError(src, "mapper", f"must be 'global' or 'incremental', got {mapper!r}")
    if int(downscale) != downscale or downscale < 1:
        raise DataError(src, "downscale", f"must be a positive integer, got {downscale!r}")
    t_start = time.perf_counter()
    if is_video(src):
        frames = video_frames(src, num_frames)
        names = [f"frame_{i:05d}.png" for i in range(1, len(frames) + 1)]
        sequential = True
    else:
        files = list_inputs(src)
        frames = read_inputs(files, background)
        names = [p.stem + ".png" for p in files]
        sequential = False
    if len(frames) < 3:
        raise DataError(src, "images", f"{len(frames)} image(s): structure from motion needs >= 3")
    if matcher == "auto":
        matcher = "sequential" if sequential or len(frames) > exhaustive_max else "exhaustive"
    # Input is good: from here on, files are written.
    image_dir = out / "images"
    if image_dir.exists():
        shutil.rmtree(image_dir)
    write_images(frames, names, image_dir, int(downscale))
    times = {"prepare_s": time.perf_counter() - t_start}

    from zoo.sfm.colmap_run import run_sfm
    from zoo.sfm.export import export_transforms

    rec, sfm_times = run_sfm(
        image_dir,
        out / "colmap",
        names,
        matcher=matcher,
        camera_model=camera_model,
        num_threads=num_threads,
        high_quality=high_quality,
        mapper=mapper,
        refine=refine,
        progress=progress,
    )
    times.update(sfm_times)
    registered = sorted(rec.images[i].name for i in rec.reg_image_ids()) if rec else []
    unregistered = sorted(set(names) - set(registered))
    need = max(3, int(round(min_registered * len(names))))
    if len(registered) < need:
        listed = ", ".join(unregistered[:20]) + (" ..." if len(unregistered) > 20 else "")
        raise RegistrationError(
            f"{src}: only {len(registered)} of {len(names)} images registered (need {need}); "
            f"not registered: {listed}"
        )
    from zoo.sfm.check import contradicted_views

    contradicted = contradicted_views(rec, out / "colmap" / "database.db")
    sparse0 = out / "sparse" / "0"
    if sparse0.exists():
        shutil.rmtree(sparse0)
    sparse0.mkdir(parents=True)
    rec.write(str(sparse0))
    summary = export_transforms(sparse0, out)
    times["total_s"] = time.perf_counter() - t_start
    result = ProcessResult(
        out=out,
        registered=registered,
        unregistered=unregistered,
        num_points=summary["num_points"],
        times=times,
        summary={"matcher": matcher, "mapper": mapper, "contradicted": contradicted, **summary},
    )
    record = {
        "images": str(src),
        "registered": len(registered),
        "unregistered": unregistered,
        "contradicted": contradicted,
        "num_points": result.num_points,
        "matcher": matcher,
        "mapper": mapper,
        "refine": bool(refine),
        "camera_model": camera_model,
        "downscale": int(downscale),
        "high_quality": bool(high_quality),
        "times_s": {k: round(v, 2) for k, v in times.items()},
    }
    atomic_write_text(out / "process.json", json.dumps(record, indent=2) + "\n")
    return result


__all__ = ["ProcessResult", "RegistrationError", "process"]
