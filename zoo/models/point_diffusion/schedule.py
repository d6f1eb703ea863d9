"""The variance schedule of a denoising diffusion model, as one small class.

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020, and Luo & Hu,
"Diffusion Probabilistic Models for 3D Point Cloud Generation", CVPR 2021, Sec. 4 (settings of
luost26/diffusion-point-cloud ``train_gen.py``: T = 100 steps, betas linear from 1e-4 to 0.02).
With ``alpha_t = 1 - beta_t`` and ``alpha_bar_t = prod_{s <= t} alpha_s`` (index 0 is the data,
``beta_0 = 0``):

- forward (training): ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``;
- reverse (sampling): ``x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta) / sqrt(alpha_t)
  + sigma_t z`` with ``sigma_t^2`` between the posterior variance
  ``beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)`` (flexibility 0, the reference's default)
  and ``beta_t`` (flexibility 1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class VarianceSchedule(nn.Module):
    """Betas, alphas and sigmas of a T-step diffusion (buffers; index t = 0..T).

    Args:
        num_steps: T (Luo & Hu: 100).
        beta_1, beta_T: first and last beta (Luo & Hu: 1e-4, 0.02).
        mode: ``"linear"`` (the reference's only mode).
    """

    def __init__(
        self, num_steps: int = 100, beta_1: float = 1e-4, beta_T: float = 0.02, mode: str = "linear"
    ) -> None:
        super().__init__()
        if mode != "linear":
            raise ValueError(f"mode must be 'linear', got {mode!r}")
        if num_steps < 1 or not 0 < beta_1 <= beta_T < 1:
            raise ValueError(
                f"need num_steps >= 1 and 0 < beta_1 <= beta_T < 1, got "
                f"{num_steps}, {beta_1}, {beta_T}"
            )
        self.num_steps = int(num_steps)
        betas = torch.cat(
            [
                torch.zeros(1, dtype=torch.float64),
                torch.linspace(beta_1, beta_T, num_steps, dtype=torch.float64),
            ]
        )
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, 0)  # alpha_bar_0 = 1
        var_post = torch.zeros_like(betas)
        var_post[1:] = betas[1:] * (1 - alpha_bars[:-1]) / (1 - alpha_bars[1:])
        self.register_buffer("betas", betas.float(), persistent=False)  # (T+1,)
        self.register_buffer("alphas", alphas.float(), persistent=False)
        self.register_buffer("alpha_bars", alpha_bars.float(), persistent=False)
        self.register_buffer("sigma_flex", betas.sqrt().float(), persistent=False)
        self.register_buffer("sigma_inflex", var_post.sqrt().float(), persistent=False)

    def sample_t(self, batch: int, device: torch.device | None = None) -> Tensor:
        """Uniform steps in 1..T, (batch,) long."""
        return torch.randint(1, self.num_steps + 1, (batch,), device=device)

    def sigma(self, t: int, flexibility: float) -> Tensor:
        """Standard deviation of the reverse step's noise at step t."""
        if not 0.0 <= flexibility <= 1.0:
            raise ValueError(f"flexibility must be in [0, 1], got {flexibility}")
        return self.sigma_flex[t] * flexibility + self.sigma_inflex[t] * (1 - flexibility)
