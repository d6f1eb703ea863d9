"""DeepSDF losses, SDF samples of a target, latent-code inference and the latent prior.

Park et al., "DeepSDF", CVPR 2019:
- Eq. 4, the clamped L1 loss ``|clamp(f(z, x), delta) - clamp(s, delta)|`` with ``delta = 0.1``.
- Eq. 10 / Sec. 4.2, inference of an unseen shape: with the decoder frozen, a fresh code is
  optimised against the shape's SDF samples. Reference ``reconstruct.py``: code initialised from
  N(0, 0.01^2), 800 Adam iterations at lr 5e-3 divided by 10 after half of them, 8000 random
  samples per iteration, plus ``1e-4 * mean(z^2)``.
- A target given as a mesh is sampled exactly like the training data
  (``zoo.data.cache.sample_sdf_points``: surface points perturbed at two Gaussian scales plus
  uniform points in the box, DeepSDF's preprocessing); a target given as oriented points gets
  first-order samples ``p + t n`` with ``s = t``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from zoo.data.cache import sample_sdf_points  # the training data's own sampler
from zoo.ops.random import randn
from zoo.representation import ShapeTarget


def clamped_l1(pred: Tensor, gt: Tensor, delta: float) -> Tensor:
    """Elementwise ``|clamp(pred, -delta, delta) - clamp(gt, -delta, delta)|`` (paper Eq. 4)."""
    return (pred.clamp(-delta, delta) - gt.clamp(-delta, delta)).abs()


def check_sdf_samples(sdf: Tensor, name: str = "sdf") -> Tensor:
    """Validate (..., S, 4) rows ``x, y, z, s``; returns a float tensor."""
    if sdf.ndim < 2 or sdf.shape[-1] != 4 or sdf.shape[-2] < 1:
        raise ValueError(f"{name} must have shape (..., S, 4) with S >= 1, got {tuple(sdf.shape)}")
    if not torch.isfinite(sdf).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return sdf.float()


def oriented_point_sdf_samples(
    points: Tensor, normals: Tensor | None, n: int, near_std: float = 0.01, seed: int = 0
) -> Tensor:
    """(n, 4) SDF samples from surface points: ``p + t n`` with ``s = t``, ``t ~ N(0, std^2)``.

    A first-order approximation of the SDF, valid where the surface is locally flat at the scale
    of ``near_std``; without normals only the zero level set (``s = 0`` at the points) is known.
    """
    if points.ndim != 2 or points.shape[-1] != 3 or len(points) == 0:
        raise ValueError(f"points must have shape (N, 3) with N >= 1, got {tuple(points.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randint(len(points), (n,), generator=g)
    p = points.detach().float().cpu()[idx]  # (n, 3)
    if normals is None:
        return torch.cat([p, torch.zeros(n, 1)], dim=-1)
    if normals.shape != points.shape:
        raise ValueError(
            f"normals must match points {tuple(points.shape)}, got {tuple(normals.shape)}"
        )
    nrm = nn.functional.normalize(normals.detach().float().cpu()[idx], dim=-1)
    t = near_std * randn(n, 1, generator=g)
    return torch.cat([p + t * nrm, t], dim=-1)


def target_sdf_samples(target: ShapeTarget, n: int, seed: int = 0) -> Tensor:
    """SDF samples of ``target``: its ``sdf`` if given, else sampled from ``mesh``, else from
    ``points`` (+ ``normals``). Returns (S, 4) on the CPU."""
    if target.sdf is not None:
        return check_sdf_samples(target.sdf, f"target {target.name!r} sdf").cpu()
    if target.mesh is not None and len(target.mesh.faces) > 0:
        return torch.from_numpy(sample_sdf_points(target.mesh, n, seed))
    if target.points is not None:
        return oriented_point_sdf_samples(target.points, target.normals, n, seed=seed)
    raise ValueError(
        f"deepsdf: target {target.name!r} has no sdf, mesh or points to reconstruct from"
    )


def _balanced_subset(sdf: Tensor, n: int, g: torch.Generator) -> Tensor:
    """(n, 4) random rows of an (S, 4) sample set, half with s > 0 and half with s <= 0 when
    both signs exist (as DeepSDF draws from its pos/neg files)."""
    pos = torch.nonzero(sdf[:, 3] > 0)[:, 0]
    neg = torch.nonzero(sdf[:, 3] <= 0)[:, 0]
    if len(pos) == 0 or len(neg) == 0:
        return sdf[torch.randint(len(sdf), (n,), generator=g)]
    half = n // 2
    ip = pos[torch.randint(len(pos), (half,), generator=g)]
    ineg = neg[torch.randint(len(neg), (n - half,), generator=g)]
    return sdf[torch.cat([ip, ineg])]


def fit_latents(
    decoder: nn.Module,
    sdf: Tensor,
    iterations: int = 800,
    samples: int = 8000,
    lr: float = 5e-3,
    clamp: float = 0.1,
    init_std: float = 0.01,
    l2_reg: float = 1e-4,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Optimise one code per shape with the decoder frozen (DeepSDF inference, Eq. 10).

    Shapes are fitted jointly but independently: the loss is a sum over shapes of each shape's
    mean clamped L1 plus ``l2_reg * mean(z^2)``, and Adam acts elementwise, so fitting a batch
    gives the same codes as fitting each shape alone. The decoder's gradients are not touched
    (``torch.autograd.grad`` w.r.t. the codes only) and it runs in eval mode (no dropout).
    Works under an outer ``torch.no_grad`` / ``inference_mode`` (gradients are re-enabled here).

    ``dtype``: fit in this dtype on a copy of the decoder (float64 makes the codes the same on
    every CPU: in float32, Adam turned the round-off of other kernel paths into F@0.01 2.5 %
    apart between ``ATEN_CPU_CAPABILITY=default`` and ``avx2``); None: the decoder's dtype.
    Codes are returned in the decoder's dtype.

    Args:
        decoder: maps ((B, 1, L), (B, N, 3)) to (B, N); must have ``latent_size``.
        sdf: (B, S, 4) samples of each shape (x, y, z, s).
    Returns:
        codes (B, L) and the final mean clamped L1 per shape (B,), both detached.
    """
    if iterations < 1 or samples < 1:
        raise ValueError(f"iterations and samples must be >= 1, got {iterations}, {samples}")
    with torch.inference_mode(False), torch.enable_grad():
        sdf = check_sdf_samples(sdf.clone()).detach()  # a normal tensor even in inference mode
        if sdf.ndim != 3:
            raise ValueError(f"sdf must have shape (B, S, 4), got {tuple(sdf.shape)}")
        out_dtype = next(decoder.parameters()).dtype
        decoder = decoder_in_dtype(decoder, dtype)
        device, work_dtype = decoder_device_dtype(decoder)
        sdf = sdf.to(work_dtype)
        g = torch.Generator().manual_seed(int(seed))

        def loss(z: Tensor) -> tuple[Tensor, Tensor]:
            batch = torch.stack([_balanced_subset(s, samples, g) for s in sdf.cpu()])
            batch = batch.to(device)  # (B, N, 4)
            pred = decoder(z[:, None, :], batch[..., :3])  # (B, N)
            err = clamped_l1(pred, batch[..., 3], clamp).mean(dim=1)  # (B,)
            return err, err

        z, err = optimise_codes(decoder, len(sdf), loss, iterations, lr, init_std, l2_reg, g)
    return z.to(out_dtype).clone(), err.to(out_dtype).clone()


def decoder_in_dtype(decoder: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """``decoder`` itself, or a copy in ``dtype`` when that differs from its own."""
    if dtype is None or dtype == next(decoder.parameters()).dtype:
        return decoder
    return copy.deepcopy(decoder).to(dtype)


def decoder_device_dtype(decoder: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(decoder.parameters())
    return p.device, p.dtype


def optimise_codes(
    decoder: nn.Module,
    n_shapes: int,
    loss: Callable[[Tensor], tuple[Tensor, Tensor]],
    iterations: int,
    lr: float,
    init_std: float,
    l2_reg: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """The code search of DeepSDF inference, whatever the per-shape loss.

    Codes start from N(0, init_std^2) (drawn from ``generator`` first), Adam at ``lr`` divided
    by 10 after half the iterations, objective ``sum_b loss_b(z) + l2_reg * mean(z_b^2)`` with
    gradients w.r.t. the codes only, the decoder in eval mode. ``loss(z)`` maps (B, L) codes to
    the per-shape loss (B,) and the per-shape error to report (B,). Call with gradients enabled.
    Returns the codes (B, L) and the last iteration's errors (B,), detached.
    """
    device, work_dtype = decoder_device_dtype(decoder)
    z = init_std * randn(n_shapes, decoder.latent_size, generator=generator, dtype=work_dtype)
    z = z.to(device).requires_grad_(True)  # (B, L)
    opt = torch.optim.Adam([z], lr=lr)
    was_training = decoder.training
    decoder.eval()
    drop_at = max(1, iterations // 2)
    err = torch.zeros(n_shapes, device=device, dtype=work_dtype)
    try:
        for it in range(iterations):
            if it == drop_at:
                for group in opt.param_groups:
                    group["lr"] = lr / 10.0
            per_shape, err = loss(z)
            total = (per_shape + l2_reg * z.pow(2).mean(dim=1)).sum()
            (grad,) = torch.autograd.grad(total, [z])
            z.grad = grad
            opt.step()
    finally:
        decoder.train(was_training)
    return z.detach(), err.detach()


def gaussian_latents(
    codes: Tensor, n: int, covariance: str = "full", seed: int | None = None
) -> Tensor:
    """n codes from the Gaussian fitted to the training codes (rows of ``codes``, (N, L)).

    ``covariance="full"``: ``mu + A^T w`` with ``A = (Z - mu) / sqrt(N - 1)`` and
    ``w ~ N(0, I_N)``, an exact draw from N(mu, Sigma) with the empirical covariance
    ``Sigma = A^T A`` that needs no Cholesky factor (Sigma is rank-deficient when N <= L).
    ``covariance="diag"``: ``mu + sigma * eps`` with per-dimension standard deviations.
    With a single training code the distribution is the point mass at it.
    """
    if covariance not in ("full", "diag"):
        raise ValueError(f"covariance must be 'full' or 'diag', got {covariance!r}")
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"codes must have shape (N, L) with N >= 1, got {tuple(codes.shape)}")
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    z = codes.detach().float().cpu()
    mu = z.mean(dim=0)  # (L,)
    if len(z) == 1:
        return mu.expand(n, -1).clone()
    centred = z - mu  # (N, L)
    if covariance == "full":
        w = randn(n, len(z), generator=g)  # (n, N)
        return mu + w @ centred / math.sqrt(len(z) - 1)
    std = centred.pow(2).sum(dim=0).div(len(z) - 1).sqrt()  # (L,)
    return mu + std * randn(n, z.shape[1], generator=g)
