"""``python -m zoo.eval ckpt=<path> [data=...]``: score a checkpoint with the shared suite.

``python -m zoo.eval pretrained=<name>`` scores an entry of the pretrained registry (see
``python -m zoo.pretrained list``) instead. Prints the metrics and writes them as JSON next to
the checkpoint (``<ckpt>.metrics.json``; for a pretrained entry
``outputs/pretrained/<name>.metrics.json``), or to ``out=<path>``. Without ``data=`` the
model's own training data config is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zoo.cli_utils import CONF_DIR, fail, load_source, pick_device, quiet_lightning, write_json
from zoo.evaluation import evaluate, format_metrics


def run_eval(cfg: DictConfig) -> dict[str, Any]:
    quiet_lightning()
    model, meta = load_source(cfg, "zoo.eval", pick_device(cfg.device))
    if cfg.get("pretrained"):
        ckpt = Path("outputs") / "pretrained" / str(cfg.pretrained)
    else:
        ckpt = Path(cfg.ckpt)
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
