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

import logging
import os
import signal
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from zoo.callbacks import FinalCheckpoint, NonFiniteLossError, ValidationKeepsRng
from zoo.checkpoint import (
    AtomicCheckpointIO,
    CheckpointError,
    CheckpointWriteError,
)
from zoo.cli_utils import CONF_DIR, fail, quiet_lightning, write_json
from zoo.data.io import DataError
from zoo.evaluation import evaluate, format_metrics
from zoo.run_log import route_library_logs, run_summary, say
from zoo.run_setup import (
    ConfigError,
    OutputError,
    Preempted,
    check_config_types,
    data_lock,
    keep_csv_logs,
    output_error,
    resolve_ckpt_path,
    with_model_strategy,
)
from zoo.viewer import ViewerUnavailable
from zoo.viewer.callback import viewer_callback

log = logging.getLogger(__name__)

# Failures of the inputs reported as one line (exit status 2).
_INPUT_ERRORS = (DataError, CheckpointError, FileNotFoundError)


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
        with_model_strategy(cfg.trainer, model),
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
