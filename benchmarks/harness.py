"""What the benchmark scripts share: the machine record, building a model and its data exactly as
``python -m zoo.train`` does, one optimisation step through the models' public methods, the
held-out PSNR, the checkpoint times of a curve and the time to reach a PSNR. Each
``bench_*.py`` keeps its presets and its table (pytorch3d's ``bm_*.py`` are the model).

Imported by the scripts as ``import harness`` (Python puts a script's folder first on the path).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zoo.cli_utils import CONF_DIR
from zoo.metrics import mse_to_psnr

REPO = Path(__file__).resolve().parents[1]
TINY_LEGO = REPO / ".." / "shared" / "data" / "real" / "nerf" / "tiny_lego_100px_derived.npz"


def machine_record(load_before: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """The machine a result was measured on: platform, CPU, cores, torch and its threads and
    kernel path, the GPU if any, the OpenMP wait policy, and the load before (when given) and
    now (what else ran beside)."""
    out: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "loadavg_after": os.getloadavg(),
    }
    if load_before is not None:
        out["loadavg_before"] = load_before
    return out


def compose_train(overrides: list[str]) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides`` (nothing is run)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, "run_dir=/tmp/bench"])


def build(overrides: list[str], stage: str = "fit") -> tuple[Any, Any, DictConfig]:
    """``(model, datamodule, cfg)`` exactly as ``python -m zoo.train <overrides>`` builds them,
    the data prepared and set up for ``stage``."""
    cfg = compose_train(overrides)
    model = instantiate(cfg.model)
    dm = instantiate(cfg.data, form=model.data_form)
    dm.prepare_data()
    dm.setup(stage)
    model.configure_from_data(dm.info())
    return model, dm, cfg


def rays_step(model: Any, dm: Any) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """One step of a ray-batch model (nerf, mipnerf, ngp, pointnerf): a batch of random rays
    through ``model.train_on_batch``, then its optimiser (and scheduler); returns the step's
    loss and training PSNR."""
    ds = dm.train_dataset()
    opt_cfg = model.configure_optimizers()
    opt = opt_cfg["optimizer"] if isinstance(opt_cfg, dict) else opt_cfg
    sched = opt_cfg["lr_scheduler"]["scheduler"] if isinstance(opt_cfg, dict) else None

    def step(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        loss, psnr = model.train_on_batch(ds[i], i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        return loss.detach(), psnr

    return step


def view_step(model: Any, dm: Any) -> Callable[[int], Any]:
    """One step of a whole-view model (gaussians): one training view per step through
    ``model.train_on_view``."""
    views = dm.train_dataset()
    opt = model.configure_optimizers()

    def step(i: int) -> Any:
        batch = views[i]
        h, w = batch["rgb"].shape[:2]
        return model.train_on_view(model.camera_of(batch, h, w), batch["rgb"], opt, i)

    return step


def heldout_psnr(model: Any, cameras: Any, images: torch.Tensor) -> float:
    """Mean over views of the per-view PSNR of ``model``'s renders (clamped to [0, 1])."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        pred = model.render_maps(model, cameras)["rgb"].clamp(0, 1)
    model.train(was_training)
    mse = ((pred - images) ** 2).flatten(1).mean(dim=1)
    return float(mse_to_psnr(mse).mean())


def eval_times(budget: float) -> list[float]:
    """Checkpoints (s of training): 10, 20, 30, 45, 60, 90, 120, 150, 180, 240, 300, 360, ..."""
    base = [10, 20, 30, 45, 60, 90, 120, 150, 180, 240, 300]
    times = [float(t) for t in base if t < budget]
    t = 360.0
    while t < budget:
        times.append(t)
        t += 60.0
    return times + [float(budget)]


def time_to(curve: list[dict[str, float]], psnr: float) -> float | None:
    """First checkpoint training time at which the held-out PSNR reaches ``psnr``."""
    for point in curve:
        if point["psnr"] >= psnr:
            return point["train_s"]
    return None


def plain(node: Any) -> Any:
    """A config node as plain containers (for JSON)."""
    return OmegaConf.to_container(node, resolve=True)
