"""What the viewer's export buttons write: a PNG snapshot of the current view and a video along
a camera path (the recorded keyframes, or an orbit when fewer than two were recorded).

Radiance fields are rendered by the model itself at each pose; other models by the browser
(``client.get_render``), so a snapshot is exactly what the scene shows. Files are written under
the session's ``out`` folder and also sent to the browser as downloads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from zoo.viewer.cameras import BrowserPose, interpolate_path, orbit_path
from zoo.viewer.render import colorize, render_view


def pose_of(camera: Any) -> BrowserPose:
    """The pose of a viser client camera."""
    return BrowserPose(
        tuple(float(v) for v in camera.wxyz),
        tuple(float(v) for v in camera.position),
        float(camera.fov),
        float(camera.aspect),
    )


def pose_image(session: Any, client: Any, pose: BrowserPose, height: int) -> np.ndarray:
    """(H, W, 3) uint8 image of what ``client`` sees from ``pose``: the model's own render
    for a radiance field, the browser's render of the scene otherwise."""
    if session.radiance:
        maps = render_view(session.model, pose, height)
        return colorize(maps, session.output.value, session.model.near, session.model.far)
    width = max(1, round(height * pose.aspect))
    img = client.get_render(
        height, width, wxyz=pose.wxyz, position=pose.position, fov=pose.fov,
        transport_format="png", timeout=30.0,
    )  # fmt: skip
    return np.asarray(img)[..., :3]


def snapshot(session: Any, client: Any) -> Path:
    """A PNG of ``client``'s current view (radiance fields at the "still" resolution), written
    under ``session.out`` and downloaded. Returns its path."""
    import imageio.v3 as iio

    height = int(session.full_size.value) if session.radiance else 720
    image = pose_image(session, client, pose_of(client.camera), height)
    session.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = session.out / f"{session.model.name}_snapshot_{stamp}.png"
    data = iio.imwrite("<bytes>", image, extension=".png")
    path.write_bytes(data)
    client.send_file_download(path.name, data)
    return path


def camera_path_video(session: Any, client: Any) -> Path:
    """A video (MP4, or GIF without an encoder) of ``session.video_frames`` frames along the
    keyframes (positions lerped, rotations slerped), else one orbit around the look-at point;
    written under ``session.out`` and downloaded. Returns its path."""
    keys = session.keyframes()
    n = int(session.video_frames.value)
    pose = pose_of(client.camera)
    if len(keys) >= 2:
        poses = interpolate_path(keys, n)
    else:
        poses = orbit_path(pose, np.asarray(client.camera.look_at), session.up, n)
    frames = [pose_image(session, client, p, int(session.opt.video_size)) for p in poses]
    h = min(f.shape[0] for f in frames)
    w = min(f.shape[1] for f in frames)
    video = np.stack([f[:h, :w] for f in frames])
    session.out.mkdir(parents=True, exist_ok=True)
    stem = f"{session.model.name}_path_{time.strftime('%Y%m%d-%H%M%S')}"
    data, ext = encode_video(video, session.opt.video_fps)
    path = session.out / f"{stem}.{ext}"
    path.write_bytes(data)
    client.send_file_download(path.name, data)
    return path


def encode_video(video: np.ndarray, fps: int) -> tuple[bytes, str]:
    """(T, H, W, 3) uint8 frames as MP4 where imageio has an encoder (imageio-ffmpeg or PyAV),
    else as an animated GIF; returns (file bytes, extension)."""
    import importlib.util

    import imageio.v3 as iio

    if importlib.util.find_spec("imageio_ffmpeg") or importlib.util.find_spec("av"):
        try:
            return iio.imwrite("<bytes>", video, extension=".mp4", fps=fps), "mp4"
        except (OSError, ValueError, RuntimeError):
            pass  # an encoder that cannot write this: fall back to GIF
    return iio.imwrite("<bytes>", video, extension=".gif", duration=1000 / fps, loop=0), "gif"


__all__ = ["camera_path_video", "encode_video", "pose_of", "snapshot"]
