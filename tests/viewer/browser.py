"""Helpers for the browser tests: a headless Chromium driven by Playwright, viewer processes.

Chromium is the system's (Debian ``chromium``, installed by ``.ci/run``), found on PATH or
through ``ZOO_CHROMIUM``; Playwright drives it through ``executable_path`` and never downloads a
browser. When either is missing the tests fail with that reason (they do not skip).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
]


def chromium_path() -> str:
    """The Chromium executable, or AssertionError saying how to install it."""
    path = os.environ.get("ZOO_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
    )
    assert path, (
        "no Chromium found for the browser tests: install it (Debian: apt-get install -y "
        "chromium) or set ZOO_CHROMIUM to its path"
    )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ViewerProcess:
    """``python -m zoo.view <args> port=<free>`` in the background, with its URL."""

    def __init__(self, *args: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoo.view", *args, f"port={self.port}", f"out={log.parent}"],
            cwd=REPO,
            env=env,
            stdout=open(log, "w"),  # noqa: SIM115  (closed with the process)
            stderr=subprocess.STDOUT,
        )
        self.url: str | None = None

    def wait_url(self, timeout: float = 60.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(r"viewer: (http://\S+)", self.log.read_text())
            if m:
                self.url = m.group(1)
                return self.url
            assert self.proc.poll() is None, f"viewer exited: {self.log.read_text()[-2000:]}"
            time.sleep(0.2)
        raise AssertionError(f"viewer printed no URL in {timeout} s: {self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def canvas_pixels(page, save: Path | None = None) -> np.ndarray:
    """(H, W, 3) uint8 screenshot of the page's 3D canvas (also written to ``save``)."""
    import imageio.v3 as iio

    png = page.locator("canvas").first.screenshot()
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_bytes(png)
    return iio.imread(png)[..., :3]


def centre(img: np.ndarray, frac: float = 0.4) -> np.ndarray:
    """The central ``frac`` x ``frac`` of an image, where the model sits, away from the GUI
    panel (right), the notifications (top left) and the axes gizmo (bottom left)."""
    h, w = img.shape[:2]
    dh, dw = int(h * (1 - frac) / 2), int(w * (1 - frac) / 2)
    return img[dh : h - dh, dw : w - dw]


def drawn_fraction(img: np.ndarray, background: np.ndarray | None = None) -> float:
    """Fraction of pixels that differ from the background colour (default: the most common
    corner colour) by more than 24 levels in some channel."""
    if background is None:  # the most common of the four corners
        corners = np.stack([img[2, 2], img[2, -3], img[-3, 2], img[-3, -3]])
        background = np.median(corners, axis=0)
    diff = np.abs(img.astype(int) - background.astype(int)).max(-1)
    return float((diff > 24).mean())
