"""What a run tells its user: the end summary, the model table, and which warnings are kept."""

from __future__ import annotations

import logging
import warnings

import pytest

from zoo.callbacks import format_model_table
from zoo.cli_utils import silence_library_noise
from zoo.run_log import command_line, route_library_logs, run_summary

LEAFSPEC = "`isinstance(treespec, LeafSpec)` is deprecated, use something else"
warn = warnings.warn  # called from code compiled as if it lived in another module


def test_summary_lists_existing_results_and_next_commands(tmp_path):
    run = tmp_path / "my run"
    (run / "renders").mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    (run / "mesh.ply").write_text("ply")
    ckpt = run / "checkpoints" / "last.ckpt"
    files = {
        "renders": run / "renders",
        "mesh": run / "mesh.ply",
        "metrics": run / "metrics.json",
        "log": run / "train.log",  # not written: left out
    }
    lines = run_summary(run, ckpt, tensorboard=True, files=files)
    text = "\n".join(lines)
    assert lines[0] == f"results in {run}:"
    assert f"renders:     {run / 'renders'}/" in text and f"mesh:        {run / 'mesh.ply'}" in text
    assert "train.log" not in text
    assert f"tensorboard --logdir '{run / 'tensorboard'}'" in text  # quoted: a space
    for module in ("zoo.sample", "zoo.eval", "zoo.view"):
        assert f"python -m {module} 'ckpt={ckpt}'" in text
    plain = run_summary(tmp_path, tmp_path / "a.ckpt", tensorboard=False, files={})
    assert not any("tensorboard" in ln for ln in plain) and len(plain) == 5
    assert command_line("zoo.eval", "ckpt=/x/y") == "python -m zoo.eval ckpt=/x/y"


def test_model_table_drops_flops_only_when_nothing_was_counted():
    cols = [("Name", ["field"]), ("Params", ["55.2 K"]), ("FLOPs", ["0"])]
    table = format_model_table(cols, 55200, 55200, total_flops=0)
    assert "FLOPs" not in table and "field" in table and "55.2 K total" in table
    assert "FLOPs: 1.0 K" in format_model_table(cols, 55200, 55200, total_flops=1000)


def _caught(fn) -> list[str]:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        silence_library_noise()
        fn()
    return [str(w.message) for w in rec]


def test_library_noise_is_silenced_but_the_same_warning_elsewhere_is_kept():
    lightning = {"__name__": "pytorch_lightning.utilities._pytree"}
    assert _caught(lambda: exec(f"warn({LEAFSPEC!r}, FutureWarning)", lightning, globals())) == []
    # The same message from the user's own code, and any other warning, are still shown.
    user = {"__name__": "my_project.configs"}
    shown = _caught(lambda: exec(f"warn({LEAFSPEC!r}, FutureWarning)", user, globals()))
    assert shown == [LEAFSPEC]
    assert _caught(lambda: warnings.warn("lr looks large", UserWarning, stacklevel=1)) == [
        "lr looks large"
    ]


def test_lightning_logs_reach_the_root_handlers_in_a_hydra_run(monkeypatch):
    root, lib = logging.getLogger(), logging.getLogger("pytorch_lightning")
    own = logging.StreamHandler()  # what Lightning installs when imported before logging
    monkeypatch.setattr(lib, "handlers", [own])
    monkeypatch.setattr(lib, "propagate", False)
    monkeypatch.setattr(root, "handlers", [])
    route_library_logs()  # no root handler (not a Hydra run): nothing changes
    assert lib.handlers == [own] and not lib.propagate
    file_handler = logging.NullHandler()
    monkeypatch.setattr(root, "handlers", [file_handler])
    try:
        route_library_logs()
        assert lib.handlers == [] and lib.propagate
    finally:
        logging.captureWarnings(False)


@pytest.fixture(autouse=True)
def _restore_filters():
    with warnings.catch_warnings():
        yield
