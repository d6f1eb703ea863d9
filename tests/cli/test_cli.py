"""The three commands a user types, run as real subprocesses on a tiny model and dataset.

`tests/helpers/tiny_points.py` is a minimal real model (a learnable point set fitted by
Chamfer) so the train -> checkpoint -> eval -> sample plumbing is proven in seconds.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _run(
    args: list[str], tmp: Path, check: bool = True, warnings: bool = False
) -> subprocess.CompletedProcess:
    """``python -m <args>``; ``warnings``: Python warnings shown (no PYTHONWARNINGS=ignore)."""
    env = dict(os.environ, ZOO_TRUSTED_MODULES="tests.helpers.", PYTHONWARNINGS="ignore")
    if warnings:
        env.pop("PYTHONWARNINGS")
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _train_args(tmp: Path, run: str) -> list[str]:
    return [
        "zoo.train",
        f"hydra.searchpath=[file://{REPO}/tests/conf]",
        "model=tiny_points",
        f"data.root={tmp}/synth",
        "data.categories=[chair,mug]",
        "data.shapes_per_category=5",
        "data.batch_size=4",
        "eval.max_shapes=3",
        "eval.recon_points=1024",
        "eval.n_boot=50",
        "eval.mesh_resolution=32",
        "trainer.log_every_n_steps=1",
        f"hydra.run.dir={tmp}/{run}",
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    # Warnings on, as a user sees them: the output is checked for library noise below.
    proc = _run(_train_args(tmp, "run"), tmp, warnings=True)
    return tmp, proc


def test_train_prints_metrics_and_checkpoint(trained):
    tmp, proc = trained
    ckpt = re.search(r"^checkpoint: (.+)$", proc.stdout, re.M)
    assert ckpt, proc.stdout
    assert Path(ckpt.group(1)).is_file()
    for key in ("gen/1nna_cd", "recon/chamfer_l2", "recon/fscore@0.01"):
        assert key in proc.stdout
    metrics = json.loads((tmp / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["recon/fscore@0.01"] <= 1.0


def test_train_logs_csv_and_tensorboard_and_loss_falls(trained):
    tmp, _ = trained
    rows = list(csv.DictReader(open(tmp / "run" / "csv" / "metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 3
    assert losses[-1] < 0.5 * losses[0], losses
    assert list((tmp / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp / "run" / "checkpoints" / "last.ckpt").is_file()


def test_train_ends_with_a_summary_of_results_and_next_commands(trained):
    tmp, proc = trained
    run, ckpt = tmp / "run", tmp / "run" / "checkpoints" / "last.ckpt"
    tail = proc.stdout[proc.stdout.index(f"checkpoint: {ckpt}") :]
    assert f"results in {run}:" in tail
    assert re.search(rf"^  metrics: +{re.escape(str(run / 'metrics.json'))}$", tail, re.M)
    assert re.search(rf"^  log: +{re.escape(str(run / 'train.log'))}$", tail, re.M)
    assert f"tensorboard --logdir {run / 'tensorboard'}" in tail
    for module in ("zoo.sample", "zoo.eval", "zoo.view"):
        assert f"python -m {module} ckpt={ckpt}" in tail, module


def test_train_log_holds_the_run(trained):
    tmp, _ = trained
    text = (tmp / "run" / "train.log").read_text()
    assert "config:" in text and "model:\n  _target_: tests.helpers.tiny_points" in text
    assert "data: {" in text  # the datamodule's description
    assert re.search(r"validation step 20/40: .*train/loss=", text)  # a milestone
    assert "training ended at step 40/40" in text
    assert re.search(r"recon/chamfer_l2 +[0-9.e-]+", text)  # the metrics
    assert "checkpoint: " in text and "python -m zoo.eval ckpt=" in text


def test_train_output_has_no_library_noise(trained):
    _, proc = trained
    out = proc.stdout + proc.stderr
    assert "params: 768" in proc.stdout  # the model table is still there
    assert "FLOPs" not in out
    assert "LeafSpec" not in out and "_pytree" not in out


def test_eval_reproduces_training_metrics_and_writes_json(trained):
    tmp, _ = trained
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    args = ["eval.max_shapes=3", "eval.recon_points=1024", "eval.n_boot=50"]
    proc = _run(["zoo.eval", f"ckpt={ckpt}", *args, "eval.mesh_resolution=32"], tmp)
    out = ckpt.with_suffix(".metrics.json")
    assert f"metrics: {out}" in proc.stdout
    evaluated = json.loads(out.read_text())
    trained_metrics = json.loads((tmp / "run" / "metrics.json").read_text())
    assert evaluated.keys() == trained_metrics.keys()
    for k, v in trained_metrics.items():
        assert evaluated[k] == pytest.approx(v, rel=1e-5, abs=1e-7), k


def test_sample_writes_files_common_viewers_open(trained):
    tmp, _ = trained
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    out = tmp / "samples"
    _run(["zoo.sample", f"ckpt={ckpt}", "n=2", f"out={out}", "render_size=64"], tmp)
    for suffix in ("obj", "ply", "glb"):
        mesh = trimesh.load(out / f"tiny_points_000.{suffix}", force="mesh")
        assert len(mesh.faces) > 0
    cloud = trimesh.load(out / "tiny_points_001_points.ply")
    assert np.asarray(cloud.vertices).shape == (2048, 3)
    import imageio.v3 as iio

    assert iio.imread(out / "tiny_points_000.png").shape == (64, 256, 3)
    assert (out / "grid.png").is_file()


def _drawn_fraction(path: Path) -> float:
    """The share of a PNG's pixels that differ from its white background."""
    import imageio.v3 as iio

    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[2] == 3, image.shape
    return float((image < 250).any(axis=-1).mean())


def test_sample_a_pretrained_entry_draws_its_points(tmp_path):
    out = tmp_path / "samples"
    args = ["n=2", f"out={out}", "mesh_resolution=32", "render_size=64", "turntable=false"]
    _run(["zoo.sample", "pretrained=voxel_gan-synthshapes", *args, "formats=[obj]"], tmp_path)
    for i in range(2):
        assert (out / f"voxel_gan_{i:03d}.obj").is_file()
        cloud = trimesh.load(out / f"voxel_gan_{i:03d}_points.ply")
        assert np.asarray(cloud.vertices).shape == (2048, 3)
    for name in ("grid.png", "points_grid.png"):
        assert 0.01 < _drawn_fraction(out / name) < 0.9, name
    assert not (out / "samples_vs_references.png").exists()  # references=0 by default


def test_sample_draws_held_out_references_beside_the_samples(trained):
    tmp, _ = trained
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    out = tmp / "samples_refs"
    args = ["n=2", "references=2", f"out={out}", "render_size=64", "turntable=false"]
    _run(["zoo.sample", f"ckpt={ckpt}", *args, "mesh_resolution=32", "formats=[obj]"], tmp)
    import imageio.v3 as iio

    both = iio.imread(out / "samples_vs_references.png")
    grid = iio.imread(out / "points_grid.png")
    assert grid.shape == (64, 128, 3)
    assert both.shape[0] > 64 and both.shape[1] > 2 * 128  # captions above, a gap between
    half = both.shape[1] // 2
    for side in (both[:, :half], both[:, half:]):
        below_caption = side[-64:]
        assert (below_caption < 250).any(axis=-1).mean() > 0.01  # shapes drawn on each side
        assert (side[: both.shape[0] - 64] < 128).any()  # a caption line above


def test_eval_bad_checkpoint_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    proc = _run(["zoo.eval", f"ckpt={bad}"], tmp_path, check=False)
    assert proc.returncode == 2
    assert f"error: {bad}: not a readable checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_multirun_trains_several(trained):
    tmp, _ = trained
    args = _train_args(tmp, "unused") + ["seed=1,2", f"hydra.sweep.dir={tmp}/multi"]
    args = [a for a in args if not a.startswith("hydra.run.dir")]
    proc = _run(args + ["trainer.max_steps=5", "-m"], tmp)
    assert proc.stdout.count("checkpoint: ") == 2
    assert len(list((tmp / "multi").glob("*/checkpoints/last.ckpt"))) == 2
