"""ModelNet layout (``data=modelnet``): a tree built from the real ModelNet airplane_0001 mesh and a
second real mesh, its splits and batches, and the PointNet classifier trained on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from tests.helpers.shared_data import REAL, needs
from zoo.data.formats.modelnet import list_class_models, list_classes, modelnet_split
from zoo.data.io import DataError
from zoo.data.modelnet import ModelNetDataModule
from zoo.models.pointnet import PointNetClassifier

AIRPLANE = REAL / "meshes" / "modelnet_airplane_0001.off"
BALL = REAL / "meshes" / "ballA.off"
SMALL = dict(n_surface=3000, sdf_cache_samples=4000, progress=False)


@pytest.fixture(scope="module")
def modelnet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ModelNet/<class>/{train,test}/<class>_<NNNN>.off``: 3 train + 1 test shapes per class,
    each a copy of one real mesh under a random anisotropic scale (ModelNet's meshes are not
    normalised: the airplane is ~358 units wide)."""
    root = tmp_path_factory.mktemp("modelnet") / "ModelNet40"
    rng = np.random.default_rng(0)
    for cls, src in (("airplane", AIRPLANE), ("ball", BALL)):
        mesh = trimesh.load(src, force="mesh", process=False)
        for i in range(4):  # few: trimesh parses the 1.9 MB airplane in ~0.3 s
            split = "train" if i < 3 else "test"
            m = mesh.copy()
            m.apply_scale(rng.uniform(0.7, 1.3, size=3))
            dest = root / cls / split / f"{cls}_{i + 1:04d}.off"
            dest.parent.mkdir(parents=True, exist_ok=True)
            m.export(dest)
    return root


@needs(AIRPLANE)
def test_layout_splits_and_batches(modelnet_root: Path) -> None:
    assert list_classes(modelnet_root) == ["airplane", "ball"]
    models = list_class_models(modelnet_root, "airplane")
    assert len(models["train"]) == 3 and list(models["test"]) == ["airplane_0004"]
    split = modelnet_split(models, seed=0, val_fraction=0.3)
    assert len(split["val"]) == 1 and len(split["train"]) == 2  # val carved from train
    assert split["test"] == ["airplane_0004"]  # the official test set kept
    dm = ModelNetDataModule(modelnet_root, batch_size=4, n_points=256, val_fraction=0.3, **SMALL)
    batch = next(iter(dm.train_dataloader()))
    assert batch["points"].shape == (4, 256, 3)
    assert set(batch["synset"]) <= {"airplane", "ball"}
    info = dm.info()
    assert info["synsets"] == ["airplane", "ball"] and info["categories"] == ["airplane", "ball"]
    assert (info["num_train_shapes"], info["num_val_shapes"], info["num_test_shapes"]) == (4, 2, 2)
    (t,) = dm.eval_shapes("test", limit=1)
    assert t.points.norm(dim=1).max() <= 0.5 + 1e-5  # normalised like ShapeNet v2
    assert t.extra["synset"] == "airplane"


def test_missing_class_and_empty_root(tmp_path: Path) -> None:
    (tmp_path / "mn" / "chair" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no .off meshes"):
        ModelNetDataModule(tmp_path / "mn", **SMALL).setup()
    with pytest.raises(DataError, match="no folder"):
        ModelNetDataModule(tmp_path / "mn", categories=["sofa"], **SMALL).setup()
    with pytest.raises(DataError, match="does not exist"):
        ModelNetDataModule(tmp_path / "nowhere", **SMALL).setup()


@needs(AIRPLANE)
def test_pointnet_trains_on_a_modelnet_tree(modelnet_root: Path) -> None:
    """The classifier learns the two classes from the datamodule's batches and labels the held-out
    test meshes (other scalings of the training meshes: this shows the pipeline
    works on the ModelNet layout, not accuracy on ModelNet40)."""
    dm = ModelNetDataModule(modelnet_root, batch_size=4, n_points=256, val_fraction=0.3, **SMALL)
    torch.manual_seed(0)
    model = PointNetClassifier(
        hidden=(32, 64), head=(16,), dropout=0.0, train_points=128, input_points=256
    )
    model.configure_from_data(dm.info())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    loader = dm.train_dataloader()
    for _ in range(80):  # 80 steps (batch norm's running statistics need a few dozen)
        for batch in loader:
            loss = model._shared_step(batch, "train")
            opt.zero_grad()
            loss.backward()
            opt.step()
    targets = dm.eval_shapes("test")
    probs = model.classify(torch.stack([t.points for t in targets]))
    truth = model.labels_of([t.extra["synset"] for t in targets])
    assert (probs.argmax(1) == truth).all(), probs
