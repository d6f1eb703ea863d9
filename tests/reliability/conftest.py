"""Shared data and one reference training run for the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.clirun import check, run, tiny_args


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """The synthshapes data (chair and mug, 5 shapes each) every CLI run here trains on."""
    from zoo.data.synthshapes import ensure_synthshapes

    root = tmp_path_factory.mktemp("synth")
    ensure_synthshapes(root, ["chair", "mug"], 5, seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_single(synth_root, tmp_path_factory) -> tuple[Path, str]:
    """One uninterrupted single-process run of the tiny model (40 steps, ``logger=none``):
    the reference of the DDP test and the "existing output" that failing commands must leave
    untouched. Returns (run directory, stdout)."""
    run_dir = tmp_path_factory.mktemp("tiny_single") / "run"
    proc = check(run("zoo.train", *tiny_args(synth_root, run_dir, "logger=none", "seed=0")))
    return run_dir, proc.stdout
