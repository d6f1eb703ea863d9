"""Publishing pretrained weights: evaluating a registry entry with its recorded setting, and
exporting a training checkpoint into the registry (weights file, hash, training cost, metrics
of the stored weights); the ``python -m zoo.pretrained`` command line.

    python -m zoo.pretrained list
    python -m zoo.pretrained check      # entries whose command no longer trains what they ship
    python -m zoo.pretrained export --ckpt outputs/.../last.ckpt --name deepsdf-synthshapes-chair \\
        --command "python -m zoo.train model=deepsdf ..." --eval data.shapes_per_category=20
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf

from zoo.checkpoint import CheckpointError, load_model, read_checkpoint
from zoo.cli_utils import CONF_DIR
from zoo.evaluation import EvalConfig, evaluate
from zoo.pretrained import (
    MAX_FILE_BYTES,
    REGISTRY_FILE,
    PretrainedEntry,
    PretrainedError,
    _yaml_dump,
    load_pretrained,
    load_weights,
    read_registry,
    sha256_of,
    write_weights,
)
from zoo.pretrained import __doc__ as pretrained_doc


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
        description=pretrained_doc,
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
