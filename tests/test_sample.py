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
