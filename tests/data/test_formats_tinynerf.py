"""tiny-NeRF ``.npz`` loader: the real derived lego file (by path) and malformed archives."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.shared_data import REAL as SHARED
from zoo.data.formats.tinynerf import load_tinynerf
from zoo.data.io import DataError

REAL = SHARED / "nerf"
TINY = REAL / "tiny_lego_100px_derived.npz"


@pytest.mark.skipif(not TINY.is_file(), reason=f"shared real data absent: {TINY}")
def test_real_tiny_lego():
    images, cams = load_tinynerf(TINY)
    assert images.shape == (100, 100, 100, 3) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert images[:, 0, 0].max() == 0.0  # composited on black: empty corners
    assert len(cams) == 100 and (cams.width, cams.height) == (100, 100)
    assert cams.fx[0].item() == pytest.approx(138.88887889922103)
    assert torch.equal(cams.fx, cams.fy) and torch.allclose(cams.cx, torch.full((100,), 50.0))
    # focal = 0.5 W / tan(0.5 camera_angle_x) at 100 px with the lego field of view.
    angle = json.loads((REAL / "lego_blender_subset" / "transforms_train.json").read_text())[
        "camera_angle_x"
    ]
    assert cams.fx[0].item() == pytest.approx(50.0 / math.tan(0.5 * angle), rel=1e-6)
    # Poses are rigid camera-to-world transforms at the lego's camera distance (~4.03).
    rot = cams.c2w[:, :3, :3]
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(100, 3, 3), atol=1e-5)
    assert torch.allclose(cams.centers.norm(dim=-1), torch.full((100,), 4.0311), atol=1e-3)


def _save(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _valid(n: int = 3) -> dict[str, np.ndarray]:
    return {
        "images": np.random.default_rng(0).random((n, 4, 6, 3)).astype(np.float32),
        "poses": np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)),
        "focal": np.float64(5.0),
    }


def test_small_valid_file(tmp_path):
    arrays = _valid()
    images, cams = load_tinynerf(_save(tmp_path / "t.npz", **arrays))
    assert torch.equal(images, torch.from_numpy(arrays["images"]))
    assert (cams.width, cams.height) == (6, 4)
    assert cams.cx[0].item() == 3.0 and cams.cy[0].item() == 2.0 and cams.fx[0].item() == 5.0


def test_3x4_poses_accepted(tmp_path):
    arrays = _valid()
    arrays["poses"] = arrays["poses"][:, :3]
    _, cams = load_tinynerf(_save(tmp_path / "t.npz", **arrays))
    assert cams.c2w.shape == (3, 4, 4) and torch.equal(cams.c2w[0], torch.eye(4))


@pytest.mark.parametrize("key", ["focal", "poses", "images"])
def test_missing_key(tmp_path, key):
    arrays = _valid()
    arrays.pop(key)
    path = _save(tmp_path / "t.npz", **arrays)
    with pytest.raises(DataError) as info:
        load_tinynerf(path)
    assert "t.npz" in str(info.value) and info.value.field == key and "missing" in str(info.value)


@pytest.mark.parametrize(
    "key, value",
    [
        ("images", np.zeros((3, 4, 6), np.float32)),  # no channel axis
        ("images", np.full((3, 4, 6, 3), 2.0, np.float32)),  # outside [0, 1]
        ("poses", np.zeros((2, 4, 4), np.float32)),  # wrong count
        ("poses", np.zeros((3, 3, 3), np.float32)),  # 3x3
        ("focal", np.array([1.0, 2.0])),  # not a scalar
        ("focal", np.float64(-1.0)),  # not positive
    ],
)
def test_bad_shapes_and_values(tmp_path, key, value):
    arrays = _valid()
    arrays[key] = value
    path = _save(tmp_path / "t.npz", **arrays)
    with pytest.raises(DataError) as info:
        load_tinynerf(path)
    assert "t.npz" in str(info.value) and info.value.field == key


def test_not_an_archive(tmp_path):
    path = tmp_path / "t.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="t.npz"):
        load_tinynerf(path)
    with pytest.raises(DataError, match="does not exist"):
        load_tinynerf(tmp_path / "absent.npz")
