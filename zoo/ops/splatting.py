"""Differentiable rasterization of 3D Gaussians in plain PyTorch (CPU or GPU, no extension).

Follows Kerbl et al., "3D Gaussian Splatting for Real-Time Radiance Field Rendering" (SIGGRAPH
2023) and its CUDA rasterizer (graphdeco-inria/diff-gaussian-rasterization):

- **Projection** (EWA splatting, Zwicker et al. 2001): a Gaussian with world covariance
  ``Sigma = R S S^T R^T`` projects to the screen covariance ``J W Sigma W^T J^T`` where ``W`` is
  the world-to-camera rotation and ``J`` the Jacobian of the perspective projection at the
  mean (view-space x/z, y/z clamped to 1.3 x the half field of view, as the reference does);
  ``0.3`` is added to its diagonal (the screen-space low-pass "dilation"). Gaussians closer
  than ``near_plane`` (reference: 0.2) are culled; the footprint radius is
  ``ceil(3 sqrt(lambda_max))`` pixels.
- **Compositing**: front to back per pixel, ``alpha = min(0.99, o exp(-d^T Sigma2D^-1 d / 2))``;
  contributions with ``alpha < 1/255`` are skipped, and a pixel stops before the Gaussian that
  would bring its transmittance below ``1e-4``.

Scheme (chosen by measurement, ``benchmarks/bench_gaussians.py``): instead of 16 x 16 tiles
(which evaluate every Gaussian of a tile at all 256 pixels, mostly below 1/255 at 100 px), every
Gaussian is expanded into the pixels of its 3-sigma box ("pairs"), the pairs below 1/255 are
dropped, and the rest are sorted by (pixel, depth). The per-pixel front-to-back product
``T_i = prod_{j<i} (1 - alpha_j)`` is a segmented cumulative sum of ``log(1 - alpha)`` in float64
(exact to ~1e-12 for millions of pairs), so the whole pass is a handful of vectorised gathers,
one sort and one cumsum, all differentiable with autograd. :func:`rasterize_dense` is the slow,
obviously-correct reference (every Gaussian at every pixel) the tests compare against.

Conventions: zoo cameras (:mod:`zoo.structures.cameras`, OpenGL: the camera looks along -z,
pixel ``(u, v)`` has its centre at ``(u + 0.5, v + 0.5)``); depths are view-space z-depths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.structures.cameras import Cameras

ALPHA_MAX = 0.99  # reference: alpha = min(0.99, ...)
ALPHA_MIN = 1.0 / 255.0  # reference: skip contributions below 1/255
T_MIN = 1e-4  # reference: stop before transmittance < 0.0001
DILATION = 0.3  # reference: cov2D[0][0] += 0.3, cov2D[1][1] += 0.3
NEAR_PLANE = 0.2  # reference in_frustum: p_view.z <= 0.2 is culled


def quaternion_to_matrix(quats: Tensor) -> Tensor:
    """Rotation matrices (N, 3, 3) of quaternions (N, 4) in (w, x, y, z) order (normalised
    here, as the reference's ``build_rotation``)."""
    q = torch.nn.functional.normalize(quats, dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def covariance_3d(scales: Tensor, quats: Tensor) -> Tensor:
    """World covariances (N, 3, 3) ``R S S^T R^T`` from scales (N, 3) (after activation) and
    quaternions (N, 4), w first."""
    m = quaternion_to_matrix(quats) * scales[:, None, :]  # (N, 3, 3) = R S
    return m @ m.transpose(-1, -2)


@dataclass
class Projected:
    """Screen-space Gaussians of one camera (N = number of input Gaussians).

    Attributes:
        means2d: (N, 2) continuous pixel coordinates of the means (differentiable; the
            view-space positional gradient of adaptive density control is taken on it).
        conics: (N, 3) inverse screen covariance (a, b, c): ``[[a, b], [b, c]]``.
        depths: (N,) view-space z-depths.
        radii: (N,) footprint radii in pixels (3 sqrt of the largest eigenvalue, as the
            reference); 0 for culled Gaussians.
        sigmas: (N, 2) standard deviations of the screen Gaussian along x and y (for the
            per-axis pair boxes of :func:`rasterize`).
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor
    sigmas: Tensor


def project_gaussians(
    means: Tensor, scales: Tensor, quats: Tensor, camera: Cameras, near_plane: float = NEAR_PLANE
) -> Projected:
    """EWA projection of N Gaussians (means (N, 3), scales (N, 3), quats (N, 4)) into one
    camera (``len(camera) == 1``). See the module docstring for the formulas."""
    if len(camera) != 1:
        raise ValueError(f"project_gaussians takes one camera, got {len(camera)}")
    if means.ndim != 2 or means.shape[-1] != 3 or scales.shape != means.shape:
        raise ValueError(
            f"means and scales must be (N, 3), got {tuple(means.shape)}, {tuple(scales.shape)}"
        )
    if quats.shape != (means.shape[0], 4):
        raise ValueError(f"quats must be ({means.shape[0]}, 4), got {tuple(quats.shape)}")
    c2w = camera.c2w[0].to(means)
    rot = c2w[:3, :3].T  # (3, 3) world -> camera
    p = (means - c2w[:3, 3]) @ rot.T  # (N, 3) camera frame, looking along -z
    depth = -p[:, 2]
    fx, fy = float(camera.fx[0]), float(camera.fy[0])
    cx, cy = float(camera.cx[0]), float(camera.cy[0])
    w, h = camera.width, camera.height
    z = depth.clamp_min(1e-6)
    u = cx + fx * p[:, 0] / z
    v = cy - fy * p[:, 1] / z
    # Jacobian at the mean, with x/z and y/z clamped to 1.3 x the half field of view.
    lim_x = 1.3 * max(cx, w - cx) / fx
    lim_y = 1.3 * max(cy, h - cy) / fy
    tx = (p[:, 0] / z).clamp(-lim_x, lim_x) * z
    ty = (p[:, 1] / z).clamp(-lim_y, lim_y) * z
    zeros = torch.zeros_like(z)
    jac = torch.stack(
        [fx / z, zeros, fx * tx / z**2, zeros, -fy / z, -fy * ty / z**2], dim=-1
    ).reshape(-1, 2, 3)  # (N, 2, 3) d(u, v) / d(x, y, z_cam)
    t = jac @ rot  # (N, 2, 3)
    cov = t @ covariance_3d(scales, quats) @ t.transpose(-1, -2)  # (N, 2, 2)
    a = cov[:, 0, 0] + DILATION
    b = cov[:, 0, 1]
    c = cov[:, 1, 1] + DILATION
    det = (a * c - b * b).clamp_min(1e-12)
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)  # (N, 3)
    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + (mid * mid - det).clamp_min(0.1).sqrt()
        radii = torch.ceil(3.0 * lam.sqrt())
        off = (
            (u + radii <= 0) | (u - radii >= w) | (v + radii <= 0) | (v - radii >= h)
        )  # footprint entirely off screen
        radii = torch.where((depth > near_plane) & ~off, radii, torch.zeros_like(radii))
        sigmas = torch.stack([a, c], dim=-1).sqrt()
    return Projected(torch.stack([u, v], dim=-1), conics, depth, radii.long(), sigmas)


def _pairs(
    proj: Projected, opacities: Tensor, order: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor]:
    """(Gaussian, pixel) index pairs, Gaussians taken in ``order`` (front to back).

    Each Gaussian covers the pixels whose centres lie within the reference's square of radius
    ``r = 3 sqrt(lambda_max)`` and within ``k sigma_x`` / ``k sigma_y`` of its mean, with
    ``k = sqrt(2 ln(255 o))``: beyond that distance along an axis its alpha is below 1/255
    everywhere, so the pixels left after the 1/255 test are the reference's, from a box
    several times smaller.
    """
    dev = proj.means2d.device
    visible = order[proj.radii[order] > 0]  # (V,) front to back
    o = opacities.detach()[visible].clamp_min(ALPHA_MIN)
    k = torch.sqrt(2 * torch.log(255.0 * o))  # (V,)
    ext = torch.minimum(k[:, None] * proj.sigmas[visible], proj.radii[visible, None])  # (V, 2)
    m = proj.means2d.detach()[visible]
    lo = (m - ext - 0.5).ceil()
    hi = (m + ext - 0.5).floor() + 1
    x0, x1 = lo[:, 0].clamp(0, width).long(), hi[:, 0].clamp(0, width).long()
    y0, y1 = lo[:, 1].clamp(0, height).long(), hi[:, 1].clamp(0, height).long()
    bw, bh = (x1 - x0).clamp_min(0), (y1 - y0).clamp_min(0)
    counts = bw * bh  # (V,)
    g = torch.repeat_interleave(torch.arange(len(visible), device=dev), counts)  # (M,)
    first = torch.cumsum(counts, 0) - counts
    # One gather of everything per box: (first pair, box width, top-left pixel, Gaussian).
    box = torch.stack([first, bw, y0 * width + x0, visible], dim=1).index_select(0, g)  # (M, 4)
    local = torch.arange(len(g), device=dev) - box[:, 0]
    row, col = local // box[:, 1], local % box[:, 1]
    return box[:, 3], box[:, 2] + row * width + col


def _pair_alpha(attrs: Tensor, gid: Tensor, pix: Tensor, width: int) -> Tensor:
    """``min(0.99, o exp(power))`` of each pair, 0 where ``power > 0`` (reference: skipped).

    ``attrs`` (N, 6) packs each Gaussian's mean (2), conic (3) and opacity, so that one
    gather serves all of them."""
    a = attrs.index_select(0, gid)  # (M, 6)
    dx = (pix % width).to(a) + 0.5 - a[:, 0]  # (M,)
    dy = (pix // width).to(a) + 0.5 - a[:, 1]
    power = -0.5 * (a[:, 2] * dx * dx + a[:, 4] * dy * dy) - a[:, 3] * dx * dy
    alpha = (a[:, 5] * torch.exp(power)).clamp_max(ALPHA_MAX)
    return torch.where(power <= 0, alpha, torch.zeros_like(alpha))


def rasterize(
    proj: Projected,
    colors: Tensor,
    opacities: Tensor,
    width: int,
    height: int,
    background: Tensor | None = None,
) -> dict[str, Tensor]:
    """Composite projected Gaussians front to back into an image.

    Args:
        proj: from :func:`project_gaussians`.
        colors: (N, C) colours (any number of channels).
        opacities: (N,) opacities in [0, 1] (after the sigmoid).
        background: (C,) colour behind everything (default black).
    Returns:
        ``rgb`` (H, W, C), ``opacity`` (H, W) = 1 - final transmittance, ``depth`` (H, W) the
        alpha-weighted z-depth ``sum w_i z_i`` (divide by ``opacity`` for the expected depth
        of the visible surface), ``pairs`` the number of (Gaussian, pixel) contributions.
    """
    n, ch = colors.shape
    if opacities.shape != (n,) or proj.means2d.shape != (n, 2):
        raise ValueError(
            f"colors (N, C), opacities (N,) and projections must agree, got "
            f"{tuple(colors.shape)}, {tuple(opacities.shape)}, {tuple(proj.means2d.shape)}"
        )
    n_pix = width * height
    # Pairs in front-to-back order of their Gaussians; a stable sort by pixel then leaves
    # each pixel's pairs sorted by depth.
    depth_order = torch.argsort(proj.depths.detach())
    gid, pix = _pairs(proj, opacities, depth_order, width, height)  # (M,), (M,)
    attrs = torch.cat([proj.means2d, proj.conics, opacities[:, None]], dim=1)  # (N, 6)
    # Alpha of every pair, first without autograd to drop the pairs below 1/255, then (when
    # gradients are wanted) with autograd on the pairs that remain.
    with torch.no_grad():
        alpha = _pair_alpha(attrs, gid, pix, width)
        keep = (alpha >= ALPHA_MIN).nonzero(as_tuple=True)[0]
        pix, order = torch.sort(pix[keep], stable=True)
        keep = keep[order]
        gid = gid[keep]
    if attrs.requires_grad:
        alpha = _pair_alpha(attrs, gid, pix, width)  # (M,)
    else:
        alpha = alpha[keep]
    # Exclusive per-pixel transmittance: a segmented cumulative sum of log(1 - alpha).
    log_t = torch.log1p(-alpha).double()  # (M,)
    excl = torch.cumsum(log_t, 0) - log_t  # (M,) global exclusive sums
    _, counts = torch.unique_consecutive(pix, return_counts=True)
    start = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)  # pixel's first
    log_t_before = (excl - excl[start]).to(alpha.dtype)  # (M,)
    t_before = torch.exp(log_t_before)
    alive = (t_before * (1 - alpha) >= T_MIN).detach()  # stop before T < 1e-4
    w = alpha * t_before * alive  # (M,) compositing weights
    values = torch.cat([colors, proj.depths[:, None].to(colors)], dim=1)  # (N, C + 1)
    acc = colors.new_zeros(n_pix, ch + 1).index_add(0, pix, w[:, None] * values[gid])
    rgb, depth = acc[:, :ch], acc[:, ch]
    log_t_final = colors.new_zeros(n_pix).index_add(0, pix, log_t.to(alpha.dtype) * alive)
    t_final = torch.exp(log_t_final)  # (P,)
    if background is not None:
        rgb = rgb + t_final[:, None] * background.to(rgb)
    return {
        "rgb": rgb.reshape(height, width, ch),
        "opacity": (1 - t_final).reshape(height, width),
        "depth": depth.reshape(height, width),
        "pairs": torch.tensor(int(alive.sum()), device=colors.device),
    }


def rasterize_dense(
    proj: Projected,
    colors: Tensor,
    opacities: Tensor,
    width: int,
    height: int,
    background: Tensor | None = None,
) -> dict[str, Tensor]:
    """The same image by brute force: every visible Gaussian at every pixel, depth-sorted,
    composited with an explicit front-to-back loop (slow; the reference the tests use)."""
    vis = (proj.radii > 0).nonzero(as_tuple=True)[0]
    vis = vis[torch.argsort(proj.depths.detach()[vis])]
    ys, xs = torch.meshgrid(
        torch.arange(height, device=colors.device),
        torch.arange(width, device=colors.device),
        indexing="ij",
    )
    xy = torch.stack([xs, ys], dim=-1).reshape(-1, 2).to(colors) + 0.5  # (P, 2)
    t = colors.new_ones(len(xy))
    rgb = colors.new_zeros(len(xy), colors.shape[1])
    depth = colors.new_zeros(len(xy))
    for i in vis.tolist():
        d = xy - proj.means2d[i]
        a, b, c = proj.conics[i]
        power = -0.5 * (a * d[:, 0] ** 2 + c * d[:, 1] ** 2) - b * d[:, 0] * d[:, 1]
        alpha = (opacities[i] * torch.exp(power)).clamp_max(ALPHA_MAX)
        # Outside the 3-sigma box the fast path never looks; mirror that here.
        r = proj.radii[i]
        in_box = ((xy - proj.means2d[i].detach()).abs() <= r).all(-1)
        use = (alpha >= ALPHA_MIN) & (power <= 0) & in_box
        alpha = alpha * use
        t_next = t * (1 - alpha)
        go = t_next >= T_MIN
        alpha, t_next = alpha * go, torch.where(go, t_next, t)
        rgb = rgb + (alpha * t)[:, None] * colors[i]
        depth = depth + alpha * t * proj.depths[i]
        t = t_next
    if background is not None:
        rgb = rgb + t[:, None] * background.to(rgb)
    return {
        "rgb": rgb.reshape(height, width, -1),
        "opacity": (1 - t).reshape(height, width),
        "depth": depth.reshape(height, width),
    }


def render_gaussians(
    means: Tensor,
    scales: Tensor,
    quats: Tensor,
    opacities: Tensor,
    colors: Tensor,
    camera: Cameras,
    background: Tensor | None = None,
) -> tuple[dict[str, Tensor], Projected]:
    """Project and rasterize N Gaussians for one camera (gsplat-style single entry point).

    Args:
        means: (N, 3); scales: (N, 3) (activated); quats: (N, 4) (w, x, y, z);
        opacities: (N,) in [0, 1]; colors: (N, C); camera: one camera; background: (C,).
    Returns:
        the :func:`rasterize` maps and the :class:`Projected` Gaussians.
    """
    proj = project_gaussians(means, scales, quats, camera)
    out = rasterize(proj, colors, opacities, camera.width, camera.height, background)
    return out, proj


__all__ = [
    "Projected",
    "covariance_3d",
    "project_gaussians",
    "quaternion_to_matrix",
    "rasterize",
    "rasterize_dense",
    "render_gaussians",
]
