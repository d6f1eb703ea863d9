"""A NaN / infinite loss stops training cleanly; a full disk at a checkpoint is one error line;
``logger=none`` trains (no LR-monitor error)."""

from __future__ import annotations

import os

import pytest
import torch

from tests.reliability.clirun import check, ckpt_step, last_line, run, tiny_args

pytestmark = pytest.mark.slow


def test_nan_loss_stops_with_one_line_and_keeps_last_good_checkpoint(synth_root, tmp_path):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    proc = run(
        "zoo.train",
        *tiny_args(
            synth_root,
            run_dir,
            "model.nan_at_step=12",  # the loss (and so the update) is NaN from step 12 on
            "callbacks.checkpoint.every_n_train_steps=5",
            "trainer.max_steps=40",
        ),
    )
    assert proc.returncode == 3, proc.stderr
    line = last_line(proc.stderr)
    assert line.startswith("error: training stopped: non-finite training loss"), line
    assert "loss = nan at step 12" in line and f"last good checkpoint kept: {last}" in line, line
    assert "Traceback" not in proc.stderr
    # The last checkpoint is the last good one (step 10), with finite weights; nothing after
    # the NaN step was saved, and no metrics were written.
    ck = torch.load(last, map_location="cpu", weights_only=True)
    assert ck["global_step"] == 10
    assert torch.isfinite(ck["state_dict"]["cloud"]).all()
    assert all(ckpt_step(p) <= 10 for p in run_dir.rglob("*.ckpt"))
    assert not (run_dir / "metrics.json").exists()


def test_logger_none_trains_and_checkpoints(tiny_single):
    """``logger=none`` used to fail: LearningRateMonitor refuses a Trainer without logger."""
    run_dir, stdout = tiny_single
    assert f"checkpoint: {run_dir / 'checkpoints' / 'last.ckpt'}" in stdout
    assert ckpt_step(run_dir / "checkpoints" / "last.ckpt") == 40  # the tiny config's max_steps
    assert not (run_dir / "csv").exists() and not (run_dir / "tensorboard").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_full_disk_at_a_checkpoint_is_one_error_line_and_keeps_the_last_good(synth_root, tmp_path):
    """The disk fills between two checkpoints (every write fails with ENOSPC from step 15 on):
    one ``error:`` line naming the file that could not be written and the last good
    checkpoint, exit status 2, no traceback, no partial file; after space is freed the same
    command with resume=true continues from that checkpoint to the end."""
    run_dir = tmp_path / "run"
    ckpts = run_dir / "checkpoints"
    args = tiny_args(
        synth_root,
        run_dir,
        "logger=none",
        "callbacks.checkpoint.every_n_train_steps=10",
        "trainer.max_steps=40",
    )
    proc = run(
        "zoo.train",
        *args,
        "+callbacks.full._target_=tests.reliability.clirun.FullDisk",
        "+callbacks.full.at_step=15",
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    line = errors[0]
    assert f"{ckpts / 'step0000020.ckpt'}: cannot write the checkpoint" in line, line
    assert "No space left on device" in line and "(step 10)" in line, line
    assert "resume=true" in line, line
    # Only complete checkpoints, all of step 10 (the good one is named), no temporary file.
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step0000010.ckpt"]
    assert any(f"{ckpts / name} (step 10)" in line for name in ("last.ckpt", "step0000010.ckpt"))
    assert all(ckpt_step(p) == 10 for p in ckpts.iterdir())
    assert not (run_dir / "metrics.json").exists()
    resumed = check(run("zoo.train", *args, "resume=true"))
    assert f"resuming from {ckpts / 'last.ckpt'}" in resumed.stdout
    assert ckpt_step(ckpts / "last.ckpt") == 40
