"""Structure from motion with ``pycolmap`` (COLMAP's Python bindings: SIFT extraction,
matching and mapping on the CPU; Schönberger & Frahm, "Structure-from-Motion
Revisited", CVPR 2016), the steps of nerfstudio's ``ns-process-data`` / COLMAP's automatic
reconstructor:

1. SIFT features of every image, one shared camera (``CameraMode.SINGLE``: one device);
2. matching: every pair for small sets (``exhaustive``), or each frame against its
   ``overlap`` successors for video (``sequential``), with geometric verification;
3. mapping, ``global`` (default; GLOMAP, Pan et al., "Global Structure-from-Motion
   Revisited", ECCV 2024, merged into COLMAP / pycolmap as ``global_mapping``: relative poses
   of the verified pairs, rotation averaging that drops pairs more than 10 degrees off, global
   positioning of cameras and points, then bundle adjustment and retriangulation)
   or ``incremental`` (COLMAP's: one image at a time by PnP, local and global bundle
   adjustment); the largest of the reconstructions is kept;
4. ``refine``: one more bundle adjustment of that reconstruction (poses, points, focal length
   and the model's distortion) under a Cauchy loss of scale 1 px, ``rho(s) = log(1 + s)`` on
   the squared reprojection error in pixels (Triggs et al., "Bundle Adjustment - A Modern
   Synthesis", 2000, Sec. 3; Ceres' ``CauchyLoss``). The mappers end with a plain
   least-squares (incremental) or Huber-loss (global, scale 1 px) adjustment: under least
   squares a wrong observation that survived the mappers' outlier filters (4 px for the
   incremental one) pulls in proportion to its residual, under Huber with a constant force
   beyond 1 px, under Cauchy with a force that falls as 1 / residual, so a handful of wrong
   tracks no longer tilt a view.

Why global by default: on the 100 lego photos at 400 px (``benchmarks/bench_process.py``;
separate runs of features and matching, which vary with threading) both mappers register all
views, but the incremental one leaves one or two views (r_46, r_26) 0.73-0.78 degrees /
1.1-1.2 % off (2 runs; a few wrong tracks fix them early on), while the global mapper, which
places every camera at once from all pairs, stays within 0.43-0.49 degrees / 0.60-0.67 %
(3 runs; median 0.13 degrees / 0.19 %) in about the same mapping time. The refinement brings
the worst view to 0.36-0.40 degrees / 0.51-0.62 % (global, 4 runs) and 0.42-0.45 degrees /
0.55-0.58 % (incremental, 2 runs), for 5-25 s on 2 cores.

The focal length: from the photos' EXIF where present (:func:`zoo.sfm.inputs.exif_focal_px`),
set as the camera's prior; else COLMAP's guess of 1.2 x the larger image side, refined by the
mappers. GLOMAP's view-graph calibration (``calibrate``), which its global mapper recommends
when no camera has a prior, is off by default: on the lego photos (50 of them, no EXIF) it
estimated 485 px for the true 556 px at 400 px (208 for 278 at 200 px) and fewer views
registered (42 and 41 of 50, against 50 and 43 without it).

The progress bars advance per batch: features are extracted in ``chunks`` batches of images
(later batches reuse the first batch's camera), pairs are matched in ``chunks`` batches of an
explicit pair list (``match_image_pairs``: the same pairs the exhaustive / sequential matchers
form), and incremental mapping advances with the mapper's registration callback (the global
mapper reports once, at the end).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


def require_pycolmap() -> Any:
    """The pycolmap module, or an ImportError saying how to install it."""
    try:
        import pycolmap
    except ImportError as e:
        raise ImportError(
            "zoo.process needs pycolmap: pip install -e '.[process]' (or pip install pycolmap)"
        ) from e
    return pycolmap


def _chunks(items: list, n: int) -> list[list]:
    """``items`` in about ``n`` consecutive batches (one progress-bar step each)."""
    size = max(1, -(-len(items) // max(1, n)))
    return [items[i : i + size] for i in range(0, len(items), size)]


def run_sfm(
    image_dir: Path,
    work_dir: Path,
    names: list[str],
    matcher: str = "exhaustive",
    camera_model: str = "OPENCV",
    num_threads: int = -1,
    max_image_size: int = 3200,
    overlap: int = 10,
    chunks: int = 20,
    seed: int = 0,
    high_quality: bool = False,
    mapper: str = "global",
    refine: bool = True,
    progress: bool = True,
    focal_prior: float | None = None,
    calibrate: bool = False,
) -> tuple[Any, dict[str, float]]:
    """Features, matching and mapping of ``names`` in ``image_dir``; COLMAP's files go to
    ``work_dir`` (``database.db``, ``sparse/<i>``). ``high_quality``: DSP-SIFT with affine
    shapes and guided matching (COLMAP's slower, more accurate settings). ``mapper``:
    ``global`` or ``incremental``; ``refine``: the final Cauchy-loss bundle adjustment (module
    docstring). ``focal_prior``: the shared camera's focal length in pixels (e.g. from EXIF),
    set as a prior the mappers start from and trust; without one the camera starts at COLMAP's
    guess of 1.2 x the larger image side. ``calibrate``: without a prior, the view-graph
    calibration GLOMAP recommends (focal length from the verified pairs' fundamental matrices,
    pairs upgraded to calibrated) before the global mapper (:func:`map_database`).

    Returns:
        the largest pycolmap Reconstruction (or None when nothing registered) and the wall
        time of each stage in seconds.
    """
    if mapper not in ("global", "incremental"):
        raise ValueError(f"mapper must be 'global' or 'incremental', got {mapper!r}")
    pycolmap = require_pycolmap()
    pycolmap.set_random_seed(seed)
    # COLMAP's own log would bury the progress bars: warnings and errors only.
    pycolmap.logging.minloglevel = 1
    work_dir.mkdir(parents=True, exist_ok=True)
    db = work_dir / "database.db"
    if db.exists():
        db.unlink()
    n = len(names)
    times: dict[str, float] = {}

    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = num_threads
    extraction.max_image_size = max_image_size
    extraction.use_gpu = False
    if high_quality:
        extraction.sift.estimate_affine_shape = True
        extraction.sift.domain_size_pooling = True
    t0 = time.perf_counter()
    with tqdm(total=n, desc="features", unit="img", disable=not progress) as bar:
        for batch in _chunks(names, chunks):
            pycolmap.extract_features(
                str(db),
                str(image_dir),
                image_names=batch,
                camera_mode=pycolmap.CameraMode.SINGLE,
                reader_options=reader,
                extraction_options=extraction,
                device=pycolmap.Device.cpu,
            )
            if reader.existing_camera_id < 0:  # later batches share the first batch's camera
                d = pycolmap.Database.open(str(db))
                camera = d.read_all_cameras()[0]
                reader.existing_camera_id = camera.camera_id
                if focal_prior:
                    params = camera.params
                    params[list(camera.focal_length_idxs())] = focal_prior
                    camera.params = params
                    camera.has_prior_focal_length = True
                    d.update_camera(camera)
                d.close()
            bar.update(len(batch))
    times["features_s"] = time.perf_counter() - t0

    if matcher == "exhaustive":
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    elif matcher == "sequential":
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 : i + 1 + overlap]]
    else:
        raise ValueError(f"matcher must be 'exhaustive' or 'sequential', got {matcher!r}")
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = num_threads
    matching.use_gpu = False
    matching.guided_matching = bool(high_quality)
    pairing = pycolmap.ImportedPairingOptions()
    pairing.match_list_path = str(work_dir / "pairs.txt")
    t0 = time.perf_counter()
    desc = f"matching ({matcher})"
    with tqdm(total=len(pairs), desc=desc, unit="pair", disable=not progress) as bar:
        for batch in _chunks(pairs, chunks):
            (work_dir / "pairs.txt").write_text("".join(f"{a} {b}\n" for a, b in batch))
            pycolmap.match_image_pairs(
                str(db),
                matching_options=matching,
                pairing_options=pairing,
                device=pycolmap.Device.cpu,
            )
            bar.update(len(batch))
    times["matching_s"] = time.perf_counter() - t0

    if calibrate and mapper == "global" and not focal_prior:
        t0 = time.perf_counter()
        options = pycolmap.ViewGraphCalibrationOptions()
        options.random_seed = seed
        pycolmap.calibrate_view_graph(str(db), options)
        times["calibrate_s"] = time.perf_counter() - t0
    best, map_times = map_database(
        db, image_dir, work_dir / "sparse", n, mapper, num_threads, seed, refine, progress
    )
    times.update(map_times)
    return best, times


def map_database(
    db: Path,
    image_dir: Path,
    sparse: Path,
    n: int,
    mapper: str = "global",
    num_threads: int = -1,
    seed: int = 0,
    refine: bool = True,
    progress: bool = True,
) -> tuple[Any, dict[str, float]]:
    """Mapping (``global`` or ``incremental``) of a matched database into ``sparse`` (emptied
    first), then the final refinement of the largest reconstruction (``refine``).

    Returns:
        the largest pycolmap Reconstruction (or None) and the stage times in seconds.
    """
    pycolmap = require_pycolmap()
    if sparse.exists():
        shutil.rmtree(sparse)
    sparse.mkdir(parents=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    if mapper == "global":
        recs = _global_mapping(pycolmap, db, image_dir, sparse, num_threads, seed, progress)
    else:
        recs = _incremental_mapping(pycolmap, db, image_dir, sparse, n, num_threads, seed, progress)
    times["mapping_s"] = time.perf_counter() - t0
    if not recs:
        return None, times
    best = max(recs.values(), key=lambda r: r.num_reg_images())
    if refine:
        t0 = time.perf_counter()
        refine_reconstruction(pycolmap, best, num_threads)
        times["refine_s"] = time.perf_counter() - t0
    return best, times


def refine_reconstruction(
    pycolmap: Any, rec: Any, num_threads: int = -1, intrinsics: bool = True
) -> None:
    """Bundle adjustment of ``rec`` in place under a Cauchy loss of scale 1 px (module
    docstring, step 4): poses, points, and with ``intrinsics`` focal length and distortion (the
    principal point stays, as in COLMAP's mappers: it is weakly determined)."""
    options = pycolmap.BundleAdjustmentOptions()
    options.refine_focal_length = intrinsics
    options.refine_extra_params = intrinsics
    options.refine_principal_point = False
    options.print_summary = False
    options.ceres.loss_function_type = pycolmap.LossFunctionType.CAUCHY
    options.ceres.loss_function_scale = 1.0
    options.ceres.use_gpu = False
    options.ceres.solver_options.num_threads = num_threads
    level = pycolmap.logging.minloglevel
    pycolmap.bundle_adjustment(rec, options)
    pycolmap.logging.minloglevel = level  # bundle_adjustment leaves COLMAP's log at INFO


def _incremental_mapping(
    pycolmap: Any,
    db: Path,
    image_dir: Path,
    sparse: Path,
    n: int,
    num_threads: int,
    seed: int,
    progress: bool,
) -> dict[int, Any]:
    """COLMAP's incremental mapper with its default options; a bar advanced per image."""
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = num_threads
    options.random_seed = seed
    with tqdm(total=n, desc="mapping (incremental)", unit="img", disable=not progress) as bar:
        return pycolmap.incremental_mapping(
            str(db),
            str(image_dir),
            str(sparse),
            options=options,
            initial_image_pair_callback=lambda: bar.update(2),
            next_image_callback=lambda: bar.update(1),
        )


def _global_mapping(
    pycolmap: Any,
    db: Path,
    image_dir: Path,
    sparse: Path,
    num_threads: int,
    seed: int,
    progress: bool,
) -> dict[int, Any]:
    """GLOMAP (pycolmap's ``global_mapping``) with its default options, on the CPU."""
    options = pycolmap.GlobalPipelineOptions()
    options.num_threads = num_threads
    options.random_seed = seed
    options.mapper.global_positioning.use_gpu = False
    options.mapper.bundle_adjustment.ceres.use_gpu = False
    with tqdm(total=1, desc="mapping (global)", unit="run", disable=not progress) as bar:
        recs = pycolmap.global_mapping(str(db), str(image_dir), str(sparse), options=options)
        bar.update(1)
    return recs
