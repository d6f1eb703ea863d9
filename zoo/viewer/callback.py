"""``python -m zoo.train ... viewer=true``: the live viewer while a model trains.

A Lightning callback that starts the viewer when fitting starts (global rank 0 only) and shows
the model as it learns: the step, the loss, a pause control, and the model itself (shapes are
redrawn, radiance fields re-rendered at the browser's camera every ``refresh_s`` seconds).

All the viewer's work runs in the training process between two optimisation steps
(:meth:`zoo.viewer.session.ViewerSession.poll`), never concurrently with one. With no browser
connected, a step costs one attribute read; with one connected, the viewer's share of the wall
time is capped by ``max_fraction`` (unless training is paused, when it has all of it).
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl

from zoo.viewer import require_viser
from zoo.viewer.server import start_server, stop_server
from zoo.viewer.session import ViewerSession, ViewOptions


class ViewerCallback(pl.Callback):
    """Serve the training model in the viewer.

    Args:
        host, port: where the viewer listens (see :func:`zoo.viewer.server.start_server`).
        refresh_s: seconds between redraws of the learning model while a browser watches.
        max_fraction: the most of the wall time the viewer may take from training.
        options: :class:`zoo.viewer.session.ViewOptions` fields.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        refresh_s: float = 2.0,
        max_fraction: float = 0.3,
        **options: Any,
    ) -> None:
        require_viser()  # fail before training starts, not after
        if refresh_s <= 0 or not 0.0 < max_fraction < 1.0:
            raise ValueError(
                f"need refresh_s > 0 and 0 < max_fraction < 1, got {refresh_s}, {max_fraction}"
            )
        self.host, self.port = host, int(port)
        self.refresh_s, self.max_fraction = float(refresh_s), float(max_fraction)
        self.options = options
        self.server: Any = None
        self.session: Any = None
        self._next_refresh = 0.0
        self._next_poll = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return

        scene = getattr(trainer.datamodule, "scene", None)
        splits = getattr(scene, "splits", {}) if scene is not None else {}
        cams = splits["train"].cameras if "train" in splits else None
        self.server = start_server(self.host, self.port)
        self.session = ViewerSession(
            self.server, pl_module, ViewOptions(**self.options), training=True, cameras=cams
        )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        session = self.session
        if session is None or (session.n_clients == 0 and not session.paused):
            return  # nobody is watching: the whole cost of the viewer per step
        now = time.monotonic()
        if now >= self._next_refresh:
            session.set_progress(trainer.global_step, _loss(trainer, outputs))
            session.model_changed()
            self._next_refresh = now + self.refresh_s
        if now >= self._next_poll:
            session.poll()
            spent = time.monotonic() - now
            # Leave training (1 - f) of the time: wait spent * (1 - f) / f before the next poll.
            self._next_poll = now + spent * (1.0 - self.max_fraction) / self.max_fraction
        if session.paused:
            session.set_progress(trainer.global_step, _loss(trainer, outputs))
        while session.paused:
            if not session.poll():
                time.sleep(0.02)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.close()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.close()

    def close(self) -> None:
        if self.server is not None:
            stop_server(self.server)
            self.server = self.session = None


def _loss(trainer: pl.Trainer, outputs: Any) -> float | None:
    """The step's loss: the returned tensor / ``outputs["loss"]``, else a logged ``*loss*``."""
    value = outputs.get("loss") if isinstance(outputs, dict) else outputs
    if value is None:
        metrics = trainer.callback_metrics
        key = next((k for k in metrics if "loss" in k and k.startswith("train")), None)
        key = key or next((k for k in metrics if "loss" in k), None)
        value = metrics.get(key) if key else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def viewer_callback(cfg: Any) -> ViewerCallback | None:
    """The callback ``zoo.train`` appends for ``viewer=true`` (None for false / absent), with
    ``viewer_port`` (default 8080) and ``viewer_host`` (default 127.0.0.1) from its config.

    Raises:
        ValueError: ``viewer`` is not true / false.
        zoo.viewer.ViewerUnavailable: the ``view`` extra is not installed.
    """
    if cfg.get("viewer") in (None, False):
        return None
    if cfg.get("viewer") is not True:
        raise ValueError(f"viewer: expected true or false, got {cfg.get('viewer')!r}")
    return ViewerCallback(
        host=str(cfg.get("viewer_host", "127.0.0.1")), port=int(cfg.get("viewer_port", 8080))
    )


__all__ = ["ViewerCallback", "viewer_callback"]
