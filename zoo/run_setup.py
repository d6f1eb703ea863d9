"""What a training run checks and arranges around Lightning (used by :mod:`zoo.train`): the
config's field types, the checkpoint a run resumes from, the data lock among the processes of
one machine, the DDP strategy a model needs, the CSV logs a resumed run keeps, and the errors a
stopped or failed run reports (preemption, an output that cannot be written)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger

from zoo.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    os_error_in,
    read_checkpoint,
    zoo_meta,
)

log = logging.getLogger(__name__)

# Trainer arguments whose type is checked before anything runs (a wrong-typed override such as
# trainer.max_steps=abc would otherwise fail deep inside Lightning, or not at all).
_INT_FIELDS = ("max_steps", "max_epochs", "num_nodes", "log_every_n_steps", "num_sanity_val_steps")
_INT_OR_NULL_FIELDS = ("check_val_every_n_epoch", "accumulate_grad_batches")
_NUMBER_OR_NULL_FIELDS = (
    "val_check_interval",
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "gradient_clip_val",
)


class ConfigError(ValueError):
    """A config value of the wrong type or a config that cannot be instantiated; the message
    names the field."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_config_types(cfg: DictConfig) -> None:
    """Reject wrong-typed values of the fields this CLI and Lightning rely on.

    Raises:
        ConfigError: e.g. ``trainer.max_steps: expected an integer, got 'abc' (str)``.
    """

    def bad(key: str, want: str, v: Any) -> ConfigError:
        return ConfigError(f"{key}: expected {want}, got {v!r} ({type(v).__name__})")

    checks: list[tuple[str, Any, str]] = [
        ("seed", cfg.get("seed"), "int_or_null"),
        ("resume", cfg.get("resume", False), "bool"),
    ]
    trainer = cfg.get("trainer") or {}
    checks += [(f"trainer.{k}", trainer.get(k), "int") for k in _INT_FIELDS if k in trainer]
    checks += [
        (f"trainer.{k}", trainer.get(k), "int_or_null") for k in _INT_OR_NULL_FIELDS if k in trainer
    ]
    checks += [
        (f"trainer.{k}", trainer.get(k), "number_or_null")
        for k in _NUMBER_OR_NULL_FIELDS
        if k in trainer
    ]
    for key, v, kind in checks:
        if kind == "bool" and not isinstance(v, bool):
            raise bad(key, "true or false", v)
        if kind == "int" and not _is_int(v):
            raise bad(key, "an integer", v)
        if kind == "int_or_null" and v is not None and not _is_int(v):
            raise bad(key, "an integer or null", v)
        if kind == "number_or_null" and v is not None and not _is_number(v):
            raise bad(key, "a number or null", v)
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None and not isinstance(ckpt, str):
        raise bad("ckpt_path", "a path, 'last' or null", ckpt)


def check_resume_checkpoint(path: str | Path, model_name: str) -> None:
    """Refuse, before anything runs, a checkpoint that cannot resume ``model_name``: missing,
    truncated, carrying a pickle payload (read with ``weights_only=True``, nothing in it runs),
    not a zoo checkpoint, of another model, or without optimiser / loop state.

    Raises:
        CheckpointError: naming the file and the problem.
    """
    ckpt = read_checkpoint(path)
    meta = zoo_meta(ckpt, path)
    if meta["model_name"] != model_name:
        raise CheckpointError(
            path, f"checkpoint of model {meta['model_name']!r}, cannot resume model {model_name!r}"
        )
    missing = [k for k in ("optimizer_states", "loops", "global_step") if k not in ckpt]
    if missing:
        raise CheckpointError(
            path, f"holds weights only (no {', '.join(missing)}): it cannot resume training"
        )


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path, model_name: str) -> str | None:
    """The checkpoint to resume from, validated (:func:`check_resume_checkpoint`).

    ``last``: this run directory's ``checkpoints/last.ckpt``, else the newest ``last.ckpt``
    among sibling runs (``outputs/<model>/*/``) holding the same model, so re-running the same
    command resumes; none at all: start from scratch. A path: that file.
    """
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path != "last":
        if not Path(ckpt_path).is_file():
            raise CheckpointError(ckpt_path, "ckpt_path: no such checkpoint file")
        check_resume_checkpoint(ckpt_path, model_name)
        return str(ckpt_path)
    own = run_dir / "checkpoints" / "last.ckpt"
    if own.is_file():
        check_resume_checkpoint(own, model_name)  # this run's own: any problem is an error
        print(f"resuming from {own}")
        return str(own)
    siblings = sorted(
        run_dir.parent.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
    )[::-1]
    for cand in siblings:
        try:
            check_resume_checkpoint(cand, model_name)
        except CheckpointError as e:
            log.warning("not resuming from %s", e)
            continue
        print(f"resuming from {cand}")
        return str(cand)
    print(f"ckpt_path=last: no checkpoint of {model_name} under {run_dir.parent}; starting anew")
    return None


@contextlib.contextmanager
def data_lock(data_cfg: DictConfig) -> Iterator[None]:
    """Serialise data preparation among the processes of one machine that use the same data.

    ``torchrun`` / ``srun`` start one process per GPU, each running this script; without the
    lock they would all generate the same ``data/`` files at once. With it the first builds
    them and the others find them up to date. A no-op where ``fcntl`` is missing (Windows).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    where = next((data_cfg.get(k) for k in ("root", "data_source", "path") if k in data_cfg), None)
    key = str(Path(str(where)).resolve()) if where else str(OmegaConf.to_yaml(data_cfg))
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"zoo-data-{os.getuid()}-{digest}.lock"
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")


def with_model_strategy(trainer_cfg: DictConfig, model: Any) -> DictConfig:
    """``trainer_cfg`` with a DDP strategy name adapted to ``model``: a model whose steps leave
    some parameters without gradient (a GAN's G step never touches D, and the other way round)
    sets ``ddp_find_unused_parameters = True``, and gets Lightning's registered
    ``<strategy>_find_unused_parameters_true`` (DDP would otherwise stop at the first step)."""
    strategy = trainer_cfg.get("strategy")
    if not model.ddp_find_unused_parameters or strategy not in DDP_STRATEGIES:
        return trainer_cfg
    out = trainer_cfg.copy()
    out.strategy = f"{strategy}_find_unused_parameters_true"
    return out


def keep_csv_logs(loggers: list[Any]) -> list[Path]:
    """Before a resumed run logs: each CSV logger's existing ``metrics.csv`` moved aside to
    ``metrics.<n>.csv`` (n = 1, 2, ... one per earlier segment of the run). Lightning's CSV
    writer deletes the file it finds in its folder, so a resumed run would otherwise lose the
    log of everything before the resume. Returns the kept files."""
    kept = []
    for lg in loggers:
        if not isinstance(lg, CSVLogger):
            continue
        current = Path(lg.log_dir) / "metrics.csv"
        if current.is_file():
            n = 1
            while (target := current.with_name(f"metrics.{n}.csv")).exists():
                n += 1
            current.rename(target)
            log.info("resume: the CSV log so far is kept as %s", target)
            kept.append(target)
    return kept


class Preempted(Exception):
    """Training stopped by SIGTERM (what a scheduler sends on preemption) before its end."""


class OutputError(Exception):
    """An output (a checkpoint, a log, the metrics) could not be written; the message names the
    file, the reason and the last good checkpoint."""


# Failures of a write whatever the file: no space, quota, file too large, read-only file system.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def last_good_checkpoint(ckpt_dir: Path) -> tuple[Path, int] | None:
    """The newest readable checkpoint under ``ckpt_dir`` and its step (checkpoints are written
    atomically, so every ``*.ckpt`` there is complete), or None."""
    for path in sorted(ckpt_dir.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            return path, int(read_checkpoint(path).get("global_step", -1))
        except CheckpointError:
            continue
    return None


def output_error(e: BaseException, ckpt_dir: Path) -> OutputError | None:
    """``e`` as an :class:`OutputError` when it is a failed write (a checkpoint that could not be
    written, or any file on a full / read-only disk), else None."""
    if isinstance(e, CheckpointWriteError):
        what = str(e)
    else:
        cause = os_error_in(e)
        if cause is None or cause.errno not in _WRITE_ERRNOS:
            return None
        what = f"{cause.filename or 'an output file'}: cannot write: {cause.strerror}"
    good = last_good_checkpoint(ckpt_dir)
    kept = (
        f"the last good checkpoint is {good[0]} (step {good[1]}); free space or write "
        "elsewhere (hydra.run.dir=...), then run the same command with resume=true to continue"
        if good
        else "no checkpoint had been written yet"
    )
    return OutputError(f"{what}; nothing half-written was left, {kept}")
