"""Benchmark: DeepSDF reconstruction of held-out shapes (embedded data and real meshes).

For every target a fresh code is inferred with the decoder frozen (``model.reconstruct``: from
the target's cached SDF samples for the embedded data, from SDF samples of the mesh for the
real meshes), decoded by marching cubes and scored by the shared evaluator's
``geometry_metrics``: Chamfer-L2 (sum of both directional mean squared distances), Chamfer-L1,
F-score and normal consistency. Also printed: Chamfer-L2 x 1e3, the unit of the DeepSDF paper's
tables. The paper evaluates in ShapeNet v2 coordinates (bounding-box diagonal 1), i.e. after
undoing its unit-sphere normalisation; the zoo's data already *is* in that normalisation, and
the real meshes are brought into it (bounding-box centre at the origin, diagonal 1), so no
rescaling is needed. Two baselines per target: the shape decoded from the mean training code,
and the sphere of the target's volume-equivalent radius (or bounding radius for open meshes).

    python benchmarks/bench_deepsdf.py --checkpoint outputs/deepsdf/<run>/checkpoints/last.ckpt \
        [--limit 8] [--iterations 800] [--resolution 128] [--points 30000] \
        [--out benchmarks/results/deepsdf.json] [--export-dir /tmp/deepsdf_recon]

Real meshes are read in place from ``--real-dir`` (default ``../shared/data/real/meshes``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import harness
import torch
import trimesh

from zoo.checkpoint import load_model
from zoo.evaluation import EvalConfig, geometry_metrics
from zoo.metrics import chamfer_distance, f_score
from zoo.representation import ShapeTarget

REAL_MESHES = ("spot_cow/cow.obj", "teapot.obj", "fandisk.obj")
DEFAULT_REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "meshes"


def real_targets(real_dir: Path, names: list[str], n_points: int) -> list[ShapeTarget]:
    """Real meshes normalised like ShapeNet v2, with surface points and normals."""
    from zoo.data.formats.mesh import load_mesh, normalize_mesh
    from zoo.ops.surface import sample_surface

    out = []
    for name in names:
        mesh = normalize_mesh(load_mesh(real_dir / name))
        pts, nrm = sample_surface(mesh, n_points, seed=0)
        out.append(
            ShapeTarget(
                name=name,
                points=pts,
                normals=nrm,
                mesh=mesh,
                extra={"watertight": bool(mesh.is_watertight)},
            )
        )
    return out


def embedded_targets(meta: dict[str, Any], split: str, limit: int) -> list[ShapeTarget]:
    """Held-out shapes of the checkpoint's own data config (SDF form)."""
    from hydra.utils import instantiate

    dm = instantiate(meta["data_cfg"], form="sdf")
    dm.prepare_data()
    dm.setup("test")
    return dm.eval_shapes(split, limit=limit)


def sphere_baseline(target: ShapeTarget, gt: torch.Tensor, tau: float) -> dict[str, float]:
    """Chamfer / F-score of a sphere centred at the target's bounding-box centre whose radius is
    volume-equivalent (closed meshes) or the bounding radius of the points."""
    from zoo.ops.surface import sample_surface

    centre = (gt.min(0).values + gt.max(0).values) / 2
    if target.mesh is not None and target.mesh.is_watertight and target.mesh.volume > 0:
        radius = (3 * target.mesh.volume / (4 * math.pi)) ** (1 / 3)
    else:
        radius = float((gt - centre).norm(dim=-1).max())
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    pts = sample_surface(sphere, len(gt), seed=1)[0] + centre
    return {
        "chamfer_l2": float(chamfer_distance(pts, gt)),
        f"fscore@{tau:g}": float(f_score(pts, gt, tau)),
    }


def score(
    model: Any, target: ShapeTarget, cfg: EvalConfig, mean_pts: torch.Tensor, export: Path | None
) -> dict[str, float]:
    """Shared-evaluator metrics of the inferred code, plus the two baselines."""
    from zoo.evaluation import _subsample
    from zoo.export import export_mesh

    t0 = time.perf_counter()
    z = model.reconstruct(target)
    t_fit = time.perf_counter() - t0
    row = geometry_metrics(model, z, target, cfg)
    row["chamfer_l2_x1e3"] = 1e3 * row["chamfer_l2"]
    row["fit_seconds"] = t_fit
    fs = f"fscore@{cfg.fscore_threshold:g}"
    gt = _subsample(target.points.float(), cfg.n_points).cpu()
    row["mean_code_chamfer_l2"] = float(chamfer_distance(mean_pts, gt))
    row[f"mean_code_{fs}"] = float(f_score(mean_pts, gt, cfg.fscore_threshold))
    for k, v in sphere_baseline(target, gt, cfg.fscore_threshold).items():
        row[f"sphere_{k}"] = v
    if export is not None:
        safe = target.name.replace("/", "_")
        export_mesh(model.to_mesh(z, cfg.mesh_resolution), export / f"{safe}_recon.obj")
        if target.mesh is not None:
            export_mesh(target.mesh, export / f"{safe}_gt.obj")
    return row


def format_row(group: str, name: str, row: dict[str, float], fs: str) -> str:
    nc = row.get("normal_consistency", float("nan"))
    return (
        f"{group:9} {name[:36]:36} {row['chamfer_l2_x1e3']:10.3f} {row['chamfer_l1']:8.4f} "
        f"{row[fs]:11.3f} {nc:6.3f} {1e3 * row['mean_code_chamfer_l2']:17.3f} "
        f"{1e3 * row['sphere_chamfer_l2']:14.3f} {row['fit_seconds']:6.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a deepsdf checkpoint from zoo.train")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=8, help="embedded held-out shapes (0: none)")
    ap.add_argument("--real-dir", type=Path, default=DEFAULT_REAL_DIR)
    ap.add_argument("--meshes", nargs="*", default=list(REAL_MESHES))
    ap.add_argument("--iterations", type=int, default=None, help="override recon_iterations")
    ap.add_argument("--samples", type=int, default=None, help="override recon_samples")
    ap.add_argument("--resolution", type=int, default=128, help="marching-cubes grid")
    ap.add_argument("--points", type=int, default=30000, help="points per cloud (paper: 30000)")
    ap.add_argument("--tau", type=float, default=0.01, help="F-score threshold")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/deepsdf.json"))
    ap.add_argument("--export-dir", type=Path, default=None, help="write recon/gt OBJ meshes")
    args = ap.parse_args()

    model, meta = load_model(args.checkpoint, expect_model="deepsdf")
    if args.iterations is not None:
        model.recon["iterations"] = args.iterations
    if args.samples is not None:
        model.recon["samples"] = args.samples
    model.points_resolution = args.resolution
    cfg = EvalConfig(
        split=args.split,
        n_points=args.points,
        fscore_threshold=args.tau,
        mesh_resolution=args.resolution,
    )

    groups: dict[str, list[ShapeTarget]] = {}
    if args.limit > 0:
        groups["embedded"] = embedded_targets(meta, args.split, args.limit)
    if args.meshes:
        groups["real"] = real_targets(args.real_dir, args.meshes, args.points)

    results: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "settings": {
            **vars(args),
            "recon": dict(model.recon),
            "out": str(args.out),
            "real_dir": str(args.real_dir),
            "export_dir": str(args.export_dir),
            "checkpoint": str(args.checkpoint),
        },
        "machine": harness.machine_record(),
        "shapes": {},
        "mean": {},
    }
    mean_code = model.train_latent(torch.arange(model.codes.num_embeddings)).mean(0)
    mean_pts = model.to_points(mean_code, args.points).float().cpu()
    fs = f"fscore@{args.tau:g}"
    print(
        f"{'group':9} {'shape':36} {'CD-L2 x1e3':>10} {'CD-L1':>8} {fs:>11} {'NC':>6} "
        f"{'mean-code CD x1e3':>17} {'sphere CD x1e3':>14} {'fit s':>6}"
    )
    for group, targets in groups.items():
        rows = []
        for t in targets:
            row = score(model, t, cfg, mean_pts, args.export_dir)
            rows.append(row)
            results["shapes"][f"{group}/{t.name}"] = row
            print(format_row(group, t.name, row, fs), flush=True)
        keys = rows[0].keys() if rows else []
        results["mean"][group] = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
        print(format_row(group, "MEAN", results["mean"][group], fs))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
