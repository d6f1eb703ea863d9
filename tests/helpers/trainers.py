"""Quiet, short Lightning trainers for the models' training tests."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl


def short_trainer(
    root: Path | None, steps: int, val_every: int, sanity_steps: int = 2
) -> pl.Trainer:
    """A quiet CPU trainer for ``steps`` steps validating one batch every ``val_every`` steps
    (across epochs), after ``sanity_steps`` sanity-check batches; files under ``root``."""
    return pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=sanity_steps,
        default_root_dir=root,
    )
