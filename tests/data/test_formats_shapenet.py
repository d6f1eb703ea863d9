"""ShapeNetCore v1/v2 layouts, category names, splits; errors name the folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import trimesh

from zoo.data.formats import shapenet as sn
from zoo.data.formats.mesh import load_mesh
from zoo.data.io import DataError


def _obj(path: Path, offset: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box(extents=(1.0, 2.0, 0.5))
    box.apply_translation((offset, 0.0, 0.0))
    box.export(path)
    return path


@pytest.fixture()
def tree(tmp_path) -> Path:
    """v2 chairs (3), a v1 table, an empty mug folder and a model folder without a mesh."""
    root = tmp_path / "ShapeNetCore.v2"
    for i, mid in enumerate(["c1", "c0", "c2"]):
        _obj(root / "03001627" / mid / "models" / "model_normalized.obj", offset=i)
    _obj(root / "04379243" / "t0" / "model.obj")
    (root / "03797390").mkdir(parents=True)
    (root / "03001627" / "broken" / "models").mkdir(parents=True)
    (root / "taxonomy.json").write_text("[]")
    return root


def test_names_and_synsets() -> None:
    assert sn.synset_of("chair") == "03001627" == sn.synset_of("03001627")
    assert sn.synset_of("Airplane") == "02691156" and sn.synset_of("vessel") == "04530566"
    assert sn.name_of("03797390") == "mug" and sn.name_of("99999999") == "99999999"
    assert len(sn.SYNSET_TO_NAME) == 55
    with pytest.raises(ValueError, match="unknown ShapeNet category 'spaceship'"):
        sn.synset_of("spaceship")


def test_listing_v1_and_v2(tree: Path) -> None:
    assert sn.list_categories(tree) == ["03001627", "03797390", "04379243"]
    chairs = sn.list_models(tree, "chair")
    assert [m.model_id for m in chairs] == ["c0", "c1", "c2"]
    assert all(m.version == 2 and m.path.name == "model_normalized.obj" for m in chairs)
    assert chairs[0].name == "03001627/c0"
    (table,) = sn.list_models(tree, "04379243")
    assert table.version == 1 and table.path.name == "model.obj"
    assert load_mesh(table.path).faces.shape == (12, 3)
    shapes = sn.list_shapes(tree, ["chair", "table"])
    assert {k: len(v) for k, v in shapes.items()} == {"03001627": 3, "04379243": 1}


def test_listing_errors(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset folder does not exist") as info:
        sn.list_models(tmp_path / "missing", "chair")
    assert info.value.field == "root"
    with pytest.raises(DataError, match="no models for category 'mug'") as info:
        sn.list_models(tree, "mug")
    assert info.value.field == "category" and "03797390" in str(info.value)
    with pytest.raises(DataError, match="no folder for category 'lamp'"):
        sn.list_models(tree, "lamp")
    with pytest.raises(DataError, match="no models"):
        sn.list_shapes(tree)  # the empty mug folder


def test_split_ids_deterministic_disjoint_proportional() -> None:
    ids = [f"id{i:02d}" for i in range(20)]
    split = sn.split_ids(ids, seed=0)
    assert [len(split[s]) for s in sn.SPLITS] == [14, 2, 4]
    assert sorted(sum(split.values(), [])) == ids
    assert sn.split_ids(list(reversed(ids)), seed=0) == split  # order independent
    assert sn.split_ids(ids, seed=1) != split
    assert [len(v) for v in sn.split_ids(["a"]).values()] == [1, 0, 0]
    assert [len(v) for v in sn.split_ids(["a", "b"]).values()] == [1, 0, 1]
    assert [len(v) for v in sn.split_ids(list("abcde")).values()] == [3, 1, 1]
    with pytest.raises(ValueError, match="fractions"):
        sn.split_ids(ids, fractions=(0.5, 0.5, 0.5))


def test_limit_split_keeps_membership() -> None:
    split = sn.split_ids([f"id{i:02d}" for i in range(20)], seed=0)
    small = sn.limit_split(split, 5)
    assert sum(len(v) for v in small.values()) == 5
    assert all(set(small[s]) <= set(split[s]) and small[s] for s in sn.SPLITS)
    assert sn.limit_split(split, None) == split and sn.limit_split(split, 100) == split


def test_split_file_round_trip(tmp_path: Path) -> None:
    split = {"03001627": {"train": ["a"], "val": [], "test": ["b"]}}
    sn.write_split_file(tmp_path / "split.json", split)
    assert sn.read_split_file(tmp_path / "split.json") == split
    (tmp_path / "bad.json").write_text('{"03001627": {"training": []}}')
    with pytest.raises(DataError) as info:
        sn.read_split_file(tmp_path / "bad.json")
    assert info.value.field == "03001627"
