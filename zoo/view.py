"""``python -m zoo.view ckpt=<path> | pretrained=<name>``: look at a model in 3D in a browser.

Starts a viser web viewer on ``127.0.0.1:<port>`` (the page works with no internet: its client
ships inside the viser wheel) and prints its URL and the ``ssh -L`` line for a remote machine.
Meshes, voxels and SDFs are drawn by seed (with latent interpolation where the model has it),
point models as clouds, radiance fields are rendered on demand at the browser's camera. Needs
the optional extra: ``pip install -e ".[view]"``. Stop it with Ctrl-C.
"""

from __future__ import annotations

import time

import hydra
from omegaconf import DictConfig

from zoo.cli_utils import (
    CONF_DIR,
    check_one_source,
    fail,
    load_source,
    pick_device,
    quiet_lightning,
)
from zoo.viewer import ViewerUnavailable, require_viser
from zoo.viewer.server import start_server, stop_server
from zoo.viewer.session import ViewerSession, ViewOptions


def run_view(cfg: DictConfig) -> None:
    """Load the model, start the viewer and serve it until Ctrl-C (see the module docstring)."""
    quiet_lightning()
    port = cfg.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        fail(f"port: expected an integer in [0, 65535], got {port!r}")
    check_one_source(cfg, "zoo.view")  # before the viewer's own checks
    try:
        require_viser()
    except ViewerUnavailable as e:
        fail(str(e))

    device = pick_device(cfg.device)
    model, meta = load_source(cfg, "zoo.view", device)
    if model.classifier:
        fail(f"{model.name} is a classifier: it has no shapes to view (see zoo.eval)")
    model.eval()
    fields = ViewOptions.__dataclass_fields__
    options = ViewOptions(**{k: cfg[k] for k in fields if k in cfg})
    server = start_server(str(cfg.host), port)
    session = ViewerSession(server, model, options, meta=meta)
    try:
        while True:
            if not session.poll():
                time.sleep(0.01)
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(server)


@hydra.main(config_path=CONF_DIR, config_name="view", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_view(cfg)


if __name__ == "__main__":
    main()
