"""Pinhole ray generation: pixel centres, camera-frame z = -1 directions, projection round trip."""

from __future__ import annotations

import math

import torch

from zoo.ops.rays import generate_rays, pixel_directions, rays_for_pixels
from zoo.structures.cameras import Cameras, look_at


def make_cameras(width: int = 9, height: int = 7) -> Cameras:
    eye = torch.tensor([[2.0, -1.0, 0.5], [-0.5, 1.5, 1.0]])
    target = torch.tensor([0.1, 0.2, -0.1])
    return Cameras.from_fov(look_at(eye, target), width, height, math.radians(50))


def test_centre_ray_passes_through_look_at_point():
    cams = make_cameras(9, 7)  # odd sizes: the centre pixel's centre is the principal point
    o, d = generate_rays(cams)
    target = torch.tensor([0.1, 0.2, -0.1])
    for b in range(2):
        to_target = torch.nn.functional.normalize(target - o[b, 3, 4], dim=-1)
        torch.testing.assert_close(torch.nn.functional.normalize(d[b, 3, 4], dim=-1), to_target)
    # Even sizes: the principal point (W/2, H/2) is a pixel corner; its direction still hits it.
    even = make_cameras(8, 6)
    cam = torch.tensor([0, 1])
    d = pixel_directions(even, even.cx, even.cy, cam)
    to_target = torch.nn.functional.normalize(target - even.centers, dim=-1)
    torch.testing.assert_close(torch.nn.functional.normalize(d, dim=-1), to_target)


def test_directions_have_camera_z_minus_one_and_normalize_option():
    cams = make_cameras()
    o, d = generate_rays(cams)  # (B, H, W, 3)
    assert o.shape == d.shape == (2, 7, 9, 3)
    rot = cams.c2w[:, :3, :3]  # (B, 3, 3)
    d_cam = torch.einsum("bji,bhwj->bhwi", rot, d)  # R^T d
    torch.testing.assert_close(d_cam[..., 2], -torch.ones(2, 7, 9))
    torch.testing.assert_close(o, cams.centers[:, None, None].expand_as(o))
    _, dn = generate_rays(cams, normalize=True)
    torch.testing.assert_close(dn.norm(dim=-1), torch.ones(2, 7, 9))
    torch.testing.assert_close(dn, torch.nn.functional.normalize(d, dim=-1))


def test_rays_for_pixels_agree_with_generate_rays():
    cams = make_cameras()
    o, d = generate_rays(cams)
    g = torch.Generator().manual_seed(0)
    cam = torch.randint(0, 2, (50,), generator=g)
    px = torch.randint(0, 9, (50,), generator=g)
    py = torch.randint(0, 7, (50,), generator=g)
    o2, d2 = rays_for_pixels(cams, cam, px, py)
    torch.testing.assert_close(o2, o[cam, py, px])
    torch.testing.assert_close(d2, d[cam, py, px])


def test_projection_round_trip():
    """Project world points with K [R^T | -R^T t]; the ray through that pixel position hits
    the point at t = its camera-frame depth."""
    cams = make_cameras(64, 48)
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(2, 20, 3, generator=g) * 0.3
    rot, t = cams.c2w[:, :3, :3], cams.c2w[:, :3, 3]
    p_cam = torch.einsum("bji,bnj->bni", rot, pts - t[:, None])  # (B, N, 3) = R^T (p - t)
    depth = -p_cam[..., 2]
    assert (depth > 0).all()
    u = cams.fx[:, None] * p_cam[..., 0] / depth + cams.cx[:, None]
    v = -cams.fy[:, None] * p_cam[..., 1] / depth + cams.cy[:, None]  # v grows downwards
    cam = torch.arange(2)[:, None].expand(2, 20).reshape(-1)
    d = pixel_directions(cams, u.reshape(-1), v.reshape(-1), cam)
    hit = t[cam] + depth.reshape(-1, 1) * d
    torch.testing.assert_close(hit, pts.reshape(-1, 3), atol=1e-5, rtol=0)
