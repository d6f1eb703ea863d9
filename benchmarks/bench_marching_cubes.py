"""Benchmark: grid evaluation + marching cubes of a sphere SDF, and mesh ray casting.

Prints a table and writes JSON. Timings are medians over ``--repeats`` runs on whatever
machine runs it (the numbers in reports were taken on a shared 2-core CPU).

    python benchmarks/bench_marching_cubes.py [--out benchmarks/results/marching_cubes.json]

(with the package installed, ``pip install -e .``, or from the repo root with ``PYTHONPATH=.``)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
import trimesh

from zoo.ops.marching_cubes import evaluate_grid, marching_cubes
from zoo.ops.raycast import render_mesh
from zoo.structures.cameras import Cameras, look_at


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench_marching_cubes(resolution: int, repeats: int) -> dict:
    radius = 0.4

    def sdf(p: torch.Tensor) -> torch.Tensor:
        return p.norm(dim=-1) - radius

    t_eval, grid = _median_time(lambda: evaluate_grid(sdf, resolution), repeats)
    t_mc, mesh = _median_time(lambda: marching_cubes(grid), repeats)
    area = 4 * math.pi * radius**2
    return {
        "task": f"marching_cubes sphere {resolution}^3",
        "resolution": resolution,
        "eval_s": t_eval,
        "extract_s": t_mc,
        "faces": len(mesh.faces),
        "area_rel_err": abs(mesh.area / area - 1),
    }


def bench_render(repeats: int) -> dict:
    # A torus with 100 x 50 quads: exactly 10,000 triangles.
    mesh = trimesh.creation.torus(0.3, 0.12, major_sections=100, minor_sections=50)
    n_cams, size = 10, 128
    angles = torch.linspace(0, 2 * math.pi, n_cams + 1)[:-1]
    eye = torch.stack([2 * angles.cos(), 2 * angles.sin(), torch.full_like(angles, 1.0)], -1)
    cams = Cameras.from_fov(look_at(eye), size, size, math.radians(40))
    t, out = _median_time(lambda: render_mesh(mesh, cams), repeats)
    rays = n_cams * size * size
    return {
        "task": f"render_mesh {len(mesh.faces)} faces, {n_cams} x {size}x{size}",
        "faces": len(mesh.faces),
        "render_s": t,
        "rays_per_s": rays / t,
        "hit_fraction": out["mask"].float().mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/marching_cubes.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rows = [bench_marching_cubes(r, args.repeats) for r in (128, 256)]
    render = bench_render(args.repeats)

    print(f"{'task':<40} {'eval s':>8} {'extract s':>10} {'faces':>9} {'area err':>9}")
    for r in rows:
        print(
            f"{r['task']:<40} {r['eval_s']:>8.3f} {r['extract_s']:>10.3f} "
            f"{r['faces']:>9d} {r['area_rel_err']:>9.2e}"
        )
    print(f"{'task':<40} {'render s':>8} {'Mrays/s':>10} {'hit frac':>9}")
    print(
        f"{render['task']:<40} {render['render_s']:>8.3f} "
        f"{render['rays_per_s'] / 1e6:>10.3f} {render['hit_fraction']:>9.3f}"
    )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "marching_cubes": rows,
        "render": render,
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
