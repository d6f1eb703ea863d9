"""Camera conventions, projection decomposition, pose normalisation, similarity alignment and
lens distortion against known answers."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from zoo.ops.camera_math import (
    apply_transform,
    decompose_projection,
    distort_points,
    opencv_to_opengl,
    orient_and_scale,
    qvec_to_rotmat,
    similarity_align,
    transform_points,
    undistort_image,
    world_to_camera_to_c2w,
)


def _random_c2w(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    c2w[:, :3, 3] = rng.normal(size=(n, 3)) * 3
    return c2w


def test_qvec_matches_scipy_and_w2c_inverts():
    rots = Rotation.random(5, random_state=1)
    xyzw = rots.as_quat()
    wxyz = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], 1)
    assert np.allclose(qvec_to_rotmat(wxyz), rots.as_matrix(), atol=1e-12)
    t = np.random.default_rng(0).normal(size=(5, 3))
    c2w = world_to_camera_to_c2w(rots.as_matrix(), t)
    w2c = np.tile(np.eye(4), (5, 1, 1))
    w2c[:, :3, :3], w2c[:, :3, 3] = rots.as_matrix(), t
    assert np.allclose(c2w @ w2c, np.eye(4), atol=1e-12)


def test_opencv_opengl_flip_keeps_the_optical_axis():
    c2w = _random_c2w(3)
    gl = opencv_to_opengl(c2w)
    assert np.allclose(gl[:, :3, 2], -c2w[:, :3, 2]) and np.allclose(gl[:, :3, 1], -c2w[:, :3, 1])
    assert np.allclose(opencv_to_opengl(gl), c2w)


def test_decompose_projection_recovers_k_and_pose():
    k = np.array([[500.0, 2.0, 320.0], [0.0, 510.0, 240.0], [0.0, 0.0, 1.0]])
    c2w = _random_c2w(4, seed=3)
    for m in c2w:
        w2c = np.linalg.inv(m)
        p = -3.7 * k @ w2c[:3]  # a projection matrix is defined up to any scale
        k2, c2w2 = decompose_projection(p)
        assert np.allclose(k2, k, atol=1e-8) and np.allclose(c2w2, m, atol=1e-8)


def test_orient_and_scale_centres_levels_and_fits_the_unit_box():
    c2w = _random_c2w(10, seed=5)
    out, transform, scale = orient_and_scale(c2w)
    assert np.allclose(out[:, :3, 3].mean(0), 0, atol=1e-12)
    assert np.isclose(np.abs(out[:, :3, 3]).max(), 1.0)
    up = out[:, :3, 1].mean(0)
    assert np.allclose(up / np.linalg.norm(up), [0, 0, 1], atol=1e-12)
    assert np.allclose(out, apply_transform(c2w, transform, scale))
    # The same change of frame moves points with the cameras.
    assert np.allclose(transform_points(c2w[:, :3, 3], transform, scale), out[:, :3, 3])


def test_similarity_align_recovers_a_known_similarity():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(20, 3))
    r = Rotation.random(random_state=4).as_matrix()
    dst = 2.5 * src @ r.T + np.array([1.0, -2.0, 0.5])
    s, r2, t2 = similarity_align(src, dst)
    assert np.isclose(s, 2.5) and np.allclose(r2, r) and np.allclose(t2, [1.0, -2.0, 0.5])


def test_distortion_zero_is_identity_and_matches_opencv_formula():
    xy = torch.tensor([[0.1, -0.2], [0.3, 0.05]], dtype=torch.float64)
    assert torch.equal(distort_points(xy, torch.zeros(5, dtype=torch.float64)), xy)
    k1, k2, p1, p2, k3 = 0.1, -0.05, 0.01, -0.02, 0.003
    out = distort_points(xy, torch.tensor([k1, k2, p1, p2, k3], dtype=torch.float64))
    x, y = 0.1, -0.2
    r2 = x * x + y * y
    rad = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * rad + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * rad + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    assert torch.allclose(out[0], torch.tensor([xd, yd], dtype=torch.float64))


def test_undistort_image_reads_each_pixel_at_its_distorted_position():
    """Bilinear sampling is exact on a linear ramp, so each undistorted pixel must hold the ramp's
    value at the distorted position of its centre."""
    h, w, fx, fy, cx, cy = 30, 40, 35.0, 33.0, 20.5, 14.5
    v, u = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    ramp = torch.stack([0.01 * u, 0.02 * v], -1).double()  # (H, W, 2): value = position
    k = torch.tensor([-0.08, 0.01, 0.002, -0.001, 0.0], dtype=torch.float64)
    out = undistort_image(ramp, fx, fy, cx, cy, k)
    d = distort_points(torch.stack([(u - cx) / fx, (v - cy) / fy], -1).double(), k)
    expect = torch.stack([0.01 * (d[..., 0] * fx + cx), 0.02 * (d[..., 1] * fy + cy)], -1)
    inside = (expect[..., 0] > 0.01 * 0.5) & (expect[..., 0] < 0.01 * (w - 0.5))
    inside &= (expect[..., 1] > 0.02 * 0.5) & (expect[..., 1] < 0.02 * (h - 0.5))
    assert inside.float().mean() > 0.8
    assert torch.allclose(out[inside], expect[inside], atol=1e-9)
    assert torch.allclose(undistort_image(ramp, fx, fy, cx, cy, torch.zeros(5)), ramp)
