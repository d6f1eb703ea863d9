"""Camera conventions, lens distortion and pose normalisation shared by the capture loaders
(COLMAP, nerfstudio, LLFF, DTU, ScanNet) and by ``zoo.process``.

Conventions: zoo cameras are OpenGL (+x right, +y up, looking along -z, see
``zoo.structures.cameras``); COLMAP, OpenCV, DTU and ScanNet cameras are OpenCV (+x right,
+y down, looking along +z). The two differ by flipping the camera's y and z axes, i.e. the
second and third columns of the camera-to-world rotation. Pixel centres sit at ``i + 0.5`` in
both COLMAP and zoo, so intrinsics carry over unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# Camera-axis flip between OpenCV (y down, z forward) and OpenGL (y up, z backward).
_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def qvec_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from unit quaternions (..., 4) in COLMAP's order
    ``(w, x, y, z)`` (Hamilton convention); the quaternion is normalised first."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def opencv_to_opengl(c2w: np.ndarray) -> np.ndarray:
    """Camera-to-world (..., 4, 4) from OpenCV camera axes to OpenGL ones (and back: the flip
    is its own inverse)."""
    return np.asarray(c2w, dtype=np.float64) @ _FLIP_YZ


def world_to_camera_to_c2w(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Camera-to-world (..., 4, 4) from world-to-camera ``x_cam = R x_world + t`` (COLMAP's
    ``images`` entries): ``c2w = [R^T | -R^T t]``."""
    rotation = np.asarray(rotation, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64)
    c2w = np.zeros(rotation.shape[:-2] + (4, 4))
    rt = np.swapaxes(rotation, -1, -2)
    c2w[..., :3, :3] = rt
    c2w[..., :3, 3] = -(rt @ translation[..., None])[..., 0]
    c2w[..., 3, 3] = 1.0
    return c2w


def decompose_projection(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a 3x4 projection ``P = K [R | t]`` into intrinsics K (3, 3, positive diagonal,
    ``K[2, 2] = 1``) and the OpenCV camera-to-world (4, 4), as IDR / NeuS's
    ``load_K_Rt_from_P`` does with ``cv2.decomposeProjectionMatrix`` (an RQ decomposition of the
    left 3x3 block; the centre is the null vector of P)."""
    p = np.asarray(p, dtype=np.float64)[:3, :4]
    m = p[:, :3]
    # RQ decomposition of M through QR of the row-reversed transpose.
    rev = np.flipud(np.eye(3))
    q, r = np.linalg.qr((rev @ m).T)
    k = rev @ r.T @ rev
    rot = rev @ q.T
    signs = np.diag(np.sign(np.diag(k)))  # make K's diagonal positive
    k, rot = k @ signs, signs @ rot
    if np.linalg.det(rot) < 0:  # P is defined up to scale: a negative scale flips both
        rot = -rot
        k = -k
    centre = -np.linalg.solve(m, p[:, 3])
    c2w = np.eye(4)
    c2w[:3, :3] = rot.T
    c2w[:3, 3] = centre
    return k / k[2, 2], c2w


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation (3, 3) taking unit direction ``a`` to ``b`` (Rodrigues' formula about
    ``a x b``; a half turn about any perpendicular axis when they are opposite)."""
    a = np.asarray(a, dtype=np.float64) / np.linalg.norm(a)
    b = np.asarray(b, dtype=np.float64) / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(a @ b)
    if c < -1 + 1e-8:
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def orient_and_scale(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """nerfstudio's default normalisation of captured poses (``auto_orient_and_center_poses``
    with ``orientation_method="up"``, ``center_method="poses"``, then ``auto_scale_poses``):
    subtract the mean camera centre, rotate the mean camera up vector (OpenGL +y) onto world
    +z, and scale so that the largest absolute camera coordinate is 1.

    Args:
        c2w: (N, 4, 4) OpenGL camera-to-world matrices.
    Returns:
        the normalised c2w (N, 4, 4), the applied transform (3, 4) ``[R | -R mean]`` and the
        scale ``s``: ``x_new = s (R x + t)`` for world points (see :func:`transform_points`).
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    centres = c2w[:, :3, 3]
    mean = centres.mean(axis=0)
    up = c2w[:, :3, 1].mean(axis=0)
    rot = (
        rotation_between(up, np.array([0.0, 0.0, 1.0])) if np.linalg.norm(up) > 1e-8 else np.eye(3)
    )
    transform = np.concatenate([rot, (-rot @ mean)[:, None]], axis=1)  # (3, 4)
    out = apply_transform(c2w, transform, 1.0)
    extent = float(np.abs(out[:, :3, 3]).max())
    scale = 1.0 / extent if extent > 1e-12 else 1.0
    out[:, :3, 3] *= scale
    return out, transform, scale


def apply_transform(c2w: np.ndarray, transform: np.ndarray, scale: float) -> np.ndarray:
    """Camera-to-world (N, 4, 4) after the world change ``x -> s (R x + t)``, ``transform =
    [R | t]`` (3, 4): rotations are rotated, centres moved and scaled."""
    c2w = np.asarray(c2w, dtype=np.float64)
    t = np.eye(4)
    t[:3, :4] = transform
    out = t @ c2w
    out[..., :3, 3] *= scale
    return out


def transform_points(points: np.ndarray, transform: np.ndarray, scale: float) -> np.ndarray:
    """World points (M, 3) after ``x -> s (R x + t)`` with ``transform = [R | t]`` (3, 4)."""
    points = np.asarray(points, dtype=np.float64)
    return scale * (points @ transform[:, :3].T + transform[:, 3])


def similarity_align(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s R src + t`` between point sets (N, 3) (Umeyama,
    "Least-squares estimation of transformation parameters between two point patterns",
    TPAMI 1991: SVD of the cross-covariance, reflection removed). Returns ``s, R (3, 3), t``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2, 2] = -1.0
    rot = u @ d @ vt
    var = (xs**2).sum() / len(src)
    s = float(np.trace(np.diag(sig) @ d) / var)
    return s, rot, mu_d - s * rot @ mu_s


def distort_points(xy: Tensor, k: Tensor) -> Tensor:
    """OpenCV's radial-tangential (Brown-Conrady) lens model on normalised image coordinates
    (x right, y down, camera z = 1), as COLMAP's ``OPENCV`` / ``RADIAL`` models and nerfstudio's
    ``OPENCV`` camera use it:

        r2 = x^2 + y^2,  radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3
        x' = x radial + 2 p1 x y + p2 (r2 + 2 x^2)
        y' = y radial + p1 (r2 + 2 y^2) + 2 p2 x y

    Args:
        xy: (..., 2) undistorted normalised coordinates.
        k: (5,) or (..., 5) coefficients ``k1 k2 p1 p2 k3``.
    Returns:
        (..., 2) distorted normalised coordinates.
    """
    x, y = xy[..., 0], xy[..., 1]
    k1, k2, p1, p2, k3 = k.to(xy).unbind(-1)
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return torch.stack([xd, yd], dim=-1)


def undistort_image(image: Tensor, fx: float, fy: float, cx: float, cy: float, k: Tensor) -> Tensor:
    """Resample a distorted image (H, W, C) into the ideal pinhole image with the same
    intrinsics: each output pixel centre ``(u + 0.5, v + 0.5)`` is mapped to normalised
    coordinates, distorted with :func:`distort_points` and read bilinearly from the input
    (border pixels repeat outside it). What COLMAP's image undistorter does, keeping K."""
    h, w = image.shape[:2]
    dev = image.device
    v, u = torch.meshgrid(
        torch.arange(h, device=dev, dtype=torch.float64) + 0.5,
        torch.arange(w, device=dev, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    xy = torch.stack([(u - cx) / fx, (v - cy) / fy], dim=-1)  # (H, W, 2)
    d = distort_points(xy, k.double())
    ud, vd = d[..., 0] * fx + cx, d[..., 1] * fy + cy  # distorted pixel positions
    grid = torch.stack([2 * ud / w - 1, 2 * vd / h - 1], dim=-1)[None].to(image.dtype)
    src = image.permute(2, 0, 1)[None]  # (1, C, H, W)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0].permute(1, 2, 0).contiguous()  # (H, W, C)


__all__ = [
    "apply_transform",
    "decompose_projection",
    "distort_points",
    "opencv_to_opengl",
    "orient_and_scale",
    "qvec_to_rotmat",
    "rotation_between",
    "similarity_align",
    "transform_points",
    "undistort_image",
    "world_to_camera_to_c2w",
]
