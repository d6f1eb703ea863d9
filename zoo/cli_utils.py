"""Helpers shared by the thin Hydra entry points (train, eval, sample)."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from zoo.checkpoint import CheckpointError, load_model
from zoo.data.io import atomic_write_json
from zoo.pretrained import PretrainedError, load_pretrained

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


# Warnings of the libraries that say nothing to a zoo user, each matched by category, message
# and the module that raises it, so that the same kind of warning from anywhere else (the
# user's own configs and code included) is still shown.
LIBRARY_NOISE: tuple[tuple[type[Warning], str, str], ...] = (
    # torch >= 2.10 deprecates isinstance(x, LeafSpec), which Lightning's _pytree still uses.
    (
        FutureWarning,
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        r"pytorch_lightning\.utilities\._pytree|lightning\.pytorch\.utilities\._pytree",
    ),
)


def silence_library_noise() -> None:
    """Ignore the warnings of :data:`LIBRARY_NOISE` (targeted filters: category, message and
    module must all match)."""
    for category, message, module in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def quiet_lightning() -> None:
    """Keep the console to the progress bar, the metrics and our own lines."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning")
    silence_library_noise()


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_one_source(cfg: DictConfig, command: str) -> None:
    """Exactly one of ``ckpt=`` and ``pretrained=`` must be given; otherwise one ``error:``
    line naming both (exit 2)."""
    if bool(cfg.get("ckpt")) == bool(cfg.get("pretrained")):
        fail(
            f"give a checkpoint or a pretrained name (one of them): python -m {command} "
            "ckpt=<path> | pretrained=<name>"
        )


def load_source(cfg: DictConfig, command: str, device: torch.device) -> tuple[Any, dict[str, Any]]:
    """The model and metadata that an entry point's ``ckpt=<path>`` or ``pretrained=<name>``
    (a name from ``python -m zoo.pretrained list``) names, on ``device``. Both or neither
    given, an unreadable checkpoint or an unknown / refused registry entry: one ``error:``
    line (exit 2)."""
    check_one_source(cfg, command)
    try:
        if cfg.get("pretrained"):
            model, meta, _ = load_pretrained(
                str(cfg.pretrained), map_location=device, with_meta=True
            )
            return model, meta
        return load_model(cfg.ckpt, map_location=device)
    except (CheckpointError, PretrainedError) as e:
        fail(str(e))
        raise  # unreachable: fail exits


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename; keys sorted, indent 2)."""
    atomic_write_json(path, obj)


def fail(message: str, code: int = 2) -> None:
    """Print one clear error line and exit non-zero."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
