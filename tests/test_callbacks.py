"""The final checkpoint holds post-training state (``ZooModel.finalize_training``)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from tests.helpers.tiny_points import TinyPointSet
from zoo.callbacks import FinalCheckpoint
from zoo.checkpoint import AtomicCheckpointIO, read_checkpoint


class FinalizedTiny(TinyPointSet):
    """Derives a buffer from the final weights once training ends, like mesh_gcn's prior."""

    def __init__(self) -> None:
        super().__init__(n_points=16, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
        self.register_buffer("final_mean", torch.zeros(3))

    def finalize_training(self) -> None:
        self.final_mean.copy_(self.cloud.detach().mean(0))


def test_final_checkpoint_runs_finalize_before_saving(tmp_path):
    model = FinalizedTiny()
    model.configure_from_data({"form": "points"})
    data = [{"points": torch.rand(2, 64, 3)} for _ in range(4)]
    trainer = pl.Trainer(
        max_steps=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[FinalCheckpoint(tmp_path / "last.ckpt")],
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(model, DataLoader(data, batch_size=None))
    state = read_checkpoint(tmp_path / "last.ckpt")["state_dict"]
    expected = state["cloud"].mean(0)
    assert expected.abs().sum() > 0
    assert torch.allclose(state["final_mean"], expected)


def _fit_tiny(tmp_path, callback, max_steps: int = 6) -> TinyPointSet:
    model = TinyPointSet(n_points=16, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    model.configure_from_data({"form": "points"})
    data = [{"points": torch.rand(2, 64, 3)} for _ in range(8)]
    trainer = pl.Trainer(
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[callback],
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(model, DataLoader(data, batch_size=None))
    return model


def test_wall_clock_snapshots_at_times_steps_and_end(tmp_path):
    import json

    from zoo.callbacks import WallClockSnapshots

    snap = WallClockSnapshots(tmp_path / "snaps", seconds=[0.0], steps=[3])
    model = _fit_tiny(tmp_path, snap)
    info = json.loads((tmp_path / "snaps" / "snapshots.json").read_text())
    got = [(r["reason"], r["step"]) for r in info["snapshots"]]
    assert got == [("time", 1), ("step", 3), ("end", 6)]
    assert info["train_end_unix"] >= info["train_start_unix"] > 0
    seconds = [r["seconds"] for r in info["snapshots"]]
    assert seconds == sorted(seconds) and seconds[0] >= 0
    first = read_checkpoint(info["snapshots"][0]["path"])
    last = read_checkpoint(info["snapshots"][-1]["path"])
    assert "optimizer_states" not in last  # weights only
    assert torch.equal(last["state_dict"]["cloud"], model.cloud.detach())
    assert not torch.equal(first["state_dict"]["cloud"], last["state_dict"]["cloud"])


def test_wall_clock_snapshots_stop_after(tmp_path):
    import json

    from zoo.callbacks import WallClockSnapshots

    snap = WallClockSnapshots(tmp_path / "snaps", stop_after=0.0)
    _fit_tiny(tmp_path, snap, max_steps=50)
    info = json.loads((tmp_path / "snaps" / "snapshots.json").read_text())
    assert [(r["reason"], r["step"]) for r in info["snapshots"]] == [("end", 1)]
