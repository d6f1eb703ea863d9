"""Every config file composes, and every ``_target_`` in it instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from zoo.cli_utils import CONF_DIR

CONF = Path(CONF_DIR)
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _compose(overrides: list[str], name: str = "train"):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=False)


def test_the_five_mission_models_have_configs():
    assert {"voxel_gan", "pointflow", "mesh_gcn", "deepsdf", "nerf"} <= set(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_model_config_instantiates(model):
    cfg = _compose([f"model={model}", "run_dir=/tmp/zoo_cfg_test"])
    net = instantiate(cfg.model)
    assert net.name == model
    assert net.data_form in ("points", "voxels", "sdf", "mesh", "views", "images")
    assert net.kind in ("voxel", "points", "mesh", "sdf", "radiance")


@pytest.mark.parametrize("data", DATA)
def test_data_config_instantiates(data, tmp_path):
    cfg = _compose([f"data={data}", f"run_dir={tmp_path}"])
    # Real datasets have mandatory paths (???): fill them with placeholders.
    required = {k: str(tmp_path / k) for k in cfg.data if OmegaConf.is_missing(cfg.data, k)}
    cfg = _compose(
        [f"data={data}", f"run_dir={tmp_path}"] + [f"data.{k}={v}" for k, v in required.items()]
    )
    dm = instantiate(cfg.data)  # constructing must not touch the disk
    assert hasattr(dm, "info") and hasattr(dm, "eval_shapes") and hasattr(dm, "eval_views")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_preset_instantiates(experiment):
    cfg = _compose([f"experiment={experiment}", "run_dir=/tmp/zoo_cfg_test"])
    net = instantiate(cfg.model)
    assert experiment.startswith(net.name)


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "eval"])
def test_other_groups_instantiate(group, tmp_path):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        overrides = [f"{group}={option}", f"run_dir={tmp_path}"]
        if group == "trainer" and not torch.cuda.is_available():
            overrides.append("trainer.accelerator=cpu")  # the rest of a GPU preset still checked
        cfg = _compose(overrides)
        node = cfg[group]
        if "_target_" in node:
            instantiate(node)
        else:
            for sub in node.values():
                instantiate(sub)


def test_eval_and_sample_configs_compose():
    assert _compose(["ckpt=x.ckpt"], name="eval").ckpt == "x.ckpt"
    assert _compose(["ckpt=x.ckpt", "n=3"], name="sample").n == 3
