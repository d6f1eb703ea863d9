"""SIGKILL at any moment, then the same command with ``resume=true``, ends at the same final
step as an uninterrupted run, and no checkpoint on disk is ever half-written.

Each training subprocess is slowed by a test-only callback (``clirun.Throttle``, 0.1 s per
step) so that it is reliably killed mid-training, right after its first checkpoint appears
(possibly while it is writing the next one).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch

from tests.reliability.clirun import (
    REPO,
    check,
    ckpt_step,
    cli_env,
    command,
    nerf_args,
    run,
    tiny_args,
    wait_for,
)

pytestmark = pytest.mark.slow
MAX_STEPS = 40


def _throttled(record) -> list[str]:
    """Overrides of a 40-step run checkpointed every 10 steps, slowed to 0.1 s a step, that
    records the step of each process's first batch in ``record``."""
    return [
        f"trainer.max_steps={MAX_STEPS}",
        "callbacks.checkpoint.every_n_train_steps=10",
        "logger=none",
        "+callbacks.throttle._target_=tests.reliability.clirun.Throttle",
        "+callbacks.throttle.seconds=0.1",
        f"+callbacks.throttle.record={record}",
    ]


def _stop_after_first_checkpoint(args, last, logs, kill: bool) -> subprocess.Popen:
    """Start ``zoo.train`` with ``args`` and, once ``last`` exists, send SIGKILL (``kill``:
    no handler, no cleanup) or SIGTERM; stdout / stderr go to ``logs``.out / .err."""
    out_path, err_path = logs.with_suffix(".out"), logs.with_suffix(".err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            command("zoo.train", *args), cwd=REPO, env=cli_env(), stdout=out, stderr=err
        )
        try:
            wait_for(last, proc)
        finally:
            proc.kill() if kill else proc.terminate()
            proc.wait()
    return proc


@pytest.mark.parametrize("model", ["tiny_points", "nerf"])
def test_sigkill_then_resume_ends_at_max_steps(model, synth_root, tmp_path):
    run_dir, record = tmp_path / "run", tmp_path / "first_steps.txt"
    make_args = tiny_args if model == "tiny_points" else nerf_args
    args = make_args(synth_root, run_dir, *_throttled(record))
    last = run_dir / "checkpoints" / "last.ckpt"
    proc = _stop_after_first_checkpoint(args, last, tmp_path / "killed", kill=True)
    assert proc.returncode == -9  # killed, not finished
    killed_at = ckpt_step(last)
    assert 10 <= killed_at < MAX_STEPS

    resumed = check(run("zoo.train", *args, "resume=true"))
    assert f"resuming from {last}" in resumed.stdout
    assert "checkpoint: " in resumed.stdout
    # The same final step count as an uninterrupted run, reached by continuing: the resumed
    # process trained its first batch at the checkpoint's step, not at 0.
    assert ckpt_step(last) == MAX_STEPS
    assert record.read_text().split() == ["0", str(killed_at)]
    # Every checkpoint on disk is complete (temp files of the killed write are not *.ckpt).
    ckpts = sorted(run_dir.rglob("*.ckpt"))
    assert last in ckpts
    for p in ckpts:
        ck = torch.load(p, map_location="cpu", weights_only=True)
        assert "state_dict" in ck and "zoo" in ck, p
        assert all(
            torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point()
        )
    assert (run_dir / "metrics.json").is_file()


def test_resume_of_a_finished_run_keeps_its_final_step(synth_root, tiny_single, tmp_path):
    """``resume=true`` on a completed run trains nothing more and ends at the same step."""
    run_dir, _ = tiny_single
    # A copy, so the shared reference run stays untouched.
    copy = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoints", copy / "checkpoints")
    proc = check(run("zoo.train", *tiny_args(synth_root, copy, "logger=none", "resume=true")))
    assert f"resuming from {copy / 'checkpoints' / 'last.ckpt'}" in proc.stdout
    assert ckpt_step(copy / "checkpoints" / "last.ckpt") == ckpt_step(
        run_dir / "checkpoints" / "last.ckpt"
    )


def test_sigterm_says_the_run_stopped_keeps_its_state_and_resumes(synth_root, tmp_path):
    """SIGTERM (a scheduler's preemption): one error line naming the step and the saved
    checkpoint, exit status 143 (not 0, which reads as finished), no evaluation; resume=true
    continues from that step to max_steps."""
    run_dir, record = tmp_path / "run", tmp_path / "first_steps.txt"
    args = tiny_args(synth_root, run_dir, *_throttled(record))
    last = run_dir / "checkpoints" / "last.ckpt"
    proc = _stop_after_first_checkpoint(args, last, tmp_path / "term", kill=False)
    stderr = (tmp_path / "term.err").read_text()
    assert proc.returncode == 143, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    stopped_at = ckpt_step(last)
    assert 10 <= stopped_at < MAX_STEPS
    assert f"stopped by SIGTERM at step {stopped_at} of {MAX_STEPS}" in lines[0]
    assert str(last) in lines[0] and "resume=true" in lines[0]
    assert not (run_dir / "metrics.json").exists()  # not evaluated as if finished
    resumed = check(run("zoo.train", *args, "resume=true"))
    assert f"resuming from {last}" in resumed.stdout
    assert ckpt_step(last) == MAX_STEPS
    assert record.read_text().split() == ["0", str(stopped_at)]


def test_a_resumed_run_keeps_the_csv_log_it_had(tmp_path):
    """Lightning's CSV writer deletes the metrics.csv it finds; zoo.train moves it aside first
    (metrics.1.csv, metrics.2.csv, ... one per earlier segment of the run)."""
    from pytorch_lightning.loggers import CSVLogger

    from zoo.run_setup import keep_csv_logs

    def segment(step: int) -> list:
        lg = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
        kept = keep_csv_logs([lg])
        lg.log_metrics({"train/loss": float(step)}, step=step)
        lg.save()
        return kept

    assert segment(10) == []
    first = (tmp_path / "csv" / "metrics.csv").read_text()
    assert segment(20) == [tmp_path / "csv" / "metrics.1.csv"]
    assert segment(30) == [tmp_path / "csv" / "metrics.2.csv"]
    assert (tmp_path / "csv" / "metrics.1.csv").read_text() == first
    assert "30" in (tmp_path / "csv" / "metrics.csv").read_text()
    assert "20" in (tmp_path / "csv" / "metrics.2.csv").read_text()


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _stop_and_resume(args: list[str], stop: list[str]) -> tuple[int, dict]:
    """Run ``args`` plus the ``stop`` callback (the process ends by a signal it sends itself),
    then ``args`` with resume=true; returns the exit status of the stopped run and the data
    loader's state in the checkpoint it resumed from."""
    stopped = run("zoo.train", *args, *stop)
    run_dir = next(a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir="))
    last = f"{run_dir}/checkpoints/last.ckpt"
    loader = torch.load(last, map_location="cpu", weights_only=True)["loops"]["fit_loop"]
    check(run("zoo.train", *args, "resume=true"))
    return stopped.returncode, loader["state_dict"]["combined_loader"][0]


def test_sigterm_mid_epoch_then_resume_gives_the_uninterrupted_weights(
    synth_root, tiny_single, tmp_path
):
    """The tiny shape model stopped by SIGTERM in the middle of an epoch (step 13 of 40, two
    batches an epoch) and resumed ends with the very weights of the uninterrupted run with the
    same seed: the resumed epoch continues the same shuffled order and random points."""
    ref_dir, _ = tiny_single
    run_dir = tmp_path / "run"
    args = tiny_args(synth_root, run_dir, "logger=none", "seed=0")
    stop = [
        "+callbacks.term._target_=tests.reliability.clirun.SigtermAt",
        "+callbacks.term.step=13",
    ]
    code, loader = _stop_and_resume(args, stop)
    assert code == 143
    assert 0 < loader["batches"] < loader["length"], loader  # stopped mid-epoch
    ref, got = (
        _weights(ref_dir / "checkpoints" / "last.ckpt"),
        _weights(run_dir / "checkpoints" / "last.ckpt"),
    )
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_nerf_killed_after_a_checkpoint_before_a_validation_resumes_bit_exactly(
    synth_root, tmp_path
):
    """A radiance model killed (SIGKILL) at step 17, resumed from its step-15 checkpoint,
    written right before the validation of step 15: the same final weights as a run never
    stopped (the same rays, and validation draws none of the training's random numbers)."""
    base = ["logger=none", "trainer.max_steps=30", "callbacks.checkpoint.every_n_train_steps=15"]
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    check(run("zoo.train", *nerf_args(synth_root, ref_dir, *base)))
    stop = ["+callbacks.kill._target_=tests.reliability.clirun.SignalAt", "+callbacks.kill.step=17"]
    code, loader = _stop_and_resume(nerf_args(synth_root, run_dir, *base), stop)
    assert code == -9
    assert 0 < loader["batches"] < loader["length"], loader
    ref, got = (
        _weights(ref_dir / "checkpoints" / "last.ckpt"),
        _weights(run_dir / "checkpoints" / "last.ckpt"),
    )
    assert all(torch.equal(ref[k], got[k]) for k in ref)
