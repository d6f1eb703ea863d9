"""Run the zoo CLI as a real subprocess, as a user would, and read its results.

Kept free of pytest so that the training subprocess can import :class:`Throttle` from here.
"""

from __future__ import annotations

import os
import signal as signal_mod
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

import zoo.data.io

REPO = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    """The environment of every CLI subprocess (tests.helpers models are trusted)."""
    return dict(os.environ, ZOO_TRUSTED_MODULES="tests.helpers.", PYTHONWARNINGS="ignore")


def command(module: str, *overrides: str) -> list[str]:
    return [sys.executable, "-m", module, *overrides]


def run(module: str, *overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m <module> <overrides>`` from the repository root; never raises on failure."""
    return subprocess.run(
        command(module, *overrides),
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``proc`` if it succeeded, else an AssertionError with its output."""
    if proc.returncode != 0:
        raise AssertionError(
            f"{proc.args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def last_line(text: str) -> str:
    """The last non-empty line (progress bars end their updates with carriage returns)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def tiny_base(run_dir: Path, *extra: str) -> list[str]:
    """Overrides selecting the tiny test model (tests/helpers/tiny_points.py), any data."""
    return [
        f"hydra.searchpath=[file://{REPO}/tests/conf]",
        "model=tiny_points",
        "eval.max_shapes=3",
        "eval.recon_points=1024",
        "eval.n_boot=50",
        "eval.mesh_resolution=32",
        "trainer.log_every_n_steps=1",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def tiny_args(data_root: Path, run_dir: Path, *extra: str) -> list[str]:
    """Overrides training the tiny test model on synthshapes (chair and mug, 5 each)."""
    return tiny_base(
        run_dir,
        f"data.root={data_root}",
        "data.categories=[chair,mug]",
        "data.shapes_per_category=5",
        "data.batch_size=4",
        *extra,
    )


def nerf_args(data_root: Path, run_dir: Path, *extra: str) -> list[str]:
    """Overrides training a very small NeRF on a 24 px synthshapes scene (seconds on a CPU)."""
    return [
        "model=nerf",
        f"data.root={data_root}",
        "data.image_size=24",
        "data.rays_per_batch=128",
        "data.val_views=1",
        "model.num_samples=16",
        "model.field.width=32",
        "model.field.depth=2",
        "model.field.pos_freqs=4",
        "model.chunk=2048",
        "trainer.val_check_interval=15",
        "trainer.log_every_n_steps=5",
        "eval.mesh_resolution=24",
        "eval.save_images=false",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def ckpt_step(path: Path) -> int:
    """``global_step`` stored in a Lightning checkpoint (read with weights_only=True)."""
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def snapshot(folder: Path, skip: tuple[str, ...] = (".hydra",)) -> dict[str, tuple[int, bytes]]:
    """``{relative path: (mtime_ns, bytes)}`` of every file under ``folder`` (minus ``skip``
    folders and Hydra's appended job log), to prove a failed command changed nothing."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not (set(rel.parts) & set(skip)) and p.suffix != ".log":
            out[str(rel)] = (p.stat().st_mtime_ns, p.read_bytes())
    return out


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Block until ``path`` exists (or fail if ``proc`` ends or ``timeout`` passes first)."""
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"ended before {path} appeared ({proc.returncode}):\n{out}\n{err}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


class Throttle(pl.Callback):
    """Test-only callback: sleep ``seconds`` after every training batch, so a subprocess can be
    killed mid-training deterministically, and append the first ``global_step`` this process
    trains to ``record`` (proves that a resumed run continued rather than restarted)."""

    def __init__(self, seconds: float = 0.05, record: str | None = None) -> None:
        self.seconds = float(seconds)
        self.record = record
        self._first = True

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._first and self.record:
            with open(self.record, "a") as f:
                f.write(f"{trainer.global_step}\n")
        self._first = False

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        time.sleep(self.seconds)


class FullDisk(pl.Callback):
    """Test-only callback: from training step ``at_step`` on, every file the atomic writers
    of ``zoo.data.io`` open for writing is ``/dev/full``, whose writes fail with ``ENOSPC`` as
    on a full disk; the real checkpoint writer meets the real error."""

    def __init__(self, at_step: int) -> None:
        self.at_step = int(at_step)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step < self.at_step or hasattr(zoo.data.io, "open"):
            return

        def full(path: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
            return open("/dev/full", mode, *a, **k) if "w" in mode else open(path, mode, *a, **k)

        zoo.data.io.open = full  # type: ignore[attr-defined]  # shadows the builtin there


class SignalAt(pl.Callback):
    """Test-only callback: the process sends itself ``signal`` (by name; SIGKILL: no handler,
    no cleanup) at the end of training step ``step``, to stop it at a chosen point."""

    def __init__(self, step: int, signal: str = "SIGKILL") -> None:
        self.step = int(step)
        self.signal = getattr(signal_mod, signal)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signal)


class SigtermAt(SignalAt):
    """:class:`SignalAt` with SIGTERM (a scheduler's preemption: Lightning stops after the
    step, ``zoo.train`` saves the state and exits with 143)."""

    def __init__(self, step: int) -> None:
        super().__init__(step, "SIGTERM")
