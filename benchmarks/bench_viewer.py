"""Benchmark: what the live viewer costs training, and how fast it renders radiance fields.

0. Per-step overhead (``--overhead``): the callback's cost per step with no browser, timed
   directly, and the idle viewer server's CPU use.
1. Training speed (``--train``): ``python -m zoo.train model=<model>`` timed by a callback
   (steps per second over the fit loop, validation excluded, the first ``--warmup`` steps
   skipped) in three conditions, interleaved round by round so machine load hits them alike:
   ``off`` (viewer=false), ``idle`` (viewer=true, no browser connected) and ``browser``
   (viewer=true with a headless Chromium on the page, camera still: the view is refreshed
   every 2 s at preview resolution). Goal: ``idle`` within 5% of ``off``.
2. On-demand rendering (``--fps``): frames per second of what the viewer renders per frame for
   a radiance field (``zoo.viewer.render.render_view`` at a 16:9 browser camera) at the preview
   (64 px high, while the camera moves) and full (256 px, once it stops) resolutions, on CPU
   and on CUDA when present, for the pretrained ngp and nerf.

Prints tables and writes JSON (default ``benchmarks/results/viewer.json``)::

    python benchmarks/bench_viewer.py                         # both parts
    python benchmarks/bench_viewer.py --train --rounds 3 --steps 300
    python benchmarks/bench_viewer.py --fps --device cuda

The numbers in the reports were taken on a shared 2-core CPU with other jobs running; re-run
it alone for clean ones. Needs the ``view`` extra, and Chromium + Playwright for ``browser``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import pytorch_lightning as pl

REPO = Path(__file__).resolve().parents[1]


class StepTimer(pl.Callback):
    """Steps per second of the fit loop after ``warmup`` steps, validation time excluded,
    written as JSON to ``out`` when fitting ends (added with ``+callbacks.step_timer``)."""

    def __init__(self, out: str, warmup: int = 20) -> None:
        self.out, self.warmup = out, int(warmup)
        self.t0: float | None = None
        self.val_s = 0.0
        self._val_start = 0.0
        self.steps = 0

    def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step == self.warmup and self.t0 is None:
            self.t0, self.cpu0 = time.perf_counter(), _cpu_s()

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if self.t0 is not None:
            self.steps += 1
            self.t_end, self.cpu_end = time.perf_counter(), _cpu_s()

    def on_validation_start(self, *args: Any) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, *args: Any) -> None:
        if self.t0 is not None:
            self.val_s += time.perf_counter() - self._val_start

    def on_fit_end(self, *args: Any) -> None:
        seconds = self.t_end - self.t0 - self.val_s
        cpu = self.cpu_end - self.cpu0  # (includes validation's: there is none by default)
        Path(self.out).write_text(
            json.dumps({"steps": self.steps, "seconds": seconds, "cpu_s": cpu})
        )


def _cpu_s() -> float:
    """CPU seconds used by this process so far (all threads: training and the viewer's)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _train_once(
    model: str, steps: int, warmup: int, mode: str, tmp: Path, chromium: str
) -> tuple[float, float]:
    """One training run in ``mode`` (off / idle / browser): (steps per second, CPU ms per
    step). CPU time per step is the measure that machine load disturbs least."""
    out = tmp / f"timer_{mode}_{time.monotonic_ns()}.json"
    port = _free_port()
    cmd = [
        sys.executable, "-m", "zoo.train", f"model={model}", f"trainer.max_steps={steps}",
        "trainer.val_check_interval=100000", "logger=none", "eval.max_shapes=1",
        "eval.save_images=false", f"hydra.run.dir={tmp / ('run_' + mode)}",
        f"viewer={'false' if mode == 'off' else 'true'}", f"viewer_port={port}",
        "+callbacks.step_timer._target_=bench_viewer.StepTimer",
        f"+callbacks.step_timer.out={out}", f"+callbacks.step_timer.warmup={warmup}",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'benchmarks'}{os.pathsep}{REPO}")
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    browser = None
    log: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        log.append(line)
        m = re.search(r"viewer: (http://\S+)", line)
        if m and mode == "browser":
            browser = _attach_browser(m.group(1), chromium)
    proc.wait()
    if browser is not None:
        browser()
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"training ({mode}) failed:\n{''.join(log)[-3000:]}")
    timed = json.loads(out.read_text())
    return timed["steps"] / timed["seconds"], 1e3 * timed["cpu_s"] / timed["steps"]


def _attach_browser(url: str, chromium: str) -> Any:
    """Open ``url`` in a headless Chromium (in a thread: the page stays open while training
    runs); returns a function that closes it."""
    import threading

    done = threading.Event()
    ready = threading.Event()

    def run() -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = b.new_page(viewport={"width": 960, "height": 540})
            page.goto(url)
            page.wait_for_selector("canvas", timeout=60_000)
            ready.set()
            while not done.wait(0.2):
                pass
            b.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(60)

    def close() -> None:
        done.set()
        t.join(30)

    return close


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_train(model: str, steps: int, warmup: int, rounds: int, modes: list[str]) -> dict:
    import shutil

    chromium = os.environ.get("ZOO_CHROMIUM") or shutil.which("chromium") or ""
    if "browser" in modes and not chromium:
        raise SystemExit(
            "error: no chromium for the 'browser' condition (apt-get install chromium)"
        )
    rates: dict[str, list[float]] = {m: [] for m in modes}
    cpu_ms: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for mode in modes:
                rate, cpu = _train_once(model, steps, warmup, mode, Path(tmp), chromium)
                rates[mode].append(rate)
                cpu_ms[mode].append(cpu)
                print(f"round {r + 1}/{rounds} {mode:8s} {rate:7.2f} steps/s "
                      f"{cpu:8.1f} CPU ms/step", flush=True)  # fmt: skip
    med = {m: statistics.median(v) for m, v in rates.items()}
    med_cpu = {m: statistics.median(v) for m, v in cpu_ms.items()}
    return {
        "model": model,
        "steps": steps,
        "warmup": warmup,
        "rounds": rounds,
        "steps_per_s": rates,
        "cpu_ms_per_step": cpu_ms,
        "median_steps_per_s": med,
        "median_cpu_ms_per_step": med_cpu,
        "relative_to_off": {m: med[m] / med["off"] for m in med} if "off" in med else {},
        "cpu_relative_to_off": (
            {m: med_cpu[m] / med_cpu["off"] for m in med_cpu} if "off" in med_cpu else {}
        ),
    }


def bench_callback_overhead(calls: int = 200_000) -> dict:
    """Cost per training step of the viewer with no browser connected, measured directly: a
    running viewer session (pretrained ngp) and its callback's ``on_train_batch_end``, plus
    the idle server's own CPU use over 10 s."""
    import resource

    from zoo.pretrained import load_pretrained
    from zoo.viewer.callback import ViewerCallback
    from zoo.viewer.server import start_server
    from zoo.viewer.session import ViewerSession

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    model = load_pretrained("ngp-synthshapes-chair")
    cb = ViewerCallback(port=_free_port())
    cb.server = start_server("127.0.0.1", _free_port(), quiet=True)
    cb.session = ViewerSession(cb.server, model, training=True, cameras=None)
    t0 = time.perf_counter()
    for i in range(calls):
        cb.on_train_batch_end(None, model, None, None, i)  # type: ignore[arg-type]
    per_call_us = 1e6 * (time.perf_counter() - t0) / calls
    c0 = cpu()
    time.sleep(10.0)
    idle_cpu_s = cpu() - c0
    cb.close()
    print(f"callback, no browser: {per_call_us:.3f} us per step; idle server CPU over 10 s: "
          f"{idle_cpu_s * 1e3:.2f} ms", flush=True)  # fmt: skip
    return {"per_step_us": per_call_us, "idle_server_cpu_ms_per_10s": 1e3 * idle_cpu_s}


def bench_fps(names: list[str], device: str, repeats: int) -> list[dict]:
    import torch

    from zoo.pretrained import load_pretrained
    from zoo.viewer.cameras import BrowserPose, matrix_to_quat
    from zoo.viewer.render import render_view

    # A browser camera at the synthetic scenes' radius looking at the origin, +z up (OpenCV).
    eye = torch.tensor([1.1, -1.1, 0.6])
    fwd = torch.nn.functional.normalize(-eye, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(fwd, torch.tensor([0.0, 0, 1])), dim=0)
    down = torch.linalg.cross(fwd, right)
    rot = torch.stack([right, down, fwd], dim=1).double().numpy()
    pose = BrowserPose(tuple(matrix_to_quat(rot)), tuple(eye.tolist()), math.radians(45), 16 / 9)
    rows = []
    for name in names:
        model = load_pretrained(name, map_location=device)
        for label, height in (("preview", 64), ("full", 256)):
            render_view(model, pose, height)  # warm-up (allocations, kernels)
            times = []
            for _ in range(repeats):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                maps = render_view(model, pose, height)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            s = statistics.median(times)
            h, w = maps["rgb"].shape[:2]
            rows.append(
                {"model": name, "device": device, "quality": label, "width": w, "height": h,
                 "ms": 1e3 * s, "fps": 1.0 / s, "repeats": repeats}
            )  # fmt: skip
            print(f"{name:26s} {device:5s} {label:8s} {w:4d}x{h:<4d} {1e3 * s:9.1f} ms "
                  f"{1.0 / s:7.2f} fps", flush=True)  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", action="store_true", help="only the training-speed part")
    ap.add_argument("--fps", action="store_true", help="only the rendering part")
    ap.add_argument("--overhead", action="store_true", help="only the per-step overhead part")
    ap.add_argument("--model", default="ngp")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", default="off,idle,browser")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--models", default="ngp-synthshapes-chair,nerf-synthshapes-chair")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "viewer.json"))
    args = ap.parse_args()
    both = not args.train and not args.fps and not args.overhead
    out = Path(args.out)
    result: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    result["machine"] = harness.machine_record()
    if args.overhead or both:
        result["overhead"] = bench_callback_overhead()
    if args.train or both:
        result["train"] = bench_train(
            args.model, args.steps, args.warmup, args.rounds, args.modes.split(",")
        )
        med = result["train"]["median_steps_per_s"]
        rel = result["train"]["relative_to_off"]
        cpu, crel = (
            result["train"]["median_cpu_ms_per_step"],
            result["train"]["cpu_relative_to_off"],
        )
        print(
            f"\n| condition | steps/s (median of {args.rounds}) | vs off | CPU ms/step | vs off |"
        )
        print("|---|---|---|---|---|")
        for m in med:
            print(f"| {m} | {med[m]:.2f} | {rel.get(m, float('nan')):.3f} | {cpu[m]:.1f} "
                  f"| {crel.get(m, float('nan')):.3f} |")  # fmt: skip
    if args.fps or both:
        rows = bench_fps(args.models.split(","), args.device, args.repeats)
        result.setdefault("fps", {})[args.device] = rows
        print("\n| model | device | frame | size | ms | fps |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['model']} | {r['device']} | {r['quality']} | {r['width']}x{r['height']} "
                  f"| {r['ms']:.1f} | {r['fps']:.2f} |")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
