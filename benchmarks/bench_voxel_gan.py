"""Benchmark: voxel 3D-GAN training speed, and a trained checkpoint against baselines.

1. Speed (always): seconds per training batch (``gan``: one D + one G step; ``wgan_gp``: one
   critic step with gradient penalty, plus a generator step every ``n_critic`` batches) and per
   sampled grid, for the CPU default (32^3, widths 64-32-16) and, with ``--paper``, the paper's
   network (64^3, widths 512-256-128-64; batch ``--paper-batch``, the paper uses 100).
2. With ``--checkpoint``: the shared evaluation (``zoo.evaluation.evaluate``: MMD / COV / 1-NNA
   of samples vs. the test split, reconstruction Chamfer / F-score / voxel IoU by latent search)
   of the trained model, of the *untrained* generator of the same config (baseline), and the
   generation metrics of the training shapes themselves against the test split (what a model
   that only reproduces its training set would score).

    python benchmarks/bench_voxel_gan.py \
        [--checkpoint outputs/voxel_gan/<run>/checkpoints/last.ckpt] [--paper] \
        [--steps 10] [--max-shapes 16] [--out benchmarks/results/voxel_gan.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import harness
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.models.voxel_gan import VoxelGAN


class _RandomBalls(Dataset):
    """Voxel balls of random radii (the data content does not matter for timing)."""

    def __init__(self, n: int, r: int) -> None:
        from zoo.ops.voxelize import voxel_centers

        g = torch.Generator().manual_seed(0)
        c = voxel_centers(r).reshape(r, r, r, 3).norm(dim=-1)
        self.grids = (
            c[None] <= (0.15 + 0.3 * torch.rand(n, generator=g))[:, None, None, None]
        ).float()

    def __len__(self) -> int:
        return len(self.grids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"voxels": self.grids[i][None], "idx": i}


def time_training(model: VoxelGAN, batch: int, batches: int) -> float:
    """Mean wall seconds per training batch over ``batches`` batches (after one warm-up)."""
    data = DataLoader(_RandomBalls(batch * 2, model.resolution), batch_size=batch, drop_last=True)

    def run(n_batches: int) -> float:
        steps_per_batch = 2 if model.loss_type == "gan" else 1 + 1 / model.n_critic
        trainer = pl.Trainer(
            max_steps=max(1, round(n_batches * steps_per_batch)),
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        start = int(model.batches_seen)
        t0 = time.perf_counter()
        trainer.fit(model, data)
        return (time.perf_counter() - t0) / max(1, int(model.batches_seen) - start)

    run(1)
    return run(batches)


def time_sampling(model: VoxelGAN, n: int = 4) -> float:
    t0 = time.perf_counter()
    model.sample(n, seed=0)
    return (time.perf_counter() - t0) / n


def speed_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    configs = [("cpu_default", dict(resolution=32, g_channels=16, d_channels=16), 16)]
    if args.paper:
        configs.append(
            ("paper", dict(resolution=64, g_channels=64, d_channels=64), args.paper_batch)
        )
    rows = []
    for name, kw, batch in configs:
        for loss in ("gan", "wgan_gp"):
            model = VoxelGAN(loss=loss, d_acc_threshold=None, **kw)
            rows.append(
                {
                    "config": name,
                    "loss": loss,
                    "resolution": kw["resolution"],
                    "batch": batch,
                    "g_params": sum(p.numel() for p in model.generator.parameters()),
                    "d_params": sum(p.numel() for p in model.discriminator.parameters()),
                    "s_per_batch": time_training(model, batch, args.steps),
                    "s_per_sample": time_sampling(model),
                }
            )
            print(rows[-1], flush=True)
    return rows


def checkpoint_rows(args: argparse.Namespace) -> dict[str, Any]:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from zoo.checkpoint import load_model
    from zoo.evaluation import EvalConfig, _subsample, evaluate
    from zoo.metrics import generative_metrics

    model, meta = load_model(args.checkpoint)
    dm = instantiate(OmegaConf.create(meta["data_cfg"]), form=model.data_form)
    dm.prepare_data()
    dm.setup("test")
    cfg = EvalConfig(max_shapes=args.max_shapes, save_images=False)
    out: dict[str, Any] = {"checkpoint": str(args.checkpoint), "data": meta["data_cfg"]}
    t0 = time.perf_counter()
    out["trained"] = evaluate(model, dm, cfg)
    out["eval_seconds"] = time.perf_counter() - t0
    torch.manual_seed(0)
    untrained = instantiate(meta["model_cfg"])
    untrained.configure_from_data(meta["data_info"])
    out["untrained"] = evaluate(untrained, dm, cfg)
    tests = dm.eval_shapes("test", limit=args.max_shapes)
    trains = dm.eval_shapes("train", limit=len(tests))
    refs = torch.stack([_subsample(t.points.float(), cfg.n_points) for t in tests])
    pts = torch.stack([_subsample(t.points.float(), cfg.n_points) for t in trains])
    gm = generative_metrics(pts, refs, distance="chamfer")
    out["training_set_as_samples"] = {f"gen/{k}_cd": v for k, v in gm.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--paper", action="store_true", help="also time the paper's 64^3 network")
    p.add_argument("--paper-batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=10, help="timed training batches per config")
    p.add_argument("--max-shapes", type=int, default=16)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/voxel_gan.json"))
    args = p.parse_args()

    result: dict[str, Any] = {
        "machine": harness.machine_record(),
        "speed": speed_rows(args),
    }
    print(f"\n{'config':<12} {'loss':<8} {'R':>3} {'batch':>5} {'s/batch':>8} {'s/sample':>8}")
    for r in result["speed"]:
        print(
            f"{r['config']:<12} {r['loss']:<8} {r['resolution']:>3} {r['batch']:>5} "
            f"{r['s_per_batch']:>8.3f} {r['s_per_sample']:>8.4f}"
        )
    if args.checkpoint is not None:
        result["checkpoint"] = ck = checkpoint_rows(args)
        keys = sorted(set(ck["trained"]) | set(ck["training_set_as_samples"]))
        print(f"\n{'metric':<28} {'trained':>10} {'untrained':>10} {'train-set':>10}")
        for k in keys:
            vals = [ck[c].get(k, float("nan")) for c in ("trained", "untrained")]
            ref = ck["training_set_as_samples"].get(k, float("nan"))
            print(f"{k:<28} {vals[0]:>10.4g} {vals[1]:>10.4g} {ref:>10.4g}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
