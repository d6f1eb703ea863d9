"""Bad input: one clear line naming the file (or field) and the problem, a non-zero exit, and
nothing lost (no existing output or cache is changed).

Where each case is covered:
- reader messages (file + field) for every malformed file: ``tests/data/test_formats_blender.py``
  (truncated / non-image PNG, ``transforms.json`` without ``frames`` / ``camera_angle_x``, 3x3
  matrix), ``test_formats_mesh.py`` (empty, NaN vertices, no faces), ``test_formats_pc15k.py``
  (wrong shape / dtype / truncated ``.npy``), ``test_formats_deepsdf.py`` (``.npz`` without
  ``pos`` / ``neg``), ``test_shape_datamodules.py`` (missing root, empty category);
- checkpoints (another model, truncated, pickle payload refused without running it):
  ``tests/test_checkpoint.py``; a bad checkpoint given to ``zoo.eval``: ``tests/cli``.
This file adds what those do not check: that the files, caches and outputs already on disk are
unchanged after the failure, and that the CLI (real subprocesses) reports each problem as one
``error: ...`` line without a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import trimesh

from tests.reliability.clirun import last_line, run, snapshot, tiny_args, tiny_base
from zoo.data.formats.blender import load_blender
from zoo.data.io import DataError
from zoo.data.shapes import DeepSDFDataModule, PC15kDataModule, ShapeNetDataModule

CHAIR, MUG = "03001627", "03797390"


def _assert_fails_with_one_line(proc, *words: str, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    line = last_line(proc.stderr)
    assert line.startswith("error: "), proc.stderr
    for w in words:
        assert w in line, (w, line)
    assert "Traceback" not in proc.stderr, proc.stderr
    return line


# ------------------------------------------------------------------ in-process: data files
def _scene(root: Path) -> Path:
    """A minimal Blender scene: 2 RGBA 4x4 training views."""
    (root / "train").mkdir(parents=True)
    frames = []
    for i in range(2):
        iio.imwrite(root / "train" / f"r_{i}.png", np.full((4, 4, 4), 60 * i, np.uint8))
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": np.eye(4).tolist()})
    (root / "transforms_train.json").write_text(
        json.dumps({"camera_angle_x": 0.69, "frames": frames})
    )
    return root


def _edit(root: Path, edit) -> None:
    p = root / "transforms_train.json"
    data = json.loads(p.read_text())
    edit(data)
    p.write_text(json.dumps(data))


def _truncate_png(root: Path) -> None:
    p = root / "train" / "r_1.png"
    rng = np.random.default_rng(0)
    iio.imwrite(p, rng.integers(0, 256, (64, 64, 4), dtype=np.uint8))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


BLENDER_CASES = {
    "truncated_png": (_truncate_png, "r_1.png", "file_path"),
    "non_image_png": (
        lambda r: (r / "train" / "r_0.png").write_text("not a png\n" * 10),
        "r_0.png",
        "file_path",
    ),
    "no_frames": (lambda r: _edit(r, lambda d: d.pop("frames")), "transforms_train", "frames"),
    "no_camera_angle_x": (
        lambda r: _edit(r, lambda d: d.pop("camera_angle_x")),
        "transforms_train.json",
        "camera_angle_x",
    ),
    "matrix_3x3": (
        lambda r: _edit(r, lambda d: d["frames"][0].update(transform_matrix=np.eye(3).tolist())),
        "transforms_train.json",
        "transform_matrix",
    ),
}


@pytest.mark.parametrize("case", list(BLENDER_CASES))
def test_bad_blender_scene_names_file_and_field_and_changes_nothing(tmp_path, case):
    spoil, file_name, field = BLENDER_CASES[case]
    root = _scene(tmp_path / "scene")
    spoil(root)
    before = snapshot(root)
    with pytest.raises(DataError) as info:
        load_blender(root, "train")
    msg = str(info.value)
    assert file_name in msg and field in msg, msg
    assert snapshot(root) == before


def _box(path: Path, offset: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box(extents=(0.4, 0.8, 0.3))
    box.apply_translation((offset, 0.0, 0.0))
    box.export(path)


def _shapenet_tree(base: Path, bad: str | None = None) -> Path:
    """Two good chairs, caches built for them; ``bad`` (an OBJ text) becomes a third chair,
    listed in the split, whose cache does not exist yet."""
    root = base / "ShapeNetCore.v2"
    for i in range(2):
        _box(root / CHAIR / f"good{i}" / "models" / "model_normalized.obj", offset=0.1 * i)
    split = {CHAIR: {"train": ["good0"], "val": [], "test": ["good1"]}}
    (root / "split.json").write_text(json.dumps(split))
    ShapeNetDataModule(root, ["chair"], n_surface=600, progress=False).setup()
    if bad is not None:
        p = root / CHAIR / "bad" / "models" / "model_normalized.obj"
        p.parent.mkdir(parents=True)
        p.write_text(bad)
        split[CHAIR]["test"].append("bad")
        (root / "split.json").write_text(json.dumps(split))
    return root


@pytest.mark.parametrize(
    ("content", "field", "words"),
    [
        ("", "file", "empty"),
        ("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n", "vertices", "NaN"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\n", "faces", "triangle mesh"),
    ],
    ids=["empty", "nan_vertices", "no_faces"],
)
def test_bad_mesh_names_file_and_keeps_existing_caches(tmp_path, content, field, words):
    root = _shapenet_tree(tmp_path, bad=content)
    before = snapshot(tmp_path)  # the tree and its zoo_cache
    assert any("zoo_cache" in k and k.endswith(".npy") for k in before)
    with pytest.raises(DataError) as info:
        ShapeNetDataModule(root, ["chair"], n_surface=600, progress=False).setup()
    assert str(root / CHAIR / "bad" / "models" / "model_normalized.obj") in str(info.value)
    assert info.value.field == field and words in str(info.value), str(info.value)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((15000, 2), np.float32), "got (15000, 2)"),
        (np.zeros((15000, 3), np.int64), "dtype int64"),
    ],
    ids=["wrong_shape", "wrong_dtype"],
)
def test_bad_point_cloud_names_file_and_changes_nothing(tmp_path, array, words):
    root = tmp_path / "ShapeNetCore.v2.PC15k"
    good = root / CHAIR / "train" / "a.npy"
    good.parent.mkdir(parents=True)
    np.save(good, np.random.default_rng(0).normal(size=(15000, 3)).astype(np.float32))
    np.save(root / CHAIR / "train" / "b.npy", array)
    before = snapshot(root)
    with pytest.raises(DataError) as info:
        PC15kDataModule(root, ["chair"]).setup()
    assert str(root / CHAIR / "train" / "b.npy") in str(info.value) and words in str(info.value)
    assert info.value.field == "points"
    assert snapshot(root) == before


@pytest.mark.parametrize("missing", ["pos", "neg"])
def test_npz_without_pos_or_neg_names_file_and_changes_nothing(tmp_path, missing):
    rng = np.random.default_rng(0)
    pos = np.concatenate([rng.normal(size=(8, 3)), rng.uniform(0.01, 0.1, (8, 1))], 1)
    neg = np.concatenate([rng.normal(size=(8, 3)), -rng.uniform(0.01, 0.1, (8, 1))], 1)
    arrays = {"pos": pos.astype(np.float32), "neg": neg.astype(np.float32)}
    folder = tmp_path / "SdfSamples" / "ds" / CHAIR
    folder.mkdir(parents=True)
    np.savez(folder / "a.npz", **arrays)
    np.savez(folder / "b.npz", **{k: v for k, v in arrays.items() if k != missing})
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"ds": {CHAIR: ["a", "b"]}}))
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as info:
        DeepSDFDataModule(tmp_path, split, split).setup()
    assert str(folder / "b.npz") in str(info.value) and info.value.field == missing
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ CLI: real subprocesses
@pytest.fixture()
def existing_run(tiny_single) -> tuple[Path, dict]:
    """The reference run's folder (checkpoints, metrics.json) and a snapshot of it: every
    failing command below writes into that same run folder and must leave it unchanged."""
    run_dir, _ = tiny_single
    return run_dir, snapshot(run_dir)


@pytest.mark.slow
def test_cli_dataset_root_missing(existing_run, tmp_path):
    run_dir, before = existing_run
    root = tmp_path / "nowhere"
    proc = run("zoo.train", *tiny_base(run_dir, "data=shapenet", f"data.root={root}"))
    _assert_fails_with_one_line(proc, f"error: {root}: field 'root'", "does not exist")
    assert snapshot(run_dir) == before and not root.exists()


@pytest.mark.slow
def test_cli_no_shapes_of_category_keeps_dataset_and_cache(existing_run, tmp_path):
    run_dir, before = existing_run
    root = _shapenet_tree(tmp_path / "data")
    data_before = snapshot(tmp_path / "data")
    args = tiny_base(run_dir, "data=shapenet", f"data.root={root}", "data.categories=[mug]")
    proc = run("zoo.train", *args)
    _assert_fails_with_one_line(proc, f"error: {root / MUG}: field 'category'", "'mug'")
    assert snapshot(run_dir) == before
    assert snapshot(tmp_path / "data") == data_before


@pytest.mark.slow
def test_cli_point_cloud_of_wrong_shape(existing_run, tmp_path):
    run_dir, before = existing_run
    root = tmp_path / "pc"
    (root / CHAIR / "train").mkdir(parents=True)
    np.save(root / CHAIR / "train" / "a.npy", np.zeros((15000, 3), np.float32))
    bad = root / CHAIR / "train" / "b.npy"
    np.save(bad, np.zeros((100, 3, 1), np.float32))
    args = tiny_base(run_dir, "data=pc15k", f"data.root={root}", "data.categories=[chair]")
    proc = run("zoo.train", *args)
    _assert_fails_with_one_line(proc, f"error: {bad}: field 'points'", "got (100, 3, 1)")
    assert snapshot(run_dir) == before


@pytest.mark.slow
@pytest.mark.parametrize("group", ["model", "data"])
def test_cli_unknown_model_or_data_name(tmp_path, group):
    proc = run("zoo.train", f"{group}=no_such_thing", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode != 0
    assert f"Could not find '{group}/no_such_thing'" in proc.stderr  # Hydra's own message
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cli_wrong_typed_override(existing_run, synth_root):
    run_dir, before = existing_run
    proc = run("zoo.train", *tiny_args(synth_root, run_dir, "trainer.max_steps=abc"))
    _assert_fails_with_one_line(
        proc, "error: trainer.max_steps: expected an integer, got 'abc' (str)"
    )
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_cli_checkpoint_of_another_model_is_refused(existing_run, tmp_path):
    run_dir, before = existing_run
    ckpt = run_dir / "checkpoints" / "last.ckpt"  # a tiny_points checkpoint
    args = ["model=nerf", f"data.root={tmp_path / 'data'}", f"ckpt_path={ckpt}"]
    proc = run("zoo.train", *args, f"hydra.run.dir={run_dir}")
    _assert_fails_with_one_line(
        proc, f"error: {ckpt}: checkpoint of model 'tiny_points', cannot resume model 'nerf'"
    )
    assert snapshot(run_dir) == before and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_cli_truncated_checkpoint_is_refused(existing_run, synth_root, tmp_path):
    run_dir, before = existing_run
    cut = tmp_path / "cut.ckpt"
    data = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    proc = run("zoo.train", *tiny_args(synth_root, run_dir, f"ckpt_path={cut}"))
    _assert_fails_with_one_line(proc, f"error: {cut}: not a readable checkpoint")
    assert snapshot(run_dir) == before


class _Payload:
    """Unpickling this would create a folder (stands for arbitrary code)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.slow
def test_cli_malicious_checkpoint_is_refused_without_running_it(existing_run, synth_root, tmp_path):
    run_dir, before = existing_run
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "zoo": _Payload(str(marker))}, evil)
    proc = run("zoo.train", *tiny_args(synth_root, run_dir, f"ckpt_path={evil}"))
    _assert_fails_with_one_line(proc, f"error: {evil}: refused")
    assert not marker.exists()
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_cli_eval_refuses_checkpoint_of_a_foreign_model(tmp_path):
    """A Lightning checkpoint of some other program's model (no ``zoo`` field)."""
    ckpt = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(2, 2)}, "global_step": 3}, ckpt)
    before = ckpt.read_bytes()
    proc = run("zoo.eval", f"ckpt={ckpt}")
    _assert_fails_with_one_line(proc, f"error: {ckpt}: not a zoo checkpoint")
    assert ckpt.read_bytes() == before and not ckpt.with_suffix(".metrics.json").exists()


@pytest.mark.slow
def test_cli_multiscale_metadata_without_a_field(existing_run, tmp_path):
    """data=multiscale whose metadata.json lacks ``lossmult``: one line naming the file and
    the field, exit 2, the run folder and the data unchanged."""
    from zoo.data.formats.multiscale_blender import write_multiscale

    run_dir, before = existing_run
    src = _scene(tmp_path / "scene")
    dst = write_multiscale(src, tmp_path / "ms", levels=2)
    meta = dst / "metadata.json"
    meta.write_text(
        json.dumps({"train": {**json.loads(meta.read_text())["train"], "lossmult": None}})
    )
    data_before = snapshot(dst)
    args = ["model=mipnerf", "data=multiscale", f"data.root={dst}", f"hydra.run.dir={run_dir}"]
    proc = run("zoo.train", *args)
    _assert_fails_with_one_line(proc, f"error: {meta}: field 'train.lossmult'")
    assert snapshot(run_dir) == before and snapshot(dst) == data_before
