"""DeepSDF SdfSamples npz and split JSON: loading, validation, DeepSDF's sampling rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zoo.data.formats import deepsdf
from zoo.data.io import DataError


def _samples(n: int, sign: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = rng.uniform(-0.5, 0.5, (n, 4)).astype(np.float32)
    s[:, 3] = sign * (np.abs(s[:, 3]) + 1e-3)
    return s


def test_layout_and_load(tmp_path) -> None:
    path = deepsdf.sdf_samples_path(tmp_path, "ShapeNetV2", "03001627", "abc")
    assert path == tmp_path / "SdfSamples" / "ShapeNetV2" / "03001627" / "abc.npz"
    path.parent.mkdir(parents=True)
    pos, neg = _samples(10, 1.0), _samples(7, -1.0)
    neg[2, 0] = np.nan  # DeepSDF's remove_nans drops such rows
    np.savez(path, pos=pos, neg=neg)
    p, n = deepsdf.load_sdf_samples(path)
    assert p.shape == (10, 4) and n.shape == (6, 4) and p.dtype == np.float32
    np.testing.assert_array_equal(p, pos)


def test_split_pos_neg_and_balanced_sampling() -> None:
    samples = np.concatenate([_samples(50, 1.0), _samples(30, -1.0)])
    samples[0, 3] = 0.0  # DeepSDF: sdf == 0 goes to neg
    pos, neg = deepsdf.split_pos_neg(samples)
    assert len(pos) == 49 and len(neg) == 31 and (neg[:, 3] <= 0).all()
    batch = deepsdf.sample_sdf(pos, neg, 101, np.random.default_rng(0))
    assert batch.shape == (101, 4)
    assert (batch[:50, 3] > 0).all() and (batch[50:, 3] <= 0).all()


@pytest.mark.parametrize(
    ("arrays", "field", "words"),
    [
        ({"neg": _samples(5, -1.0)}, "pos", "missing array"),
        ({"pos": _samples(5, 1.0)}, "neg", "missing array"),
        ({"pos": np.zeros((10, 3), np.float32), "neg": _samples(5, -1)}, "pos", "got (10, 3)"),
        ({"pos": _samples(5, 1.0), "neg": np.zeros((4, 4), np.int32)}, "neg", "float"),
        ({"pos": _samples(5, -1.0), "neg": _samples(5, -1.0)}, "pos", "sdf < 0"),
        ({"pos": np.full((3, 4), np.nan, np.float32), "neg": _samples(5, -1)}, "pos", "finite"),
    ],
)
def test_bad_npz(tmp_path, arrays, field, words) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        deepsdf.load_sdf_samples(path)
    assert info.value.field == field and words in str(info.value)
    assert str(path) in str(info.value)


def test_truncated_and_missing_npz(tmp_path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, pos=_samples(100, 1.0), neg=_samples(100, -1.0))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="not a readable .npz") as info:
        deepsdf.load_sdf_samples(path)
    assert info.value.field == "file"
    with pytest.raises(DataError, match="does not exist"):
        deepsdf.load_sdf_samples(tmp_path / "none.npz")
    np.save(tmp_path / "plain.npy", np.zeros((3, 4)))
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    with pytest.raises(DataError, match="npz"):
        deepsdf.load_sdf_samples(tmp_path / "plain.npz")


def test_split_round_trip_and_validation(tmp_path) -> None:
    path = deepsdf.write_split(
        tmp_path / "s.json", "ShapeNetV2", {"03001627": ["a", "b"], "04379243": ["c"]}
    )
    assert deepsdf.read_split(path) == [
        ("ShapeNetV2", "03001627", "a"),
        ("ShapeNetV2", "03001627", "b"),
        ("ShapeNetV2", "04379243", "c"),
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ShapeNetV2": {"03001627": "a"}}))
    with pytest.raises(DataError, match="list of model ids") as info:
        deepsdf.read_split(bad)
    assert info.value.field == "ShapeNetV2.03001627"
    bad.write_text("[1, 2")
    with pytest.raises(DataError, match="JSON"):
        deepsdf.read_split(bad)
