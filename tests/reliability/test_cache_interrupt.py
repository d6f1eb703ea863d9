"""Caches under ``data/`` survive an interrupted generation, and runs asking for different
subsets of one synthshapes root never destroy each other's shapes or caches.

Derived-cache entries (truncated ``.npy`` / ``.npz``) are also covered by
``tests/data/test_cache.py::test_second_ensure_reuses_and_corrupt_entry_is_rebuilt``, a
generation resumed after a crash (missing mesh, stray temp file, "incomplete" manifest) by
``tests/data/test_synthshapes.py::test_interrupted_generation_is_resumed`` and rendered scenes by
``tests/data/test_render_cache.py::test_cache_reuse_and_rebuild``.
"""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data import synthshapes as S
from zoo.data.formats.mesh import load_mesh
from zoo.data.io import DataError, read_manifest
from zoo.data.shapes import SynthShapesDataModule

RES = 24  # coarse meshes: this file is about files, not geometry
KW = {"seed": 0, "resolution": RES, "progress": False}


def _objs(root) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("model_normalized.obj"))
    }


def test_half_written_mesh_is_detected_and_rebuilt_never_read(tmp_path):
    S.ensure_synthshapes(tmp_path, ["chair"], 3, **KW)
    out = tmp_path / S.SHAPENET_DIR
    objs = sorted(out.rglob("model_normalized.obj"))
    good = {p: p.read_bytes() for p in objs}
    full_faces = len(load_mesh(objs[0]).faces)
    # A generation killed mid-way (or a disk that lost the tail): one OBJ cut in half under its
    # final name, one OBJ written but its sidecar not yet, and the manifest never written.
    objs[0].write_bytes(good[objs[0]][: len(good[objs[0]]) // 2])
    (objs[1].parent / S.ENTRY_FILE).unlink()
    (out / "manifest.json").unlink()
    # The cut OBJ may still parse (a prefix of an OBJ is an OBJ), so reading it would silently
    # train on half a shape: only the size recorded in the sidecar tells it is incomplete.
    try:
        cut_faces = len(load_mesh(objs[0]).faces)
    except DataError:
        cut_faces = 0
    assert cut_faces < full_faces

    res = S.ensure_synthshapes(tmp_path, ["chair"], 3, **KW)
    assert res.generated == 2 and res.reused == 1
    assert {p: p.read_bytes() for p in objs} == good  # rebuilt to the identical meshes
    assert read_manifest(out)["shapes_per_category"] == 3


def test_sidecar_of_another_resolution_is_not_trusted(tmp_path):
    S.ensure_synthshapes(tmp_path, ["mug"], 1, **KW)
    res = S.ensure_synthshapes(tmp_path, ["mug"], 1, seed=0, resolution=RES + 8, progress=False)
    assert res.generated == 1  # same path, other content: regenerated, not reused


def test_subset_after_superset_keeps_everything_and_back(tmp_path):
    superset = dict(categories=["chair", "mug"], shapes_per_category=3)
    subset = dict(categories=["chair"], shapes_per_category=2)
    first = S.ensure_synthshapes(tmp_path, **superset, **KW)
    assert first.generated == 6
    out = first.root
    before = _objs(out)

    sub = S.ensure_synthshapes(tmp_path, **subset, **KW)
    assert sub.generated == 0 and sub.reused == 2 and sub.removed == 0
    assert _objs(out) == before  # the superset's shapes (mugs, third chair) are all kept
    assert list(sub.split) == [S.CATEGORIES["chair"]]  # split.json describes the subset

    again = S.ensure_synthshapes(tmp_path, **superset, **KW)
    assert again.generated == 0 and again.reused == 6
    assert _objs(out) == before
    assert again.split == first.split


def test_superset_after_subset_only_adds(tmp_path):
    S.ensure_synthshapes(tmp_path, ["chair"], 2, **KW)
    before = _objs(tmp_path / S.SHAPENET_DIR)
    res = S.ensure_synthshapes(
        tmp_path, ["chair", "mug"], 3, seed=0, resolution=RES, progress=False
    )
    assert res.generated == 4 and res.reused == 2
    after = _objs(tmp_path / S.SHAPENET_DIR)
    assert all(after[k] == v for k, v in before.items())


def _dm(root, categories, n) -> SynthShapesDataModule:
    return SynthShapesDataModule(
        root, categories, n, resolution=RES, n_surface=600, batch_size=2, progress=False
    )


def test_datamodules_on_subsets_share_caches_and_rebuild_a_truncated_entry(tmp_path):
    big = _dm(tmp_path, ["chair", "mug"], 3)
    big.setup("fit")
    caches = tmp_path / "ShapeNetCore.v2.PC15k"
    mug_files = {p: p.read_bytes() for p in caches.rglob("*.npy") if "03797390" in p.parts}
    assert len(mug_files) == 3
    manifest_mtime = (caches / "manifest.json").stat().st_mtime_ns

    small = _dm(tmp_path, ["chair"], 2)
    small.setup("fit")
    assert {i.synset for s in ("train", "val", "test") for i in small.items(s)} == {"03001627"}
    assert {p: p.read_bytes() for p in mug_files} == mug_files  # other run's cache kept
    assert (caches / "manifest.json").stat().st_mtime_ns == manifest_mtime  # not wiped

    # A cache entry cut short (as by a crash of a non-atomic writer) is rebuilt, never read.
    item = small.items("train")[0]
    good = item.cloud.read_bytes()
    item.cloud.write_bytes(good[:300])
    fresh = _dm(tmp_path, ["chair"], 2)
    fresh.setup("fit")
    assert item.cloud.read_bytes() == good
    batch = next(iter(fresh.train_dataloader()))
    assert batch["points"].shape[1:] == (2048, 3) and np.isfinite(batch["points"].numpy()).all()


@pytest.mark.parametrize("cut", [0, 100])
def test_truncated_sidecar_is_not_trusted(tmp_path, cut):
    S.ensure_synthshapes(tmp_path, ["lamp"], 1, **KW)
    (sidecar,) = (tmp_path / S.SHAPENET_DIR).rglob(S.ENTRY_FILE)
    sidecar.write_bytes(sidecar.read_bytes()[:cut])
    res = S.ensure_synthshapes(tmp_path, ["lamp"], 1, **KW)
    assert res.generated == 1
