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
