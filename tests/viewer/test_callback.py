"""The training callback: no work at all without a browser; the pause control holds training."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import torch

from tests.viewer.browser import free_port
from zoo.pretrained import load_pretrained
from zoo.viewer.callback import ViewerCallback, viewer_callback


def test_viewer_config_values():
    assert viewer_callback({"viewer": False}) is None
    assert viewer_callback({}) is None
    try:
        viewer_callback({"viewer": "yes"})
    except ValueError as e:
        assert "viewer" in str(e)
    else:
        raise AssertionError("viewer=yes was accepted")


def test_no_browser_no_work_and_pause_blocks_training():
    model = load_pretrained("mesh_gcn-synthshapes")
    cb = ViewerCallback(port=free_port())
    trainer = SimpleNamespace(
        is_global_zero=True, datamodule=None, global_step=7, callback_metrics={}
    )
    cb.on_fit_start(trainer, model)
    try:
        session = cb.session
        polls: list[int] = []
        real_poll = session.poll
        session.poll = lambda: polls.append(1) or real_poll()
        for i in range(200):
            cb.on_train_batch_end(trainer, model, torch.tensor(0.5), None, i)
        assert polls == [], "the viewer worked although no browser was connected"
        session._set_paused(True)  # what the "pause training" checkbox does
        step = threading.Thread(
            target=cb.on_train_batch_end, args=(trainer, model, torch.tensor(0.25), None, 200)
        )
        step.start()
        time.sleep(0.6)
        assert step.is_alive(), "training went on while paused"
        assert polls, "the paused viewer stopped serving the browser"
        assert session.step_text.value == "7" and session.loss_text.value == "0.25"
        session._set_paused(False)
        step.join(5)
        assert not step.is_alive(), "training did not resume"
    finally:
        cb.close()
