"""Adversarial objectives for the voxel GAN.

- ``gan``: the original minimax GAN (Goodfellow et al. 2014) with the non-saturating generator
  loss, as trained by 3D-GAN (Wu et al. 2016, Eq. 1): the discriminator minimises
  ``BCE(D(x), 1) + BCE(D(G(z)), 0)``, the generator ``BCE(D(G(z)), 1)``. 3D-GAN's adaptive
  strategy updates D only while its accuracy is <= 80% (Sec. 3.1), see
  :func:`discriminator_accuracy`.
- ``wgan_gp``: Wasserstein GAN with gradient penalty (Gulrajani et al., "Improved Training of
  Wasserstein GANs", NeurIPS 2017, Algorithm 1): the critic minimises
  ``E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2]`` with ``x_hat`` uniform on
  segments between real and fake samples (lambda = 10, n_critic = 5 critic steps per generator
  step, Adam(1e-4, betas (0, 0.9)) in the paper); the generator minimises ``-E[D(G(z))]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def gan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator BCE: real -> 1, fake -> 0 (means over each batch, summed)."""
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def gan_g_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss ``-log D(G(z))`` (Goodfellow et al. 2014, Sec. 3)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_accuracy(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Fraction of real (logit > 0) and fake (logit < 0) grids classified correctly, a scalar
    over both batches: the quantity 3D-GAN thresholds at 0.8."""
    correct = torch.cat([(real_logits > 0), (fake_logits < 0)]).float()
    return correct.mean()


def wgan_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Critic loss without the penalty: ``E[D(fake)] - E[D(real)]`` (minus the W1 estimate)."""
    return fake_scores.mean() - real_scores.mean()


def wgan_g_loss(fake_scores: Tensor) -> Tensor:
    """Generator loss ``-E[D(G(z))]``."""
    return -fake_scores.mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP two-sided penalty ``E[(||grad_x D(x_hat)||_2 - 1)^2]`` (Gulrajani et al. 2017,
    Eq. 3), ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1]`` per sample.

    Args:
        critic: maps (B, ...) to (B,) scores; must not use batch statistics (no BatchNorm).
        real, fake: (B, ...) samples of the same shape.
    Returns:
        a scalar, differentiable w.r.t. the critic's parameters (graph kept for backward).
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got {tuple(real.shape)} "
            f"and {tuple(fake.shape)}"
        )
    eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = torch.rand(eps_shape, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)  # (B,)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)  # (B,)
    return ((norms - 1.0) ** 2).mean()


__all__ = [
    "discriminator_accuracy",
    "gan_d_loss",
    "gan_g_loss",
    "gradient_penalty",
    "wgan_d_loss",
    "wgan_g_loss",
]
