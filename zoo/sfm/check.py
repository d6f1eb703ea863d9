"""Views whose registered pose contradicts their own verified matches.

For every verified image pair of the matching database (COLMAP's geometrically verified
inlier matches) whose two images are registered, the reconstruction's relative pose gives an
essential matrix ``E = [t]x R`` (``cam_j_from_cam_i``); an inlier match agrees with it when its
Sampson distance (Hartley & Zisserman, "Multiple View Geometry", 2nd ed., Sec. 11.4.3: the
first-order distance of the correspondence to the epipolar variety), in pixels, is within
``max_error_px``. A view is *contradicted* when, summed over its pairs, more inlier matches
disagree with its pose than agree: the pose was fixed from a minority of its matches (e.g.
matches to the look-alike far side of a near-symmetric object) against the majority.

What it does not catch: a group of neighbouring views placed wrongly together (their many
matches among themselves agree with one another); it is a warning, not a repair. Measured on
the 100 lego photos (``benchmarks/bench_process.py``): no view flagged in the 400 px
reconstructions (at worst 7 % of a view's matches disagree); at 800 px the global mapper
misplaces 9 views, 7 of them flagged (8 before the final refinement), while the incremental
mapper's 6 views turned by ~180 degrees form such a group and none is flagged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])


def match_agreement(
    rec: Any, database: Path, max_error_px: float = 4.0
) -> dict[int, tuple[int, int]]:
    """Per registered image id: (inlier matches agreeing with the reconstruction's poses,
    inlier matches disagreeing), summed over its verified pairs with registered images."""
    import pycolmap

    db = pycolmap.Database.open(str(database))
    try:
        pair_ids, geometries = db.read_two_view_geometries()
        registered = set(rec.reg_image_ids())
        rays: dict[int, tuple[np.ndarray, float]] = {}  # id -> (normalised keypoints, focal)
        counts: dict[int, list[int]] = {i: [0, 0] for i in registered}
        for pair_id, geometry in zip(pair_ids, geometries, strict=True):
            i, j = pycolmap.pair_id_to_image_pair(pair_id)
            matches = geometry.inlier_matches  # (M, 2) keypoint indices in i and j
            if i not in registered or j not in registered or len(matches) == 0:
                continue
            for k in (i, j):
                if k not in rays:
                    camera = rec.cameras[rec.images[k].camera_id]
                    xy = db.read_keypoints(k)[:, :2].astype(np.float64)  # (K, 2) pixels
                    rays[k] = (camera.cam_from_img(xy), camera.mean_focal_length())
            j_from_i = rec.images[j].cam_from_world() * rec.images[i].cam_from_world().inverse()
            m = j_from_i.matrix()  # (3, 4)
            essential = _skew(m[:, 3]) @ m[:, :3]
            x_i, x_j = rays[i][0][matches[:, 0]], rays[j][0][matches[:, 1]]
            sq = np.asarray(pycolmap.compute_squared_sampson_error(x_i, x_j, essential))
            focal = 0.5 * (rays[i][1] + rays[j][1])
            agree = int((np.sqrt(sq) * focal <= max_error_px).sum())
            for k in (i, j):
                counts[k][0] += agree
                counts[k][1] += len(matches) - agree
    finally:
        db.close()
    return {k: (a, d) for k, (a, d) in counts.items()}


def contradicted_views(rec: Any, database: Path, max_error_px: float = 4.0) -> list[str]:
    """Names of the registered images whose verified inlier matches mostly disagree with
    their pose (module docstring), sorted."""
    counts = match_agreement(rec, database, max_error_px)
    return sorted(rec.images[k].name for k, (agree, disagree) in counts.items() if disagree > agree)
