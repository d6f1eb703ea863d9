"""Starting the viser server and telling the user where to point a browser."""

from __future__ import annotations

import contextlib
import getpass
import io
import logging
import socket
from typing import Any

from zoo.viewer import require_viser


def start_server(host: str = "127.0.0.1", port: int = 8080, quiet: bool = False) -> Any:
    """A ``viser.ViserServer`` on ``host:port`` (the next free port when that one is taken),
    with the URL and, for a remote machine, the ``ssh -L`` forwarding line printed.

    Binds to loopback unless another ``host`` is asked for: the viewer has no authentication.
    """
    viser = require_viser()
    logging.getLogger("websockets").setLevel(logging.WARNING)  # no line per connection
    with contextlib.redirect_stdout(io.StringIO()):  # viser's own banner: ours follows
        server = viser.ViserServer(host=host, port=int(port), verbose=False)
    if not quiet:
        print(viewer_banner(host, server.get_port()), flush=True)
    return server


def stop_server(server: Any) -> None:
    """Stop a server without viser's own "Server stopped" line."""
    with contextlib.redirect_stdout(io.StringIO()):
        server.stop()


def viewer_banner(host: str, port: int) -> str:
    """The lines telling where the viewer is: its URL and the ssh tunnel for remote use."""
    shown = "127.0.0.1" if host in ("127.0.0.1", "localhost", "0.0.0.0", "::") else host
    return (
        f"viewer: http://{shown}:{port}\n"
        f"remote machine: ssh -L {port}:127.0.0.1:{port} {getpass.getuser()}@"
        f"{socket.gethostname()}   then open http://127.0.0.1:{port}"
    )


__all__ = ["start_server", "stop_server", "viewer_banner"]
