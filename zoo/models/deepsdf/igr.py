"""Implicit geometric regularisation: DeepSDF from surface points alone (``model.loss=igr``).

Gropp, Yariv, Haim, Atzmon & Lipman, "Implicit Geometric Regularization for Learning Shapes",
ICML 2020 (Eq. 2 and Sec. 4; reference code amosgropp/IGR, ``code/shapespace/train.py`` and
``code/shapespace/dfaust_setup.conf``). With only points ``x_i`` on the surface (and optionally
their normals ``n_i``) the loss of one shape is

    mean_i |f(x_i)|  +  lambda * E_x (|grad_x f(x)| - 1)^2  [+  tau * mean_i |grad f(x_i) - n_i|]

with ``lambda = 0.1`` and ``tau = 1``: the surface term puts the zero level set on the points,
the eikonal term makes ``f`` a signed distance function (|grad f| = 1 almost everywhere), and
among such functions the optimisation's implicit bias picks a smooth, plausible surface. The
eikonal points are the surface points perturbed by N(0, sigma_i^2 I), ``sigma_i`` the distance
from ``x_i`` to its 50th nearest neighbour in the cloud (``reconstruction/run.py``:
``cKDTree.query(p, 50 + 1)``), plus N/8 points uniform in a box around the shape
(``model/sample.py``, ``NormalPerPoint``). The normal term is used only when the data has
normals. A shape space adds DeepSDF's code penalty ``lambda_z * mean_i |z_i|`` (the reference's
``latent_size_reg``); an unseen shape's code is fitted with the same loss, decoder frozen
(``code/shapespace/latent_optimizer.py``).

Which side of the surface is "inside" is not learned from points: the sign comes from the
geometric initialisation (:meth:`zoo.models.deepsdf.DeepSDFDecoder.geometric_init_`), which
starts the network as a sphere's SDF, negative inside; the zero level set is extracted by
marching cubes like any DeepSDF.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor, nn

from zoo.models.deepsdf.fitting import decoder_device_dtype, decoder_in_dtype, optimise_codes
from zoo.ops.random import randn


@dataclass(frozen=True)
class IGRConfig:
    """The IGR loss settings (paper / ``dfaust_setup.conf`` values as defaults).

    Attributes:
        eikonal_lambda: weight of the eikonal term (``lambda = 0.1``).
        normals_lambda: weight of the normal term when normals are given (``tau = 1``).
        neighbours: ``sigma_i`` is the distance to the ``neighbours``-th nearest other point (50).
        uniform_fraction: uniform box points per surface point (1/8).
        bbox_min, bbox_max: the box of the uniform points.
    """

    eikonal_lambda: float = 0.1
    normals_lambda: float = 1.0
    neighbours: int = 50
    uniform_fraction: float = 0.125
    bbox_min: tuple[float, float, float] = (-0.55, -0.55, -0.55)
    bbox_max: tuple[float, float, float] = (0.55, 0.55, 0.55)

    def __post_init__(self) -> None:
        if self.eikonal_lambda < 0 or self.normals_lambda < 0:
            raise ValueError(
                f"eikonal_lambda and normals_lambda must be >= 0, got {self.eikonal_lambda}, "
                f"{self.normals_lambda}"
            )
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}")
        if self.uniform_fraction < 0:
            raise ValueError(f"uniform_fraction must be >= 0, got {self.uniform_fraction}")


def kth_neighbour_distance(points: Tensor, k: int) -> Tensor:
    """(..., N) distance from each point of a (..., N, 3) cloud to its k-th nearest *other* point
    of the same cloud (k capped at N - 1; 0 for a one-point cloud). No gradient."""
    if points.ndim < 2 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., N, 3), got {tuple(points.shape)}")
    flat = points.detach().reshape(-1, *points.shape[-2:]).double().cpu().numpy()  # (B, N, 3)
    n = flat.shape[1]
    kk = min(int(k), n - 1)
    out = np.zeros(flat.shape[:2])
    if kk >= 1:
        for b, cloud in enumerate(flat):
            dist, _ = cKDTree(cloud).query(cloud, kk + 1)  # (N, kk + 1), the point itself first
            out[b] = dist[:, -1]
    return torch.from_numpy(out).to(points).reshape(points.shape[:-1])


def eikonal_points(
    points: Tensor,
    sigma: Tensor,
    uniform_fraction: float,
    bbox_min: Sequence[float],
    bbox_max: Sequence[float],
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, N + M, 3) points for the eikonal term: each surface point of (B, N, 3) ``points``
    plus N(0, sigma^2 I) noise (``sigma`` (B, N)), then ``M = round(N * uniform_fraction)``
    points uniform in the box. Drawn on the CPU from ``generator`` (same values on any CPU)."""
    b, n, _ = points.shape
    m = int(round(n * uniform_fraction))
    noise = randn(b, n, 3, generator=generator).to(points)  # (B, N, 3)
    near = points + noise * sigma[..., None]
    lo = torch.tensor(bbox_min, dtype=torch.float64)
    hi = torch.tensor(bbox_max, dtype=torch.float64)
    far = lo + (hi - lo) * torch.rand(b, m, 3, generator=generator, dtype=torch.float64)
    return torch.cat([near, far.to(points)], dim=1)


def spatial_gradient(values: Tensor, xyz: Tensor) -> Tensor:
    """``d values / d xyz`` (..., 3) with the graph kept (the loss is differentiated again)."""
    (grad,) = torch.autograd.grad(
        values, xyz, grad_outputs=torch.ones_like(values), create_graph=True
    )
    return grad


def eikonal_term(grad: Tensor) -> Tensor:
    """Elementwise ``(|grad| - 1)^2`` of (..., 3) gradients: (...)."""
    return (grad.norm(dim=-1) - 1.0).pow(2)


def igr_terms(
    decoder: nn.Module,
    latent: Tensor,
    points: Tensor,
    sigma: Tensor,
    cfg: IGRConfig,
    normals: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The per-shape IGR terms of codes (B, L) on surface points (B, N, 3).

    Returns ``surface`` (B,) mean |f| on the points, ``eikonal`` (B,) mean (|grad f| - 1)^2 on
    :func:`eikonal_points`, ``normals`` (B,) mean |grad f(x_i) - n_i| (zeros without normals)
    and ``loss`` (B,) the weighted sum (no code penalty).
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (B, N, 3), got {tuple(points.shape)}")
    z = latent[:, None, :]  # (B, 1, L)
    use_normals = normals is not None and cfg.normals_lambda > 0
    surf = points.detach().requires_grad_(use_normals)
    f_surf = decoder(z, surf)  # (B, N)
    surface = f_surf.abs().mean(dim=1)
    if use_normals:
        assert normals is not None
        g_surf = spatial_gradient(f_surf, surf)  # (B, N, 3)
        normal_term = (g_surf - normals).norm(dim=-1).mean(dim=1)
    else:
        normal_term = torch.zeros_like(surface)
    off = eikonal_points(
        points.detach(), sigma, cfg.uniform_fraction, cfg.bbox_min, cfg.bbox_max, generator
    ).requires_grad_(True)  # (B, N + M, 3)
    g_off = spatial_gradient(decoder(z, off), off)  # (B, N + M, 3)
    eikonal = eikonal_term(g_off).mean(dim=1)
    loss = surface + cfg.eikonal_lambda * eikonal + cfg.normals_lambda * normal_term
    return {"loss": loss, "surface": surface, "eikonal": eikonal, "normals": normal_term}


def fit_latents_igr(
    decoder: nn.Module,
    points: Tensor,
    cfg: IGRConfig,
    normals: Tensor | None = None,
    iterations: int = 800,
    samples: int = 8000,
    lr: float = 5e-3,
    init_std: float = 0.01,
    l2_reg: float = 1e-4,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Optimise one code per shape against its surface points with the IGR loss, decoder frozen.

    The same schedule as :func:`zoo.models.deepsdf.fitting.fit_latents` (Adam, lr divided by 10
    after half the iterations, ``l2_reg * mean(z^2)``), each iteration on ``samples`` random
    points of each cloud (all of them when it has fewer). Shapes are independent (a sum of
    per-shape losses, elementwise Adam). Works under ``torch.inference_mode``; ``dtype`` as in
    ``fit_latents``.

    Args:
        points: (B, N, 3) surface points of each shape; normals: (B, N, 3) or None.
    Returns:
        codes (B, L) and the final mean |f| on each shape's points (B,), both detached.
    """
    if iterations < 1 or samples < 1:
        raise ValueError(f"iterations and samples must be >= 1, got {iterations}, {samples}")
    with torch.inference_mode(False), torch.enable_grad():
        pts = points.clone().float().detach()  # a normal tensor even in inference mode
        if pts.ndim != 3 or pts.shape[-1] != 3 or pts.shape[1] < 1:
            raise ValueError(f"points must have shape (B, N, 3), got {tuple(points.shape)}")
        if not torch.isfinite(pts).all():
            raise ValueError("points contain NaN or infinite values")
        out_dtype = next(decoder.parameters()).dtype
        decoder = decoder_in_dtype(decoder, dtype)
        device, work_dtype = decoder_device_dtype(decoder)
        pts = pts.to(device=device, dtype=work_dtype)
        nrm = None if normals is None else normals.detach().to(device=device, dtype=work_dtype)
        sigma = kth_neighbour_distance(pts, cfg.neighbours)  # (B, N), in the whole cloud
        n = pts.shape[1]
        g = torch.Generator().manual_seed(int(seed))

        def loss(z: Tensor) -> tuple[Tensor, Tensor]:
            if samples >= n:
                terms = igr_terms(decoder, z, pts, sigma, cfg, nrm, g)
            else:
                sel = torch.randperm(n, generator=g)[:samples].to(device)
                sub_n = None if nrm is None else nrm[:, sel]
                terms = igr_terms(decoder, z, pts[:, sel], sigma[:, sel], cfg, sub_n, g)
            return terms["loss"], terms["surface"]

        z, surface = optimise_codes(decoder, len(pts), loss, iterations, lr, init_std, l2_reg, g)
    return z.to(out_dtype).clone(), surface.to(out_dtype).clone()
