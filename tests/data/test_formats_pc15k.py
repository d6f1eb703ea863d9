"""PointFlow PC15k clouds: the real chair cloud in a PC15k tree; wrong shapes raise."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.shared_data import REAL as SHARED
from zoo.data.formats import pc15k
from zoo.data.io import DataError

CLOUD = SHARED / "pointclouds" / "pointflow_chair_pcl.npy"
needs_real = pytest.mark.skipif(not CLOUD.is_file(), reason=f"shared real data absent: {CLOUD}")


@pytest.fixture()
def real_tree(tmp_path) -> Path:
    root = tmp_path / pc15k.PC15K_DIR
    for split, mid in [("train", "m0"), ("train", "m1"), ("test", "m2")]:
        dest = pc15k.cloud_path(root, "03001627", split, mid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CLOUD, dest)
    return root


@needs_real
def test_real_cloud_in_pc15k_tree(real_tree: Path) -> None:
    listed = pc15k.list_clouds(real_tree, "chair", "train")
    assert [mid for mid, _ in listed] == ["m0", "m1"]
    assert pc15k.list_clouds(real_tree, "03001627", "val") == []
    cloud = pc15k.load_cloud(listed[0][1])
    assert cloud.shape == (15000, 3) and cloud.dtype == np.float32
    assert cloud.min() > -0.45 and cloud.max() < 0.4  # ShapeNet v2 units (documented range)
    train, held_out = pc15k.train_test_points(cloud)
    assert train.shape == (10000, 3) and held_out.shape == (5000, 3)
    np.testing.assert_array_equal(np.concatenate([train, held_out]), cloud)


def test_missing_root_and_category(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        pc15k.list_clouds(tmp_path / "none", "chair", "train")
    assert info.value.field == "root"
    (tmp_path / "r").mkdir()
    with pytest.raises(DataError, match="no folder for category 'chair'"):
        pc15k.list_clouds(tmp_path / "r", "chair", "train")
    with pytest.raises(ValueError, match="split"):
        pc15k.list_clouds(tmp_path / "r", "chair", "training")


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((15000, 2), np.float32), "got (15000, 2)"),
        (np.zeros((10, 3), np.float32), "got (10, 3)"),
        (np.zeros((15000, 3), np.int64), "dtype int64"),
        (np.full((15000, 3), np.nan, np.float32), "NaN"),
        (np.zeros((15000,), np.float32), "got (15000,)"),
    ],
)
def test_bad_clouds(tmp_path: Path, array: np.ndarray, words: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError) as info:
        pc15k.load_cloud(path)
    assert info.value.field == "points" and words in str(info.value)
    assert str(path) in str(info.value)


def test_truncated_cloud(tmp_path: Path) -> None:
    path = tmp_path / "t.npy"
    np.save(path, np.zeros((15000, 3), np.float32))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="not a readable .npy") as info:
        pc15k.load_cloud(path)
    assert info.value.field == "file"
    assert pc15k.load_cloud(_save(tmp_path / "any.npy", np.ones((7, 3))), None).shape == (7, 3)


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def test_normals_root() -> None:
    assert pc15k.normals_root("/d/ShapeNetCore.v2.PC15k") == Path(
        "/d/ShapeNetCore.v2.PC15k_normals"
    )
