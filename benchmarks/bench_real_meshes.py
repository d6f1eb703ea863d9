"""Unseen real shapes: every shape model reconstructs real meshes it never saw.

The meshes of ``../shared/data/real/meshes`` (cow, teapot, fandisk, armchair, chair_model,
bunny; read by path, never copied) are normalised like ShapeNet v2 (bounding-box centre at the
origin, diagonal 1; the files' own up axes kept) and given to each pretrained shape model in its
own input form (points + normals, 32^3 voxels, SDF samples of the mesh), exactly as the
evaluator gives held-out shapes. Scores: CD-L2 (x1e3) and F@0.01 on 30,000 points a side (the
evaluator's ``surface_metrics``), next to two references that know nothing of the shape's
details:

- sphere: the best origin-centred sphere (radius searched on a 1 mm grid for the lowest CD-L2);
- mean shape: the training set's medoid, the training shape with the lowest mean Chamfer
  distance to all the others (what a model that ignores its input could output at best).

A model that beats neither has not reconstructed the shape. Run alone for timings:

    python benchmarks/bench_real_meshes.py [--points 30000] [--models deepsdf voxel_gan]
JSON: ``benchmarks/results/real_meshes.json``; Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real" / "meshes"
MESHES = {
    "cow": "spot_cow/cow.obj",
    "teapot": "teapot.obj",
    "fandisk": "fandisk.obj",
    "armchair": "armchair/armchair.obj",
    "chair_model": "chair_model.obj",
    "bunny": "bunny.ply",
}
ENTRIES = {
    "voxel_gan": "voxel_gan-synthshapes",
    "pointflow": "pointflow-synthshapes",
    "mesh_gcn": "mesh_gcn-synthshapes",
    "deepsdf": "deepsdf-synthshapes",
}


def _target(name: str, mesh: trimesh.Trimesh, n: int):
    from zoo.evaluation import ground_truth_cloud
    from zoo.ops.voxelize import voxelize
    from zoo.representation import ShapeTarget

    points, normals = ground_truth_cloud(ShapeTarget(name, mesh=mesh), n)
    return ShapeTarget(name, points=points, normals=normals, mesh=mesh, voxels=voxelize(mesh, 32))


def _sphere_points(radius: float, n: int) -> torch.Tensor:
    from zoo.ops.surface import sample_surface

    return sample_surface(trimesh.creation.icosphere(5, radius=radius), n, seed=0)[0]


def best_sphere(target, cfg) -> dict[str, float]:
    """The origin-centred sphere of lowest CD-L2 (radii 0.05-0.60 on a 1 mm grid)."""
    from zoo.evaluation import surface_metrics
    from zoo.metrics import chamfer_distance

    gt = target.points
    coarse = torch.linspace(0.05, 0.6, 56)
    cds = [float(chamfer_distance(_sphere_points(float(r), 4000), gt)) for r in coarse]
    r0 = float(coarse[int(np.argmin(cds))])
    fine = torch.arange(r0 - 0.01, r0 + 0.0105, 0.001)
    cds = [float(chamfer_distance(_sphere_points(float(r), 4000), gt)) for r in fine]
    r = float(fine[int(np.argmin(cds))])
    mesh = trimesh.creation.icosphere(5, radius=r)
    return {**surface_metrics(mesh, _sphere_points(r, cfg.recon_points), target, cfg), "radius": r}


def training_medoid(n: int) -> trimesh.Trimesh:
    """The training shape (embedded data, default config) with the lowest mean Chamfer to all
    the others."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from zoo.data.formats.mesh import load_mesh, normalize_mesh
    from zoo.metrics import pairwise_distances
    from zoo.ops.surface import sample_surface

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose("train", overrides=["model=deepsdf"])
    dm = instantiate(cfg.data, form="points")
    dm.prepare_data()
    items = dm.items("train")
    meshes = [normalize_mesh(load_mesh(it.mesh)) for it in items]
    clouds = torch.stack([sample_surface(m, 2048, seed=0)[0] for m in meshes])
    d = pairwise_distances(clouds, None, "chamfer")  # (T, T)
    return meshes[int(d.mean(dim=1).argmin())]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=30000)
    p.add_argument("--models", nargs="*", default=list(ENTRIES))
    p.add_argument("--meshes", nargs="*", default=list(MESHES))
    p.add_argument("--out", default=str(REPO / "benchmarks/results/real_meshes.json"))
    args = p.parse_args()

    from zoo.data.formats.mesh import load_mesh, normalize_mesh
    from zoo.evaluation import EvalConfig, geometry_metrics, surface_metrics
    from zoo.ops.surface import sample_surface
    from zoo.pretrained import load_pretrained

    cfg = EvalConfig(recon_points=args.points, n_boot=0, save_images=False)
    medoid = training_medoid(args.points)
    medoid_pts = sample_surface(medoid, args.points, seed=1)[0]
    targets = {m: _target(m, normalize_mesh(load_mesh(REAL / MESHES[m])), args.points)
               for m in args.meshes}  # fmt: skip
    rows: dict[str, dict[str, dict[str, float]]] = {m: {} for m in targets}
    for m, t in targets.items():
        rows[m]["sphere"] = best_sphere(t, cfg)
        rows[m]["mean shape"] = surface_metrics(medoid, medoid_pts, t, cfg)
    seconds = {}
    for name in args.models:
        model = load_pretrained(ENTRIES[name])
        t0 = time.perf_counter()
        for m, t in targets.items():
            rows[m][name] = geometry_metrics(model, model.reconstruct(t), t, cfg)
        seconds[name] = time.perf_counter() - t0
        print(f"{name}: {seconds[name]:.0f} s for {len(targets)} meshes", flush=True)

    cols = ["sphere", "mean shape", *args.models]
    print("\nCD-L2 x1e3 (lower is better) | F@0.01 (higher is better), 30,000 points a side\n")
    print("| mesh | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for m, r in rows.items():
        cells = [f"{r[c]['chamfer_l2'] * 1e3:.2f} / {r[c]['fscore@0.01']:.3f}" for c in cols]
        print(f"| {m} | " + " | ".join(cells) + " |")
    wins = {
        c: sum(
            r[c]["chamfer_l2"] < min(r["sphere"]["chamfer_l2"], r["mean shape"]["chamfer_l2"])
            for r in rows.values()
        )
        for c in args.models
    }
    print("\nmeshes where the model beats both references on CD-L2:", wins)
    out = {
        "points": args.points,
        "entries": {k: ENTRIES[k] for k in args.models},
        "rows": rows,
        "seconds": seconds,
        "beats_both_references_cd": wins,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"json: {args.out}")


if __name__ == "__main__":
    main()
