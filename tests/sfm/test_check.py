"""The pose check of ``zoo.process`` (:mod:`zoo.sfm.check`) on synthetic reconstructions with
known poses (pycolmap's synthetic dataset: exact keypoints, verified matches in a database):
every view kept when all agree; a view turned by 180 degrees about its own vertical axis is
found, re-localised against the rest and ends at its true pose, or is dropped by name when it
cannot be re-localised; a group of views hanging on one pair is not trusted. Also the focal
length read from EXIF and set as the shared camera's prior."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from zoo.sfm.check import (
    _bridges,
    contradicted_group,
    contradicted_views,
    two_edge_connected_core,
    verify_poses,
)
from zoo.sfm.colmap_run import run_sfm
from zoo.sfm.inputs import exif_focal_px

pycolmap = pytest.importorskip("pycolmap")


def _scene(tmp_path, num_views: int = 8):
    """A synthetic reconstruction of ``num_views`` views of 200 points and its database."""
    options = pycolmap.SyntheticDatasetOptions()
    options.num_rigs, options.num_cameras_per_rig, options.num_frames_per_rig = 1, 1, num_views
    options.num_points3D, options.num_points2D_without_point3D = 200, 20
    options.camera_model_id = pycolmap.CameraModelId.SIMPLE_PINHOLE
    options.camera_width, options.camera_height = 400, 400
    options.camera_params = [500.0, 200.0, 200.0]
    pycolmap.set_random_seed(0)
    path = tmp_path / "database.db"
    db = pycolmap.Database.open(str(path))
    rec = pycolmap.synthesize_dataset(options, db)
    db.close()
    return rec, path


def _rotation(rec, image_id: int) -> np.ndarray:
    return rec.images[image_id].cam_from_world().rotation.matrix()  # (3, 3)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


def _turn_about_own_y(rec, image_id: int, degrees: float) -> None:
    """Turn a view about its camera's y axis through its centre (the centre stays)."""
    image = rec.images[image_id]
    centre = image.projection_center()
    half = np.radians(degrees) / 2
    turn = pycolmap.Rotation3d(np.array([0, np.sin(half), 0, np.cos(half)]))  # xyzw
    rotation = turn * image.cam_from_world().rotation
    pose = pycolmap.Rigid3d(rotation, -(rotation.matrix() @ centre))
    rec.frames[image.frame_id].set_cam_from_world(image.camera_id, pose)


def test_all_views_kept_when_poses_agree(tmp_path):
    rec, db = _scene(tmp_path)
    verdict = verify_poses(rec, db)
    assert len(verdict.kept) == 8 and verdict.reposed == [] == verdict.dropped == verdict.notes
    assert rec.num_reg_images() == 8


def test_flipped_view_is_found_and_reposed(tmp_path):
    rec, db = _scene(tmp_path)
    victim = sorted(rec.reg_image_ids())[3]
    name = rec.images[victim].name
    true = _rotation(rec, victim)
    _turn_about_own_y(rec, victim, 180.0)
    assert _angle_deg(_rotation(rec, victim), true) == pytest.approx(180.0, abs=1e-6)
    assert contradicted_views(rec, db) == [name]
    verdict = verify_poses(rec, db)
    assert verdict.reposed == [name] and verdict.dropped == [] and len(verdict.kept) == 7
    assert len(verdict.notes) == 1 and verdict.notes[0].startswith(f"{name}: re-posed")
    assert rec.images[victim].has_pose and rec.num_reg_images() == 8
    assert _angle_deg(_rotation(rec, victim), true) < 0.01  # exact keypoints: the true pose


def test_view_that_cannot_be_relocalised_is_dropped_by_name(tmp_path):
    rec, db = _scene(tmp_path)
    victim = sorted(rec.reg_image_ids())[5]
    name = rec.images[victim].name
    _turn_about_own_y(rec, victim, 180.0)
    # Asking for more RANSAC inliers than the view has matched points: no re-localisation.
    verdict = verify_poses(rec, db, min_relocalised=10_000)
    assert verdict.dropped == [name] and verdict.reposed == [] and len(verdict.kept) == 7
    assert len(verdict.notes) == 1 and verdict.notes[0].startswith(f"{name}: dropped")
    assert not rec.images[victim].has_pose and victim not in set(rec.reg_image_ids())


def test_slightly_turned_view_is_reposed_too(tmp_path):
    """Two degrees off (about 17 px at f = 500 px): every pair of the view disagrees."""
    rec, db = _scene(tmp_path)
    victim = sorted(rec.reg_image_ids())[0]
    true = _rotation(rec, victim)
    _turn_about_own_y(rec, victim, 2.0)
    verdict = verify_poses(rec, db)
    assert verdict.reposed == [rec.images[victim].name]
    assert _angle_deg(_rotation(rec, victim), true) < 0.01


def test_two_edge_connected_core_cuts_groups_hanging_on_one_pair():
    # A 4-clique {0..3}, a triangle {4, 5, 6} tied to it by the single pair (3, 4), a view 7
    # tied by one pair to 0 and an isolated view 8.
    clique = {frozenset((a, b)) for a in range(4) for b in range(a + 1, 4)}
    triangle = {frozenset((4, 5)), frozenset((5, 6)), frozenset((4, 6))}
    edges = clique | triangle | {frozenset((3, 4)), frozenset((0, 7))}
    assert two_edge_connected_core(set(range(9)), edges) == {0, 1, 2, 3}
    # A second pair between the groups makes them one 2-edge-connected component.
    assert two_edge_connected_core(set(range(9)), edges | {frozenset((2, 6))}) == set(range(7))
    # A chain has no 2-edge-connected component with more than one view.
    assert two_edge_connected_core({0, 1, 2}, {frozenset((0, 1)), frozenset((1, 2))}) == set()


def test_group_turned_together_is_found_from_its_pair_counts():
    """Views 0-5 and 6-8 agree within themselves (100 matches a pair); across, true
    neighbours (0-6, 1-7, 2-8: 80 matches, all disagreeing) and look-alikes (3-6, 4-7: 40,
    all agreeing): the group 6-8 is contradicted. With the across counts swapped (the
    look-alikes disagree, the neighbours agree) nothing is."""
    inside = [(a, b) for g in (range(6), range(6, 9)) for a in g for b in g if a < b]
    pairs = {p: (100, 0) for p in inside}
    wrong = {**pairs, (0, 6): (0, 80), (1, 7): (0, 80), (2, 8): (0, 80)}
    wrong.update({(3, 6): (40, 0), (4, 7): (40, 0)})
    assert contradicted_group(wrong, set(range(9))) == {6, 7, 8}
    right = {**pairs, (0, 6): (80, 0), (1, 7): (80, 0), (2, 8): (80, 0)}
    right.update({(3, 6): (0, 40), (4, 7): (0, 40)})
    assert contradicted_group(right, set(range(9))) == set()
    assert contradicted_group(pairs, set(range(9))) == set()  # no disagreeing pair at all


def _naive_bridges(adjacency: dict[int, set[int]]) -> set[frozenset[int]]:
    """Edges whose removal leaves their two ends disconnected (a search per edge)."""
    out = set()
    for a in adjacency:
        for b in adjacency[a]:
            seen, todo = {a}, [a]
            while todo:
                v = todo.pop()
                for w in adjacency[v]:
                    if {v, w} != {a, b} and w not in seen:
                        seen.add(w)
                        todo.append(w)
            if b not in seen:
                out.add(frozenset((a, b)))
    return out


def test_bridges_match_a_naive_search_on_random_graphs():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 25))
        p = float(rng.uniform(0.05, 0.4))
        adjacency: dict[int, set[int]] = {v: set() for v in range(n)}
        for a in range(n):
            for b in range(a + 1, n):
                if rng.random() < p:
                    adjacency[a].add(b)
                    adjacency[b].add(a)
        assert _bridges(adjacency) == _naive_bridges(adjacency)


def test_exif_focal_length_in_pixels(tmp_path):
    """The 35 mm-equivalent focal length scales with the image diagonal (43.27 mm on the
    36 x 24 mm frame); without it, focal length in mm x focal-plane pixels per mm; a PNG
    without EXIF gives None."""
    img = Image.new("RGB", (600, 400))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 35  # FocalLengthIn35mmFilm
    img.save(tmp_path / "a.jpg", exif=exif)
    assert exif_focal_px(tmp_path / "a.jpg") == pytest.approx(35 * np.hypot(600, 400) / 43.2666)
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd[0x920A], ifd[0xA20E], ifd[0xA210] = 4.0, 250.0, 4  # 4 mm, 250 px/mm
    img.save(tmp_path / "b.jpg", exif=exif)
    assert exif_focal_px(tmp_path / "b.jpg") == pytest.approx(1000.0)
    img.save(tmp_path / "c.png")
    assert exif_focal_px(tmp_path / "c.png") is None


def test_focal_prior_is_written_to_the_shared_camera(tmp_path):
    """run_sfm with a focal prior (what zoo.process reads from EXIF): the database's camera
    starts at that focal length, marked as a prior; without one, at COLMAP's 1.2 x width."""
    rng = np.random.default_rng(0)
    names = [f"{i}.png" for i in range(3)]
    for name in names:
        iio.imwrite(tmp_path / name, rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    for prior, work in ((70.0, "a"), (None, "b")):
        run_sfm(tmp_path, tmp_path / work, names, num_threads=1, progress=False, focal_prior=prior)
        db = pycolmap.Database.open(str(tmp_path / work / "database.db"))
        (camera,) = db.read_all_cameras()
        db.close()
        assert camera.has_prior_focal_length == (prior is not None)
        assert camera.params[0] == pytest.approx(prior or 1.2 * 80)
