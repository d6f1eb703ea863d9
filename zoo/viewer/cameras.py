"""Converting between viser's browser cameras and zoo's :class:`~zoo.structures.cameras.Cameras`.

viser reports a client's camera as ``wxyz`` (the rotation ``R_world_camera``) and ``position`` in
the OpenCV convention (+z looks forward, +y points down), a vertical field of view ``fov`` and
the canvas ``aspect`` (width / height). zoo cameras use the OpenGL / Blender convention (the
camera looks along -z, +y is up), so the two camera-to-world matrices differ by flipping the
camera's y and z axes: ``c2w_gl = c2w_cv @ diag(1, -1, -1, 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from zoo.structures.cameras import Cameras

# Camera-frame flip between OpenCV (+z forward, +y down) and OpenGL (-z forward, +y up).
_FLIP = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class BrowserPose:
    """A browser camera: ``wxyz`` (4,) rotation camera -> world (OpenCV), ``position`` (3,),
    vertical field of view ``fov`` in radians, ``aspect`` = width / height."""

    wxyz: tuple[float, float, float, float]
    position: tuple[float, float, float]
    fov: float
    aspect: float


def quat_to_matrix(wxyz: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(rot: np.ndarray) -> np.ndarray:
    """(4,) unit quaternion (w, x, y, z) of a (3, 3) rotation matrix (Shepperd's method: the
    largest of w, x, y, z is recovered first, so no division by a small number)."""
    m = np.asarray(rot, dtype=np.float64)
    tr = np.trace(m)
    cands = [tr, m[0, 0], m[1, 1], m[2, 2]]
    i = int(np.argmax(cands))
    if i == 0:
        s = 2.0 * math.sqrt(1.0 + tr)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif i == 1:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif i == 2:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    return q / np.linalg.norm(q) * (1.0 if q[0] >= 0 else -1.0)


def pose_to_cameras(pose: BrowserPose, height: int) -> Cameras:
    """One zoo camera (OpenGL convention) seeing what the browser sees, ``height`` pixels high
    and ``round(height * aspect)`` wide; focal ``f = 0.5 H / tan(fov / 2)`` from the vertical
    field of view, principal point at the image centre."""
    if height < 1 or not 0.0 < pose.fov < math.pi or pose.aspect <= 0:
        raise ValueError(f"need height >= 1, 0 < fov < pi, aspect > 0; got {height}, {pose}")
    width = max(1, round(height * pose.aspect))
    c2w = np.eye(4)
    c2w[:3, :3] = quat_to_matrix(np.asarray(pose.wxyz)) @ _FLIP
    c2w[:3, 3] = pose.position
    focal = 0.5 * height / math.tan(0.5 * pose.fov)
    return Cameras(
        torch.tensor(c2w, dtype=torch.float32)[None], focal, focal, width / 2, height / 2,
        width, height,
    )  # fmt: skip


def cameras_to_poses(cameras: Cameras) -> list[BrowserPose]:
    """The browser / frustum pose of each zoo camera (inverse of :func:`pose_to_cameras`)."""
    poses = []
    for i in range(len(cameras)):
        c2w = cameras.c2w[i].detach().cpu().double().numpy()
        fy = float(cameras.fy[i])
        poses.append(
            BrowserPose(
                wxyz=tuple(matrix_to_quat(c2w[:3, :3] @ _FLIP)),
                position=tuple(c2w[:3, 3]),
                fov=2.0 * math.atan(0.5 * cameras.height / fy),
                aspect=cameras.width / cameras.height,
            )
        )
    return poses


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (the shorter arc)."""
    q0, q1 = np.asarray(q0, np.float64), np.asarray(q1, np.float64)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly parallel: normalised lerp is exact enough
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(dot)
    return (math.sin((1 - t) * theta) * q0 + math.sin(t * theta) * q1) / math.sin(theta)


def interpolate_path(keys: list[BrowserPose], n_frames: int) -> list[BrowserPose]:
    """``n_frames`` poses along the keyframes ``keys`` (>= 2): positions and fields of view
    linearly, rotations by slerp, each segment getting an equal share of the frames."""
    if len(keys) < 2 or n_frames < 2:
        raise ValueError(f"need >= 2 keyframes and >= 2 frames, got {len(keys)}, {n_frames}")
    out = []
    for s in np.linspace(0.0, len(keys) - 1, n_frames):
        i = min(int(s), len(keys) - 2)
        t = float(s - i)
        a, b = keys[i], keys[i + 1]
        pos = (1 - t) * np.asarray(a.position) + t * np.asarray(b.position)
        out.append(
            BrowserPose(
                wxyz=tuple(slerp(np.asarray(a.wxyz), np.asarray(b.wxyz), t)),
                position=tuple(pos),
                fov=(1 - t) * a.fov + t * b.fov,
                aspect=a.aspect,
            )
        )
    return out


def orbit_path(
    pose: BrowserPose, target: np.ndarray, up: np.ndarray, n_frames: int
) -> list[BrowserPose]:
    """``n_frames`` poses turning ``pose`` once around the axis ``up`` through ``target``
    (the default camera path when fewer than two keyframes were recorded)."""
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    target = np.asarray(target, np.float64)
    rot0 = quat_to_matrix(np.asarray(pose.wxyz))
    out = []
    for ang in np.linspace(0.0, 2 * math.pi, n_frames, endpoint=False):
        k = np.array([[0, -up[2], up[1]], [up[2], 0, -up[0]], [-up[1], up[0], 0]])
        turn = np.eye(3) + math.sin(ang) * k + (1 - math.cos(ang)) * (k @ k)  # Rodrigues
        pos = target + turn @ (np.asarray(pose.position) - target)
        out.append(
            BrowserPose(tuple(matrix_to_quat(turn @ rot0)), tuple(pos), pose.fov, pose.aspect)
        )
    return out
