"""Working in the generator's latent space: latent search (reconstruction) and interpolation.

3D-GAN maps a latent code to a shape but has no encoder (only its 3D-VAE-GAN variant learns one
from images), so a given shape is reconstructed by *latent search*, as in GAN inversion (e.g.
Creswell & Bharath 2018; Zhu et al. 2016): ``z* = argmin_z BCE(G(z), target)`` with the
generator frozen, from several random starts, keeping the best. Interpolation is linear in
latent space, as in 3D-GAN's Fig. 6 (Sec. 4.4).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.models.voxel_gan.networks import VoxelGenerator


def resize_voxels(voxels: Tensor, resolution: int) -> Tensor:
    """Resample an (R', R', R') occupancy grid to (R, R, R) fractional occupancy in [0, 1].

    Trilinear with ``align_corners=False`` keeps the cell-centred convention of
    :mod:`zoo.ops.voxelize` (downsampling by 2 averages each 2^3 block).
    """
    if voxels.ndim != 3:
        raise ValueError(f"voxels must have shape (R, R, R), got {tuple(voxels.shape)}")
    v = voxels.float()
    if tuple(v.shape) == (resolution,) * 3:
        return v
    out = F.interpolate(v[None, None], size=(resolution,) * 3, mode="trilinear")
    return out[0, 0].clamp(0, 1)


def latent_search(
    generator: VoxelGenerator,
    goal: Tensor,
    z0: Tensor,
    steps: int,
    lr: float,
    unit_box: bool = False,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fit latent codes to an occupancy grid by Adam on the voxel BCE, generator frozen.

    Args:
        generator: evaluated in eval mode (batch norm running statistics, so the K restarts are
            independent); its mode and ``requires_grad`` flags are restored afterwards.
        goal: (R, R, R) target occupancy in [0, 1] at the generator's resolution.
        z0: (K, z_dim) starting codes, one per restart.
        unit_box: project the codes back onto [0, 1]^d after each step (uniform prior).
        dtype: run the search in this dtype on a copy of the generator (float64 makes the
            result independent of the CPU's kernel paths); None: the generator's own dtype.
    Returns:
        the best restart's occupancy probabilities (R, R, R), its code (z_dim,), and the final
        mean BCE of every restart (K,).
    """
    r = generator.resolution
    if tuple(goal.shape) != (r, r, r):
        raise ValueError(f"goal must have shape ({r}, {r}, {r}), got {tuple(goal.shape)}")
    if dtype is not None and dtype != next(generator.parameters()).dtype:
        generator = copy.deepcopy(generator).to(dtype)
        goal, z0 = goal.to(dtype), z0.to(dtype)
    k = len(z0)
    target = goal[None, None].expand(k, 1, r, r, r)  # (K, 1, R, R, R)
    was_training = generator.training
    flags = [p.requires_grad for p in generator.parameters()]
    generator.eval()
    generator.requires_grad_(False)
    try:
        with torch.enable_grad():
            z = z0.detach().clone().requires_grad_(True)  # (K, z_dim)
            opt = torch.optim.Adam([z], lr=lr)
            for _ in range(int(steps)):
                err = F.binary_cross_entropy_with_logits(generator.logits(z), target)
                opt.zero_grad(set_to_none=True)
                (err * k).backward()  # sum of the K independent per-restart means
                opt.step()
                if unit_box:
                    with torch.no_grad():
                        z.clamp_(0.0, 1.0)
        with torch.no_grad():
            logits = generator.logits(z)  # (K, 1, R, R, R)
            per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            losses = per.flatten(1).mean(1)  # (K,)
            best = int(losses.argmin())
    finally:
        for p, flag in zip(generator.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        generator.train(was_training)
    return torch.sigmoid(logits[best, 0]), z[best].detach(), losses


def lerp_latents(z_a: Tensor, z_b: Tensor, steps: int) -> Tensor:
    """(steps, d) codes ``(1 - t) z_a + t z_b`` for ``steps`` t evenly spaced in [0, 1]."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    a, b = z_a.reshape(-1), z_b.reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"z_a and z_b must have the same size, got {a.numel()} and {b.numel()}")
    t = torch.linspace(0, 1, steps, device=a.device, dtype=a.dtype)[:, None]  # (T, 1)
    return (1 - t) * a + t * b.to(a)


__all__ = ["latent_search", "lerp_latents", "resize_voxels"]
