"""Composing the repository's Hydra configs in tests."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from zoo.cli_utils import CONF_DIR


def compose_train(overrides: list[str], run_dir: str = "/tmp/zoo_test_cfg") -> DictConfig:
    """The train config (conf/train.yaml) composed with ``overrides``; nothing is run."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, f"run_dir={run_dir}"])
