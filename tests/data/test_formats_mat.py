"""The .mat voxel reader: round trips through scipy.io.savemat and clear errors on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from zoo.data.formats.mat_voxels import load_mat_voxels, read_mat_voxels
from zoo.data.io import DataError


def _grids(n: int, r: int, seed: int = 0) -> np.ndarray:
    """(n, r, r, r) probabilities with an asymmetric pattern (catches axis permutations)."""
    rng = np.random.default_rng(seed)
    g = rng.random((n, r, r, r))
    g[:, 0, 1, 2] = 1.0  # a marker at a known index
    g[:, 2, 1, 0] = 0.0
    return g


def test_3dgan_release_layout_round_trip(tmp_path: Path) -> None:
    """3D-GAN's main.lua writes `voxels` (N, 1, R, R, R) next to `inputs` (N, 200)."""
    grids = _grids(3, 8)
    path = tmp_path / "chair_sample.mat"
    savemat(path, {"inputs": np.zeros((3, 200)), "voxels": grids[:, None]})
    out = read_mat_voxels(path)
    assert out.shape == (3, 8, 8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out, grids.astype(np.float32))
    assert out[1, 0, 1, 2] == 1.0 and out[1, 2, 1, 0] == 0.0
    one = load_mat_voxels(path, index=2, threshold=0.5)
    assert one.dtype == bool
    np.testing.assert_array_equal(one, grids[2] > 0.5)


def test_3dshapenets_instance_padded(tmp_path: Path) -> None:
    """3D ShapeNets files hold one uint8 30^3 `instance`; pad_to=32 centres it in 32^3."""
    inst = np.zeros((30, 30, 30), dtype=np.uint8)
    inst[3:10, 5:20, 0:30] = 1
    path = tmp_path / "chair_000000001_1.mat"
    savemat(path, {"instance": inst})
    out = load_mat_voxels(path, pad_to=32)
    assert out.shape == (32, 32, 32)
    assert out.sum() == inst.sum()
    np.testing.assert_array_equal(out[1:31, 1:31, 1:31], inst.astype(bool))
    assert read_mat_voxels(path).shape == (1, 30, 30, 30)


def test_explicit_key_and_4d(tmp_path: Path) -> None:
    grids = _grids(2, 4)
    path = tmp_path / "v.mat"
    savemat(path, {"voxel": grids, "other": np.ones((4, 4, 4))})
    np.testing.assert_allclose(read_mat_voxels(path), grids.astype(np.float32))
    np.testing.assert_allclose(read_mat_voxels(path, key="other"), np.ones((1, 4, 4, 4)))


def _error(path: Path, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        read_mat_voxels(path, **kwargs)
    assert str(path) in str(info.value)
    return info.value


def test_errors_name_file_and_key(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mat"
    assert _error(missing).field == "file"

    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"not a mat file at all" * 20)
    assert _error(garbage).field == "file"

    v73 = tmp_path / "v73.mat"  # MATLAB v7.3 header: version 0x0200, little-endian "IM"
    v73.write_bytes(b"MATLAB 7.3 MAT-file".ljust(116) + b"\0" * 8 + b"\0\x02IM" + b"\0" * 256)
    assert "v7.3" in str(_error(v73))

    nokey = tmp_path / "nokey.mat"
    savemat(nokey, {"points": np.zeros((10, 3))})
    err = _error(nokey)
    assert "points" in str(err) and "voxels" in err.field
    err = _error(nokey, key="grid")
    assert err.field == "grid" and "points" in str(err)

    bad_shape = tmp_path / "shape.mat"
    savemat(bad_shape, {"voxels": np.zeros((4, 4))})
    err = _error(bad_shape)
    assert err.field == "voxels" and "(4, 4)" in str(err)

    bad_range = tmp_path / "range.mat"
    savemat(bad_range, {"voxels": np.full((4, 4, 4), 2.0)})
    assert "[0, 1]" in str(_error(bad_range))

    nan = tmp_path / "nan.mat"
    savemat(nan, {"voxels": np.full((4, 4, 4), np.nan)})
    assert "NaN" in str(_error(nan))

    text = tmp_path / "text.mat"
    savemat(text, {"voxels": "hello"})
    assert "numeric" in str(_error(text))

    small = tmp_path / "small.mat"
    savemat(small, {"voxels": np.zeros((4, 4, 4))})
    assert "pad_to" in str(_error(small, pad_to=2))
    with pytest.raises(DataError, match="index 5"):
        load_mat_voxels(small, index=5)
