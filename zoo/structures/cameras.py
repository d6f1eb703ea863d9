"""Pinhole cameras in the Blender / OpenGL convention used by NeRF's synthetic data.

Camera frame: +x right, +y up, the camera looks along -z. ``c2w`` maps camera to world
coordinates (the ``transform_matrix`` of a Blender ``transforms_*.json``). Pixel ``(u, v)`` has
``u`` growing to the right and ``v`` growing downwards; rays pass through pixel centres
``(u + 0.5, v + 0.5)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Cameras:
    """A batch of B pinhole cameras sharing one image size.

    Attributes:
        c2w: (B, 4, 4) camera-to-world matrices (OpenGL convention).
        fx, fy: (B,) focal lengths in pixels.
        cx, cy: (B,) principal point in pixels.
        width, height: image size in pixels.
    """

    c2w: Tensor
    fx: Tensor
    fy: Tensor
    cx: Tensor
    cy: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.c2w.ndim == 2:
            self.c2w = self.c2w[None]
        if self.c2w.shape[-2:] not in ((4, 4), (3, 4)):
            raise ValueError(f"c2w must be (B, 4, 4) or (B, 3, 4), got {tuple(self.c2w.shape)}")
        if self.c2w.shape[-2] == 3:
            bottom = torch.tensor(
                [0.0, 0.0, 0.0, 1.0], dtype=self.c2w.dtype, device=self.c2w.device
            )
            self.c2w = torch.cat([self.c2w, bottom.expand(len(self.c2w), 1, 4)], dim=1)
        b = self.c2w.shape[0]

        def _vec(v: Tensor | float) -> Tensor:
            v = torch.as_tensor(v, dtype=self.c2w.dtype, device=self.c2w.device)
            return v.expand(b).clone() if v.ndim == 0 else v.reshape(b)

        self.fx, self.fy, self.cx, self.cy = (_vec(v) for v in (self.fx, self.fy, self.cx, self.cy))
        self.width, self.height = int(self.width), int(self.height)

    @classmethod
    def from_fov(cls, c2w: Tensor, width: int, height: int, camera_angle_x: float) -> Cameras:
        """Cameras from a horizontal field of view, as Blender's ``camera_angle_x``.

        focal = 0.5 * W / tan(0.5 * camera_angle_x); the principal point is the image centre.
        """
        focal = 0.5 * width / math.tan(0.5 * camera_angle_x)
        return cls(c2w, focal, focal, width / 2.0, height / 2.0, width, height)

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, idx: int | slice | Tensor) -> Cameras:
        if isinstance(idx, int):
            if not -len(self) <= idx < len(self):
                raise IndexError(f"camera index {idx} out of range for {len(self)} cameras")
            idx = slice(idx % len(self), idx % len(self) + 1)  # keep the batch dimension
        return Cameras(
            self.c2w[idx],
            self.fx[idx],
            self.fy[idx],
            self.cx[idx],
            self.cy[idx],
            self.width,
            self.height,
        )

    def to(self, device: torch.device | str) -> Cameras:
        return Cameras(
            self.c2w.to(device),
            self.fx.to(device),
            self.fy.to(device),
            self.cx.to(device),
            self.cy.to(device),
            self.width,
            self.height,
        )

    def resized(self, width: int, height: int) -> Cameras:
        """The same cameras rendering at another resolution (intrinsics scaled)."""
        sx, sy = width / self.width, height / self.height
        return Cameras(
            self.c2w, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height
        )

    @property
    def centers(self) -> Tensor:
        """(B, 3) camera centres in world coordinates."""
        return self.c2w[:, :3, 3]


def look_at(eye: Tensor, target: Tensor | None = None, up: Tensor | None = None) -> Tensor:
    """Camera-to-world matrices (B, 4, 4) for cameras at ``eye`` (B, 3) looking at ``target``.

    OpenGL convention: the camera's -z axis points from ``eye`` to ``target``; ``up`` defaults
    to +z (the Blender world's up axis).
    """
    eye = torch.as_tensor(eye, dtype=torch.float32)
    if eye.ndim == 1:
        eye = eye[None]
    if target is None:
        target = torch.zeros_like(eye)
    target = torch.as_tensor(target).to(eye).expand_as(eye)
    up = torch.tensor([0.0, 0.0, 1.0]) if up is None else torch.as_tensor(up, dtype=eye.dtype)
    up = up.to(eye).expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)  # (B, 3) = -z
    right = torch.linalg.cross(forward, up)
    # Looking straight along `up`: fall back to another up vector.
    degenerate = right.norm(dim=-1) < 1e-6
    if degenerate.any():
        alt = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device).expand_as(eye)
        right = torch.where(degenerate[:, None], torch.linalg.cross(forward, alt), right)
    right = torch.nn.functional.normalize(right, dim=-1)
    true_up = torch.linalg.cross(right, forward)
    c2w = torch.eye(4, dtype=eye.dtype, device=eye.device).repeat(len(eye), 1, 1)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = true_up
    c2w[:, :3, 2] = -forward
    c2w[:, :3, 3] = eye
    return c2w
