"""Blender / NeRF-synthetic loader: real lego files (by path), hand-made scenes with known
pixels, and every malformed-input error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from tests.helpers.shared_data import REAL as SHARED
from zoo.data.formats.blender import available_splits, load_blender
from zoo.data.formats.tinynerf import load_tinynerf
from zoo.data.io import DataError
from zoo.ops.rays import rays_for_pixels

REAL = SHARED / "nerf"
LEGO = REAL / "lego_blender_subset"
NS_LEGO = REAL / "nerfstudio_lego_test"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"shared real data absent: {REAL}")


@pytest.fixture(scope="module")
def lego_train_black():
    return load_blender(LEGO, "train", background="black", downscale=8)


@needs_real
def test_lego_focal_and_poses(lego_train_black):
    images, cams, meta = lego_train_black
    angle = json.loads((LEGO / "transforms_train.json").read_text())["camera_angle_x"]
    assert meta["camera_angle_x"] == pytest.approx(angle)
    assert images.shape == (12, 100, 100, 3) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    # focal = 0.5 W / tan(0.5 camera_angle_x) at 800 px, divided by the downscale factor.
    focal_800 = 0.5 * 800 / math.tan(0.5 * angle)
    assert focal_800 == pytest.approx(1111.111, abs=1e-3)
    assert torch.allclose(cams.fx, torch.full((12,), focal_800 / 8))
    assert torch.allclose(cams.cx, torch.full((12,), 50.0))
    frames = json.loads((LEGO / "transforms_train.json").read_text())["frames"]
    expected = torch.tensor([f["transform_matrix"] for f in frames], dtype=torch.float32)
    assert torch.equal(cams.c2w, expected)
    assert [Path(p).name for p in meta["file_paths"]] == [f"r_{8 * i}.png" for i in range(12)]


@needs_real
def test_lego_matches_tinynerf_derivation(lego_train_black):
    """The derived tiny npz is r_0..r_99 composited on black and 8x8 box-averaged: our
    black-background downscale=8 load must reproduce its images and poses."""
    images, cams, _ = lego_train_black
    tiny_images, tiny_cams = load_tinynerf(REAL / "tiny_lego_100px_derived.npz")
    idx = torch.arange(0, 96, 8)
    assert torch.allclose(images, tiny_images[idx], atol=1e-5)
    assert torch.allclose(cams.c2w, tiny_cams.c2w[idx])
    assert torch.allclose(cams.fx, tiny_cams.fx[idx])


@needs_real
def test_lego_white_vs_black_background():
    white, _, meta = load_blender(LEGO, "val", background="white", downscale=8)
    black, _, _ = load_blender(LEGO, "val", background=[0, 0, 0], downscale=8)
    alpha = meta["alpha"]  # (2, 100, 100)
    # rgb*a + 1*(1-a) - (rgb*a + 0) = 1 - a, per channel.
    assert torch.allclose(white - black, (1.0 - alpha)[..., None].expand_as(white), atol=1e-5)
    assert white[:, 0, 0].min() == 1.0 and black[:, 0, 0].max() == 0.0  # corners are empty
    assert alpha.max() == 1.0 and alpha.min() == 0.0


@needs_real
def test_nerfstudio_fixture_focal_and_splits():
    assert available_splits(NS_LEGO) == ["train", "val"]
    images, cams, _ = load_blender(NS_LEGO, "val")
    assert images.shape == (1, 50, 50, 3)
    angle = 0.6911112070083618
    assert cams.fx.item() == pytest.approx(0.5 * 50 / math.tan(0.5 * angle), rel=1e-6)
    assert (cams.width, cams.height) == (50, 50)


# ---- hand-made scenes ----------------------------------------------------------------------


def _write_scene(
    root: Path,
    images: dict[str, np.ndarray],
    angle: float = 0.8,
    matrices: dict[str, list] | None = None,
    ext_in_path: bool = False,
) -> Path:
    """A train split with the given uint8 images; identity-ish poses unless given."""
    root.mkdir(parents=True, exist_ok=True)
    frames = []
    for name, img in images.items():
        (root / "train").mkdir(exist_ok=True)
        iio.imwrite(root / "train" / f"{name}.png", img)
        m = (matrices or {}).get(name, np.eye(4).tolist())
        fp = f"./train/{name}.png" if ext_in_path else f"./train/{name}"
        frames.append({"file_path": fp, "transform_matrix": m})
    (root / "transforms_train.json").write_text(
        json.dumps({"camera_angle_x": angle, "frames": frames})
    )
    return root


def test_compositing_known_pixel(tmp_path):
    img = np.zeros((2, 3, 4), np.uint8)
    img[0, 1] = (200, 100, 50, 128)  # a half-transparent pixel
    img[1, 2] = (10, 20, 30, 255)  # opaque
    root = _write_scene(tmp_path / "s", {"r_0": img})
    a = 128 / 255
    rgb = np.array([200, 100, 50]) / 255
    for bg, name in (((1, 1, 1), "white"), ((0, 0, 0), "black"), ((0.2, 0.4, 0.6), None)):
        images, _, meta = load_blender(root, "train", background=name or list(bg))
        expected = rgb * a + np.array(bg) * (1 - a)
        assert np.allclose(images[0, 0, 1].numpy(), expected, atol=1e-6)
        assert np.allclose(images[0, 1, 2].numpy(), np.array([10, 20, 30]) / 255, atol=1e-6)
        assert np.allclose(images[0, 0, 0].numpy(), bg, atol=1e-6)  # fully transparent
        assert meta["alpha"][0, 0, 1].item() == pytest.approx(a)
    assert images.shape == (1, 2, 3, 3)


def test_file_path_with_extension_and_rgb_png(tmp_path):
    rgb = np.full((4, 6, 3), 77, np.uint8)  # no alpha channel: opaque
    root = _write_scene(tmp_path / "s", {"r_0": rgb}, ext_in_path=True)
    images, cams, meta = load_blender(root, "train")
    assert torch.allclose(images, torch.full((1, 4, 6, 3), 77 / 255))
    assert meta["alpha"].min() == 1.0
    assert (cams.width, cams.height) == (6, 4)
    assert cams.fx.item() == pytest.approx(3.0 / math.tan(0.4))


def test_downscale_box_average_and_rays(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (4, 8, 4), dtype=np.uint8)
    root = _write_scene(tmp_path / "s", {"r_0": img})
    full, cams_full, _ = load_blender(root, "train", background="white")
    half, cams_half, meta = load_blender(root, "train", background="white", downscale=2)
    assert half.shape == (1, 2, 4, 3) and meta["depth"] is None
    blocks = full[0].reshape(2, 2, 4, 2, 3).mean(dim=(1, 3))  # naive 2x2 block mean
    assert torch.allclose(half[0], blocks, atol=1e-6)
    assert cams_half.fx.item() == pytest.approx(cams_full.fx.item() / 2)
    # The centre ray of low-res pixel (1, 0) is the ray through the centre of its 2x2 block,
    # i.e. the corner shared by full-res pixels (2..3, 0..1) at (3.0, 1.0).
    _, d_half = rays_for_pixels(cams_half, torch.tensor([0]), torch.tensor([1]), torch.tensor([0]))
    x = (3.0 - cams_full.cx) / cams_full.fx
    y = -(1.0 - cams_full.cy) / cams_full.fy
    assert torch.allclose(d_half[0], torch.tensor([x.item(), y.item(), -1.0]), atol=1e-6)


def test_16bit_png(tmp_path):
    img = np.full((2, 2), 32768, np.uint16)  # 16-bit grey (Pillow writes no 16-bit RGBA)
    root = tmp_path / "s"
    (root / "train").mkdir(parents=True)
    iio.imwrite(root / "train" / "r_0.png", img)
    frames = [{"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}]
    (root / "transforms_train.json").write_text(
        json.dumps({"camera_angle_x": 1.0, "frames": frames})
    )
    images, _, _ = load_blender(root, "train")
    assert torch.allclose(images, torch.full((1, 2, 2, 3), 32768 / 65535))


# ---- malformed inputs ----------------------------------------------------------------------


def _good(tmp_path: Path) -> Path:
    img = np.zeros((4, 4, 4), np.uint8)
    return _write_scene(tmp_path / "s", {"r_0": img, "r_1": img})


def _edit_json(root: Path, edit) -> None:
    p = root / "transforms_train.json"
    data = json.loads(p.read_text())
    edit(data)
    p.write_text(json.dumps(data))


def _raises(root: Path, file_name: str, field: str) -> DataError:
    with pytest.raises(DataError) as info:
        load_blender(root, "train")
    msg = str(info.value)
    assert file_name in msg and field in msg, msg
    assert info.value.field.startswith(field) or field in info.value.field
    return info.value


def test_error_missing_frames(tmp_path):
    root = _good(tmp_path)
    _edit_json(root, lambda d: d.pop("frames"))
    _raises(root, "transforms_train.json", "frames")


def test_error_missing_camera_angle(tmp_path):
    root = _good(tmp_path)
    _edit_json(root, lambda d: d.pop("camera_angle_x"))
    _raises(root, "transforms_train.json", "camera_angle_x")


def test_error_3x3_matrix(tmp_path):
    root = _good(tmp_path)
    _edit_json(root, lambda d: d["frames"][1].update(transform_matrix=np.eye(3).tolist()))
    err = _raises(root, "transforms_train.json", "frames[1].transform_matrix")
    assert "(3, 3)" in str(err)


def test_error_missing_json_and_split(tmp_path):
    root = _good(tmp_path)
    with pytest.raises(DataError, match="transforms_val.json"):
        load_blender(root, "val")


def test_error_truncated_png(tmp_path):
    root = _good(tmp_path)
    rng = np.random.default_rng(1)
    iio.imwrite(root / "train" / "r_1.png", rng.integers(0, 256, (64, 64, 4), dtype=np.uint8))
    data = (root / "train" / "r_1.png").read_bytes()
    (root / "train" / "r_1.png").write_bytes(data[: len(data) // 2])
    err = _raises(root, "r_1.png", "file_path")
    assert "readable image" in str(err)


def test_error_non_image_png(tmp_path):
    root = _good(tmp_path)
    (root / "train" / "r_0.png").write_text("this is not a png\n" * 10)
    _raises(root, "r_0.png", "file_path")


def test_error_missing_png(tmp_path):
    root = _good(tmp_path)
    (root / "train" / "r_1.png").unlink()
    err = _raises(root, "r_1.png", "file_path")
    assert "does not exist" in str(err)


def test_error_inconsistent_sizes(tmp_path):
    root = _good(tmp_path)
    iio.imwrite(root / "train" / "r_1.png", np.zeros((5, 4, 4), np.uint8))
    err = _raises(root, "r_1.png", "file_path")
    assert "4x5" in str(err) and "4x4" in str(err)


def test_bad_arguments(tmp_path):
    root = _good(tmp_path)
    with pytest.raises(ValueError, match="background"):
        load_blender(root, "train", background="green")
    with pytest.raises(ValueError, match="downscale"):
        load_blender(root, "train", downscale=0)
