"""Lightning callbacks of the zoo CLI: stop on a non-finite loss, write the final checkpoint.

``NonFiniteLossGuard`` (in ``conf/callbacks/default.yaml``) turns a NaN or infinite training
loss into a clean stop: the weights that the bad loss has already updated are never written,
so the newest checkpoint on disk stays the last good one, and ``zoo.train`` exits non-zero
with one line. ``FinalCheckpoint`` (added by ``zoo.train`` itself) writes ``last.ckpt`` at the
end of fit from inside the training processes, so it holds the true final step and optimiser
state under every strategy, ``ddp_spawn`` included (whose launching process never trains).
``ValidationKeepsRng`` (added by ``zoo.train``) keeps validation out of the training's random
numbers, so that a resumed run repeats an uninterrupted one. ``ModelTable`` prints the model
summary without Lightning's meaningless ``Total FLOPs: 0``; ``ProgressLog`` writes progress
milestones to ``train.log``; ``WallClockSnapshots`` saves weights at given training wall times
(quality-vs-time curves).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ModelSummary

from zoo.cli_utils import write_json
from zoo.data.resumable import rng_states, set_rng_states
from zoo.run_log import say

_log = logging.getLogger("zoo.run")


class NonFiniteLossError(RuntimeError):
    """Training stopped at a NaN / infinite loss; the message names the step, loss and the
    checkpoint kept."""

    def __init__(self, step: int, name: str, value: float, checkpoint: str | None) -> None:
        kept = (
            f"last good checkpoint kept: {checkpoint}"
            if checkpoint
            else "no checkpoint had been written yet"
        )
        super().__init__(
            f"training stopped: non-finite training {name} = {value} at step {step}; the "
            f"weights it produced were not saved, {kept}"
        )
        self.step = step
        self.name = name
        self.value = value
        self.checkpoint = checkpoint


def _as_float(value: Any) -> float | None:
    """A Python float of a scalar tensor / number, else None."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean().cpu()) if value.numel() else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


class NonFiniteLossGuard(pl.Callback):
    """Stop at the first training batch whose loss is NaN or infinite.

    Checked in ``on_train_batch_end``, which Lightning runs before every ``ModelCheckpoint``
    (checkpoint callbacks are always moved to the end of the list), so the checkpoint of that
    step is never written; ``ModelCheckpoint`` saves nothing on exceptions unless its
    ``save_on_exception`` is set (it is not, in ``conf/callbacks/default.yaml``).

    Looked at: the ``loss`` returned by ``training_step`` (automatic optimisation) and every
    logged ``train/...loss...`` value (manual optimisation, e.g. GANs, returns none). In
    distributed runs the decision is reduced over the ranks (any rank), so all ranks stop at
    the same step rather than leaving the others waiting in an all-reduce.

    Raises:
        NonFiniteLossError: naming the step (``global_step`` seen by that ``training_step``),
            the loss and its value, and the newest checkpoint on disk.
    """

    def __init__(self, logged_prefix: str = "train/") -> None:
        self.logged_prefix = logged_prefix
        self._step = 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step = int(trainer.global_step)

    def _first_bad(self, trainer: pl.Trainer, outputs: Any) -> tuple[str, float] | None:
        candidates: list[tuple[str, Any]] = []
        if isinstance(outputs, dict):
            candidates.append(("loss", outputs.get("loss")))
        else:
            candidates.append(("loss", outputs))
        candidates += [
            (k, v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(self.logged_prefix) and "loss" in k
        ]
        for name, value in candidates:
            x = _as_float(value)
            if x is not None and not math.isfinite(x):
                return name, x
        return None

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        bad = self._first_bad(trainer, outputs)
        if not trainer.strategy.reduce_boolean_decision(bad is not None, all=False):
            return
        name, value = bad if bad is not None else ("loss (on another rank)", math.nan)
        raise NonFiniteLossError(self._step, name, value, _newest_checkpoint(trainer))


def _newest_checkpoint(trainer: pl.Trainer) -> str | None:
    """The path of the newest checkpoint ``ModelCheckpoint`` has written, if any."""
    cb = trainer.checkpoint_callback
    for attr in ("last_model_path", "best_model_path"):
        path = getattr(cb, attr, "") if cb is not None else ""
        if path and Path(path).is_file():
            return str(path)
    return None


class FinalCheckpoint(pl.Callback):
    """Write the full training state (weights, optimiser, loops: resumable) to ``path`` when
    fit ends normally.

    Runs inside the training processes, so ``global_step`` and optimiser states are the real
    final ones under every strategy (after ``ddp_spawn`` the launching process only gets the
    weights back). ``Trainer.save_checkpoint`` synchronises the ranks and writes on global
    rank 0 only. Not called when training raises (e.g. :class:`NonFiniteLossError`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning runs callbacks' on_train_end before the module's: post-training state
        # (ZooModel.finalize_training) must be computed here to be in the checkpoint.
        finalize = getattr(pl_module, "finalize_training", None)
        if callable(finalize):
            finalize()
        trainer.save_checkpoint(self.path, weights_only=False)
        # ModelCheckpoint(save_last=True) saves "last" again in its own on_train_end (which runs
        # after this one) unless it knows it was saved: without this it found our file and
        # wrote a second copy, last-v1.ckpt.
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.save_last:
                if Path(cb.format_checkpoint_name({}, cb.CHECKPOINT_NAME_LAST)) == Path(self.path):
                    cb.last_model_path = self.path
                    if hasattr(cb, "_last_checkpoint_saved"):
                        cb._last_checkpoint_saved = self.path


class ValidationKeepsRng(pl.Callback):
    """Validation during fit leaves the training's random numbers where they were.

    Validation may draw random numbers (a generative model's samples, a NeRF's stratified ray
    samples, the validation loader's seed when it starts); the process's random-number states
    are taken at the end of every training batch and put back when a validation ends (or is
    interrupted). Training then depends on the seed and the step only, not on how often it is
    validated, and a run resumed from a checkpoint written right before a validation draws the
    same numbers as one never stopped (:class:`zoo.data.resumable.ResumableDataLoader`).
    Added by ``zoo.train`` itself.
    """

    def __init__(self) -> None:
        self._states: dict[str, Any] | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._states = rng_states()

    def _restore(self) -> None:
        if self._states is not None:
            set_rng_states(self._states)
            self._states = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore()  # e.g. SIGTERM mid-validation: the state saved next is training's


class ModelTable(ModelSummary):
    """Lightning's model summary as a plain table, without the FLOPs column and the
    ``Total FLOPs: 0`` line when nothing was counted (the FLOP counter needs an example input,
    which the zoo models do not declare, so it always reads 0 here). Printed and written to
    ``train.log`` (:func:`zoo.run_log.say`)."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:

        say(format_model_table(summary_data, total_parameters, trainable_parameters, total_flops))


def format_model_table(
    columns: list[tuple[str, list[str]]],
    total_parameters: int,
    trainable_parameters: int,
    total_flops: int = 0,
) -> str:
    """Columns ``[(header, values)]`` as an aligned text table plus the parameter counts; the
    ``FLOPs`` column and total only when ``total_flops`` is non-zero."""
    from pytorch_lightning.utilities.model_summary.model_summary import (
        get_human_readable_count,
    )

    if not total_flops:
        columns = [c for c in columns if c[0] != "FLOPs"]
    widths = [max([len(h), *(len(str(v)) for v in vals)]) for h, vals in columns]
    rows = [" | ".join(f"{h:<{w}}" for (h, _), w in zip(columns, widths, strict=True))]
    rows.append("-" * len(rows[0]))
    n = len(columns[0][1]) if columns else 0
    for i in range(n):
        rows.append(
            " | ".join(f"{str(vals[i]):<{w}}" for (_, vals), w in zip(columns, widths, strict=True))
        )
    rows.append(
        f"params: {get_human_readable_count(int(total_parameters))} total, "
        f"{get_human_readable_count(int(trainable_parameters))} trainable"
    )
    if total_flops:
        rows.append(f"FLOPs: {get_human_readable_count(int(total_flops))}")
    return "\n".join(rows)


class ProgressLog(pl.Callback):
    """Progress milestones in ``train.log`` (INFO on the ``zoo.run`` logger, not the console,
    which has the progress bar): the step and the latest logged values every ``every`` steps
    and after each validation, and the end of training.

    Args:
        every: training steps between milestones (0: only validations and the end).
    """

    def __init__(self, every: int = 100) -> None:
        if every < 0:
            raise ValueError(f"every must be >= 0, got {every}")
        self.every = int(every)

    @staticmethod
    def _line(trainer: pl.Trainer, what: str) -> str:
        values = {k: _as_float(v) for k, v in sorted(trainer.callback_metrics.items())}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items() if v is not None)
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else "?"
        return f"{what} step {trainer.global_step}/{total}" + (f": {shown}" if shown else "")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            _log.info("training %s from step %d", type(pl_module).__name__, trainer.global_step)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = int(trainer.global_step)
        if trainer.is_global_zero and self.every and step % self.every == 0:
            _log.info(self._line(trainer, "train"))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            _log.info(self._line(trainer, "validation"))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            _log.info(self._line(trainer, "training ended at"))


class WallClockSnapshots(pl.Callback):
    """Weights-only checkpoints at given seconds of training wall time and at given steps, for
    quality-vs-training-time curves (``benchmarks/bench_shape_curves.py``).

    The clock starts when fit starts (data preparation is not counted) and counts validation
    but not the snapshots themselves (finalising post-training state such as mesh_gcn's prior
    and writing the file). ``stop_after`` seconds ends training at the first step past it.
    ``<dirpath>/snapshots.json`` lists ``{"seconds", "step", "path", "reason"}`` with the
    wall-clock time fit started (``train_start_unix``) and ended (``train_end_unix``).
    Add it from the command line, e.g.::

        python -m zoo.train model=deepsdf trainer.max_steps=100000 \\
            +callbacks.snap._target_=zoo.callbacks.WallClockSnapshots \\
            +callbacks.snap.dirpath=/tmp/snaps "+callbacks.snap.seconds=[60,300]" \\
            +callbacks.snap.stop_after=600
    """

    def __init__(
        self,
        dirpath: str | Path,
        seconds: list[float] | tuple[float, ...] = (),
        steps: list[int] | tuple[int, ...] = (),
        stop_after: float | None = None,
    ) -> None:
        self.dirpath = Path(dirpath)
        self.seconds = sorted(float(s) for s in seconds)
        self.steps = sorted(int(s) for s in steps)
        self.stop_after = None if stop_after is None else float(stop_after)
        self.records: list[dict[str, Any]] = []
        self._t0 = 0.0
        self._excluded = 0.0
        self._start_unix = 0.0

    def elapsed(self) -> float:
        """Training seconds so far (snapshot time excluded)."""
        return time.perf_counter() - self._t0 - self._excluded

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        self._t0, self._excluded, self._start_unix = time.perf_counter(), 0.0, time.time()

    def _snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule, reason: str) -> None:
        t_start = time.perf_counter()
        seconds, step = self.elapsed(), int(trainer.global_step)
        finalize = getattr(pl_module, "finalize_training", None)
        was_training = pl_module.training
        if callable(finalize):
            finalize()
        pl_module.train(was_training)
        path = self.dirpath / f"{reason}_step{step:07d}.ckpt"
        trainer.save_checkpoint(path, weights_only=True)
        self.records.append({"seconds": seconds, "step": step, "path": str(path), "reason": reason})
        self._write(end=None)
        self._excluded += time.perf_counter() - t_start

    def _write(self, end: float | None) -> None:
        info = {"train_start_unix": self._start_unix, "train_end_unix": end}
        write_json(self.dirpath / "snapshots.json", {**info, "snapshots": self.records})

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        elapsed, step = self.elapsed(), int(trainer.global_step)
        while self.steps and step >= self.steps[0]:
            self.steps.pop(0)
            self._snapshot(trainer, pl_module, "step")
        while self.seconds and elapsed >= self.seconds[0]:
            self.seconds.pop(0)
            self._snapshot(trainer, pl_module, "time")
        if self.stop_after is not None and elapsed >= self.stop_after:
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._snapshot(trainer, pl_module, "end")
        self._write(end=time.time())
