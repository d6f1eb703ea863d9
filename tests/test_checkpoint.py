"""Checkpoints are written atomically and loaded without running pickled code."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

import zoo.data.io
from zoo.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    atomic_torch_save,
    load_model,
    read_checkpoint,
)

TINY_CFG = {
    "_target_": "tests.helpers.tiny_points.TinyPointSet",
    "n_points": 16,
    "optimizer": None,
}


@pytest.fixture(autouse=True)
def trust_tests(monkeypatch):
    monkeypatch.setenv("ZOO_TRUSTED_MODULES", "tests.helpers.")


def _tiny_checkpoint(path: Path, **zoo_overrides) -> dict:
    from tests.helpers.tiny_points import TinyPointSet

    model = TinyPointSet(n_points=16)
    with torch.no_grad():
        model.cloud.add_(1.0)
    ckpt = {
        "state_dict": model.state_dict(),
        "zoo": {"model_name": "tiny_points", "model_cfg": TINY_CFG, "data_info": {}}
        | zoo_overrides,
    }
    atomic_torch_save(ckpt, path)
    return ckpt


def test_round_trip_restores_weights(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "a.ckpt")
    model, meta = load_model(tmp_path / "a.ckpt")
    assert torch.equal(model.cloud, ckpt["state_dict"]["cloud"])
    assert meta["model_name"] == "tiny_points"
    assert not model.training
    assert [p.name for p in tmp_path.iterdir()] == ["a.ckpt"]  # no temp file left behind


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nope.ckpt: no such checkpoint"):
        load_model(tmp_path / "nope.ckpt")


def test_truncated_checkpoint_is_refused(tmp_path):
    _tiny_checkpoint(tmp_path / "a.ckpt")
    data = (tmp_path / "a.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.ckpt: not a readable checkpoint"):
        load_model(tmp_path / "cut.ckpt")


class _Payload:
    """Unpickling this would create a marker file (stands for arbitrary code)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "zoo": _Payload(str(marker))}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="evil.ckpt: refused"):
        read_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_checkpoint_of_another_model_is_refused(tmp_path):
    _tiny_checkpoint(tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError, match="checkpoint of model 'tiny_points', expected 'nerf'"):
        load_model(tmp_path / "a.ckpt", expect_model="nerf")


def test_untrusted_target_is_not_instantiated(tmp_path):
    _tiny_checkpoint(tmp_path / "a.ckpt", model_cfg={"_target_": "os.system", "command": "true"})
    with pytest.raises(CheckpointError, match="refusing to instantiate 'os.system'"):
        load_model(tmp_path / "a.ckpt")


def test_foreign_file_without_zoo_field(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointError, match="not a zoo checkpoint"):
        load_model(tmp_path / "plain.ckpt")


def test_weights_of_wrong_shape_are_refused(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "a.ckpt")
    ckpt["state_dict"]["cloud"] = torch.zeros(3, 3)
    atomic_torch_save(ckpt, tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError, match="weights do not fit model 'tiny_points'"):
        load_model(tmp_path / "a.ckpt")


def test_interrupted_save_leaves_old_file_intact(tmp_path, monkeypatch):
    _tiny_checkpoint(tmp_path / "a.ckpt")
    before = (tmp_path / "a.ckpt").read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"x": 1}, tmp_path / "a.ckpt")
    assert (tmp_path / "a.ckpt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.ckpt"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_full_disk_save_raises_one_clear_error_and_leaves_old_file_intact(tmp_path, monkeypatch):
    """Writes that fail with ENOSPC (``/dev/full``): torch's zip writer would add a second
    ``RuntimeError: unexpected pos``; atomic_torch_save raises one CheckpointWriteError naming
    the file, removes its temporary file and leaves the older checkpoint as it was."""
    _tiny_checkpoint(tmp_path / "a.ckpt")
    before = (tmp_path / "a.ckpt").read_bytes()

    def full_disk(path, mode="r", *args, **kwargs):  # the writer's temp file is on a full disk
        return open("/dev/full", mode, *args, **kwargs) if "w" in mode else open(path, mode)

    monkeypatch.setattr(zoo.data.io, "open", full_disk, raising=False)
    with pytest.raises(CheckpointWriteError) as info:
        atomic_torch_save({"w": torch.zeros(100_000)}, tmp_path / "a.ckpt")
    assert str(info.value) == f"{tmp_path / 'a.ckpt'}: cannot write the checkpoint: " + (
        os.strerror(errno.ENOSPC)
    )
    assert (tmp_path / "a.ckpt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.ckpt"]
