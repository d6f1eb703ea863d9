"""Benchmark: Chamfer (large pair, batch), generative metrics (MMD/COV/1-NNA), EMD exact/approx,
and the papers' approximate EMDs (PointFlow / PVD approxmatch) with their arithmetic limit.

Prints a table and writes JSON. Timings are medians over ``--repeats`` runs (the generative
metrics run ``--repeats-generative`` times) on whatever machine runs it; the numbers in reports
were taken on a shared 2-core CPU while other jobs ran, so they are noisy upper bounds.

    python benchmarks/bench_metrics.py [--out benchmarks/results/metrics.json] [--quick]
    python benchmarks/bench_metrics.py --only approxmatch --emd-sets 100   # the full 1-NNA-EMD
    python benchmarks/bench_metrics.py --only generative   # 100 vs 100 clouds, each Chamfer backend

(with the package installed, ``pip install -e .``, or from the repo root with ``PYTHONPATH=.``)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from zoo._open3d import import_open3d
from zoo.metrics import chamfer_distance, earth_movers_distance, generative_metrics
from zoo.metrics.approxmatch import LEVELS_POINTFLOW, LEVELS_PVD, approxmatch_emd
from zoo.metrics.pairwise import pairwise_distances


def _measure(task: str, method: str, fn: Callable[[], object], repeats: int) -> tuple[dict, object]:
    """Row with the median wall time of ``repeats`` calls and the median CPU time of this
    process (all its threads), plus the last result. On an oversubscribed machine, CPU time /
    cores estimates the wall time on idle cores better than the wall time does."""
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    row = {
        "task": task,
        "method": method,
        "median_s": statistics.median(wall),
        "cpu_s": statistics.median(cpu),
        "repeats": repeats,
    }
    return row, result


def _sphere(n: int, gen: torch.Generator, radius: float = 0.5) -> torch.Tensor:
    d = torch.randn(n, 3, generator=gen)
    return radius * d / d.norm(dim=-1, keepdim=True)


def _shapes(k: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """(k, n, 3) random ellipsoid surfaces inside the radius-0.5 sphere (ShapeNet-like scale)."""
    d = torch.randn(k, n, 3, generator=gen)
    d = d / d.norm(dim=-1, keepdim=True)
    return d * (0.15 + 0.35 * torch.rand(k, 1, 3, generator=gen))


def _ckdtree_chamfer(x: np.ndarray, y: np.ndarray, workers: int) -> float:
    a = cKDTree(y).query(x, k=1, workers=workers)[0]
    b = cKDTree(x).query(y, k=1, workers=workers)[0]
    return float(np.mean(a * a) + np.mean(b * b))


def _open3d_chamfer(x: np.ndarray, y: np.ndarray) -> float:
    o3d = import_open3d()
    total = 0.0
    for q, p in ((x, y), (y, x)):
        search = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(p))
        search.knn_index()
        _, sq = search.knn_search(o3d.core.Tensor(q), 1)
        total += float(sq.numpy().mean())
    return total


def bench_chamfer_large(n: int, repeats: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    x, y = _sphere(n, gen), _sphere(n, gen)
    xn, yn = x.numpy(), y.numpy()
    import_open3d()  # warm: the first import takes seconds
    rows = []
    cases: list[tuple[str, Callable[[], object]]] = [
        ("scipy cKDTree workers=1", lambda: _ckdtree_chamfer(xn, yn, 1)),
        ("scipy cKDTree workers=-1", lambda: _ckdtree_chamfer(xn, yn, -1)),
        ("open3d NearestNeighborSearch knn", lambda: _open3d_chamfer(xn, yn)),
        ("zoo chamfer_distance (auto = kdtree)", lambda: chamfer_distance(x, y).item()),
    ]
    task = f"chamfer {n // 1000}k x {n // 1000}k"
    ref = None
    for name, fn in cases:
        row, value = _measure(task, name, fn, repeats)
        ref = value if ref is None else ref
        row["value"] = float(value)
        row["rel_diff_vs_first"] = abs(float(value) / float(ref) - 1)
        rows.append(row)
    # Brute force is O(N M): time it on a 20k x 20k pair and scale by (N / 20k)^2.
    m = min(n, 20000)
    scale = (n / m) ** 2
    row, _ = _measure(
        task,
        f"zoo torch brute force (timed at {m // 1000}k, x{scale:.0f} extrapolated)",
        lambda: chamfer_distance(x[:m], y[:m], backend="torch").item(),
        1,
    )
    row["measured_s"] = row["median_s"]
    row["median_s"] *= scale
    row["cpu_s"] *= scale
    rows.append(row)
    return rows


def bench_chamfer_batch(b: int, n: int, repeats: int) -> list[dict]:
    gen = torch.Generator().manual_seed(1)
    x, y = _shapes(b, n, gen), _shapes(b, n, gen)
    xn, yn = x.numpy(), y.numpy()
    task = f"chamfer batch {b} pairs x {n} pts"
    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "loop of scipy cKDTree workers=1",
            lambda: [_ckdtree_chamfer(a, c, 1) for a, c in zip(xn, yn, strict=True)],
        ),
        ("zoo chamfer_distance (auto = kdtree pool)", lambda: chamfer_distance(x, y)),
        ("zoo chamfer_distance backend=torch", lambda: chamfer_distance(x, y, backend="torch")),
    ]
    return [_measure(task, name, fn, repeats)[0] for name, fn in cases]


def bench_generative(k: int, n: int, repeats: int) -> list[dict]:
    """MMD / COV / 1-NNA (Chamfer) of k samples vs k references, each Chamfer backend."""
    from zoo.metrics.pairwise import pairwise_distances

    gen = torch.Generator().manual_seed(2)
    samples, refs = _shapes(k, n, gen), _shapes(k, n, gen)
    pairs = k * k + k * (k - 1)  # S x R, plus both triangles (each unordered pair once)
    rows = []
    for backend, label in (
        ("fused", "zoo fused C++ kernel (brute force, both directions at once)"),
        ("kdtree", "zoo kdtree per cloud, thread pool"),
    ):

        def run(b: str = backend) -> dict:
            mats = (
                pairwise_distances(samples, None, backend=b),  # type: ignore[arg-type]
                pairwise_distances(samples, refs, backend=b),  # type: ignore[arg-type]
                pairwise_distances(refs, None, backend=b),  # type: ignore[arg-type]
            )
            return generative_metrics(samples, refs, matrices=mats)

        row, m = _measure(f"generative_metrics chamfer {k} vs {k} x {n} pts", label, run, repeats)
        row.update(pairs=pairs, ms_per_pair=1e3 * row["median_s"] / pairs, result=m)
        rows.append(row)
    return rows


def bench_emd(repeats: int, quick: bool) -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(3)
    sizes = (2048,) if quick else (2048, 4096)
    for n in sizes:
        # Two samples of one surface (hardest case for the approximation) and two shapes.
        surface = _sphere(20 * n, gen)
        same = (surface[torch.randperm(20 * n, generator=gen)[:n]], surface[:n])
        diff = (_sphere(n, gen), _shapes(1, n, gen)[0])
        for label, (x, y) in (("same surface", same), ("sphere vs ellipsoid", diff)):
            task = f"emd {n} pts, {label}"
            row_ex, exact = _measure(
                task,
                "exact (linear_sum_assignment)",
                lambda x=x, y=y: earth_movers_distance(x, y, method="exact"),
                1,
            )
            row_ap, approx = _measure(
                task,
                "approx (partition + 8 block rounds, leaf 512)",
                lambda x=x, y=y: earth_movers_distance(x, y, method="approx"),
                repeats,
            )
            row_ex["value"] = float(exact)
            row_ap["value"] = float(approx)
            row_ap["rel_err_vs_exact"] = float(approx) / float(exact) - 1
            rows += [row_ex, row_ap]
    # Generative metrics with EMD: time a small set and extrapolate per pair.
    k, n = 4, 2048
    s, r = _shapes(k, n, gen), _shapes(k, n, gen)
    row, _ = _measure(
        f"pairwise EMD {k} x {k} x {n} pts (exact)",
        "zoo pairwise_distances(distance='emd'), thread pool",
        lambda: pairwise_distances(s, r, "emd"),
        1,
    )
    per_pair = row["median_s"] / (k * k)
    full = 100 * 100 + 100 * 99
    row.update(
        s_per_pair=per_pair,
        extrapolated_100_vs_100_s=per_pair * full,
        # CPU seconds / 2 cores: the estimate for an idle 2-core machine
        extrapolated_100_vs_100_idle_2core_s=row["cpu_s"] / (k * k) * full / 2,
    )
    rows.append(row)
    return rows


def _exp_rate(fn: Callable[[torch.Tensor], object]) -> float:
    """Measured float32 exponential throughput of one core (exponentials per second) of
    ``fn`` over 4M arguments in [-80, 0] (best of 5)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    a = -torch.rand(2048 * 2048, generator=torch.Generator().manual_seed(9)) * 80
    fn(a)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        fn(a)
        best = min(best, time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return a.numel() / best


def bench_approxmatch(k: int, n: int) -> list[dict]:
    """Per-pair CPU cost of the approxmatch EMDs (fused C++ kernel vs the torch path, one
    thread each), generation metrics over k vs k clouds with ``emd_pointflow`` (29,800 ordered
    pairs at k = 100: 10,000 S x R solves plus 9,900 self pairs solved for both orders at once),
    the 100 vs 100 extrapolation, and the arithmetic limit.

    Limits, in exponentials (the bulk of the arithmetic; each comes with ~8 multiply-adds):
    the algorithm needs at least one exponential per kernel entry and level, shared by both
    orders of a self pair: 19,900 kernel sets x levels x n^2 (the CUDA kernel computes each
    three times). The fused kernel computes each twice (two sweeps: storing a 16 MB matrix is
    slower than recomputing) except in the blocks it skips as exact zeros; its own count is
    measured (``evals``). Both are divided by the measured throughput of its exponential and of
    torch's, times the cores."""
    from zoo.metrics import _approxmatch_native as native

    gen = torch.Generator().manual_seed(4)
    rows = []
    p = 8
    x1, x2 = _shapes(p, n, gen), _shapes(p, n, gen)
    idx = torch.arange(p)
    threads = torch.get_num_threads()
    fused_ok = native.load() is not None
    torch.set_num_threads(1)  # the per-core cost
    per_pair: dict[str, float] = {}
    evals = torch.zeros(p, dtype=torch.int64)
    for variant, levels in (("pointflow", LEVELS_POINTFLOW), ("pvd", LEVELS_PVD)):
        squared = variant == "pvd"
        cases: list[tuple[str, Callable[[], object], int]] = [
            (
                "torch path (approxmatch_emd backend=torch, 1 thread)",
                lambda v=variant: approxmatch_emd(x1, x2, v, backend="torch"),  # type: ignore[misc]
                p,
            ),
        ]
        if fused_ok:
            cases += [
                (
                    "fused C++ kernel (1 thread)",
                    lambda lv=levels, sq=squared: native.approxmatch_cost(
                        x1, idx, x2, idx, lv, sq, False, 1, evals
                    ),
                    p,
                ),
                (
                    "fused C++ kernel, both orders at once (1 thread)",
                    lambda lv=levels, sq=squared: native.approxmatch_cost(
                        x1, idx, x2, idx, lv, sq, True, 1
                    ),
                    p,
                ),
            ]
        for name, fn, count in cases:
            row, _ = _measure(f"approxmatch {variant} {p} pairs x {n} pts", name, fn, 1)
            row.update(s_per_pair=row["median_s"] / count, cpu_s_per_pair=row["cpu_s"] / count)
            row["dense_exps_per_level_set"] = len(levels) * n * n
            if name.startswith("fused C++ kernel (1"):
                row["evaluated_exps_per_pair"] = float(evals.double().mean())
            rows.append(row)
            per_pair[f"{variant}/{name.split(' (')[0]}"] = row["cpu_s_per_pair"]
    torch.set_num_threads(threads)

    s, r = _shapes(k, n, gen), _shapes(k, n, gen)
    pairs = k * k + 2 * k * (k - 1)
    path = "fused C++ kernel" if fused_ok else "torch path (no compiler)"
    row, m = _measure(
        f"generative_metrics emd_pointflow {k} vs {k} x {n} pts",
        f"zoo, {path} ({pairs} ordered pairs, PointFlow orientation, {threads} threads)",
        lambda: generative_metrics(s, r, distance="emd_pointflow"),
        1,
    )
    full = 100 * 100 + 2 * 100 * 99
    sets_full = 100 * 100 + 100 * 99  # kernel sets: S x R pairs + unordered self pairs
    nl = len(LEVELS_POINTFLOW)
    rate_torch = _exp_rate(torch.exp)
    row.update(
        pairs=pairs,
        result=m,
        s_per_pair=row["median_s"] / pairs,
        extrapolated_100_vs_100_s=row["median_s"] / pairs * full,
        extrapolated_100_vs_100_idle_2core_s=row["cpu_s"] / pairs * full / 2,
        cores=threads,
        exp_rate_torch_per_s=rate_torch,
        exps_min_100_vs_100=nl * n * n * sets_full,
        exp_bound_min_torch_exp_s=nl * n * n * sets_full / (rate_torch * threads),
    )
    if fused_ok:
        rate = _exp_rate(native.exp_f32)
        t_one = per_pair["pointflow/fused C++ kernel"]
        t_both = per_pair["pointflow/fused C++ kernel, both orders at once"]
        ev = next(x["evaluated_exps_per_pair"] for x in rows if "evaluated_exps_per_pair" in x)
        row.update(
            # from the single-thread per-pair CPU times: S x R once, self pairs both at once
            extrapolated_100_vs_100_from_pairs_2core_s=(100 * 100 * t_one + 100 * 99 * t_both) / 2,
            exp_rate_kernel_per_s=rate,
            exps_kernel_100_vs_100=ev * sets_full,
            exp_bound_kernel_s=ev * sets_full / (rate * threads),
            exp_bound_min_kernel_exp_s=nl * n * n * sets_full / (rate * threads),
        )
    rows.append(row)
    return rows


def _fmt(row: dict) -> str:
    extra = ""
    for key in ("rel_diff_vs_first", "rel_err_vs_exact", "ms_per_pair", "s_per_pair"):
        if key in row:
            extra = f"{key}={row[key]:.3g}"
    if "cpu_s_per_pair" in row:
        extra = f"cpu_ms_per_pair={1e3 * row['cpu_s_per_pair']:.1f}"
        if "evaluated_exps_per_pair" in row:
            ev = row["evaluated_exps_per_pair"]
            share = ev / (2 * row["dense_exps_per_level_set"])
            extra += f"  exps/pair={ev:.3g} ({share:.0%} of 2 per entry and level)"
    if "exp_bound_min_torch_exp_s" in row:
        extra += (
            f"\n    limits 100 vs 100 on {row['cores']} cores: one exp per entry and level "
            f"({row['exps_min_100_vs_100']:.3g}) at torch's exp "
            f"{row['exp_rate_torch_per_s'] / 1e9:.2f} G/s/core: "
            f"{row['exp_bound_min_torch_exp_s']:.0f} s"
        )
    if "exp_bound_kernel_s" in row:
        extra += (
            f", at the kernel's exp {row['exp_rate_kernel_per_s'] / 1e9:.2f} G/s/core: "
            f"{row['exp_bound_min_kernel_exp_s']:.0f} s; the fused kernel's own count "
            f"({row['exps_kernel_100_vs_100']:.3g}): {row['exp_bound_kernel_s']:.0f} s"
            f"\n    100 vs 100 from the 1-thread per-pair CPU times / 2 cores: "
            f"{row['extrapolated_100_vs_100_from_pairs_2core_s']:.0f} s"
        )
    if "extrapolated_100_vs_100_s" in row:
        extra += (
            f"\n    100 vs 100 from this run: ~{row['extrapolated_100_vs_100_s'] / 60:.1f} min "
            f"wall here, ~{row['extrapolated_100_vs_100_idle_2core_s'] / 60:.1f} min from "
            "CPU / 2 cores"
        )
    if "result" in row:
        extra += "  " + ", ".join(f"{k}={v:.4g}" for k, v in row["result"].items())
    return (
        f"{row['task']:<46} {row['method']:<58} {row['median_s']:>9.3f} {row['cpu_s']:>9.3f}"
        f"  {extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON (default benchmarks/results/metrics.json, or metrics_approxmatch.json with "
        "--only approxmatch)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--repeats-generative", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--emd-sets", type=int, default=10, help="k for the k vs k approxmatch generation metrics"
    )
    parser.add_argument("--only", choices=["all", "approxmatch", "generative"], default="all")
    args = parser.parse_args()
    quick = args.quick
    if args.out is None:
        name = "metrics.json" if args.only == "all" else f"metrics_{args.only}.json"
        args.out = Path("benchmarks/results") / name
    load_start = os.getloadavg()
    rows: list[dict] = []
    if args.only == "all":
        rows += bench_chamfer_large(20000 if quick else 100000, args.repeats)
        rows += bench_chamfer_batch(8 if quick else 32, 2048, args.repeats)
        rows += bench_generative(10 if quick else 100, 2048, args.repeats_generative)
        rows += bench_emd(1 if quick else 3, quick)
    if args.only == "generative":
        rows += bench_generative(10 if quick else 100, 2048, args.repeats_generative)
    else:
        rows += bench_approxmatch(4 if quick else args.emd_sets, 2048)
    print(f"{'task':<46} {'method':<58} {'wall s':>9} {'cpu s':>9}  extra")
    for row in rows:
        print(_fmt(row))
    info = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_at_start": load_start,
        "load_average_at_end": os.getloadavg(),
        "note": "medians; shared machine, other jobs were running: noisy",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "rows": rows}, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
