"""``python -m zoo.train model=<name>``: train a model, evaluate it, print its checkpoint.

With no other argument a model trains on its embedded default data (``data=synthshapes``),
with a progress bar, TensorBoard + CSV logs and checkpoints in ``outputs/<model>/<time>/``,
and ends by printing the shared metric suite, ``checkpoint: <path>`` and a summary: where the
renders, mesh, metrics and log are, the TensorBoard command, and the commands to sample,
evaluate or view the checkpoint. ``train.log`` in the run directory holds the run's log: the
config, the data, progress milestones, the metrics and warnings (:mod:`zoo.run_log`).

Resuming: ``ckpt_path=last`` (or ``resume=true``) continues from this run directory's
``checkpoints/last.ckpt`` (else the newest one of a sibling run of the same model), with the
step count, optimiser and loop state restored, so a run killed at any moment and re-run with
the same arguments plus ``resume=true`` ends at the same ``trainer.max_steps``. Checkpoints are
written atomically (``zoo.checkpoint.AtomicCheckpointIO``), so a kill never leaves a
half-written one.

Errors in the inputs (data files, checkpoints, config values) end the command with one line
``error: <file or field>: <problem>`` and exit status 2, before anything in the run directory
is written; a NaN / infinite training loss stops training with exit status 3 and keeps the
last good checkpoint (``zoo.callbacks.NonFiniteLossGuard``). ``HYDRA_FULL_ERROR=1`` shows the
traceback instead.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from zoo.callbacks import FinalCheckpoint, NonFiniteLossError, ValidationKeepsRng
from zoo.checkpoint import (
    AtomicCheckpointIO,
    CheckpointError,
    CheckpointWriteError,
    os_error_in,
    read_checkpoint,
    zoo_meta,
)
from zoo.cli_utils import CONF_DIR, fail, quiet_lightning, write_json
from zoo.data.io import DataError
from zoo.evaluation import evaluate, format_metrics
from zoo.run_log import route_library_logs, run_summary, say
from zoo.viewer import ViewerUnavailable
from zoo.viewer.callback import viewer_callback

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
# Failures of the inputs reported as one line (exit status 2).
_INPUT_ERRORS = (DataError, CheckpointError, FileNotFoundError)


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


def _instantiate(node: Any, where: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` whose argument errors name the config group in one line."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, _INPUT_ERRORS):
            raise cause from None
        if isinstance(cause, (ValueError, TypeError)):
            raise ConfigError(f"{where}: {cause}") from e
        raise


def _instantiate_group(cfg: DictConfig | None, where: str) -> list[Any]:
    """Instantiate every entry of a group like ``callbacks`` or ``logger`` that has a target."""
    if not cfg:
        return []
    return [
        _instantiate(c, f"{where}.{k}")
        for k, c in cfg.items()
        if isinstance(c, DictConfig) and "_target_" in c
    ]


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


_DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")


def _with_model_strategy(trainer_cfg: DictConfig, model: Any) -> DictConfig:
    """``trainer_cfg`` with a DDP strategy name adapted to ``model``: a model whose steps leave
    some parameters without gradient (a GAN's G step never touches D, and the other way round)
    sets ``ddp_find_unused_parameters = True``, and gets Lightning's registered
    ``<strategy>_find_unused_parameters_true`` (DDP would otherwise stop at the first step)."""
    strategy = trainer_cfg.get("strategy")
    if not model.ddp_find_unused_parameters or strategy not in _DDP_STRATEGIES:
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


def _checkpoint_dir(callbacks: list[Any], run_dir: Path) -> Path:
    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath:
            return Path(cb.dirpath)
    return run_dir / "checkpoints"


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data``; returns the metrics and the checkpoint path."""
    quiet_lightning()
    route_library_logs()
    check_config_types(cfg)
    try:  # viewer=true: the live viewer (zoo.viewer), checked before any data is prepared
        viewer = viewer_callback(cfg)
    except (ViewerUnavailable, ValueError) as e:
        raise ConfigError(str(e)) from None
    log.info("config:\n%s", _config_text(cfg))
    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    run_dir = Path(cfg.run_dir)
    model = _instantiate(cfg.model, "model")
    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("resume") and ckpt_path in (None, "", "null"):
        ckpt_path = "last"
    resume_from = resolve_ckpt_path(ckpt_path, run_dir, model.name)
    datamodule = _instantiate(cfg.data, "data", form=model.data_form)
    with data_lock(cfg.data):
        datamodule.prepare_data()
        datamodule.setup("fit")
    info = datamodule.info()
    log.info("data: %s", info)
    model.configure_from_data(info)
    model.zoo_meta = {
        "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
        "data_cfg": OmegaConf.to_container(cfg.data, resolve=True),
        "data_choice": cfg.get("data_choice"),
    }

    loggers = _instantiate_group(cfg.get("logger"), "logger")
    if resume_from is not None:
        keep_csv_logs(loggers)
    callbacks = _instantiate_group(cfg.get("callbacks"), "callbacks")
    if not loggers:  # nothing to log learning rates to (LearningRateMonitor would refuse)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    final_ckpt = _checkpoint_dir(callbacks, run_dir) / "last.ckpt"
    # The final weights and optimiser state (for resuming), whatever the save interval.
    callbacks.append(FinalCheckpoint(final_ckpt))
    # Validation draws no number of the training's random stream (bit-exact resumes).
    callbacks.append(ValidationKeepsRng())
    if viewer is not None:
        callbacks.append(viewer)
    trainer: pl.Trainer = _instantiate(
        _with_model_strategy(cfg.trainer, model),
        "trainer",
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
    )
    unsupported = model.ddp_unsupported
    if unsupported and trainer.world_size > 1:
        raise ConfigError(
            f"{model.name}: training in {trainer.world_size} processes is not supported yet "
            f"({unsupported}); train on one device (trainer.devices=1, trainer.num_nodes=1)"
        )
    ckpt_dir = final_ckpt.parent
    try:
        return _fit_and_evaluate(
            cfg, model, datamodule, trainer, resume_from, final_ckpt, loggers, info
        )
    except Exception as e:
        failed_write = output_error(e, ckpt_dir)
        if failed_write is None:
            raise
        raise failed_write from None


def _fit_and_evaluate(
    cfg: DictConfig,
    model: Any,
    datamodule: Any,
    trainer: pl.Trainer,
    resume_from: str | None,
    final_ckpt: Path,
    loggers: list[Any],
    info: dict[str, Any],
) -> dict[str, Any]:
    """Fit (from ``resume_from`` if given), write ``final_ckpt``, evaluate on rank 0."""
    run_dir = Path(cfg.run_dir)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from)
    except SIGTERMException:
        # Lightning stops at the end of the batch and exits with status 0, which reads as a
        # finished run. Keep the state of this step (one process: the checkpoint is ours to
        # write) and say that the run was stopped.
        saved = ""
        if trainer.world_size == 1:
            trainer.save_checkpoint(final_ckpt, weights_only=False)
            saved = f"; its state is saved in {final_ckpt}"
        raise Preempted(
            f"training stopped by SIGTERM at step {trainer.global_step} of "
            f"{trainer.max_steps}, before the end and without evaluation{saved}; run the same "
            "command with resume=true to continue"
        ) from None
    if trainer.world_size == 1 and not final_ckpt.is_file():  # fit trained no step at all
        trainer.save_checkpoint(final_ckpt, weights_only=False)

    metrics: dict[str, float] = {}
    # Evaluation runs once: on global rank 0 (torchrun / SLURM), or in the launching process
    # after ddp_spawn, which has received rank 0's weights.
    if trainer.is_global_zero:
        eval_cfg = _instantiate(cfg.eval, "eval")
        metrics = evaluate(model, datamodule, eval_cfg, out_dir=run_dir)
        write_json(run_dir / "metrics.json", metrics)
        write_json(final_ckpt.with_suffix(".metrics.json"), metrics)
        say(f"\n{model.name} on {info.get('dataset', '?')} ({eval_cfg.split} split):")
        say(format_metrics(metrics))
        say(f"checkpoint: {final_ckpt}")
        mesh = _export_mesh(model, run_dir, eval_cfg)
        renders = run_dir / "renders"
        lines = run_summary(
            run_dir,
            final_ckpt,
            tensorboard=any(isinstance(lg, TensorBoardLogger) for lg in loggers),
            files={
                "renders": renders if renders.is_dir() else None,
                "mesh": mesh,
                "metrics": run_dir / "metrics.json",
                "log": _log_file(),
            },
        )
        say("\n" + "\n".join(lines))
    return {"metrics": metrics, "checkpoint": str(final_ckpt)}


def _export_mesh(model: Any, run_dir: Path, eval_cfg: Any) -> Path | None:
    """``<run_dir>/mesh.ply``: the fitted scene of a per-scene model (e.g. nerf) meshed at the
    evaluation's resolution; None for other models (``zoo.sample`` meshes their samples) or
    when the mesh is empty."""
    if not getattr(model, "per_scene", False):
        return None
    mesh = model.to_mesh(model.sample(1)[0], resolution=int(eval_cfg.mesh_resolution))
    if len(mesh.faces) == 0:
        log.warning("%s: the density never crosses its threshold: no mesh written", model.name)
        return None
    path = run_dir / "mesh.ply"
    mesh.export(path)
    return path


def _config_text(cfg: DictConfig) -> str:
    """The config as YAML, resolved where it can be (unresolved otherwise)."""
    try:
        return OmegaConf.to_yaml(cfg, resolve=True)
    except OmegaConfBaseException:
        return OmegaConf.to_yaml(cfg)


def _log_file() -> Path | None:
    """The file the root logger writes to (Hydra's ``<run_dir>/train.log``), if any."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return None


def _worker_error_line(e: BaseException) -> str | None:
    """The one-line message of one of our errors raised in a ``ddp_spawn`` worker, if any."""
    names = [
        t.__name__ for t in (*_INPUT_ERRORS, NonFiniteLossError, ConfigError, CheckpointWriteError)
    ]
    for line in reversed(str(e).strip().splitlines()):
        for name in names:
            if f"{name}: " in line:
                return line.split(f"{name}: ", 1)[1]
    return None


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        result = train(cfg)
    except NonFiniteLossError as e:
        if full_error:
            raise
        fail(str(e), code=3)
    except Preempted as e:
        fail(str(e), code=128 + signal.SIGTERM)
    except OutputError as e:
        if full_error:
            raise
        fail(str(e))
    except (*_INPUT_ERRORS, ConfigError) as e:
        if full_error:
            raise
        fail(str(e))
    except Exception as e:  # ddp_spawn re-raises worker errors as ProcessRaisedException
        line = None if full_error else _worker_error_line(e)
        if line is None:
            raise
        fail(line, code=3 if "training stopped: non-finite" in line else 2)
    values = list(result["metrics"].values())
    return values[0] if values else None


if __name__ == "__main__":
    main()
