"""Photos or a video -> a posed scene: what ``python -m zoo.process`` runs.

:func:`process` checks the input (one image size, every file readable, something to
register) before writing anything, saves the images into ``<out>/images``, runs structure from
motion with pycolmap (:mod:`.colmap_run`), writes the largest reconstruction as a COLMAP model
(``<out>/sparse/0``, so ``data=colmap`` reads the folder too) and as nerfstudio's
``<out>/transforms.json`` + ``<out>/sparse_points.ply`` (:mod:`.export`; ``data=nerfstudio``),
keeps only the poses it stands behind (:mod:`.check`: every view tied to the rest by
well-matched pairs that agree with its pose, the others re-localised against the model or
dropped, by name; with ``fallback``, the other mapper is tried when views were left out), and
records counts, the dropped and re-posed views and stage times in ``<out>/process.json``.
``registered`` are the views written to ``transforms.json`` (kept and re-posed);
``unregistered`` those the mapper did not register (the dropped ones are in the summary).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.data.io import DataError, atomic_write_text
from zoo.sfm.check import MIN_AGREEING, verify_poses
from zoo.sfm.colmap_run import map_database, refine_reconstruction, require_pycolmap, run_sfm
from zoo.sfm.export import export_transforms
from zoo.sfm.inputs import (
    exif_focal_px,
    is_video,
    list_inputs,
    read_inputs,
    video_frames,
    write_images,
)


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
    fallback: bool = False,
    calibrate: bool = False,
    min_pair_matches: int = MIN_AGREEING,
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
        calibrate: GLOMAP's view-graph calibration of the focal length before the global
            mapper when no EXIF focal length is found (:mod:`zoo.sfm.colmap_run`).
        min_pair_matches: the pose check's fewest agreeing matches for a pair to support its
            two views' poses (:mod:`zoo.sfm.check`; re-localised views need twice as many).
        fallback: when the mapper leaves views out (not registered, or dropped by the pose
            check), map the same matches with the other mapper and keep the result that
            poses more views. Off by default: on the lego photos it never posed more views at
            400 or 200 px, and at 800 px the incremental result it chose posed all 100 views
            with 6 of them turned by 180 degrees that the pose check does not catch.
    Raises:
        DataError: bad input (nothing written); RegistrationError: too few registered.
    """
    src, out = Path(images), Path(out)
    if (out / "transforms.json").exists() and not overwrite:
        raise DataError(out / "transforms.json", "out", "exists (give overwrite=true to replace)")
    if mapper not in ("global", "incremental"):
        raise DataError(src, "mapper", f"must be 'global' or 'incremental', got {mapper!r}")
    if int(min_pair_matches) != min_pair_matches or min_pair_matches < 1:
        raise DataError(
            src, "min_pair_matches", f"must be a positive integer, got {min_pair_matches!r}"
        )
    if int(downscale) != downscale or downscale < 1:
        raise DataError(src, "downscale", f"must be a positive integer, got {downscale!r}")
    t_start = time.perf_counter()
    if is_video(src):
        frames = video_frames(src, num_frames)
        names = [f"frame_{i:05d}.png" for i in range(1, len(frames) + 1)]
        sequential = True
        focal = None
    else:
        files = list_inputs(src)
        frames = read_inputs(files, background)
        names = [p.stem + ".png" for p in files]
        sequential = False
        focal = exif_focal_px(files[0])
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

    db = out / "colmap" / "database.db"
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
        focal_prior=focal / downscale if focal else None,
        calibrate=calibrate,
    )
    times.update(sfm_times)
    pycolmap = require_pycolmap()

    def finish(r: Any) -> None:
        # After views were taken out: poses and points only; the camera keeps what all the
        # registered views' observations fixed (fewer views constrain a focal length less).
        refine_reconstruction(pycolmap, r, num_threads, intrinsics=False)

    def verified(r: Any) -> Any:
        if r is None:
            return None
        return verify_poses(
            r,
            db,
            refine=finish if refine else None,
            min_agreeing=min_pair_matches,
            min_relocalised=2 * min_pair_matches,
        )

    t0 = time.perf_counter()
    verdict = verified(rec)
    used = mapper
    posed = len(verdict.kept) + len(verdict.reposed) if verdict else 0
    if fallback and posed < len(names):
        # The other mapper on the same matches; kept when it poses more views.
        other = "incremental" if mapper == "global" else "global"
        rec2, times2 = map_database(
            db,
            image_dir,
            out / "colmap" / f"sparse_{other}",
            len(names),
            other,
            num_threads,
            refine=refine,
            progress=progress,
        )
        times["fallback_s"] = sum(times2.values())
        verdict2 = verified(rec2)
        if verdict2 and len(verdict2.kept) + len(verdict2.reposed) > posed:
            rec, verdict, used = rec2, verdict2, other
            posed = len(verdict.kept) + len(verdict.reposed)
    times["verify_s"] = time.perf_counter() - t0 - times.get("fallback_s", 0.0)
    registered = sorted(rec.images[i].name for i in rec.reg_image_ids()) if rec else []
    unregistered = sorted(set(names) - set(registered) - set(verdict.dropped if verdict else []))
    need = max(3, int(round(min_registered * len(names))))
    if len(registered) < need:
        left = sorted(set(names) - set(registered))
        listed = ", ".join(left[:20]) + (" ..." if len(left) > 20 else "")
        raise RegistrationError(
            f"{src}: only {len(registered)} of {len(names)} images registered with a pose "
            f"it stands behind (need {need}, min_registered={min_registered:g}); left out: "
            f"{listed} (more or larger photos, with more overlap, register better; a lower "
            "min_registered writes the views it stands behind, a lower min_pair_matches "
            f"(now {min_pair_matches}) trusts pairs with fewer matches)"
        )
    sparse0 = out / "sparse" / "0"
    if sparse0.exists():
        shutil.rmtree(sparse0)
    sparse0.mkdir(parents=True)
    rec.write(str(sparse0))
    summary = export_transforms(sparse0, out)
    times["total_s"] = time.perf_counter() - t_start
    poses = {
        "kept": verdict.kept,
        "reposed": verdict.reposed,
        "dropped": verdict.dropped,
        "notes": verdict.notes,
    }
    result = ProcessResult(
        out=out,
        registered=registered,
        unregistered=unregistered,
        num_points=summary["num_points"],
        times=times,
        summary={"matcher": matcher, "mapper": used, **poses, **summary},
    )
    record = {
        "images": str(src),
        "registered": len(registered),
        "unregistered": unregistered,
        "kept": len(verdict.kept),
        "reposed": verdict.reposed,
        "dropped": verdict.dropped,
        "notes": verdict.notes,
        "num_points": result.num_points,
        "matcher": matcher,
        "mapper": used,
        "fallback": bool(fallback),
        "focal_prior_px": focal / downscale if focal else None,
        "calibrate": bool(calibrate),
        "min_pair_matches": int(min_pair_matches),
        "refine": bool(refine),
        "camera_model": camera_model,
        "downscale": int(downscale),
        "high_quality": bool(high_quality),
        "times_s": {k: round(v, 2) for k, v in times.items()},
    }
    atomic_write_text(out / "process.json", json.dumps(record, indent=2) + "\n")
    return result


__all__ = ["ProcessResult", "RegistrationError", "process"]
