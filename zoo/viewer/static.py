"""Offline 3D pages: a model's output next to the ground truth, in one self-contained HTML file.

Each page is viser's static export (``server.scene.as_html()``): the viser web client (shipped
inside the viser wheel, one inlined HTML file) with the scene embedded as base64, so it opens
from ``file://`` with no server and no network. The benchmark report links every thumbnail to
such a page (:func:`write_comparison_pages`).
"""

from __future__ import annotations

import contextlib
import html
import io
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from zoo.viewer import require_viser
from zoo.viewer.server import stop_server

GAP = 1.3  # distance between the two objects' centres (shapes have a unit diagonal)
PRED_COLOR = (150, 175, 215)


@contextlib.contextmanager
def _scene_server() -> Iterator[Any]:
    """A quiet viser server on a free loopback port, used only to build scenes to export."""
    viser = require_viser()
    logging.getLogger("websockets").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):
        server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        yield server
    finally:
        stop_server(server)


def _add(server: Any, name: str, geom: trimesh.Trimesh | np.ndarray, x: float) -> None:
    """A mesh (with its vertex colours, if any) or an (N, 3) point cloud, moved by x along the
    x axis (not re-centred: prediction and ground truth share the scene frame)."""
    if isinstance(geom, np.ndarray):
        server.scene.add_point_cloud(
            name,
            (geom + np.array([x, 0.0, 0.0])).astype(np.float32),
            colors=PRED_COLOR,
            point_size=0.006,
        )
        return
    mesh = geom.copy()
    mesh.apply_translation(np.array([x, 0.0, 0.0]))
    if mesh.visual.kind == "vertex":
        server.scene.add_mesh_trimesh(name, mesh)
    else:
        server.scene.add_mesh_simple(
            name,
            np.asarray(mesh.vertices, np.float32),
            np.asarray(mesh.faces, np.uint32),
            color=PRED_COLOR,
            side="double",
        )


def comparison_html(
    prediction: trimesh.Trimesh | np.ndarray | None,
    ground_truth: trimesh.Trimesh | None,
    server: Any,
) -> str:
    """The HTML page of ``ground_truth`` (left) and ``prediction`` (right), both in the +Z-up
    scene frame, side by side, seen from the front; ``server`` is a scene server."""
    server.scene.reset()
    server.scene.set_up_direction("+z")
    if ground_truth is not None:
        _add(server, "/ground_truth", ground_truth, -GAP / 2)
        server.scene.add_label("/labels/ground_truth", "ground truth", position=(-GAP / 2, 0, 0.6))
    if prediction is not None:
        _add(server, "/prediction", prediction, GAP / 2)
    label = "model" if prediction is not None else "model: no surface"
    server.scene.add_label("/labels/prediction", label, position=(GAP / 2, 0, 0.6))
    server.initial_camera.position = (0.0, -2.6, 1.1)
    server.initial_camera.look_at = (0.0, 0.0, 0.0)
    server.initial_camera.fov = math.radians(45.0)
    return server.scene.as_html()


def _load(path: Path) -> trimesh.Trimesh | np.ndarray | None:
    if not path.is_file():
        return None
    obj = trimesh.load(path, process=False)
    if isinstance(obj, trimesh.PointCloud):
        return np.asarray(obj.vertices, np.float32)
    return obj if len(obj.faces) > 0 else None


def write_comparison_pages(results: list[dict[str, Any]], out_dir: Path) -> dict[int, str]:
    """For every result row with ``showcase_files`` (paths relative to ``out_dir``: its
    ``prediction`` mesh or ``points`` cloud and the ``ground_truth`` mesh), write
    ``views/<i>_<model>.html``; returns row index -> page path relative to ``out_dir``."""
    pages: dict[int, str] = {}
    rows = [(i, r) for i, r in enumerate(results) if r.get("showcase_files")]
    if not rows:
        return pages
    (out_dir / "views").mkdir(parents=True, exist_ok=True)
    with _scene_server() as server:
        for i, r in rows:
            files = r["showcase_files"]
            pick = "points" if r.get("kind") == "points" and "points" in files else "prediction"
            pred = _load(out_dir / files[pick]) if pick in files else None
            gt = _load(out_dir / files["ground_truth"]) if "ground_truth" in files else None
            page = comparison_html(pred, gt, server)
            title = f"<title>{html.escape(str(r['model']))} vs ground truth</title>"
            page = page.replace("<head>", f"<head>{title}", 1)
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(r["model"]))
            rel = f"views/{i:02d}_{safe}.html"
            (out_dir / rel).write_text(page)
            pages[i] = rel
    return pages


__all__ = ["comparison_html", "write_comparison_pages"]
