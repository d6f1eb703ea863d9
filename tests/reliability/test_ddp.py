"""Lightning DDP through the CLI: two CPU processes (gloo, ``ddp_spawn``) train the tiny model
to the same final step, and its metrics match a single-process run within tolerance.

Why a tolerance and not equality: with two ranks each step averages the gradients of two
batches of 4 shapes (8 shapes per step instead of 4), and the distributed sampler deals each
rank a different half of the shapes in a different order, so the 40 Adam steps follow another
path. The tiny model (a 256-point cloud fitted to the training shapes by Chamfer) converges to
nearly the same cloud either way. Measured (2 CPU cores): Chamfer-L2 0.00464 single vs 0.00445
DDP (4 % apart), Chamfer-L1 0.0395 vs 0.0391 (1 %); after one step they are 0.0261 and 0.0902,
5.6x and 2.3x larger. The 15 % tolerance is about 4x the observed gap and far below the gap to
an untrained model, so a DDP run that did not train fails (checked on its loss curve too).
"""

from __future__ import annotations

import csv
import json

import pytest

from tests.reliability.clirun import check, ckpt_step, run, tiny_args

pytestmark = pytest.mark.slow


def test_ddp_spawn_two_cpu_processes_matches_single_process(synth_root, tiny_single, tmp_path):
    single_dir, _ = tiny_single
    run_dir = tmp_path / "ddp"
    proc = check(
        run(
            "zoo.train",
            *tiny_args(
                synth_root,
                run_dir,
                "seed=0",
                "trainer.accelerator=cpu",
                "trainer.devices=2",
                "trainer.strategy=ddp_spawn",
            ),
        )
    )
    assert proc.stdout.count("checkpoint: ") == 1  # evaluated once, in the launching process
    assert ckpt_step(run_dir / "checkpoints" / "last.ckpt") == 40

    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 3 and losses[-1] < 0.5 * losses[0], losses

    ddp = json.loads((run_dir / "metrics.json").read_text())
    single = json.loads((single_dir / "metrics.json").read_text())
    assert ddp.keys() == single.keys()
    for key in ("recon/chamfer_l2", "recon/chamfer_l1"):
        assert ddp[key] == pytest.approx(single[key], rel=0.15), (key, ddp[key], single[key])
