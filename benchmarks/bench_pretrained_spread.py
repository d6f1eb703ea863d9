"""Spread of every pretrained entry's recorded metrics across CPU kernel paths and thread counts.

A recorded metric must be a property of the weights, not of one CPU. Float round-off differs
between CPUs (SIMD width, BLAS kernels, reduction order), and on one machine
``ATEN_CPU_CAPABILITY=default|avx2|avx512`` selects PyTorch's other kernel paths while
``OMP_NUM_THREADS=1|2`` changes the order of parallel reductions. This script re-evaluates
every entry (``zoo.pretrained.publish.evaluate_pretrained``, the entry's recorded setting) in
one child process per (capability, threads) pair, then prints, per entry and metric: the
recorded value, the min / max over the runs, the relative spread ``(max - min) / |recorded|``
and the tolerance the test (tests/test_pretrained.py) applies.
JSON: ``benchmarks/results/pretrained_spread.json``.

    python benchmarks/bench_pretrained_spread.py
    python benchmarks/bench_pretrained_spread.py --entries voxel_gan-synthshapes --caps default avx2
    python benchmarks/bench_pretrained_spread.py --cache /tmp/spread --record   # re-record

A capability above what the CPU supports is clamped by PyTorch to the best available one; the
script records the capability each child actually ran (``torch.backends.cpu.get_cpu_capability``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[1]


def _child(entries: list[str]) -> None:
    """Evaluate ``entries`` in this process; print one JSON line."""
    import torch

    from zoo.pretrained.publish import evaluate_pretrained

    out = {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }
    for name in entries:
        t0 = time.perf_counter()
        out[name] = {"metrics": evaluate_pretrained(name), "seconds": time.perf_counter() - t0}
    print("RESULT " + json.dumps(out))


def _run(entries: list[str], cap: str, threads: int, cache: Path | None) -> dict:
    """One (capability, threads) configuration's results; with a ``cache`` folder, entries
    already in it are reused, the others evaluated in one child process and added to it."""
    done = cache / f"{cap}_{threads}.json" if cache is not None else None
    have = json.loads(done.read_text()) if done is not None and done.is_file() else {}
    missing = [e for e in entries if e not in have]
    if not missing:
        return have
    env = dict(os.environ, ATEN_CPU_CAPABILITY=cap, OMP_NUM_THREADS=str(threads))
    env["PYTHONWARNINGS"] = "ignore"
    # Sleeping, not spinning, OpenMP threads: on a shared machine spinning threads made the
    # 2-thread runs ~10x slower (the results are the same either way).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *missing],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"child {cap}/{threads} failed:\n{proc.stderr[-3000:]}")
    have.update(json.loads(lines[-1].removeprefix("RESULT ")))
    if done is not None:
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(have))
    return have


def _record(entries: list[str], runs: list[dict]) -> None:
    """Registry: recorded metrics = median over the runs; tolerance = 2x the measured largest
    deviation from it, only where that deviation exceeds half the default tolerance."""
    from zoo.pretrained import DEFAULT_ATOL, DEFAULT_RTOL, REGISTRY_FILE, _yaml_dump, read_registry

    registry = read_registry()
    for name in entries:
        e = registry[name]
        keys = sorted({k for r in runs for k in r[name]["metrics"]})
        metrics, tolerance = {}, {}
        for key in keys:
            vals = [r[name]["metrics"][key] for r in runs]
            if any(math.isnan(v) for v in vals):
                metrics[key] = math.nan
                continue
            med = statistics.median(vals)
            metrics[key] = med
            dev = max(abs(v - med) for v in vals)
            if dev > 0.5 * (DEFAULT_ATOL + DEFAULT_RTOL * abs(med)):
                tolerance[key] = {
                    "rtol": round(2 * dev / max(abs(med), 1e-12), 4),
                    "atol": 0.0,
                    "measured_spread": [min(vals), max(vals)],
                }
        e.eval = {**e.eval, "metrics": metrics}
        e.eval.pop("tolerance", None)
        if tolerance:
            e.eval["tolerance"] = tolerance
    _yaml_dump(registry, REGISTRY_FILE)
    print(f"recorded new metrics in {REGISTRY_FILE}")


def main() -> None:
    from zoo.pretrained import get_entry, metric_tolerance, read_registry

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", nargs="*", default=None, help="default: every entry")
    p.add_argument("--caps", nargs="*", default=["default", "avx2", "avx512"])
    p.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    p.add_argument("--out", default=str(REPO / "benchmarks/results/pretrained_spread.json"))
    p.add_argument(
        "--record",
        action="store_true",
        help="write the median of the runs as each entry's recorded metrics (a new evaluation "
        "convention), and a per-metric tolerance where the measured spread exceeds half the "
        "default one",
    )
    p.add_argument(
        "--cache",
        default=None,
        help="folder keeping each configuration's results, reused by the next call (to resume "
        "or to --record after a run; delete it after changing the code)",
    )
    p.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        _child(args.child)
        return
    entries = args.entries or sorted(read_registry())
    runs = []
    for cap in args.caps:
        for threads in args.threads:
            t0 = time.perf_counter()
            r = _run(entries, cap, threads, Path(args.cache) if args.cache else None)
            took = time.perf_counter() - t0
            print(f"ran {cap}/{threads} (actual {r['capability']}) in {took:.0f} s", flush=True)
            runs.append({"requested": cap, **r})
    report: dict = {
        "machine": harness.machine_record(),
        "runs": [{k: r[k] for k in ("requested", "capability", "threads")} for r in runs],
        "entries": {},
    }
    print("\n| entry | metric | recorded | min | max | spread (rel) | test tolerance (rel) |")
    print("|---|---|---|---|---|---|---|")
    for name in entries:
        want = get_entry(name).eval["metrics"]
        rows = {}
        for key, rec in want.items():
            vals = [r[name]["metrics"].get(key, math.nan) for r in runs]
            lo, hi = min(vals), max(vals)
            rel = (hi - lo) / abs(rec) if rec else (hi - lo)
            rtol, atol = metric_tolerance(get_entry(name), key)
            dev = max(abs(v - rec) for v in vals)
            rows[key] = {
                "recorded": rec,
                "values": vals,
                "min": lo,
                "max": hi,
                "spread_rel": rel,
                "max_dev_from_recorded": dev,
                "rtol": rtol,
                "atol": atol,
            }
            print(
                f"| {name} | {key} | {rec:.6g} | {lo:.6g} | {hi:.6g} | {rel:.2e} | "
                f"{rtol:g} (+{atol:g}) |"
            )
        secs = [r[name]["seconds"] for r in runs]
        report["entries"][name] = {"metrics": rows, "seconds": secs}
    if args.record:
        _record(entries, runs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
