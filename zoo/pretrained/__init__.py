"""Pretrained weights: a registry of trained models that load without running any pickled code.

The registry (``zoo/weights/registry.yaml``) maps a name to a weights file (a path relative to
``zoo/weights/``, an absolute path, or a URL fetched once into torch.hub's cache), its sha256,
the command and resolved config it was trained with, the training cost, and the metrics of the
shipped weights under a recorded evaluation setting, so that anyone can check them
(``tests/test_pretrained.py`` does, for every entry).

Weights files are safetensors: tensors plus a JSON ``"zoo"`` metadata field (model name, Hydra
config, data info) -- nothing in them is executable. Floating-point tensors may be stored as
float16 to keep files small; they are cast back to the model's dtype on load, and the recorded
metrics are those of the stored (rounded) weights.

    python -m zoo.pretrained list
    python -m zoo.pretrained check      # entries whose command no longer trains what they ship
    python -m zoo.pretrained export --ckpt outputs/ngp/.../last.ckpt --name ngp-synth-chair
    python -m zoo.eval pretrained=ngp-synth-chair

This module is the registry and the weights' I/O (a leaf: the evaluator loads classifiers
through it); evaluating an entry and exporting a checkpoint into the registry live in
:mod:`zoo.pretrained.publish`, the command line in ``zoo/pretrained/__main__.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import CheckpointError, build_model
from zoo.data.io import atomic_write_text, atomic_write_via_path

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
REGISTRY_FILE = WEIGHTS_DIR / "registry.yaml"
FORMAT = "zoo-weights-1"
MAX_FILE_BYTES = 5 * 1024 * 1024


class PretrainedError(ValueError):
    """A registry entry or weights file that cannot be used; names the entry/file and why."""


@dataclass
class PretrainedEntry:
    """One registry entry (see the module docstring)."""

    name: str
    model: str
    file: str
    sha256: str
    url: str | None = None
    command: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    stored_dtype: str = "float32"
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @classmethod
    def from_dict(cls, name: str, d: Any, source: Path) -> PretrainedEntry:
        if not isinstance(d, dict):
            raise PretrainedError(f"{source}: entry {name!r} must be a mapping")
        for key in ("model", "file", "sha256"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise PretrainedError(
                    f"{source}: entry {name!r}: field {key!r} is missing or not a string"
                )
        known = set(cls.__dataclass_fields__) - {"name"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PretrainedError(f"{source}: entry {name!r}: unknown fields {unknown}")
        return cls(name=name, **d)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "name"}
        return {k: v for k, v in d.items() if v not in (None, "", {}, [])}


def read_registry(path: str | Path | None = None) -> dict[str, PretrainedEntry]:
    """The entries of ``path`` (default: the shipped registry) by name."""
    from omegaconf import OmegaConf

    path = Path(path) if path is not None else REGISTRY_FILE
    if not path.is_file():
        return {}
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    except Exception as e:  # noqa: BLE001  (YAML errors of several kinds)
        raise PretrainedError(f"{path}: not a readable registry: {e}") from None
    if not isinstance(raw, dict):
        raise PretrainedError(f"{path}: a registry is a mapping of name -> entry")
    return {str(k): PretrainedEntry.from_dict(str(k), v, path) for k, v in raw.items()}


def list_pretrained(registry: str | Path | None = None) -> list[str]:
    """Names of the registry's entries."""
    return sorted(read_registry(registry))


def get_entry(name: str, registry: str | Path | None = None) -> PretrainedEntry:
    entries = read_registry(registry)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise PretrainedError(f"no pretrained model {name!r} (known: {known})")
    return entries[name]


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_file(entry: PretrainedEntry, registry: str | Path | None = None) -> Path:
    """The local weights file of ``entry``: its absolute path or its path relative to the
    folder of ``registry`` (default: the shipped registry's), or the URL downloaded once into
    ``<torch.hub dir>/zoo/`` (only when a network exists)."""
    local = Path(entry.file)
    if not local.is_absolute():
        local = (Path(registry).parent if registry is not None else WEIGHTS_DIR) / local
    if local.is_file():
        return local
    if not entry.url:
        raise PretrainedError(f"{entry.name}: weights file {local} not found and no url given")
    cached = Path(torch.hub.get_dir()) / "zoo" / Path(entry.file).name
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(entry.url, str(cached), progress=True)
        except Exception as e:  # noqa: BLE001  (network errors of many kinds)
            raise PretrainedError(f"{entry.name}: could not fetch {entry.url}: {e}") from None
    return cached


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, zoo metadata) of a safetensors weights file; never unpickles anything."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw_meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(path, f"not a readable safetensors weights file: {e}") from None
    if raw_meta.get("format") != FORMAT or "zoo" not in raw_meta:
        raise CheckpointError(path, f"not a zoo weights file (metadata 'format' != {FORMAT!r})")
    try:
        meta = json.loads(raw_meta["zoo"])
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"metadata field 'zoo' is not JSON: {e}") from None
    for key in ("model_name", "model_cfg", "data_info"):
        if key not in meta:
            raise CheckpointError(path, f"metadata field 'zoo.{key}' is missing")
    return state, meta


def write_weights(
    model: Any, meta: dict[str, Any], path: str | Path, dtype: torch.dtype = torch.float32
) -> Path:
    """Write ``model``'s state dict (floating tensors as ``dtype``) and ``meta`` atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu())
        .contiguous()
        .clone()
        for k, v in model.state_dict().items()
    }
    metadata = {"format": FORMAT, "zoo": json.dumps(meta)}
    return atomic_write_via_path(path, lambda tmp: save_file(state, tmp, metadata=metadata))


def load_weights(
    path: str | Path, map_location: Any = "cpu", expect_model: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """A ready model from a safetensors weights file, and its metadata."""
    state, meta = read_weights(path)
    model = build_model(meta, state, path, expect_model=expect_model)
    return model.to(map_location), meta


def load_pretrained(
    name: str,
    map_location: Any = "cpu",
    registry: str | Path | None = None,
    check_hash: bool = True,
    with_meta: bool = False,
) -> Any:
    """The registry entry ``name`` as a ready :class:`~zoo.representation.Representation`
    (``with_meta=True``: ``(model, meta, entry)``). The file's sha256 must match the registry
    and its model must be the entry's model; otherwise it is refused."""
    entry = get_entry(name, registry)
    path = resolve_file(entry, registry)
    if check_hash:
        digest = sha256_of(path)
        if digest != entry.sha256:
            raise PretrainedError(
                f"{path}: sha256 {digest} does not match the registry's {entry.sha256} for "
                f"{name!r}; the file was changed or is corrupt, refusing to load it"
            )
    model, meta = load_weights(path, map_location=map_location, expect_model=entry.model)
    return (model, meta, entry) if with_meta else model


def _metrics_close(got: float, want: float, rtol: float, atol: float) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    return abs(got - want) <= atol + rtol * abs(want)


DEFAULT_RTOL = 0.02
DEFAULT_ATOL = 1e-4


def metric_tolerance(entry: PretrainedEntry, key: str) -> tuple[float, float]:
    """(rtol, atol) within which ``entry``'s recorded ``key`` must reproduce.

    The default covers float round-off between CPUs. An entry may record a wider, *measured*
    tolerance per metric under ``eval.tolerance.<key>: {rtol, atol, measured_spread}``, for a
    metric that is an optimisation result with spread across kernel paths (written from
    ``benchmarks/bench_pretrained_spread.py``; never wider without that measurement).
    """
    tol = (entry.eval.get("tolerance") or {}).get(key) or {}
    return float(tol.get("rtol", DEFAULT_RTOL)), float(tol.get("atol", DEFAULT_ATOL))


def compare_metrics(
    got: dict[str, float],
    want: dict[str, float],
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    entry: PretrainedEntry | None = None,
) -> list[str]:
    """Keys of ``want`` whose value in ``got`` is missing or off by more than the tolerance
    (``entry``'s recorded per-metric tolerance where it has one, else ``rtol`` / ``atol``)."""
    bad = []
    for k, v in want.items():
        r, a = metric_tolerance(entry, k) if entry is not None else (rtol, atol)
        if k not in got or not _metrics_close(got[k], v, r, a):
            bad.append(k)
    return bad


def _yaml_dump(entries: dict[str, PretrainedEntry], path: Path) -> None:
    from omegaconf import OmegaConf

    body = OmegaConf.to_yaml(OmegaConf.create({n: e.to_dict() for n, e in entries.items()}))
    header = (
        "# Pretrained zoo weights (see zoo/pretrained/). Written by\n"
        "# `python -m zoo.pretrained export ...`; `file` is relative to this folder.\n"
    )
    atomic_write_text(path, header + body)
