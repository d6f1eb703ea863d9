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
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from zoo.checkpoint import CheckpointError, build_model

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"format": FORMAT, "zoo": json.dumps(meta)})
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shipped file from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def evaluate_pretrained(
    name: str,
    registry: str | Path | None = None,
    eval_overrides: dict[str, Any] | None = None,
    data_root: str | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, float]:
    """Metrics of entry ``name`` on the data it was trained on, with the entry's recorded
    evaluation setting (or ``eval_overrides``)."""
    model, meta, entry = load_pretrained(name, registry=registry, with_meta=True)
    settings = dict(entry.eval.get("settings", {})) if eval_overrides is None else eval_overrides
    return _evaluate(model, meta, settings, data_root, out_dir)


def _evaluate(
    model: Any,
    meta: dict[str, Any],
    settings: dict[str, Any],
    data_root: str | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, float]:
    from hydra.utils import instantiate

    from zoo.evaluation import EvalConfig, evaluate

    data_cfg = dict(meta.get("data_cfg") or {})
    if not data_cfg:
        raise PretrainedError(f"{meta.get('model_name')}: no data config stored in the weights")
    # settings["data"]: data-config fields of the recorded evaluation (e.g. a smaller draw of
    # the same generator, so that the test suite reproduces an entry trained on hundreds of
    # shapes without generating them all).
    settings = dict(settings)
    data_cfg.update(settings.pop("data", None) or {})
    if data_root is not None:
        data_cfg["root"] = data_root
    dm = instantiate(data_cfg, form=model.data_form)
    dm.prepare_data()
    dm.setup("test")
    cfg = EvalConfig(**{**settings, "save_images": out_dir is not None})
    return evaluate(model, dm, cfg, out_dir=out_dir)


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


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": v}`` of a nested mapping's leaves (lists are leaves)."""
    if not isinstance(node, dict) or not node:
        return {prefix.removesuffix("."): node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def _same_value(key: str, recorded: Any, now: Any) -> bool:
    """Equal values; ``_target_`` paths are equal when they name the same object (a class
    moved to another module and re-exported under its old path is the same class)."""
    if recorded == now:
        return True
    if key.endswith("_target_") and isinstance(recorded, str) and isinstance(now, str):
        from hydra.utils import get_object

        try:
            return get_object(recorded) is get_object(now)
        except Exception:  # noqa: BLE001  (an import of a path that no longer exists)
            return False
    return False


def command_drift(entry: PretrainedEntry) -> list[str]:
    """How the config that ``entry.command`` composes today differs from the one its weights
    were trained with (``entry.config``): one line per recorded model / data field whose value
    changed or that is gone, and one when ``trainer.max_steps`` is no longer the recorded step
    count. Empty: the command still trains what was shipped. Fields added since (absent from
    the record) are not listed: the weights load with their defaults, and the entry's metric
    test checks that these reproduce its recorded metrics.

    Raises:
        PretrainedError: the command is not ``python -m zoo.train <overrides>`` or does not
            compose.
    """
    import shlex

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from zoo.cli_utils import CONF_DIR

    words = shlex.split(entry.command)
    if words[:3] != ["python", "-m", "zoo.train"]:
        raise PretrainedError(f"{entry.name}: command is not 'python -m zoo.train ...'")
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="train", overrides=[*words[3:], "run_dir=."])
    except Exception as e:  # noqa: BLE001  (Hydra's override and composition errors)
        raise PretrainedError(f"{entry.name}: command does not compose: {e}") from None
    drift = []
    for group in ("model", "data"):
        recorded = _flatten(entry.config.get(group) or {}, f"{group}.")
        now = _flatten(OmegaConf.to_container(cfg[group], resolve=True), f"{group}.")
        for key, value in recorded.items():
            if key not in now:
                drift.append(f"{key}: recorded {value!r}, no longer in the config")
            elif not _same_value(key, value, now[key]):
                drift.append(f"{key}: recorded {value!r}, the command gives {now[key]!r} now")
    step = entry.train.get("global_step")
    if step is not None and int(cfg.trainer.max_steps) != int(step):
        drift.append(
            f"trainer.max_steps: trained {step} steps, the command gives {cfg.trainer.max_steps}"
        )
    return drift


def _yaml_dump(entries: dict[str, PretrainedEntry], path: Path) -> None:
    from omegaconf import OmegaConf

    body = OmegaConf.to_yaml(OmegaConf.create({n: e.to_dict() for n, e in entries.items()}))
    header = (
        "# Pretrained zoo weights (see zoo/pretrained.py). Written by\n"
        "# `python -m zoo.pretrained export ...`; `file` is relative to this folder.\n"
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + body)
    os.replace(tmp, path)


def _time_file_stats(path: Path) -> dict[str, Any]:
    """Wall time and peak RSS from a GNU ``/usr/bin/time -v`` report."""
    stats: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("Elapsed (wall clock) time"):
            clock = line.rsplit(" ", 1)[-1].split(":")
            secs = 0.0
            for part in clock:
                secs = secs * 60 + float(part)
            stats["wall_s"] = round(secs, 1)
        elif line.startswith("Maximum resident set size (kbytes)"):
            stats["peak_rss_mb"] = round(int(line.rsplit(" ", 1)[-1]) / 1024, 1)
        elif line.startswith("User time (seconds)"):
            stats["user_cpu_s"] = float(line.rsplit(" ", 1)[-1])
    return stats


def export(
    ckpt: str | Path,
    name: str,
    command: str,
    half: bool | None = None,
    time_file: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    registry: str | Path | None = None,
    description: str = "",
    data_root: str | None = None,
) -> PretrainedEntry:
    """Turn a training checkpoint into a registry entry: weights file, hash, training cost and
    metrics of the stored weights (evaluated here with ``settings``). ``data_root`` replaces
    the data root the run used (e.g. a scratch folder) in the stored data config, so the entry
    is evaluated on (and documents) the data where every user has it."""
    from zoo.checkpoint import load_model

    registry = Path(registry) if registry is not None else REGISTRY_FILE
    model, meta = load_model(ckpt)
    if data_root is not None and meta.get("data_cfg"):
        meta = {**meta, "data_cfg": {**meta["data_cfg"], "root": data_root}}
    n_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    if half is None:
        half = n_bytes > 0.9 * MAX_FILE_BYTES
    dtype = torch.float16 if half else torch.float32
    out = registry.parent / f"{name}.safetensors"
    write_weights(model, meta, out, dtype)
    size = out.stat().st_size
    if size > MAX_FILE_BYTES:
        out.unlink()
        raise PretrainedError(f"{name}: weights file is {size / 2**20:.2f} MiB, over 5 MiB")
    # The recorded metrics are those of the stored weights, re-read from the file.
    stored, _ = load_weights(out, expect_model=meta["model_name"])
    settings = dict(settings or {})
    metrics = _evaluate(stored, meta, settings)
    train: dict[str, Any] = {"global_step": int(_global_step(ckpt))}
    train_metrics = Path(ckpt).with_suffix(".metrics.json")
    if train_metrics.is_file():
        train["metrics"] = json.loads(train_metrics.read_text())
    if time_file is not None:
        train.update(_time_file_stats(Path(time_file)))
    entry = PretrainedEntry(
        name=name,
        model=meta["model_name"],
        file=out.name,
        sha256=sha256_of(out),
        command=command,
        config={"model": meta["model_cfg"], "data": meta.get("data_cfg")},
        stored_dtype=str(dtype).removeprefix("torch."),
        train=train,
        eval={"settings": settings, "metrics": metrics},
        description=description,
    )
    entries = read_registry(registry)
    entries[name] = entry
    _yaml_dump(dict(sorted(entries.items())), registry)
    return entry


def _global_step(ckpt: str | Path) -> int:
    from zoo.checkpoint import read_checkpoint

    return int(read_checkpoint(ckpt).get("global_step", -1))


def _settings_of(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (values read as YAML) as evaluation settings; ``data.<field>``
    pairs are gathered under ``settings["data"]``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PretrainedError(f"--eval takes key=value pairs, got {pair!r}")
        parsed = yaml.safe_load(value)
        if key.startswith("data."):
            out.setdefault("data", {})[key.removeprefix("data.")] = parsed
        else:
            out[key] = parsed
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m zoo.pretrained",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    reg = argparse.ArgumentParser(add_help=False)
    reg.add_argument("--registry", default=None, help="a registry file (default: the shipped one)")
    sub.add_parser("list", parents=[reg], help="list the registry's entries")
    sub.add_parser(
        "check",
        parents=[reg],
        help="entries whose recorded command no longer trains what they ship",
    )
    ex = sub.add_parser("export", parents=[reg], help="add a trained checkpoint to the registry")
    ex.add_argument("--ckpt", required=True)
    ex.add_argument("--name", required=True)
    ex.add_argument("--command", required=True, help="the training command, as run")
    ex.add_argument("--half", action=argparse.BooleanOptionalAction, default=None)
    ex.add_argument("--time-file", help="a /usr/bin/time -v report of the training run")
    ex.add_argument("--max-shapes", type=int, default=4, help="evaluation setting recorded")
    ex.add_argument(
        "--eval",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="more evaluation settings recorded (EvalConfig fields; data.<field> changes the "
        "data config of the recorded evaluation, e.g. data.shapes_per_category=20)",
    )
    ex.add_argument("--description", default="")
    ex.add_argument("--data-root", default=None, help="the data root recorded instead of the run's")
    args = p.parse_args(argv)
    try:
        extra = _settings_of(getattr(args, "eval", []))
        if args.cmd == "list":
            for name, e in read_registry(args.registry).items():
                print(f"{name:<28} {e.model:<10} {e.file}  ({e.command})")
            return
        if args.cmd == "check":
            lagging = 0
            for name, e in read_registry(args.registry).items():
                drift = command_drift(e)
                lagging += bool(drift)
                print(f"{name}: " + ("up to date" if not drift else "lags the code"))
                print("".join(f"  {line}\n" for line in drift), end="")
            raise SystemExit(1 if lagging else 0)
        entry = export(
            args.ckpt,
            args.name,
            args.command,
            half=args.half,
            time_file=args.time_file,
            # ceilings depend on the data, not on the weights: the registry test skips them
            settings={"max_shapes": args.max_shapes, "ceilings": False, **extra},
            registry=args.registry,
            description=args.description,
            data_root=args.data_root,
        )
    except (PretrainedError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(entry.to_dict()["eval"], indent=2))


if __name__ == "__main__":
    main()
