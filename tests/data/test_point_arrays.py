"""``data=point_arrays``: the ``<category>_<split>.npz`` reader and its errors, the datamodule's
splits, batches, info and normalisations on tiny files, the real ModelNet10 arrays, and the CLI
(a tiny PointFlow run, one ``error:`` line for a bad file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.helpers.shared_data import REAL, needs
from tests.helpers.tiny_runs import TINY, tiny_run_args
from zoo.data.formats.point_arrays import (
    list_array_categories,
    load_point_arrays,
    load_voxel_arrays,
)
from zoo.data.io import DataError
from zoo.data.point_arrays import PointArraysDataModule
from zoo.evaluation import _reconstructable

REPO = Path(__file__).resolve().parents[2]
MODELNET = REAL / "pointclouds" / "modelnet10_pc1024"
CHAIR_VOXELS = REAL / "voxels" / "modelnet10_chair_train_32.npz"


def _write(root: Path, category: str, split: str, n: int, k: int = 16, seed: int = 0) -> Path:
    """n random clouds of k points, each at its own scale and offset (like raw ModelNet)."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, k, 3)) * rng.uniform(1, 1000, (n, 1, 3)) + rng.normal(
        0, 50, (n, 1, 3)
    )
    path = root / f"{category}_{split}.npz"
    ids = np.array([f"{category}_{split}_{i}" for i in range(n)])
    np.savez(path, points=pts.astype(np.float32), shape_ids=ids)
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """chair: 10 train + 2 test shapes; mug: 4 train + 1 test (16 points each)."""
    _write(tmp_path, "chair", "train", 10, seed=1)
    _write(tmp_path, "chair", "test", 2, seed=2)
    _write(tmp_path, "mug", "train", 4, seed=3)
    _write(tmp_path, "mug", "test", 1, seed=4)
    return tmp_path


# ------------------------------------------------------------------------ reader
def test_reader_reads_and_lists(tiny: Path) -> None:
    assert list_array_categories(tiny) == ["chair", "mug"]
    pts, ids = load_point_arrays(tiny / "chair_test.npz")
    assert pts.shape == (2, 16, 3) and pts.dtype == np.float32 and ids[1] == "chair_test_1"
    np.savez(tiny / "cup_train.npz", points=np.ones((1, 2, 3)) * [[[0], [1]]])
    assert load_point_arrays(tiny / "cup_train.npz")[1] == ["cup_0000"]  # default ids


def _bad(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)
    return path


GOOD = np.arange(24, dtype=np.float32).reshape(2, 4, 3)


@pytest.mark.parametrize(
    ("arrays", "key", "message"),
    [
        ({"pts": GOOD}, "points", "missing array"),
        ({"points": GOOD.astype(np.int64)}, "points", "got dtype int64"),
        ({"points": GOOD[0]}, "points", r"expected \(N, K, 3\) float array, got \(4, 3\)"),
        ({"points": GOOD[..., :2]}, "points", r"got \(2, 4, 2\)"),
        ({"points": GOOD[:0]}, "points", r"got \(0, 4, 3\)"),
        ({"points": np.where(GOOD == 5, np.nan, GOOD)}, "points", "shape 0 has NaN or inf"),
        ({"points": np.where(GOOD == 20, np.inf, GOOD)}, "points", "shape 1 has NaN or inf"),
        ({"points": np.stack([GOOD[0], GOOD[0] * 0])}, "points", "shape 1 has all points equal"),
        ({"points": GOOD, "shape_ids": np.array(["a"])}, "shape_ids", r"expected \(2,\)"),
        ({"points": GOOD, "shape_ids": np.array(["a", "a"])}, "shape_ids", "not unique"),
    ],
)
def test_reader_errors_name_file_and_key(
    tmp_path: Path, arrays: dict, key: str, message: str
) -> None:
    path = _bad(tmp_path / "chair_train.npz", **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_point_arrays(path)
    assert info.value.field == key and info.value.path == str(path)


def test_reader_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file does not exist"):
        load_point_arrays(tmp_path / "chair_train.npz")
    (tmp_path / "junk_train.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz") as info:
        load_point_arrays(tmp_path / "junk_train.npz")
    assert info.value.field == "file"


def test_voxel_reader(tmp_path: Path) -> None:
    grids = np.zeros((2, 4, 4, 4), np.uint8)
    grids[0, 1, 2, 3] = 1
    out = load_voxel_arrays(_bad(tmp_path / "v.npz", voxels=grids))
    assert out.dtype == np.bool_ and out.sum() == 1 and out[0, 1, 2, 3]
    for arrays, message in [
        ({"vox": grids}, "missing array"),
        ({"voxels": grids[0]}, r"got \(4, 4, 4\)"),
        ({"voxels": grids[:, :3]}, r"got \(2, 3, 4, 4\)"),
        ({"voxels": grids * 2}, "values not in"),
    ]:
        with pytest.raises(DataError, match=message) as info:
            load_voxel_arrays(_bad(tmp_path / "v.npz", **arrays))
        assert info.value.field == "voxels" and info.value.path.endswith("v.npz")


# ------------------------------------------------------------------------ datamodule
def test_splits_batches_and_info(tiny: Path) -> None:
    dm = PointArraysDataModule(tiny, batch_size=3, n_points=8, val_fraction=0.2)
    info = dm.info()
    # val carved from train (seeded): chair 10 -> 8 + 2, mug 4 -> 3 + 1; tests kept.
    assert (info["num_train_shapes"], info["num_val_shapes"], info["num_test_shapes"]) == (11, 3, 3)
    assert info["categories"] == info["synsets"] == ["chair", "mug"]
    assert info["normalize"] == "bbox_diagonal" and info["up_axis"] == 2
    again = PointArraysDataModule(tiny, val_fraction=0.2).info()
    assert again["train_names"] == info["train_names"]  # the carve is seeded
    assert not set(info["train_names"]) & {i.name for i in dm.items("val")}
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"points", "idx", "synset"} and batch["points"].shape == (3, 8, 3)
    items = dm.items("train")
    assert batch["synset"] == [items[int(i)].synset for i in batch["idx"]]
    ds = dm.dataset("train")
    a, b = ds[0]["points"], ds[0]["points"]
    assert not torch.equal(a, b)  # a fresh subset each time, drawn from all 16 points
    cloud = dm.eval_shapes("train", limit=1)[0].points
    assert cloud.shape == (16, 3) and (a[:, None] == cloud[None]).all(-1).any(1).all()
    assert len(torch.unique(a, dim=0)) == 8  # without replacement when the cloud has enough
    v = next(iter(dm.val_dataloader()))["points"]
    assert torch.equal(v, next(iter(dm.val_dataloader()))["points"])  # fixed
    # info's statistics are those of the training clouds in the normalised units.
    train = torch.stack([t.points for t in dm.eval_shapes("train")])
    np.testing.assert_allclose(info["points_mean"], train.reshape(-1, 3).mean(0), atol=1e-5)
    assert info["points_std"] == pytest.approx(float(train.std(unbiased=False)), rel=1e-4)


def test_eval_shapes_and_limits(tiny: Path) -> None:
    dm = PointArraysDataModule(tiny, ["mug"], eval_points=20, max_shapes_per_category=3)
    assert [len(dm.items(s)) for s in ("train", "val", "test")] == [1, 1, 1]
    (t,) = dm.eval_shapes("test")
    assert t.name == "mug/mug_test_0" and t.points.shape == (20, 3)  # 16 points, repeated
    assert t.extra["synset"] == "mug" and t.extra["category"] == "mug"
    assert t.voxels is None and t.mesh is None and t.normals is None


@pytest.mark.parametrize("normalize", ["bbox_diagonal", "unit_sphere", "unit_box", "global"])
def test_normalisations_units(tiny: Path, normalize: str) -> None:
    dm = PointArraysDataModule(tiny, ["chair"], normalize=normalize, up_axis=1)
    clouds = {
        s: torch.stack([t.points for t in dm.eval_shapes(s)]).numpy() for s in ("train", "test")
    }
    raw = load_point_arrays(tiny / "chair_test.npz")[0]
    lo, hi = clouds["test"].min(1), clouds["test"].max(1)
    if normalize == "bbox_diagonal":
        np.testing.assert_allclose(np.linalg.norm(hi - lo, axis=1), 1, rtol=1e-5)
        np.testing.assert_allclose(hi + lo, 0, atol=1e-6)
    elif normalize == "unit_box":
        np.testing.assert_allclose((hi - lo).max(1), 1, rtol=1e-5)
    elif normalize == "unit_sphere":
        np.testing.assert_allclose(clouds["test"].mean(1), 0, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(clouds["test"], axis=2).max(1), 1, rtol=1e-5)
    else:  # the train statistics of bbox_diagonal clouds, applied to the test split too
        stats = dm.info()["normalize_stats"]["chair"]
        np.testing.assert_allclose(clouds["train"].reshape(-1, 3).mean(0), 0, atol=1e-5)
        c, d = (raw.max(1) + raw.min(1)) / 2, np.linalg.norm(np.ptp(raw, axis=1), axis=1)
        expected = ((raw - c[:, None]) / d[:, None, None] - stats["mean"]) / stats["std"]
        np.testing.assert_allclose(clouds["test"], expected, rtol=1e-4, atol=1e-5)
    assert dm.info()["normalize"] == normalize
    assert np.abs(clouds["test"]).max() <= dm.info()["bbox_max"][0]


def test_up_axis_is_rotated_onto_y(tiny: Path) -> None:
    z_up = PointArraysDataModule(tiny, ["chair"], up_axis=2).eval_shapes("test")[0].points
    as_is = PointArraysDataModule(tiny, ["chair"], up_axis=1).eval_shapes("test")[0].points
    torch.testing.assert_close(z_up, torch.stack([as_is[:, 0], as_is[:, 2], -as_is[:, 1]], 1))


def test_voxel_form(tiny: Path) -> None:
    grids = np.zeros((5, 8, 8, 8), bool)
    grids[:, 2, 3, 7] = True  # high on z (axis 2 up)
    np.savez(tiny / "vox.npz", voxels=grids)
    dm = PointArraysDataModule(
        tiny, ["chair"], form="voxels", voxels_file=tiny / "vox.npz", val_fraction=0.2, batch_size=2
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["voxels"].shape == (2, 1, 8, 8, 8) and batch["voxels"].dtype == torch.float32
    assert batch["voxels"][0, 0, 2, 7, 4] == 1 and batch["voxels"].sum() == 2  # now high on y
    assert len(next(iter(dm.val_dataloader()))["voxels"]) == 1
    info = dm.info()
    assert info["voxel_resolution"] == 8 and (info["num_train_shapes"], info["num_val_shapes"]) == (
        4,
        1,
    )
    tests = dm.eval_shapes("test")
    assert len(tests) == 2 and tests[0].points.shape == (16, 3) and tests[0].voxels is None
    (v,) = dm.eval_shapes("val")
    assert v.voxels.shape == (8, 8, 8) and v.voxels.dtype == torch.bool and v.points is None
    # The memorising baseline reads the training shapes as the file's clouds.
    clouds = dm.eval_shapes("train", points_only=True)
    points_dm = PointArraysDataModule(tiny, ["chair"], val_fraction=0.2)
    want = points_dm.eval_shapes("train", points_only=True)
    assert [t.name for t in clouds] == [t.name for t in want] and len(clouds) > 0
    for got, ref in zip(clouds, want, strict=True):
        torch.testing.assert_close(got.points, ref.points)
        assert got.voxels is None and got.extra["synset"] == ref.extra["synset"]
    # voxel_gan is scored on generation only against these grid-less test clouds.
    voxel_model = SimpleNamespace(data_form="voxels", name="voxel_gan")
    assert not _reconstructable(voxel_model, tests)
    assert _reconstructable(voxel_model, [v])
    assert _reconstructable(SimpleNamespace(data_form="points", name="pointflow"), tests)
    with pytest.raises(ValueError, match="form 'voxels' needs data.voxels_file"):
        PointArraysDataModule(tiny, ["chair"], form="voxels")
    with pytest.raises(DataError, match="holds one category's grids"):
        PointArraysDataModule(tiny, form="voxels", voxels_file=tiny / "vox.npz").setup()


def test_spread_voxel_targets_keep_their_own_grids(tiny: Path) -> None:
    grids = np.zeros((5, 8, 8, 8), bool)
    for i in range(5):
        grids[i, i, 0, 0] = True  # a different voxel for every shape
    np.savez(tiny / "vox_ids.npz", voxels=grids)
    dm = PointArraysDataModule(
        tiny, ["chair"], form="voxels", voxels_file=tiny / "vox_ids.npz", val_fraction=0.2
    )
    full = dm.eval_shapes("train")
    picked = dm.eval_shapes("train", limit=2, spread=True)
    assert [t.extra["index"] for t in picked] == [0, len(full) - 1]
    for t in picked:
        assert torch.equal(t.voxels, full[t.extra["index"]].voxels)
    assert not torch.equal(picked[0].voxels, picked[1].voxels)


def test_refused_forms_and_bad_config(tiny: Path) -> None:
    for form in ("sdf", "mesh", "views"):
        with pytest.raises(ValueError, match=f"point clouds .* only: form '{form}'"):
            PointArraysDataModule(tiny, form=form)
    with pytest.raises(ValueError, match="normalize must be one of"):
        PointArraysDataModule(tiny, normalize="unit")
    with pytest.raises(ValueError, match="up_axis must be 0, 1 or 2"):
        PointArraysDataModule(tiny, up_axis=3)
    with pytest.raises(DataError, match="no training file for category 'sofa'") as info:
        PointArraysDataModule(tiny, ["sofa"]).setup()
    assert info.value.path.endswith("sofa_train.npz")
    with pytest.raises(DataError, match="dataset folder does not exist"):
        PointArraysDataModule(tiny / "nowhere").setup()
    (tiny / "empty").mkdir()
    with pytest.raises(DataError, match="no <category>_train.npz"):
        PointArraysDataModule(tiny / "empty").setup()


# ------------------------------------------------------------------------ real data
@needs(MODELNET)
def test_real_modelnet10_chair_every_normalisation() -> None:
    for normalize in ("bbox_diagonal", "unit_sphere", "unit_box", "global"):
        dm = PointArraysDataModule(MODELNET, ["chair"], normalize=normalize, batch_size=4)
        info = dm.info()
        assert info["num_train_shapes"] + info["num_val_shapes"] == 889
        assert info["num_val_shapes"] == 89 and info["num_test_shapes"] == 100
        train = dm._train_points()  # (800, 1024, 3)
        lo, hi = train.min(1), train.max(1)
        if normalize == "bbox_diagonal":
            np.testing.assert_allclose(np.linalg.norm(hi - lo, axis=1), 1, atol=1e-4)
            # y is up after the rotation: chairs are taller than deep in the median.
            assert np.median((hi - lo)[:, 1]) > np.median((hi - lo)[:, 2])
        elif normalize == "unit_box":
            np.testing.assert_allclose((hi - lo).max(1), 1, atol=1e-4)
        elif normalize == "unit_sphere":
            np.testing.assert_allclose(np.linalg.norm(train, axis=2).max(1), 1, atol=1e-4)
        else:
            np.testing.assert_allclose(train.reshape(-1, 3).mean(0), 0, atol=1e-4)
            assert 0.1 < info["normalize_stats"]["chair"]["std"] < 0.3
        batch = next(iter(dm.train_dataloader()))
        assert batch["points"].shape == (4, 1024, 3) and batch["synset"] == ["chair"] * 4
        (t,) = dm.eval_shapes("test", limit=1)
        assert t.points.shape == (1024, 3) and t.extra["synset"] == "chair"


@needs(CHAIR_VOXELS)
def test_real_chair_voxels() -> None:
    dm = PointArraysDataModule(
        MODELNET, ["chair"], form="voxels", voxels_file=CHAIR_VOXELS, normalize="unit_box"
    )
    info = dm.info()
    assert (
        info["voxel_resolution"] == 32 and info["num_train_shapes"] + info["num_val_shapes"] == 889
    )
    grids = dm.dataset("train").grids
    # binvox -cb: the up axis (z, now y) spans the full 32 cells for most chairs.
    spans_y = grids.any(dim=(1, 3))  # (N, 32) occupied y layers
    assert spans_y[:, 0].float().mean() > 0.5 and spans_y[:, -1].float().mean() > 0.5
    assert len(dm.eval_shapes("test")) == 100
    # The grids and the clouds share one frame after both rotations (the file lists its grids
    # in another order than the clouds): each of 5 grids, dilated by one cell, holds >= 98 % of
    # the unit_box points of some training cloud; a frame flipped upside down holds far fewer.
    from scipy.ndimage import binary_dilation

    clouds = dm._train_points()  # (800, 1024, 3) in [-0.5, 0.5]
    idx = np.clip(np.floor((clouds + 0.5) * 32).astype(int), 0, 31)  # (800, 1024, 3)
    for flip in (False, True):
        fractions = []
        for g in grids[:5].numpy():
            g = binary_dilation(g[:, ::-1] if flip else g, iterations=1)
            fractions.append(g[idx[..., 0], idx[..., 1], idx[..., 2]].mean(1).max())
        if flip:
            assert max(fractions) < 0.9, fractions
        else:
            assert min(fractions) >= 0.98, fractions


# ------------------------------------------------------------------------ CLI
def _run_train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, "-m", "zoo.train", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_cli_bad_file_is_one_error_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _bad(data / "chair_train.npz", points=GOOD.astype(np.int32))
    out = _run_train(
        [
            "model=pointflow",
            "data=point_arrays",
            f"data.root={data}",
            f"hydra.run.dir={tmp_path}/run",
        ],
        tmp_path,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(data / "chair_train.npz") in errors[0]
    assert "field 'points'" in errors[0] and "Traceback" not in out.stderr + out.stdout


def test_cli_tiny_point_generator_run(tiny: Path, tmp_path: Path) -> None:
    # point_diffusion end to end on point arrays, ceilings on: a point-cloud target has no
    # mesh, so no ceiling is scored (logged), and the run still ends with its metrics.
    keys = ("data.shapes_per_category", "data.voxel_resolution", "data.sdf_samples")
    args = tiny_run_args(
        "point_diffusion", tiny, tmp_path / "run", "data=point_arrays", "eval.ceilings=true"
    )
    args = [a for a in args if not a.startswith(keys)]
    assert "data.categories=[chair,mug]" in TINY["point_diffusion"]
    out = _run_train(args, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "gen/1nna_cd" in metrics and "recon/chamfer_l2" in metrics
    assert not [k for k in metrics if k.startswith("ceil/")]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
