"""Shape datamodules: batches of every form, info, eval targets, real-layout data, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from tests.helpers.shared_data import REAL as SHARED
from zoo.data.formats import pc15k
from zoo.data.io import DataError
from zoo.data.shapes import (
    DeepSDFDataModule,
    PC15kDataModule,
    ShapeNetDataModule,
    SynthShapesDataModule,
)
from zoo.representation import ShapeTarget

SMALL = dict(n_surface=3000, sdf_cache_samples=4000, progress=False)


REAL = SHARED
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"shared real data absent: {REAL}")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth")


def _synth(root: Path, form: str, **kw) -> SynthShapesDataModule:
    args = dict(
        categories=["chair", "mug"],
        shapes_per_category=4,
        resolution=64,
        form=form,
        batch_size=3,
        n_points=256,
        voxel_resolution=16,
        sdf_samples=512,
        **SMALL,
    )
    args.update(kw)
    return SynthShapesDataModule(root=root, **args)


# ------------------------------------------------------------------------ synthshapes, forms
def test_points_form(synth_root: Path) -> None:
    dm = _synth(synth_root, "points")
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["points"].shape == (3, 256, 3) and batch["points"].dtype == torch.float32
    assert batch["idx"].dtype == torch.int64 and set(batch) == {"points", "idx", "synset"}
    items = dm.items("train")  # the category label of each shape (PointNet's classes)
    assert batch["synset"] == [items[int(i)].synset for i in batch["idx"]]
    # A fresh random subset of the shape's training points (cloud[:2000] of 3000) each time.
    ds = dm.dataset("train")
    a, b = ds[0]["points"], ds[0]["points"]
    assert not torch.equal(a, b)
    cloud = torch.from_numpy(pc15k.load_cloud(dm.items("train")[0].cloud, None))
    train_part = cloud[:2000]
    assert (a[:, None, :] == train_part[None]).all(-1).any(1).all()  # every point is one of them
    # Validation / test batches are fixed held-out points.
    v1, v2 = dm.dataset("test")[0]["points"], dm.dataset("test")[0]["points"]
    assert torch.equal(v1, v2)
    assert len(dm.items("train")) == 6 and len(dm.items("val")) == 0
    assert len(dm.items("test")) == 2
    assert next(iter(dm.val_dataloader()))["points"].shape == (2, 256, 3)  # falls back to test


def test_mesh_voxels_sdf_forms(synth_root: Path) -> None:
    dm = _synth(synth_root, "mesh")
    batch = next(iter(dm.train_dataloader()))
    assert batch["points"].shape == batch["normals"].shape == (3, 256, 3)
    np.testing.assert_allclose(batch["normals"].norm(dim=-1), 1.0, atol=1e-4)

    dm = _synth(synth_root, "voxels")
    batch = next(iter(dm.train_dataloader()))
    assert batch["voxels"].shape == (3, 1, 16, 16, 16) and batch["voxels"].dtype == torch.float32
    assert set(batch["voxels"].unique().tolist()) == {0.0, 1.0}

    dm = _synth(synth_root, "sdf")
    batch = next(iter(dm.train_dataloader()))
    assert batch["sdf"].shape == (3, 512, 4)
    assert (batch["sdf"][:, :256, 3] > 0).all() and (batch["sdf"][:, 256:, 3] <= 0).all()


def test_form_setter_and_unsupported_forms(synth_root: Path) -> None:
    dm = _synth(synth_root, "points")
    dm.form = "voxels"  # the CLI may set the model's form after construction
    assert next(iter(dm.train_dataloader()))["voxels"].shape[1:] == (1, 16, 16, 16)
    with pytest.raises(ValueError, match="SynthShapesDataModule does not support form 'views'"):
        dm.form = "views"
    with pytest.raises(ValueError, match="'points', 'voxels', 'sdf', 'mesh'"):
        _synth(synth_root, "radiance")


def test_info_and_eval_targets(synth_root: Path) -> None:
    dm = _synth(synth_root, "sdf")
    info = dm.info()
    json.dumps(info)
    assert info["form"] == "sdf" and info["dataset"] == "synthshapes"
    assert info["categories"] == ["chair", "mug"] and info["num_train_shapes"] == 6
    assert len(info["train_names"]) == 6 and info["train_names"][0].startswith("03001627/")
    assert info["voxel_resolution"] == 16
    targets = dm.eval_shapes("test")
    assert len(targets) == 2 and all(isinstance(t, ShapeTarget) for t in targets)
    t = targets[0]
    assert t.points.shape == (2048, 3) and t.normals.shape == (2048, 3)
    assert t.sdf.shape == (4000, 4) and t.voxels is None
    assert isinstance(t.mesh, trimesh.Trimesh) and t.mesh.is_watertight
    # Eval points are fixed and lie on the mesh.
    assert torch.equal(dm.eval_shapes("test", limit=1)[0].points, t.points)
    from zoo.ops.mesh_queries import unsigned_distance

    assert unsigned_distance(t.mesh, t.points).max() < 1e-4
    assert dm.eval_views("test") is None

    dm.form = "points"
    info = dm.info()
    assert len(info["points_mean"]) == 3 and 0.05 < info["points_std"] < 0.5
    dm.form = "voxels"
    (t,) = dm.eval_shapes("train", limit=1)
    assert t.voxels.shape == (16, 16, 16) and t.voxels.dtype == torch.bool and t.sdf is None


def test_eval_shapes_spread_over_the_split(synth_root: Path) -> None:
    dm = _synth(synth_root, "points")
    dm.prepare_data()
    names = [i.name for i in dm.items("train")]  # 3 chairs, then 3 mugs
    first = dm.eval_shapes("train", limit=2)
    spread = dm.eval_shapes("train", limit=2, spread=True)
    assert [t.name for t in first] == names[:2]
    assert [t.name for t in spread] == [names[0], names[-1]]
    assert [t.extra["category"] for t in spread] == ["chair", "mug"]
    assert [t.extra["index"] for t in spread] == [0, 5]  # the split's own indices
    assert len(dm.eval_shapes("train", limit=10, spread=True)) == 6


def test_caches_are_reused_between_datamodules(synth_root: Path) -> None:
    dm = _synth(synth_root, "points")
    dm.setup()
    item = dm.items("train")[0]
    mtime = item.cloud.stat().st_mtime_ns
    other = _synth(synth_root, "points")
    other.setup()
    assert item.cloud.stat().st_mtime_ns == mtime
    assert (synth_root / "ShapeNetCore.v2.PC15k" / "manifest.json").is_file()


def test_deepsdf_and_pc15k_modules_read_the_synth_caches(synth_root: Path) -> None:
    _synth(synth_root, "sdf").setup()
    dm = DeepSDFDataModule(
        synth_root,
        synth_root / "splits" / "synthshapes_train.json",
        synth_root / "splits" / "synthshapes_test.json",
        batch_size=2,
        sdf_samples=100,
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["sdf"].shape == (2, 100, 4)
    assert dm.info()["num_train_shapes"] == 6 and dm.info()["dataset"] == "synthshapes"
    (t,) = dm.eval_shapes("test", limit=1)
    assert t.points.shape == (2048, 3) and t.sdf is not None and t.mesh is None
    with pytest.raises(ValueError, match="DeepSDFDataModule does not support form 'points'"):
        dm.form = "points"

    pc = PC15kDataModule(
        synth_root / "ShapeNetCore.v2.PC15k",
        ["mug"],
        batch_size=2,
        n_points=64,
        n_cloud_points=3000,
    )
    assert next(iter(pc.train_dataloader()))["points"].shape == (2, 64, 3)
    assert pc.info()["num_train_shapes"] == 3


# ------------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def real_shapenet(tmp_path_factory) -> Path:
    """A ShapeNetCore.v2 tree of real meshes (converted to OBJ in the v2 layout)."""
    root = tmp_path_factory.mktemp("real") / "ShapeNetCore.v2"
    for i, name in enumerate(["ballA.off", "featuretype.stl", "fandisk.obj", "teapot.obj"]):
        dest = root / "03001627" / f"model{i}" / "models" / "model_normalized.obj"
        dest.parent.mkdir(parents=True)
        trimesh.load(REAL / "meshes" / name, force="mesh").export(dest)
    return root


@needs_real
@pytest.mark.parametrize("form", ["points", "voxels", "sdf", "mesh"])
def test_real_shapenet_all_forms(real_shapenet: Path, form: str) -> None:
    dm = ShapeNetDataModule(
        real_shapenet,
        categories=["chair"],
        form=form,
        batch_size=2,
        n_points=128,
        voxel_resolution=16,
        sdf_samples=64,
        **SMALL,
    )
    batch = next(iter(dm.train_dataloader()))
    key = {"points": "points", "mesh": "normals", "voxels": "voxels", "sdf": "sdf"}[form]
    assert batch[key].shape[0] == 2
    assert (real_shapenet.parent / "zoo_cache").is_dir()  # default cache location
    (t,) = dm.eval_shapes("test", limit=1)
    # Real meshes are normalised like ShapeNet v2: points inside the radius-0.5 sphere.
    assert t.points.norm(dim=1).max() <= 0.5 + 1e-5
    assert t.mesh is not None and np.linalg.norm(np.ptp(t.mesh.vertices, axis=0)) == pytest.approx(
        1
    )


@needs_real
def test_real_pc15k_cloud(tmp_path: Path) -> None:
    root = tmp_path / "ShapeNetCore.v2.PC15k"
    src = REAL / "pointclouds" / "pointflow_chair_pcl.npy"
    for split, mid in [("train", "a"), ("train", "b"), ("val", "c"), ("test", "d")]:
        dest = pc15k.cloud_path(root, "03001627", split, mid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    dm = PC15kDataModule(root, ["chair"], batch_size=2, n_points=2048)
    batch = next(iter(dm.train_dataloader()))
    assert batch["points"].shape == (2, 2048, 3)
    (t,) = dm.eval_shapes("test")
    cloud = np.load(src)
    np.testing.assert_array_equal(t.points.numpy(), cloud[10000:12048])  # PointFlow held-out
    assert t.normals is None and t.mesh is None
    with pytest.raises(ValueError, match="PC15kDataModule does not support form 'voxels'"):
        PC15kDataModule(root, ["chair"], form="voxels")


# ------------------------------------------------------------------------ errors
def test_missing_root_and_empty_category(tmp_path: Path) -> None:
    dm = ShapeNetDataModule(tmp_path / "nowhere", ["chair"], **SMALL)
    with pytest.raises(DataError, match="dataset folder does not exist") as info:
        dm.setup()
    assert info.value.field == "root"
    (tmp_path / "sn" / "03001627").mkdir(parents=True)
    with pytest.raises(DataError, match="no models for category 'chair'"):
        ShapeNetDataModule(tmp_path / "sn", ["chair"], **SMALL).setup()
    with pytest.raises(ValueError, match="unknown ShapeNet category"):
        ShapeNetDataModule(tmp_path / "sn", ["dragon"])
    (tmp_path / "pc" / "03001627" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no clouds for 'chair'"):
        PC15kDataModule(tmp_path / "pc", ["chair"]).setup()
    with pytest.raises(DataError, match="does not exist"):
        DeepSDFDataModule(tmp_path, tmp_path / "train.json", tmp_path / "test.json").setup()


def test_deepsdf_split_pointing_at_bad_file(tmp_path: Path) -> None:
    split = tmp_path / "train.json"
    split.write_text(json.dumps({"ds": {"03001627": ["x"]}}))
    bad = tmp_path / "SdfSamples" / "ds" / "03001627" / "x.npz"
    bad.parent.mkdir(parents=True)
    np.savez(bad, neg=np.zeros((4, 4), np.float32))
    with pytest.raises(DataError, match="field 'pos': missing array") as info:
        DeepSDFDataModule(tmp_path, split, split).setup()
    assert str(bad) in str(info.value)
