"""Lightning DDP through the CLI: two CPU processes (gloo, ``ddp_spawn``) train the tiny model
to the same final step, and its metrics match a single-process run within tolerance.

Why a tolerance and not equality: with two ranks each step averages the gradients of two
batches of 4 shapes (8 shapes per step instead of 4), and the distributed sampler deals each
rank a different half of the shapes in a different order, so the 40 Adam steps follow another
path. The tiny model (a 256-point cloud fitted to the training shapes by Chamfer) converges to
nearly the same cloud either way. Measured (2 CPU cores): Chamfer-L2 0.00464 single vs 0.00445
DDP (4 % apart), Chamfer-L1 0.0395 vs 0.0391 (1 %); after one step they are 0.0261 and 0.0902,
5.6x and 2.3x larger. The 15 % tolerance is about 4x the observed gap and far below the gap to
an untrained model, so a DDP run that did not train fails (checked on its loss curve too).
"""

from __future__ import annotations

import csv
import json

import pytest

from tests.helpers.tiny_runs import registered_names
from tests.reliability.clirun import check, ckpt_step, run, tiny_args
from tests.viewer.browser import free_port

pytestmark = pytest.mark.slow


def test_ddp_spawn_two_cpu_processes_matches_single_process(synth_root, tiny_single, tmp_path):
    single_dir, _ = tiny_single
    run_dir = tmp_path / "ddp"
    proc = check(
        run(
            "zoo.train",
            *tiny_args(
                synth_root,
                run_dir,
                "seed=0",
                "trainer.accelerator=cpu",
                "trainer.devices=2",
                "trainer.strategy=ddp_spawn",
            ),
        )
    )
    assert proc.stdout.count("checkpoint: ") == 1  # evaluated once, in the launching process
    assert ckpt_step(run_dir / "checkpoints" / "last.ckpt") == 40

    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 3 and losses[-1] < 0.5 * losses[0], losses

    ddp = json.loads((run_dir / "metrics.json").read_text())
    single = json.loads((single_dir / "metrics.json").read_text())
    assert ddp.keys() == single.keys()
    for key in ("recon/chamfer_l2", "recon/chamfer_l1"):
        assert ddp[key] == pytest.approx(single[key], rel=0.15), (key, ddp[key], single[key])


# ---------------------------------------------------------------- every registered model
# Measured gaps between one process and two (ddp_spawn and torchrun gave identical metrics),
# tiny runs of tests/helpers/tiny_runs.py, 2-core AMD EPYC: Chamfer-L2 voxel_gan 8 %,
# pointflow 1 %, mesh_gcn 3 %, deepsdf 16 %; PSNR nerf 0.00 dB (each rank's half batch is
# half of the single process's batch, so the averaged gradient is the same), ngp 0.01 dB.
SHAPE_RTOL = 0.35  # about 2x the largest gap; an untrained model is 1.5-5x further off
PSNR_ATOL_DB = 0.5


@pytest.fixture(scope="module")
def single_runs(synth_root, tmp_path_factory):
    """One single-process tiny run per model, made on first use: {model: metrics}."""
    from tests.helpers.tiny_runs import tiny_run_args

    cache: dict[str, dict] = {}

    def get(model: str) -> dict:
        if model not in cache:
            run_dir = tmp_path_factory.mktemp(f"single_{model}") / "run"
            check(run("zoo.train", *tiny_run_args(model, synth_root, run_dir, "logger=none")))
            cache[model] = json.loads((run_dir / "metrics.json").read_text())
        return cache[model]

    return get


def _ddp_cases() -> list[tuple[str, str]]:
    """Every registered model under ``ddp_spawn``, and under ``torchrun`` the first model of
    each data form (voxels, points, mesh, sdf, views): torchrun differs from ddp_spawn in the
    launch (every rank runs the whole script, data preparation included) and in nothing a
    model sees, so one model per datamodule covers it; the measured metrics of the two
    launchers were identical for every model (comment above)."""
    from zoo.models.registry import registered_models

    models = registered_models()
    cases = [(m, "ddp_spawn") for m in registered_names()]
    forms: set[str] = set()
    for m in registered_names():
        if models[m].data_form not in forms:
            forms.add(models[m].data_form)
            cases.append((m, "torchrun"))
    return cases


@pytest.mark.parametrize(("model", "launcher"), _ddp_cases())
def test_every_model_trains_under_ddp(
    model, launcher, synth_root, single_runs, tmp_path, record_property
):
    """Two CPU processes (gloo), each with half the single process's batch, reach max_steps,
    write one checkpoint (rank 0) and score close to the single-process run."""
    import subprocess
    import sys

    from tests.helpers.tiny_runs import TINY, tiny_run_args
    from tests.reliability.clirun import REPO, cli_env
    from zoo.models.registry import registered_models

    views = registered_models()[model].data_form == "views"
    half = "data.rays_per_batch=64" if views else "data.batch_size=2"
    run_dir = tmp_path / "run"
    args = tiny_run_args(
        model,
        synth_root,
        run_dir,
        "logger=none",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        half,
        f"trainer.strategy={'ddp_spawn' if launcher == 'ddp_spawn' else 'ddp'}",
    )
    unsupported = getattr(registered_models()[model], "ddp_unsupported", None)
    if launcher == "ddp_spawn":
        proc = run("zoo.train", *args)
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node=2",
            f"--master-port={free_port()}",
            "-m",
            "zoo.train",
            *args,
        ]
        proc = subprocess.run(
            cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300
        )
    if unsupported:  # said before anything trains: one error line, exit 2, no traceback
        # (torchrun itself reports a failed child with its own traceback; none from zoo code)
        assert proc.returncode != 0 and "/zoo/" not in proc.stderr, proc.stderr[-2000:]
        if launcher == "ddp_spawn":
            assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
        assert errors and "not supported yet" in errors[0], proc.stderr[-2000:]
        assert not (run_dir / "checkpoints" / "last.ckpt").exists()
        return
    check(proc)
    assert proc.stdout.count("checkpoint: ") == 1, proc.stdout[-2000:]  # rank 0 evaluates once
    max_steps = next(int(o.split("=")[1]) for o in TINY[model] if "max_steps" in o)
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    assert ckpts == ["last.ckpt"], ckpts
    assert ckpt_step(run_dir / "checkpoints" / "last.ckpt") == max_steps

    got = json.loads((run_dir / "metrics.json").read_text())
    want = single_runs(model)
    key = next(k for k in ("view/psnr", "cls/accuracy", "recon/chamfer_l2") if k in want)
    record_property(key, {"ddp": got[key], "single": want[key]})  # in --junitxml reports
    if key == "cls/accuracy":  # a classifier on two held-out shapes after 10 steps: 0, 1/2, 1
        assert 0.0 <= got[key] <= 1.0 and 0.0 <= want[key] <= 1.0, (got, want)
    elif "view/psnr" in want:
        assert abs(got["view/psnr"] - want["view/psnr"]) <= PSNR_ATOL_DB, (got, want)
    else:
        key = "recon/chamfer_l2"
        assert got[key] == pytest.approx(want[key], rel=SHAPE_RTOL), (key, got[key], want[key])
