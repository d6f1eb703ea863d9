"""A NaN / infinite loss stops training cleanly; ``logger=none`` trains (no LR-monitor error)."""

from __future__ import annotations

import pytest
import torch

from tests.reliability.clirun import ckpt_step, last_line, run, tiny_args

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
