"""``python -m zoo.train model=<name>``: train a model, evaluate it, print its checkpoint.

With no other argument a model trains on its embedded default data (``data=synthshapes``),
with a progress bar, TensorBoard + CSV logs and checkpoints in ``outputs/<model>/<time>/``,
and ends by printing the shared metric suite and ``checkpoint: <path>``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zoo.checkpoint import AtomicCheckpointIO
from zoo.cli_utils import CONF_DIR, quiet_lightning, write_json
from zoo.evaluation import evaluate, format_metrics

log = logging.getLogger(__name__)


def _instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a group like ``callbacks`` or ``logger`` that has a target."""
    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def _resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """``last``: this run directory's ``last.ckpt``, else the newest one among sibling runs
    (``outputs/<model>/*/``), so re-running the same command resumes."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path != "last":
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
        return str(ckpt_path)
    candidates = [run_dir / "checkpoints" / "last.ckpt"]
    candidates += sorted(
        run_dir.parent.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
    )[::-1]
    for cand in candidates:
        if cand.is_file():
            log.warning("resuming from %s", cand)
            print(f"resuming from {cand}")
            return str(cand)
    print(f"ckpt_path=last: no checkpoint under {run_dir.parent}; starting from scratch")
    return None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data``; returns the metrics and the checkpoint path."""
    quiet_lightning()
    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    run_dir = Path(cfg.run_dir)
    model = instantiate(cfg.model)
    datamodule = instantiate(cfg.data, form=model.data_form)
    datamodule.prepare_data()
    datamodule.setup("fit")
    info = datamodule.info()
    model.configure_from_data(info)
    model.zoo_meta = {
        "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
        "data_cfg": OmegaConf.to_container(cfg.data, resolve=True),
        "data_choice": cfg.get("data_choice"),
    }

    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=_instantiate_group(cfg.get("callbacks")),
        logger=_instantiate_group(cfg.get("logger")) or False,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=_resolve_ckpt_path(cfg.ckpt_path, run_dir))

    ckpt_cb = trainer.checkpoint_callback
    ckpt_dir = Path(ckpt_cb.dirpath) if ckpt_cb is not None else run_dir / "checkpoints"
    final_ckpt = ckpt_dir / "last.ckpt"
    # The final weights (and optimiser state, for resuming), whatever the save interval.
    trainer.save_checkpoint(final_ckpt, weights_only=False)

    metrics: dict[str, float] = {}
    if trainer.is_global_zero:
        eval_cfg = instantiate(cfg.eval)
        metrics = evaluate(model, datamodule, eval_cfg, out_dir=run_dir)
        write_json(run_dir / "metrics.json", metrics)
        write_json(final_ckpt.with_suffix(".metrics.json"), metrics)
        print(f"\n{model.name} on {info.get('dataset', '?')} ({eval_cfg.split} split):")
        print(format_metrics(metrics))
        print(f"checkpoint: {final_ckpt}")
    return {"metrics": metrics, "checkpoint": str(final_ckpt)}


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    result = train(cfg)
    values = list(result["metrics"].values())
    return values[0] if values else None


if __name__ == "__main__":
    main()
