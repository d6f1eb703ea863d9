"""Rendering a radiance field on demand at the browser's camera, as nerfstudio's viewer does
(``viewer/render_state_machine.py``): a cheap low-resolution frame while the camera moves, the
full-resolution frame once it has stood still for a moment, and nothing while nothing changed.

:class:`RenderState` is the per-browser decision (no threads, no viser): the session feeds it
camera moves and model changes and asks :meth:`RenderState.due` what, if anything, to render.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from zoo.representation import Representation
from zoo.viewer.cameras import BrowserPose, pose_to_cameras

Quality = Literal["preview", "full"]
OUTPUTS = ("rgb", "depth", "opacity")


@dataclass
class RenderState:
    """What one browser needs rendered.

    Args:
        still_s: seconds without a camera move after which the camera counts as stopped.
        full_allowed: whether "full" frames are rendered at all (during training the view is
            refreshed at preview resolution, full resolution only when paused).
    """

    still_s: float = 0.25
    full_allowed: bool = True
    pose: BrowserPose | None = None
    version: int = 0  # bumped by every camera move or model / setting change
    moved_at: float = field(default=-1e9)
    done: tuple[int, Quality] | None = None  # (version, quality) of the last frame shown

    def camera_moved(self, pose: BrowserPose, now: float | None = None) -> None:
        self.pose = pose
        self.version += 1
        self.moved_at = time.monotonic() if now is None else now

    def changed(self) -> None:
        """The model or a display setting changed: the frame must be rendered again (without
        counting as a camera move, so a still camera gets its full frame directly)."""
        self.version += 1

    def moving(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return now - self.moved_at < self.still_s

    def due(self, now: float | None = None) -> Quality | None:
        """``"preview"`` while the camera moves, ``"full"`` once it stopped, ``None`` when the
        frame on screen is already the best one for this pose and model."""
        if self.pose is None:
            return None
        moving = self.moving(now)
        if self.done is not None and self.done[0] == self.version:
            if self.done[1] == "full" or moving or not self.full_allowed:
                return None
        return "preview" if moving or not self.full_allowed else "full"

    def rendered(self, version: int, quality: Quality) -> None:
        self.done = (version, quality)


@torch.no_grad()
def render_view(model: Representation, pose: BrowserPose, height: int) -> dict[str, Tensor]:
    """``model.render_maps`` of its fitted scene at the browser pose, ``height`` pixels high:
    ``rgb`` (H, W, 3), and ``depth`` / ``opacity`` (H, W) where the model gives them."""
    cams = pose_to_cameras(pose, height).to(model.device_)
    shape = model.sample(1)[0]
    maps = model.render_maps(shape, cams)
    return {k: v[0].float().cpu() for k, v in maps.items()}


def colorize(maps: dict[str, Tensor], output: str, near: float, far: float) -> np.ndarray:
    """(H, W, 3) uint8 image of one output: ``rgb`` as is, ``depth`` through the turbo colour
    map over [near, far] (white where nothing was hit), ``opacity`` as grey levels."""
    if output == "rgb" or output not in maps:
        img = maps["rgb"].clamp(0, 1).numpy()
    elif output == "depth":
        from matplotlib import colormaps

        depth = maps["depth"].numpy()
        t = np.clip((depth - near) / max(far - near, 1e-6), 0.0, 1.0)
        img = colormaps["turbo"](t)[..., :3]
        hit = (maps["opacity"].numpy() > 0.05) if "opacity" in maps else depth > 0
        img = np.where(hit[..., None], img, 1.0)
    else:
        img = np.repeat(maps[output].clamp(0, 1).numpy()[..., None], 3, axis=-1)
    return (img * 255).round().astype(np.uint8)


def composite_depth(maps: dict[str, Tensor]) -> np.ndarray | None:
    """(H, W) z-depth for viser's depth compositing (scene objects such as camera frustums hide
    behind the rendered surface); far away where the ray hit nothing. None without depth."""
    if "depth" not in maps:
        return None
    depth = maps["depth"].numpy().astype(np.float32)
    hit = (maps["opacity"].numpy() > 0.5) if "opacity" in maps else depth > 0
    return np.where(hit, depth, 1e4).astype(np.float32)


__all__ = ["OUTPUTS", "RenderState", "colorize", "composite_depth", "render_view"]
