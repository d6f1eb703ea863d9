"""Which registered views ``zoo.process`` stands behind: each pose checked against the
two-view geometry of its verified matches, views the rest of the model does not pin down
re-localised against it or dropped.

**Agreement of a pair.** For every verified image pair of the matching database (COLMAP's
geometrically verified inlier matches) whose two images are registered, the reconstruction's
relative pose gives an essential matrix ``E = [t]x R`` (``cam_j_from_cam_i``); an inlier match
agrees with it when its Sampson distance (Hartley & Zisserman, "Multiple View Geometry", 2nd
ed., Sec. 11.4.3: the first-order distance of the correspondence to the epipolar variety), in
pixels, is within ``max_error_px``. A view is *contradicted* when, summed over its pairs, more
inlier matches disagree with its pose than agree.

**Supported views** (:func:`supported_views`). A pair *supports* the poses of its two views
when at least ``min_agreeing`` of its inlier matches agree and they are the majority: 30, the
fewest inliers GLOMAP's view-graph calibration accepts for a relative pose
(``ViewGraphCalibrationOptions.relpose_min_num_inliers``), twice COLMAP's minimum for a
verified pair. The supported views are the largest 2-edge-connected component of the graph of
supporting pairs: every one of them is tied to the rest by at least two independent
well-matched pairs. A group of views hanging on one pair (or only on pairs of a handful of
matches) is placed by that one relative pose: with few, wide-baseline or look-alike matches
(the far side of a near-symmetric object) the whole group comes out turned, by a few degrees
or by 180 degrees, while agreeing with its own matches; the per-view count above cannot see
that, the graph can.

**Groups placed wrongly together** (:func:`contradicted_group`). A group of views turned
together (e.g. by 180 degrees, tied to the rest by look-alike matches of the object's other
side) agrees with its own pairs and with the look-alike pairs, but not with the pairs to its
true neighbours. Where the well-matched pairs between a group and the rest hold more
disagreeing than agreeing matches, the group is taken out before the supported views are
found, and its views are re-localised or dropped like the others. The group is found as the
split of the views that best separates agreeing from disagreeing pairs (a signed-graph
2-partition, searched from the most disagreeing pairs).

**Re-localisation** (:func:`verify_poses`). Every other registered view is taken out of the
model; its keypoints matched (verified inliers) to keypoints of supported views that observe a
3D point give 2D-3D correspondences, from which LO-RANSAC + refinement (COLMAP's absolute pose
estimator: P3P, Gao et al. 2003, in LO-RANSAC with a ``max_error_px`` threshold) proposes a
pose. The view is re-posed when that pose has at least ``min_relocalised`` inliers (60: as
many as two supporting pairs have agreeing matches) that come through two supported views or
more, and most of the view's verified matches with supported views agree with it (a view
turned by 180 degrees against look-alike matches fails this); else it is dropped. Re-posed
views add no 3D points (their observations are not re-triangulated).

What it does not catch: a group whose pairs to the rest agree with its wrong pose more than
they disagree (e.g. no well-matched pair to its true neighbours). What it costs: the
thresholds count matches, so small photos (few features per view, e.g. 200 px) leave few
views tied by pairs of 30 and most of them are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Fewest agreeing inlier matches for a pair to support its two poses (module docstring).
MIN_AGREEING = 30
# Fewest RANSAC inliers (through two supported views or more) of a re-localised pose: as
# many correspondences as two supporting pairs have agreeing matches.
MIN_RELOCALISED = 2 * MIN_AGREEING


def _skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])


def _verified_pairs(db: Any) -> list[tuple[int, int, np.ndarray]]:
    """(i, j, inlier matches (M, 2): keypoint indices in i and j) of every verified pair."""
    import pycolmap

    pair_ids, geometries = db.read_two_view_geometries()
    out = []
    for pair_id, geometry in zip(pair_ids, geometries, strict=True):
        matches = geometry.inlier_matches
        if len(matches):
            i, j = pycolmap.pair_id_to_image_pair(pair_id)
            out.append((int(i), int(j), np.asarray(matches)))
    return out


class _Agreement:
    """Sampson agreement of verified matches with a reconstruction's poses (module
    docstring); keypoints are read once per image."""

    def __init__(self, rec: Any, db: Any, max_error_px: float) -> None:
        self.rec, self.db, self.max_error_px = rec, db, max_error_px
        self.pairs = _verified_pairs(db)
        self._rays: dict[int, tuple[np.ndarray, float]] = {}

    def keypoints(self, k: int) -> np.ndarray:
        return self.db.read_keypoints(k)[:, :2].astype(np.float64)  # (K, 2) pixels

    def _ray(self, k: int) -> tuple[np.ndarray, float]:
        if k not in self._rays:
            camera = self.rec.cameras[self.rec.images[k].camera_id]
            self._rays[k] = (camera.cam_from_img(self.keypoints(k)), camera.mean_focal_length())
        return self._rays[k]

    def forget_cameras(self) -> None:
        """Drop the cached rays (after a change of the cameras' intrinsics)."""
        self._rays.clear()

    def pair(self, i: int, j: int, matches: np.ndarray) -> tuple[int, int]:
        """(agreeing, disagreeing) inlier matches of the pair under the current poses."""
        import pycolmap

        images = self.rec.images
        j_from_i = images[j].cam_from_world() * images[i].cam_from_world().inverse()
        m = j_from_i.matrix()  # (3, 4)
        essential = _skew(m[:, 3]) @ m[:, :3]
        (rays_i, f_i), (rays_j, f_j) = self._ray(i), self._ray(j)
        x_i, x_j = rays_i[matches[:, 0]], rays_j[matches[:, 1]]
        sq = np.asarray(pycolmap.compute_squared_sampson_error(x_i, x_j, essential))
        agree = int((np.sqrt(sq) * 0.5 * (f_i + f_j) <= self.max_error_px).sum())
        return agree, len(matches) - agree

    def all_pairs(self, among: set[int]) -> dict[tuple[int, int], tuple[int, int]]:
        return {(i, j): self.pair(i, j, m) for i, j, m in self.pairs if i in among and j in among}


def _open(database: Path) -> Any:
    import pycolmap

    return pycolmap.Database.open(str(database))


def pair_agreement(
    rec: Any, database: Path, max_error_px: float = 4.0
) -> dict[tuple[int, int], tuple[int, int]]:
    """Per verified pair (i, j) of registered images: (inlier matches agreeing with the
    reconstruction's relative pose, inlier matches disagreeing)."""
    db = _open(database)
    try:
        return _Agreement(rec, db, max_error_px).all_pairs(set(rec.reg_image_ids()))
    finally:
        db.close()


def match_agreement(
    rec: Any, database: Path, max_error_px: float = 4.0
) -> dict[int, tuple[int, int]]:
    """Per registered image id: (inlier matches agreeing with the reconstruction's poses,
    inlier matches disagreeing), summed over its verified pairs with registered images."""
    counts = {int(k): [0, 0] for k in rec.reg_image_ids()}
    for (i, j), (agree, disagree) in pair_agreement(rec, database, max_error_px).items():
        for k in (i, j):
            counts[k][0] += agree
            counts[k][1] += disagree
    return {k: (a, d) for k, (a, d) in counts.items()}


def contradicted_views(rec: Any, database: Path, max_error_px: float = 4.0) -> list[str]:
    """Names of the registered images whose verified inlier matches mostly disagree with
    their pose (module docstring), sorted."""
    counts = match_agreement(rec, database, max_error_px)
    return sorted(rec.images[k].name for k, (agree, disagree) in counts.items() if disagree > agree)


def supporting(agreement: tuple[int, int], min_agreeing: int = MIN_AGREEING) -> bool:
    """Whether a pair's (agreeing, disagreeing) inlier counts support its two poses."""
    agree, disagree = agreement
    return agree >= min_agreeing and agree > disagree


def _bridges(adjacency: dict[int, set[int]]) -> set[frozenset[int]]:
    """The bridges of an undirected graph (edges whose removal disconnects it): Tarjan's
    low-link depth-first search, iterative."""
    order: dict[int, int] = {}
    low: dict[int, int] = {}
    out: set[frozenset[int]] = set()
    for root in adjacency:
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack = [(root, -1, iter(adjacency[root]))]
        while stack:
            v, parent, neighbours = stack[-1]
            w = next(neighbours, None)
            if w is None:
                stack.pop()
                if parent >= 0:
                    low[parent] = min(low[parent], low[v])
                    if low[v] > order[parent]:
                        out.add(frozenset((parent, v)))
            elif w not in order:
                order[w] = low[w] = len(order)
                stack.append((w, v, iter(adjacency[w])))
            elif w != parent:
                low[v] = min(low[v], order[w])
    return out


def two_edge_connected_core(nodes: set[int], edges: set[frozenset[int]]) -> set[int]:
    """The largest 2-edge-connected component (ties: the one with the smallest id) of the
    graph: the connected components left once the bridges are removed."""
    adjacency: dict[int, set[int]] = {v: set() for v in nodes}
    for e in edges:
        a, b = tuple(e)
        adjacency[a].add(b)
        adjacency[b].add(a)
    for a, b in (tuple(e) for e in _bridges(adjacency)):
        adjacency[a].discard(b)
        adjacency[b].discard(a)
    best: set[int] = set()
    seen: set[int] = set()
    for v in sorted(nodes):
        if v in seen:
            continue
        component, todo = {v}, [v]
        while todo:
            for w in adjacency[todo.pop()] - component:
                component.add(w)
                todo.append(w)
        seen |= component
        if len(component) > len(best):
            best = component
    return best if len(best) > 1 else set()


def supported_views(
    pairs: dict[tuple[int, int], tuple[int, int]], nodes: set[int], min_agreeing: int = MIN_AGREEING
) -> set[int]:
    """Ids of the views in the largest 2-edge-connected component of the graph of supporting
    pairs (module docstring); ``pairs`` as :func:`pair_agreement` returns them."""
    edges = {frozenset(p) for p, counts in pairs.items() if supporting(counts, min_agreeing)}
    return two_edge_connected_core(nodes, edges)


def contradicted_group(
    pairs: dict[tuple[int, int], tuple[int, int]],
    nodes: set[int],
    min_matches: int = MIN_AGREEING,
    max_seeds: int = 100,
) -> set[int]:
    """Views placed wrongly together: the smaller side of the split of the model that the
    well-matched pairs between the two sides mostly contradict (module docstring), or an empty
    set. Each pair with at least ``min_matches`` inliers weighs ``w_ij = agreeing -
    disagreeing``; a split ``s`` in {-1, 1}^N raises ``sum_ij w_ij s_i s_j`` above that of no
    split exactly when the pairs across it weigh less than zero. Searched from each of the
    ``max_seeds`` most disagreeing pairs (i, j): every view goes to the side of i or j from
    which a random walk on the agreeing pairs reaches it more (personalised PageRank, damping
    0.9; Page et al. 1999), then single views move while that raises the sum; the best split
    wins."""
    strong = {p: a - d for p, (a, d) in pairs.items() if a + d >= min_matches}
    seeds = sorted((w, p) for p, w in strong.items() if w < 0)[:max_seeds]
    if len(nodes) < 4 or not seeds:
        return set()
    ids = sorted(nodes)
    index = {v: k for k, v in enumerate(ids)}
    w = np.zeros((len(ids), len(ids)))  # (N, N) symmetric, zero diagonal
    for (i, j), weight in strong.items():
        w[index[i], index[j]] = w[index[j], index[i]] = weight
    positive = np.clip(w, 0, None)
    walk = positive / np.maximum(positive.sum(1, keepdims=True), 1e-12)  # row-stochastic
    reach = np.linalg.inv(np.eye(len(ids)) - 0.9 * walk.T)  # (N, N): column k from view k
    reach /= reach.sum(0, keepdims=True)
    best, best_score = None, float(w.sum())  # no split
    for _, (i, j) in seeds:
        s = np.where(reach[:, index[i]] >= reach[:, index[j]], 1.0, -1.0)  # (N,)
        for _ in range(len(ids)):  # moving view k changes the sum by -4 s_k (W s)_k
            gain = -s * (w @ s)
            k = int(np.argmax(gain))
            if gain[k] <= 0:
                break
            s[k] = -s[k]
        score = float(s @ w @ s)
        if score > best_score and 0 < (s > 0).sum() < len(ids):
            best, best_score = s, score
    if best is None:
        return set()
    side = best > 0 if (best > 0).sum() <= (best < 0).sum() else best < 0
    return {ids[k] for k in np.flatnonzero(side)}


@dataclass
class PoseVerdict:
    """What :func:`verify_poses` decided, by image name; ``notes``: one line per view that
    was not kept as registered."""

    kept: list[str] = field(default_factory=list)
    reposed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _correspondences(
    rec: Any, check: _Agreement, v: int, support: set[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2D-3D correspondences of view ``v``: its keypoints matched (verified inliers) to
    keypoints of supported views that observe a 3D point. Returns points (M, 2) pixels,
    points (M, 3) and the id of the supported view each came through (M,)."""
    xy = check.keypoints(v)
    p2: list[np.ndarray] = []
    p3: list[np.ndarray] = []
    via: list[int] = []
    for i, j, matches in check.pairs:
        if v not in (i, j) or (j if i == v else i) not in support:
            continue
        other, cols = (j, [0, 1]) if i == v else (i, [1, 0])
        points2d = rec.images[other].points2D
        for a, b in matches[:, cols]:
            p = points2d[int(b)]
            if p.has_point3D():
                p2.append(xy[int(a)])
                p3.append(rec.points3D[p.point3D_id].xyz)
                via.append(other)
    if not p2:
        return np.zeros((0, 2)), np.zeros((0, 3)), np.zeros(0, int)
    return np.stack(p2), np.stack(p3), np.array(via)


def _agreement_with(check: _Agreement, v: int, support: set[int]) -> tuple[int, int]:
    """(agreeing, disagreeing) inlier matches of ``v`` with supported views, summed."""
    agree = disagree = 0
    for i, j, m in check.pairs:
        if v in (i, j) and (j if i == v else i) in support:
            a, d = check.pair(i, j, m)
            agree, disagree = agree + a, disagree + d
    return agree, disagree


def verify_poses(
    rec: Any,
    database: Path,
    refine: Callable[[Any], None] | None = None,
    min_agreeing: int = MIN_AGREEING,
    min_relocalised: int = MIN_RELOCALISED,
    max_error_px: float = 4.0,
) -> PoseVerdict:
    """Keep the supported views of ``rec``, re-localise the others against them or drop them
    (module docstring); ``rec`` is changed in place (dropped views deregistered, re-posed views
    registered with their new pose and no 3D points of their own). ``refine`` (e.g. the final
    bundle adjustment) runs on the supported views alone before the re-localisation, when
    any view was taken out."""
    import pycolmap

    db = _open(database)
    try:
        check = _Agreement(rec, db, max_error_px)
        registered = {int(k) for k in rec.reg_image_ids()}
        pairs = check.all_pairs(registered)
        group = contradicted_group(pairs, registered, min_agreeing)
        trusted = registered - group
        support = supported_views(
            {p: c for p, c in pairs.items() if p[0] in trusted and p[1] in trusted},
            trusted,
            min_agreeing,
        )
        others = sorted(registered - support, key=lambda k: rec.images[k].name)
        verdict = PoseVerdict(kept=sorted(rec.images[k].name for k in support))
        if not others:
            return verdict
        for k in others:
            rec.deregister_frame(rec.images[k].frame_id)
        if refine is not None and support:
            refine(rec)
            check.forget_cameras()
        options = pycolmap.AbsolutePoseEstimationOptions()
        options.ransac.max_error = max_error_px
        options.ransac.random_seed = 0
        for k in others:
            image = rec.images[k]
            p2, p3, via = _correspondences(rec, check, k, support)
            found = None
            if len(p2) >= min_relocalised:
                found = pycolmap.estimate_and_refine_absolute_pose(
                    p2, p3, rec.cameras[image.camera_id], options
                )
            if found is not None:
                inliers = int(found["num_inliers"])
                views = len(set(via[np.asarray(found["inlier_mask"], bool)].tolist()))
                frame = rec.frames[image.frame_id]
                frame.set_cam_from_world(image.camera_id, found["cam_from_world"])
                rec.register_frame(image.frame_id)
                agree, disagree = _agreement_with(check, k, support)
                if inliers >= min_relocalised and views >= 2 and agree > disagree:
                    verdict.reposed.append(image.name)
                    verdict.notes.append(
                        f"{image.name}: re-posed against the model ({inliers} of {len(p2)} "
                        f"2D-3D correspondences through {views} views; {agree} of "
                        f"{agree + disagree} verified matches agree with the new pose)"
                    )
                    continue
                rec.deregister_frame(image.frame_id)
                why = (
                    f"re-localised: {inliers} of {len(p2)} 2D-3D correspondences through "
                    f"{views} view(s) fit, {agree} of {agree + disagree} verified matches "
                    f"agree; a re-posed view needs {min_relocalised} through 2 views and most "
                    "matches agreeing"
                )
            elif len(p2) >= min_relocalised:
                why = f"no pose fits its {len(p2)} 2D-3D correspondences with the model"
            else:
                why = (
                    f"{len(p2)} 2D-3D correspondences with the model, fewer than the "
                    f"{min_relocalised} a re-posed view needs"
                )
            verdict.dropped.append(image.name)
            reason = (
                f"one of {len(group)} views placed together against most matches to the rest"
                if k in group
                else f"fewer than two pairs of >= {min_agreeing} matches agreeing with its pose "
                "tie it to the model"
            )
            verdict.notes.append(f"{image.name}: dropped ({reason}; {why})")
    finally:
        db.close()
    return verdict
