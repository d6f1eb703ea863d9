"""Entry point of ``python -m zoo.benchmark`` (see :mod:`zoo.benchmark`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from zoo.benchmark import collect, run_all, run_model
from zoo.checkpoint import CheckpointError
from zoo.cli_utils import CONF_DIR, fail
from zoo.data.io import DataError
from zoo.pretrained import PretrainedError


@hydra.main(config_path=CONF_DIR, config_name="benchmark", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        if cfg.get("collect"):
            collect(cfg.collect)
        elif cfg.get("model") is not None:
            run_model(cfg)
        else:
            run_all(cfg)
    except (PretrainedError, CheckpointError, DataError, FileNotFoundError) as e:
        fail(str(e))


if __name__ == "__main__":
    main()
