"""Ray generation from pinhole cameras (Blender / OpenGL convention, see ``zoo.structures``)."""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.ops.mip import CONE_RADIUS_SCALE
from zoo.structures.cameras import Cameras


def pixel_directions(cameras: Cameras, u: Tensor, v: Tensor, cam: Tensor) -> Tensor:
    """World-space ray directions for pixel coordinates (continuous, pixel centres at +0.5).

    Args:
        cameras: B cameras.
        u, v: (R,) pixel coordinates (x to the right, y downwards).
        cam: (R,) long index of the camera of each ray.
    Returns:
        (R, 3) directions whose camera-frame z component is -1 (NeRF's convention: the ray
        parameter t is then the z-depth), not unit length.
    """
    x = (u - cameras.cx[cam]) / cameras.fx[cam]
    y = -(v - cameras.cy[cam]) / cameras.fy[cam]
    d_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # (R, 3)
    rot = cameras.c2w[cam, :3, :3]  # (R, 3, 3)
    return (rot @ d_cam[..., None])[..., 0]


def rays_for_pixels(
    cameras: Cameras, cam: Tensor, px: Tensor, py: Tensor, normalize: bool = False
) -> tuple[Tensor, Tensor]:
    """Rays through the centres of integer pixels ``(px, py)`` of cameras ``cam``.

    Args:
        cam, px, py: (R,) long tensors: camera index, column, row.
        normalize: return unit directions instead of z = -1 directions.
    Returns:
        origins (R, 3) and directions (R, 3).
    """
    d = pixel_directions(cameras, px.to(cameras.c2w) + 0.5, py.to(cameras.c2w) + 0.5, cam)
    if normalize:
        d = torch.nn.functional.normalize(d, dim=-1)
    o = cameras.c2w[cam, :3, 3]
    return o, d


def pixel_radii(cameras: Cameras, cam: Tensor) -> Tensor:
    """(R,) cone radius at ray parameter 1 of the pixels of cameras ``cam`` (R,): Mip-NeRF's
    ``2 / sqrt(12)`` times the distance between neighbouring pixels' (z = -1) directions
    (google/mipnerf ``internal/datasets.py``: ``dx * 2 / sqrt(12)``). For a pinhole camera that
    distance is ``1 / fx`` everywhere, so a pixel's footprint follows from its camera alone;
    an image downsampled by 2 has half the focal length and twice the radius."""
    return CONE_RADIUS_SCALE / cameras.fx[cam]


def generate_radii(cameras: Cameras) -> Tensor:
    """(B, H, W) :func:`pixel_radii` of every pixel of every camera."""
    b, h, w = len(cameras), cameras.height, cameras.width
    cam = torch.arange(b, device=cameras.c2w.device)
    return pixel_radii(cameras, cam)[:, None, None].expand(b, h, w)


def generate_rays(cameras: Cameras, normalize: bool = False) -> tuple[Tensor, Tensor]:
    """Rays through every pixel centre of every camera.

    Returns:
        origins (B, H, W, 3) and directions (B, H, W, 3) (camera z = -1 unless ``normalize``).
    """
    b, h, w = len(cameras), cameras.height, cameras.width
    dev = cameras.c2w.device
    cam, py, px = torch.meshgrid(
        torch.arange(b, device=dev),
        torch.arange(h, device=dev),
        torch.arange(w, device=dev),
        indexing="ij",
    )
    o, d = rays_for_pixels(cameras, cam.reshape(-1), px.reshape(-1), py.reshape(-1), normalize)
    return o.reshape(b, h, w, 3), d.reshape(b, h, w, 3)
