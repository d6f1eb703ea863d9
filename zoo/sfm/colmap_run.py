"""Structure from motion with ``pycolmap`` (COLMAP's Python bindings: SIFT extraction,
matching and incremental mapping on the CPU; Schönberger & Frahm, "Structure-from-Motion
Revisited", CVPR 2016), the steps of nerfstudio's ``ns-process-data`` / COLMAP's automatic
reconstructor:

1. SIFT features of every image, one shared camera (``CameraMode.SINGLE``: one device);
2. matching: every pair for small sets (``exhaustive``), or each frame against its
   ``overlap`` successors for video (``sequential``), with geometric verification;
3. incremental mapping; the largest of the reconstructions is kept.

The progress bars advance per batch: features are extracted in ``chunks`` batches of images
(later batches reuse the first batch's camera), pairs are matched in ``chunks`` batches of an
explicit pair list (``match_image_pairs``: the same pairs the exhaustive / sequential matchers
form), and mapping advances with the mapper's registration callback.
"""

from __future__ import annotations

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
    progress: bool = True,
) -> tuple[Any, dict[str, float]]:
    """Features, matching and mapping of ``names`` in ``image_dir``; COLMAP's files go to
    ``work_dir`` (``database.db``, ``sparse/<i>``). ``high_quality``: DSP-SIFT with affine
    shapes and guided matching (COLMAP's slower, more accurate settings).

    Returns:
        the largest pycolmap Reconstruction (or None when nothing registered) and the wall
        time of each stage in seconds.
    """
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
                reader.existing_camera_id = d.read_all_cameras()[0].camera_id
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

    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = num_threads
    options.random_seed = seed
    sparse = work_dir / "sparse"
    sparse.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with tqdm(total=n, desc="mapping", unit="img", disable=not progress) as bar:
        recs = pycolmap.incremental_mapping(
            str(db),
            str(image_dir),
            str(sparse),
            options=options,
            initial_image_pair_callback=lambda: bar.update(2),
            next_image_callback=lambda: bar.update(1),
        )
    times["mapping_s"] = time.perf_counter() - t0
    if not recs:
        return None, times
    best = max(recs.values(), key=lambda r: r.num_reg_images())
    return best, times
