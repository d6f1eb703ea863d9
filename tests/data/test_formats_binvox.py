"""binvox reader/writer: hand-built files pin the xzy order, round trips, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data.formats.binvox import encode_binvox, read_binvox, write_binvox
from zoo.data.io import DataError

HEADER = b"#binvox 1\ndim 2 2 2\ntranslate 0.5 -1 2\nscale 3\ndata\n"


@pytest.mark.parametrize(
    ("runs", "occupied"),
    [
        # linear index = x * (W * H) + z * W + y: y runs fastest, then z, then x.
        ([0, 4, 1, 1, 0, 3], (1, 0, 0)),
        ([0, 1, 1, 1, 0, 6], (0, 1, 0)),
        ([0, 2, 1, 1, 0, 5], (0, 0, 1)),
    ],
)
def test_axis_order_of_hand_written_file(tmp_path, runs, occupied) -> None:
    path = tmp_path / "a.binvox"
    path.write_bytes(HEADER + bytes(runs))
    bv = read_binvox(path)
    expected = np.zeros((2, 2, 2), dtype=bool)
    expected[occupied] = True
    assert np.array_equal(bv.voxels, expected)
    assert bv.translate == (0.5, -1.0, 2.0) and bv.scale == 3.0
    # Centre of voxel (1, 0, 0): translate + (idx + 0.5) / dim * scale.
    np.testing.assert_allclose(bv.voxel_centers()[1, 0, 0], [0.5 + 2.25, -1 + 0.75, 2 + 0.75])
    assert encode_binvox(expected, (0.5, -1.0, 2.0), 3.0).endswith(bytes(runs))


def test_round_trip_random_and_long_runs(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for shape in [(8, 8, 8), (5, 7, 3), (1, 1, 1)]:
        v = rng.random(shape) < 0.3
        path = write_binvox(tmp_path / "r.binvox", v, (1.0, 2.0, 3.0), 0.25)
        bv = read_binvox(path)
        assert np.array_equal(bv.voxels, v) and bv.translate == (1.0, 2.0, 3.0)
        assert bv.scale == 0.25
    full = np.ones((10, 10, 10), dtype=bool)  # 1000 voxels -> runs 255, 255, 255, 235
    data = encode_binvox(full).split(b"data\n", 1)[1]
    assert data == bytes([1, 255, 1, 255, 1, 255, 1, 235])
    assert np.array_equal(read_binvox(write_binvox(tmp_path / "f.binvox", full)).voxels, full)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"#notbinvox\n", "magic"),
        (b"#binvox 1\ndim 2 2\ndata\n", "dim"),
        (b"#binvox 1\ntranslate 0 0 0\ndata\n\x00\x08", "dim"),
        (HEADER + bytes([0, 4, 1, 1]), "data"),
        (HEADER + bytes([2, 8]), "data"),
        (HEADER + bytes([0, 4, 1]), "data"),
        (b"#binvox 1\ndim 2 2 2\n", "header"),
    ],
)
def test_bad_files(tmp_path, content, field) -> None:
    path = tmp_path / "bad.binvox"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_binvox(path)
    assert info.value.field == field and str(path) in str(info.value)
