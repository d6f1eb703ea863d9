"""``zoo.sample``'s refusals, run in-process on its own config: one ``error:`` line, exit 2.

The commands themselves (a pretrained entry, ``references=``) run as subprocesses in
``tests/cli/test_cli.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from zoo.cli_utils import CONF_DIR
from zoo.sample import run_sample


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    """run_sample's quiet_lightning sets PYTHONWARNINGS when unset; undone after each test."""
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::UserWarning")


def _refused(capsys, tmp_path: Path, **overrides) -> str:
    cfg = OmegaConf.load(Path(CONF_DIR) / "sample.yaml")
    cfg.out = str(tmp_path / "samples")
    cfg.merge_with(overrides)
    with pytest.raises(SystemExit) as e:
        run_sample(cfg)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not (tmp_path / "samples").exists()  # refused before writing anything
    return err[0]


@pytest.mark.parametrize(
    "given",
    [{}, {"ckpt": "x.ckpt", "pretrained": "voxel_gan-synthshapes"}],
    ids=["neither", "both"],
)
def test_needs_exactly_one_of_ckpt_and_pretrained(capsys, tmp_path, given):
    line = _refused(capsys, tmp_path, **given)
    assert "ckpt=<path> | pretrained=<name>" in line and "zoo.sample" in line


def test_unknown_pretrained_name_is_the_registry_error(capsys, tmp_path):
    line = _refused(capsys, tmp_path, pretrained="no-such-model")
    assert "no pretrained model 'no-such-model' (known: " in line
    assert "voxel_gan-synthshapes" in line  # the known names are listed


@pytest.mark.parametrize("bad", [-1, "many", True])
def test_references_must_be_a_count(capsys, tmp_path, bad):
    line = _refused(capsys, tmp_path, pretrained="voxel_gan-synthshapes", references=bad)
    assert line.startswith("error: references: ")


def test_category_needs_a_class_conditional_model(capsys, tmp_path):
    line = _refused(capsys, tmp_path, pretrained="voxel_gan-synthshapes", category="chair")
    assert "voxel_gan is not class-conditional" in line and "category=chair" in line


def test_unknown_category_lists_the_known_ones(capsys, tmp_path):
    line = _refused(capsys, tmp_path, pretrained="deepsdf-synthshapes", category="sofa")
    assert "deepsdf-synthshapes: category=sofa: unknown category 'sofa'" in line
    assert "chair (03001627)" in line


def test_category_without_a_fitted_prior_is_refused(capsys, tmp_path):
    """The shipped mesh_gcn weights predate the per-category prior (its codes need the data)."""
    line = _refused(capsys, tmp_path, pretrained="mesh_gcn-synthshapes", category="chair")
    assert "'chair' has no fitted prior" in line


def test_classifier_verdict_counts_and_json(capsys, tmp_path):
    """The zoo's PointNet labels two held-out-like chairs and a table (new seeds)."""
    import json

    from zoo.data.synthshapes import generate_shape
    from zoo.ops.surface import sample_surface
    from zoo.sample import _classify

    clouds = [
        sample_surface(generate_shape(c, 90_000 + i, resolution=32).mesh, 2048, seed=i)[0]
        for i, c in enumerate(["chair", "chair", "table"])
    ]
    written = _classify("pointnet-synthshapes", [clouds[0], None, *clouds[1:]], "chair", tmp_path)
    out = capsys.readouterr().out.strip()
    assert out == "classified_as (pointnet-synthshapes): chair 2/3, table 1/3", out
    record = json.loads(written[0].read_text())
    assert record["counts"] == {"chair": 2, "table": 1} and record["n"] == 3
    assert record["classified_as"] == 2 / 3 and record["predicted"] == ["chair", "chair", "table"]
