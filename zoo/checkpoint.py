"""Checkpoints: atomic writes, and loading that never runs pickled code.

A zoo checkpoint is a Lightning checkpoint with one extra field, ``"zoo"``, holding plain
data only: the model's Hydra config, the data config, the datamodule's ``info()`` and the zoo
version. Loading uses ``torch.load(weights_only=True)`` (tensors and plain containers only), so
a file carrying a malicious pickle payload is refused before anything in it runs; configs may
only instantiate classes from an allow-list of module prefixes.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from zoo.data.io import atomic_write

ALLOWED_TARGET_PREFIXES = ("zoo.", "torch.optim.", "torch.nn.")


def allowed_target_prefixes() -> tuple[str, ...]:
    """Module prefixes a checkpoint's config may instantiate: zoo's own, plus those listed
    (comma-separated) in ``ZOO_TRUSTED_MODULES`` for models defined in your own packages."""
    extra = [p.strip() for p in os.environ.get("ZOO_TRUSTED_MODULES", "").split(",") if p.strip()]
    return ALLOWED_TARGET_PREFIXES + tuple(extra)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (full disk, quota, read-only or unwritable
    folder). Nothing was left under its name: an older file there is intact."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: cannot write the checkpoint: {problem}")
        self.path = str(path)
        self.problem = problem

    def __str__(self) -> str:  # OSError's own would print the args tuple
        return f"{self.path}: cannot write the checkpoint: {self.problem}"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable from ddp_spawn workers
        return (type(self), (self.path, self.problem))


def os_error_in(e: BaseException) -> OSError | None:
    """The OSError that ``e`` is or was raised while handling (torch's zip writer turns a
    failed write into ``RuntimeError: ... unexpected pos``, its context the real OSError)."""
    seen: BaseException | None = e
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``:
    a reader (or a crash) never sees a half-written checkpoint.

    Raises:
        CheckpointWriteError: the file could not be written (e.g. ``No space left on
            device``); the temporary file is removed and an older ``path`` is untouched.
    """
    try:
        atomic_write(path, lambda f: torch.save(obj, f))
    except (OSError, RuntimeError) as e:
        cause = os_error_in(e)
        if cause is None:
            raise
        raise CheckpointWriteError(path, cause.strerror or str(cause)) from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes atomically and loads with ``weights_only=True``."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return read_checkpoint(path, map_location=map_location or "cpu")


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint file with ``weights_only=True``; clear errors for every failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # garbage, not a pickle naming Python objects
            raise CheckpointError(path, "not a readable checkpoint (corrupt or not one)") from None
        raise CheckpointError(
            path,
            "refused: it holds Python objects other than tensors and plain containers, which "
            "could run code when loaded (weights_only=True); only load checkpoints you trust "
            f"with other tools. Detail: {_first_global(str(e))}",
        ) from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, OSError) as e:
        raise CheckpointError(
            path, f"not a readable checkpoint (truncated or corrupt): {str(e).splitlines()[0]}"
        ) from None


def _first_global(message: str) -> str:
    """The 'Unsupported global: ...' line of torch's weights-only error, if present."""
    for line in message.splitlines():
        if "global" in line.lower() and "GLOBAL" in line:
            return line.strip()
    return message.splitlines()[0]


def _check_targets(node: Any, path: Path) -> None:
    if isinstance(node, dict):
        target = node.get("_target_")
        allowed = allowed_target_prefixes()
        if target is not None and not str(target).startswith(allowed):
            raise CheckpointError(
                path,
                f"field 'zoo.model_cfg': refusing to instantiate {target!r} "
                f"(allowed: {', '.join(allowed)}; add yours to ZOO_TRUSTED_MODULES)",
            )
        for v in node.values():
            _check_targets(v, path)
    elif isinstance(node, list):
        for v in node:
            _check_targets(v, path)


def zoo_meta(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The ``"zoo"`` field of a checkpoint, validated."""
    meta = checkpoint.get("zoo")
    if not isinstance(meta, dict):
        raise CheckpointError(path, "not a zoo checkpoint (no 'zoo' field)")
    for key in ("model_name", "model_cfg", "data_info"):
        if key not in meta:
            raise CheckpointError(path, f"field 'zoo.{key}' is missing")
    if "state_dict" not in checkpoint:
        raise CheckpointError(path, "field 'state_dict' is missing")
    return meta


def load_model(
    path: str | Path, map_location: Any = "cpu", expect_model: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Load a trained zoo model from a checkpoint, ready for ``eval()`` use.

    Args:
        path: checkpoint written by ``zoo.train``.
        expect_model: if given, refuse a checkpoint of another model.
    Returns:
        (model, meta) where meta is the checkpoint's ``"zoo"`` field.
    """
    path = Path(path)
    ckpt = read_checkpoint(path, map_location=map_location)
    meta = zoo_meta(ckpt, path)
    model = build_model(meta, ckpt["state_dict"], path, expect_model=expect_model)
    return model.to(map_location), meta


def build_model(
    meta: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    path: str | Path,
    expect_model: str | None = None,
) -> Any:
    """Instantiate the model a checkpoint's ``"zoo"`` field describes and load its weights.

    Shared by checkpoints and pretrained weight files. Floating-point tensors stored at a lower
    precision (pretrained files may keep float16) are cast to the model's own dtype.
    """
    from hydra.utils import instantiate

    if expect_model is not None and meta["model_name"] != expect_model:
        raise CheckpointError(
            path, f"checkpoint of model {meta['model_name']!r}, expected {expect_model!r}"
        )
    _check_targets(meta["model_cfg"], path)
    model = instantiate(meta["model_cfg"])
    if model.name != meta["model_name"]:
        raise CheckpointError(
            path,
            f"field 'zoo.model_name' is {meta['model_name']!r} but the config builds "
            f"{model.name!r}",
        )
    model.configure_from_data(meta["data_info"])
    own = model.state_dict()
    state = {
        k: v.to(own[k].dtype)
        if k in own and v.is_floating_point() and own[k].is_floating_point()
        else v
        for k, v in state_dict.items()
    }
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            path, f"weights do not fit model {model.name!r}: {str(e).splitlines()[0]}"
        ) from None
    model.zoo_meta = meta
    model.eval()
    return model
