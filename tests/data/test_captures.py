"""Capture loaders (nerfstudio, COLMAP bin/txt, LLFF, DTU, ScanNet): each layout is written from
one ray-cast truth scene (tests/helpers/captures.py) and must load back to its images,
intrinsics and poses; bad inputs name the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from tests.helpers.captures import (
    truth_scene,
    write_colmap,
    write_dtu,
    write_llff,
    write_nerfstudio,
    write_scannet,
)
from zoo.data.captures import (
    ColmapDataModule,
    DTUDataModule,
    LLFFDataModule,
    NerfstudioDataModule,
    ScanNetDataModule,
)
from zoo.data.formats.llff import average_pose
from zoo.data.io import DataError
from zoo.ops.camera_math import orient_and_scale


@pytest.fixture(scope="module")
def truth():
    return truth_scene()


def _all_views(dm):
    """Images and cameras of train + test in the original order (holdout_every=8: view 0
    held out)."""
    s = dm.scene.splits
    images = torch.cat([s["test"].images, s["train"].images])
    c2w = torch.cat([s["test"].cameras.c2w, s["train"].cameras.c2w])
    intr = [
        torch.cat([getattr(s["test"].cameras, k), getattr(s["train"].cameras, k)])
        for k in ("fx", "fy", "cx", "cy")
    ]
    return images.numpy(), c2w.double().numpy(), [v.double().numpy() for v in intr]


def _check(dm, t, c2w_expected, img_atol=1.5 / 255, per_view_focal=True):
    images, c2w, (fx, fy, cx, cy) = _all_views(dm)
    assert len(dm.scene.splits["test"].cameras) == 1  # every 8th of 8 views: view 0
    assert np.abs(images - t.images).max() <= img_atol
    assert np.allclose(c2w, c2w_expected, atol=1e-5)
    n = len(t.images)
    focal = t.fx if per_view_focal else np.full(n, t.fx[0])
    assert np.allclose(fx, focal, atol=1e-4) and np.allclose(cx, t.cx, atol=1e-4)
    assert np.allclose(fy, t.fy if per_view_focal else np.full(n, t.fy[0]), atol=1e-4)
    assert np.allclose(cy, t.cy, atol=1e-4)


def test_nerfstudio_transforms_json(truth, tmp_path):
    path = write_nerfstudio(truth, tmp_path)
    dm = NerfstudioDataModule(path)
    info = dm.info()
    expected, transform, scale = orient_and_scale(truth.c2w)
    _check(dm, truth, expected)
    assert np.allclose(info["normalization"]["transform"], transform)
    assert info["normalization"]["scale"] == pytest.approx(scale)
    # Depth (16-bit mm) loads in metres.
    depth = dm.capture.depth.numpy()
    assert np.abs(depth - truth.depth).max() <= 0.5e-3 + 1e-6
    assert info["dataset"] == "nerfstudio" and info["has_depth"]
    # nerfstudio's explicit split: test_filenames names the held-out frames.
    meta = json.loads(path.read_text())
    meta["test_filenames"] = ["images/frame_00003.png", "images/frame_00005.png"]
    path.write_text(json.dumps(meta))
    split = NerfstudioDataModule(path).scene.splits
    assert len(split["test"].cameras) == 2 and len(split["train"].cameras) == 6
    assert torch.equal(split["test"].images[1], torch.from_numpy(_all_views(dm)[0][5]))


@pytest.mark.parametrize("binary", [True, False], ids=["bin", "txt"])
def test_colmap_model(truth, tmp_path, binary):
    write_colmap(truth, tmp_path, binary=binary)
    dm = ColmapDataModule(tmp_path)
    expected, transform, scale = orient_and_scale(truth.c2w)
    _check(dm, truth, expected)
    # Sparse points (normalised like the cameras) bound the scene box and seed the Gaussians.
    pts = truth.points @ transform[:, :3].T * scale + transform[:, 3] * scale
    # The loader normalises in float32: 1e-6 is a few float32 ulps at these coordinates (the
    # earlier 1e-9 held only where the kernels round alike; ATEN_CPU_CAPABILITY=default: 1e-8 off).
    assert np.allclose(dm.points, pts, rtol=0, atol=1e-6)
    info = dm.info()
    lo, hi = np.array(info["bbox_min"]), np.array(info["bbox_max"])
    assert (lo < pts.min(0)).all() and (hi > pts.max(0)).all()
    assert Path(info["init_points"]["path"]).name == f"points3D.{'bin' if binary else 'txt'}"


def test_gaussians_start_from_the_sparse_points(truth, tmp_path):
    from zoo.models.gaussians import DensityControl, GaussianSplatting

    write_colmap(truth, tmp_path)
    dm = ColmapDataModule(tmp_path, form="images")
    model = GaussianSplatting(strategy=DensityControl(), num_init=150)
    model.configure_from_data(dm.info())
    means = model.means.detach().double().numpy()
    assert means.shape == (150, 3)  # a seeded subset of the 200 points
    dist = np.linalg.norm(means[:, None] - dm.points[None], axis=-1).min(1)
    assert dist.max() < 1e-6


def test_llff_poses_bounds(tmp_path):
    t = truth_scene(forward=True)
    write_llff(t, tmp_path, bounds=(2.0, 4.0))
    dm = LLFFDataModule(tmp_path, factor=1)
    # NeRF: scale by 1 / (min bound * 0.75), then recentre on the average pose.
    c2w = t.c2w.copy()
    c2w[:, :3, 3] /= 2.0 * 0.75
    expected = np.linalg.inv(average_pose(c2w)) @ c2w
    _check(dm, t, expected, per_view_focal=False)
    info = dm.info()
    assert info["ray_space"] == "ndc" and info["near"] == 0.0 and info["far"] == 1.0
    assert info["ndc"]["focal"] == pytest.approx(t.fx[0])
    assert dm.scene.splits["test"].cameras.c2w.shape[0] == 1  # llffhold = 8 of 8 views
    # Splatting models get world space: no NDC, the box of the frusta between the bounds,
    # which holds the (scaled, recentred) box object.
    info = LLFFDataModule(tmp_path, factor=1, form="images").info()
    assert "ray_space" not in info and info["near"] == pytest.approx(2.0 / 1.5 * 0.9)
    corners = t.mesh.bounds.T[:, [0, 1]]  # (3, 2)
    box = np.stack(np.meshgrid(*corners, indexing="ij"), -1).reshape(-1, 3) / 1.5
    box = (np.linalg.inv(average_pose(c2w)) @ np.c_[box, np.ones(8)].T).T[:, :3]
    assert (box > np.array(info["bbox_min"])).all() and (box < np.array(info["bbox_max"])).all()


def test_dtu_cameras_sphere(truth, tmp_path):
    write_dtu(truth, tmp_path)
    dm = DTUDataModule(tmp_path)
    _check(dm, truth, truth.c2w)  # scale_mat undoes the files' scale and offset
    # The masks composite the background: pixels off the box are white.
    images, _, _ = _all_views(dm)
    assert np.allclose(images[~truth.mask], 1.0)
    assert dm.info()["bbox_min"] == [-1.0, -1.0, -1.0]


def test_scannet_export(tmp_path):
    truth = truth_scene(one_camera=True)
    write_scannet(truth, tmp_path)
    (tmp_path / "pose" / "8.txt").write_text("-inf -inf -inf -inf\n" * 4)  # lost tracking
    iio.imwrite(tmp_path / "color" / "8.jpg", np.zeros((truth.height, truth.width, 3), np.uint8))
    dm = ScanNetDataModule(tmp_path, downscale=1, point_stride=2)
    assert dm.scene is not None and dm.capture.meta["skipped_frames"] == 1
    expected, transform, scale = orient_and_scale(truth.c2w)
    images, c2w, (fx, _, cx, _) = _all_views(dm)
    assert np.allclose(c2w, expected, atol=1e-5) and np.allclose(cx, truth.cx, atol=1e-4)
    assert np.abs(images - truth.images).mean() < 0.02  # JPEG
    # Depth back-projected with the intrinsics and poses lands on the box's surface.
    world = dm.capture.points  # before normalisation: the truth frame
    half = np.array([0.5, 0.4, 0.3])
    off_surface = np.abs(np.abs(world) - half).min(1)
    assert len(world) > 50 and np.quantile(off_surface, 0.95) < 0.01
    assert np.abs(dm.capture.depth.numpy() - truth.depth).max() <= 0.5e-3 + 1e-6
    # The Gaussian model starts from the depth points: info names the export (not the points),
    # they are read again from the depth files, in the normalised frame.
    from zoo.data.formats.points import read_scene_points
    from zoo.models.gaussians import DensityControl, GaussianSplatting

    source = dm.info()["init_points"]
    assert source["format"] == "scannet_depth" and source["path"] == str(tmp_path)
    points, colors = read_scene_points(source)
    assert colors is None and np.allclose(points, dm.points, atol=1e-6)
    model = GaussianSplatting(strategy=DensityControl(), num_init=40)
    model.configure_from_data(ScanNetDataModule(tmp_path, point_stride=2, form="images").info())
    means = model.means.detach().double().numpy()
    assert means.shape == (40, 3)
    assert np.linalg.norm(means[:, None] - dm.points[None], axis=-1).min(1).max() < 1e-5


def _tiny_ngp():
    from zoo.models.ngp import HashField, InstantNGP, OccupancyGrid
    from zoo.nn.encodings import HashEncoding

    enc = HashEncoding(
        num_levels=4, features_per_level=2, log2_table_size=10, base_resolution=4, max_resolution=32
    )
    return InstantNGP(
        HashField(enc, hidden_dim=16),
        OccupancyGrid(resolution=16, update_every=4, warmup_steps=16),
        steps_per_diagonal=64,
        optimizer=lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.9, 0.99), eps=1e-15),
    )


@pytest.mark.parametrize("layout", ["colmap", "llff_ndc"])
def test_tiny_ngp_learns_a_capture(truth, tmp_path, layout):
    """A few ngp steps on the loaded capture fit its training views (the loader's cameras,
    bounds and images agree with each other; for LLFF through NDC rays)."""
    if layout == "colmap":
        write_colmap(truth, tmp_path)
        dm = ColmapDataModule(tmp_path)
    else:
        write_llff(truth_scene(forward=True), tmp_path)
        dm = LLFFDataModule(tmp_path, factor=1)
    model = _tiny_ngp()
    model.configure_from_data(dm.info())
    assert (model.ndc is not None) == (layout == "llff_ndc")
    train = dm.scene.splits["train"]
    torch.manual_seed(0)
    history = model.fit_views(train.cameras, train.images, steps=60, rays_per_batch=256)
    assert np.mean(history[-10:]) > np.mean(history[:5]) + 3.0
    rgb = model.render_maps(model, train.cameras[:1])["rgb"]
    assert torch.isfinite(rgb).all()


# ---- bad input ----------------------------------------------------------------------------
def test_bad_inputs_name_the_file_and_field(truth, tmp_path):
    ns = write_nerfstudio(truth, tmp_path / "ns", depth=False)
    meta = json.loads(ns.read_text())
    meta["frames"][3]["file_path"] = "images/missing.png"
    ns.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"transforms.json: field 'frames\[3\].file_path'"):
        NerfstudioDataModule(ns).setup()

    ns2 = write_nerfstudio(truth, tmp_path / "ns2", depth=False)
    small = np.zeros((truth.height // 2, truth.width, 3), np.uint8)
    iio.imwrite(tmp_path / "ns2" / "images" / "frame_00002.png", small)
    with pytest.raises(DataError, match=r"frame_00002.png: field 'file_path': image is 24x10"):
        NerfstudioDataModule(ns2).setup()
    (tmp_path / "ns2" / "images" / "frame_00002.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"frame_00002.png: field 'file_path': not a readable"):
        NerfstudioDataModule(ns2).setup()

    write_colmap(truth, tmp_path / "cm", binary=False)
    cams = tmp_path / "cm" / "sparse" / "0" / "cameras.txt"
    lines = cams.read_text().splitlines()
    lines[1] = f"1 OPENCV_FISHEYE {truth.width} {truth.height} 30 30 12 10 0.1 0 0 0"
    cams.write_text("\n".join(lines) + "\n")
    unsupported = (
        r"cameras.txt: field 'cameras\[1\].model': unsupported camera model OPENCV_FISHEYE"
    )
    with pytest.raises(DataError, match=unsupported):
        ColmapDataModule(tmp_path / "cm").setup()

    write_llff(truth, tmp_path / "llff")
    for p in (tmp_path / "llff" / "images").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=r"images: field 'images_1': no images"):
        LLFFDataModule(tmp_path / "llff", factor=1).setup()
