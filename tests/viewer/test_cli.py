"""``python -m zoo.view`` / ``zoo.train viewer=true`` input errors: one ``error:`` line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.viewer.browser import REPO
from zoo.viewer import ViewerUnavailable, require_viser


def _run(args: list[str], tmp_path, hide_viser: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    if hide_viser:  # a stand-in package that fails to import, as when the extra is missing
        fake = tmp_path / "no_viser" / "viser"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text("raise ImportError('No module named viser')\n")
        env["PYTHONPATH"] = f"{fake.parent}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_require_viser_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "viser", None)  # import viser -> ImportError
    with pytest.raises(ViewerUnavailable, match=r'pip install -e "\.\[view\]"'):
        require_viser()


@pytest.mark.slow
def test_view_without_the_extra_is_one_line(tmp_path):
    proc = _run(["zoo.view", "pretrained=ngp-synthshapes-chair"], tmp_path, hide_viser=True)
    line = _one_error_line(proc)
    assert "'view'" in line and 'pip install -e ".[view]"' in line


@pytest.mark.slow
def test_train_viewer_without_the_extra_is_one_line(tmp_path):
    proc = _run(
        ["zoo.train", "model=ngp", "viewer=true", f"hydra.run.dir={tmp_path / 'run'}",
         f"data.root={tmp_path / 'data'}", "logger=none"],
        tmp_path, hide_viser=True,
    )  # fmt: skip
    assert 'pip install -e ".[view]"' in _one_error_line(proc)


def test_view_config_sets_every_view_option():
    from hydra import compose, initialize_config_dir

    from zoo.cli_utils import CONF_DIR
    from zoo.viewer.session import ViewOptions

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="view", overrides=["pretrained=x"])
    fields = set(ViewOptions.__dataclass_fields__)
    assert fields <= set(cfg), fields - set(cfg)
    opts = ViewOptions(**{k: cfg[k] for k in fields})
    assert opts.preview_size < opts.full_size
    assert cfg.host == "127.0.0.1"  # loopback unless asked
