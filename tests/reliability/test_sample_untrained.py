"""``zoo.sample`` on a checkpoint of every registered model after one training step: a model
that cannot make an output yet (a radiance field with no surface at its iso-level, an empty
voxel grid) still writes what it can, says in one ``warning:`` line what it skipped and exits 0;
never a traceback. Every output path is exercised: meshes, points, renders, turntable, grid."""

from __future__ import annotations

import pytest

from tests.helpers.tiny_runs import registered_names, tiny_run_args
from tests.reliability.clirun import check, run

pytestmark = pytest.mark.slow


def _names(classifier: bool) -> list[str]:
    """Registered models that are (or are not) classifiers: classifiers draw no shapes."""
    from zoo.models.registry import registered_models

    models = registered_models()
    return [m for m in registered_names() if bool(models[m].classifier) == classifier]


def _train_one_step(model: str, synth_root, tmp_path):
    """The checkpoint of ``model`` after one tiny training step."""
    run_dir = tmp_path / "run"
    check(
        run(
            "zoo.train",
            *tiny_run_args(model, synth_root, run_dir, "logger=none", "trainer.max_steps=1"),
        )
    )
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("model", _names(classifier=False))
def test_sample_of_an_untrained_checkpoint_writes_what_it_can(model, synth_root, tmp_path):
    ckpt = _train_one_step(model, synth_root, tmp_path)
    out = tmp_path / "samples"
    proc = run(
        "zoo.sample",
        f"ckpt={ckpt}",
        "n=2",
        f"out={out}",
        "render_size=32",
        "turntable_frames=4",
        "turntable_size=24",
        "mesh_resolution=24",
        f"hydra.run.dir={tmp_path / 's'}",
    )
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text[-3000:]
    assert proc.returncode == 0, text[-3000:]
    written = sorted(p.name for p in out.iterdir())
    # Renders, turntables and the grid exist for every model, surface or not.
    for i in range(2):
        assert f"{model}_{i:03d}.png" in written, written
        assert f"{model}_{i:03d}_turntable.gif" in written, written
    assert "grid.png" in written
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("wrote ")]
    assert len(lines) == len(written), (lines, written)
    # What is missing is said, one line per skipped output.
    for i in range(2):
        if f"{model}_{i:03d}.obj" not in written:
            assert f"warning: shape {i}: no surface" in proc.stdout, proc.stdout
        if f"{model}_{i:03d}_points.ply" not in written:
            assert f"warning: shape {i}: no surface points" in proc.stdout, proc.stdout


@pytest.mark.parametrize("model", _names(classifier=True))
def test_classifier_sample_is_refused_with_one_line(model, synth_root, tmp_path):
    """``zoo.sample`` on a classifier (PointNet): one ``error:`` line, exit 2, nothing written."""
    ckpt = _train_one_step(model, synth_root, tmp_path)
    out = tmp_path / "samples"
    proc = run(
        "zoo.sample",
        f"ckpt={ckpt}",
        f"out={out}",
        f"hydra.run.dir={tmp_path / 's'}",
    )
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text and proc.returncode == 2, text[-3000:]
    assert "error:" in proc.stderr and "classifier" in proc.stderr
    assert not out.exists()
