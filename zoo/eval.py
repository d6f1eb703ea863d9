"""``python -m zoo.eval ckpt=<path> [data=...]``: score a checkpoint with the shared suite.

Prints the metrics and writes them as JSON next to the checkpoint (``<ckpt>.metrics.json``,
or ``out=<path>``). Without ``data=`` the checkpoint's own training data config is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zoo.checkpoint import CheckpointError, load_model
from zoo.cli_utils import CONF_DIR, fail, pick_device, quiet_lightning, write_json
from zoo.evaluation import evaluate, format_metrics


def run_eval(cfg: DictConfig) -> dict[str, Any]:
    quiet_lightning()
    if not cfg.get("ckpt"):
        fail("give a checkpoint: python -m zoo.eval ckpt=<path>")
    ckpt = Path(cfg.ckpt)
    try:
        model, meta = load_model(ckpt, map_location=pick_device(cfg.device))
    except CheckpointError as e:
        fail(str(e))
    data_cfg = cfg.get("data") or OmegaConf.create(meta.get("data_cfg"))
    if not data_cfg:
        fail(f"{ckpt}: no data config stored; pass data=<name>")
    datamodule = instantiate(data_cfg, form=model.data_form)
    datamodule.prepare_data()
    datamodule.setup("test")
    eval_cfg = instantiate(cfg.eval)
    out = Path(cfg.out) if cfg.get("out") else ckpt.with_suffix(".metrics.json")
    metrics = evaluate(model, datamodule, eval_cfg, out_dir=out.parent / f"{ckpt.stem}_eval")
    write_json(out, metrics)
    print(f"{model.name} ({ckpt}) on {datamodule.info().get('dataset', '?')} {eval_cfg.split}:")
    print(format_metrics(metrics))
    print(f"metrics: {out}")
    return metrics


@hydra.main(config_path=CONF_DIR, config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_eval(cfg)


if __name__ == "__main__":
    main()
