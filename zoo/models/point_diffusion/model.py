"""Point diffusion: point clouds as the reverse of a diffusion of their points, given a shape
latent with a learnt flow prior.

Luo & Hu, "Diffusion Probabilistic Models for 3D Point Cloud Generation", CVPR 2021
(luost26/diffusion-point-cloud, ``models/vae_flow.py``, ``models/diffusion.py``, settings of
``train_gen.py``). A shape is a distribution of points; every point of a cloud diffuses
independently to N(0, I) in T steps, and the reverse is learnt given a shape latent z:

- encoder ``q(z | X)``: PointNet -> diagonal Gaussian (mean, log-variance), reparameterised;
- prior ``p(z)``: an affine coupling flow from N(0, I) (``zoo.nn.coupling_flow``; 14 layers of
  width 256 in the paper);
- decoder: a per-point noise predictor ``eps_theta(x_t, beta_t, z)``, a stack of ConcatSquash
  layers 3-128-256-512-256-128-3 with leaky ReLU and a residual connection, conditioned on
  ``[beta_t, sin beta_t, cos beta_t, z]`` (the reference's ``PointwiseNet``).

Training minimises (reference ``FlowVAE.get_loss``)

    loss = kl_weight * (-H[q(z | X)] - log p(z)) + E_{t,eps} |eps - eps_theta(x_t, beta_t, z)|^2

with ``kl_weight`` 0.001, t uniform in 1..T and the mean over points and coordinates. Sampling
draws ``w ~ N(0, I)``, ``z = F^{-1}(w)``, then runs the T reverse steps of
:class:`~zoo.models.point_diffusion.schedule.VarianceSchedule` from Gaussian points.

Normalisation: PointFlow's global per-dataset statistics
(:class:`zoo.models.point_generator.PointGenerator`), so outputs are in data units. The
reference normalises each training shape to zero mean and unit std instead (``shape_unit``) and
compares bbox-normalised clouds at test time; the zoo keeps one unit for every model, so the
generation metrics read the same for all of them.

Differences from the reference: the denoiser's loss may be taken on a random subset of each
training cloud (``train_points``; the reference uses all 2048), the encoder still sees every
point; ``reconstruct`` encodes to the posterior mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.point_diffusion.schedule import VarianceSchedule
from zoo.models.point_generator import LatentShape, PointGenerator
from zoo.models.registry import register_model
from zoo.nn.concat_squash import ConcatSquashNet
from zoo.nn.coupling_flow import LOG_2PI, CouplingFlow
from zoo.nn.pointnet import PointNetEncoder
from zoo.ops.random import randn


def linear_lr_between(
    optimizer: torch.optim.Optimizer, start: int, end: int, end_factor: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """The reference's ``get_linear_scheduler``: the lr constant until step ``start``, then
    linear to ``end_factor`` times it at step ``end``, constant after."""
    if not 0 <= start < end:
        raise ValueError(f"need 0 <= start < end, got {start}, {end}")

    def factor(step: int) -> float:
        frac = min(max((step - start) / (end - start), 0.0), 1.0)
        return 1.0 + frac * (end_factor - 1.0)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class PointDenoiser(nn.Module):
    """Per-point noise predictor ``eps_theta(x_t, beta_t, z)`` (Luo & Hu's ``PointwiseNet``).

    Args:
        zdim: latent size. dims: hidden widths (paper: 128-256-512-256-128).
        residual: predict ``x_t + net(x_t)`` (paper: yes).
    """

    def __init__(self, zdim: int, dims: Sequence[int], residual: bool = True) -> None:
        super().__init__()
        self.net = ConcatSquashNet(3, tuple(dims), zdim + 3, out_dim=3, activation="leaky_relu")
        self.residual = residual

    def forward(self, x: Tensor, beta: Tensor, z: Tensor) -> Tensor:
        """x: (B, N, 3) noisy points, beta: (B,) the step's beta, z: (B, zdim) -> (B, N, 3)."""
        beta = beta.reshape(-1, 1)  # (B, 1)
        ctx = torch.cat([beta, torch.sin(beta), torch.cos(beta), z], dim=1)  # (B, zdim + 3)
        out = self.net(x, ctx)
        return x + out if self.residual else out


@register_model("point_diffusion")
class PointDiffusion(PointGenerator):
    """Luo & Hu's diffusion point-cloud generator with a flow prior (module docstring).

    Args:
        zdim: shape latent size (paper: 256).
        encoder_hidden, encoder_head: PointNet widths (paper: 128-128-256-512, 256-128).
        denoiser_dims: hidden widths of the point denoiser (paper: 128-256-512-256-128).
        residual: residual noise predictor (paper: yes).
        num_steps, beta_1, beta_T: the diffusion (paper: 100, 1e-4, 0.02, linear).
        flexibility: reverse-step variance between the posterior's (0, paper) and beta_t (1).
        flow_depth, flow_hidden: the coupling-flow prior (paper: 14, 256).
        kl_weight: weight of the prior and entropy terms (paper: 0.001).
        truncate_std: truncate the prior's Gaussian draws at this many std (None: no
            truncation, as the reference's evaluation).
        train_points: random subset of each training cloud for the denoising loss (None: all).
        chunk_points: reverse-diffuse at most this many points at once in ``to_points``.
        input_points, mesh_points, mesh_density_quantile, stats_max_batches: see
            :class:`~zoo.models.point_generator.PointGenerator`.
    """

    def __init__(
        self,
        zdim: int = 256,
        encoder_hidden: Sequence[int] = (128, 128, 256, 512),
        encoder_head: Sequence[int] = (256, 128),
        denoiser_dims: Sequence[int] = (128, 256, 512, 256, 128),
        residual: bool = True,
        num_steps: int = 100,
        beta_1: float = 1e-4,
        beta_T: float = 0.02,
        flexibility: float = 0.0,
        flow_depth: int = 14,
        flow_hidden: int = 256,
        kl_weight: float = 1e-3,
        truncate_std: float | None = None,
        train_points: int | None = None,
        chunk_points: int = 16384,
        input_points: int = 2048,
        mesh_points: int = 8192,
        mesh_density_quantile: float = 0.1,
        stats_max_batches: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            input_points=input_points,
            mesh_points=mesh_points,
            mesh_density_quantile=mesh_density_quantile,
            stats_max_batches=stats_max_batches,
            **kwargs,
        )
        if not 0.0 <= flexibility <= 1.0:
            raise ValueError(f"flexibility must be in [0, 1], got {flexibility}")
        self.zdim, self.kl_weight, self.flexibility = zdim, float(kl_weight), float(flexibility)
        self.truncate_std, self.train_points = truncate_std, train_points
        self.chunk_points = chunk_points
        self.encoder = PointNetEncoder(
            3, tuple(encoder_hidden), zdim, tuple(encoder_head), vae=True, batch_norm=True
        )
        self.flow = CouplingFlow(zdim, flow_hidden, flow_depth)
        self.denoiser = PointDenoiser(zdim, denoiser_dims, residual)
        self.schedule = VarianceSchedule(num_steps, beta_1, beta_T)

    # ----------------------------------------------------------------- losses
    def loss_terms(
        self, points: Tensor, sample_z: bool = True, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Terms of the loss for data-unit ``points`` (B, N, 3): ``mse`` (scalar, the denoising
        loss), ``prior`` = log p(z) (B,) and ``entropy`` = H[q(z|X)] (B,). ``generator`` (CPU)
        fixes the steps and noises (validation)."""
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
        x = self.normalize(points)
        mean, logvar = self.encoder(x)  # (B, zdim) each
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample_z else mean
        entropy = 0.5 * logvar.sum(1) + 0.5 * self.zdim * (1.0 + LOG_2PI)
        n = self.train_points
        if n is not None and x.shape[1] > n:
            x = x[:, torch.randperm(x.shape[1], device=x.device)[:n]]
        b = len(x)
        if generator is None:
            t = self.schedule.sample_t(b, device=x.device)
            eps = torch.randn_like(x)
        else:
            t = torch.randint(1, self.schedule.num_steps + 1, (b,), generator=generator)
            eps = randn(*x.shape, generator=generator).to(x.device)
            t = t.to(x.device)
        ab = self.schedule.alpha_bars[t].view(b, 1, 1)
        x_t = ab.sqrt() * x + (1 - ab).sqrt() * eps
        eps_hat = self.denoiser(x_t, self.schedule.betas[t], z)
        return {"mse": F.mse_loss(eps_hat, eps), "prior": self.flow.log_prob(z), "entropy": entropy}

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        points = batch["points"]  # (B, N, 3)
        train = stage == "train"
        g = None if train else torch.Generator().manual_seed(0)
        terms = self.loss_terms(points, sample_z=train, generator=g)
        kl = -(terms["entropy"] + terms["prior"]).mean()
        loss = self.kl_weight * kl + terms["mse"]
        bs = len(points)
        self.log(f"{stage}/loss", loss, prog_bar=train, batch_size=bs)
        self.log(f"{stage}/mse", terms["mse"], prog_bar=not train, batch_size=bs)
        self.log(f"{stage}/prior_nats", -terms["prior"].mean() / self.zdim, batch_size=bs)
        self.log(f"{stage}/entropy", terms["entropy"].mean(), batch_size=bs)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    # ----------------------------------------------------------------- Representation
    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> list[LatentShape]:
        """n shape latents from the flow prior."""
        w = randn(n, self.zdim, generator=self._generator(seed), device=self.device_)
        if self.truncate_std is not None:
            w = w.clamp(-self.truncate_std, self.truncate_std)
        return [self.make_shape(zi) for zi in self.flow.inverse(w)]

    @torch.no_grad()
    def to_points(self, shape: LatentShape, n: int = 2048, seed: int | None = 0) -> Tensor:
        """(n, 3) points in data units: the T reverse steps from Gaussian points given
        ``shape.z`` (noise drawn with :func:`zoo.ops.random.randn`, the same on every CPU)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        g = self._generator(seed)
        z = shape.z.to(self.device_).reshape(1, self.zdim)
        s = self.schedule
        x = randn(n, 3, generator=g, device=self.device_)  # (n, 3) x_T
        for t in range(s.num_steps, 0, -1):
            noise = randn(n, 3, generator=g, device=self.device_) if t > 1 else None
            beta = s.betas[t].reshape(1)
            eps = torch.cat(
                [self.denoiser(c[None], beta, z)[0] for c in x.split(self.chunk_points)]
            )  # (n, 3)
            alpha, ab = s.alphas[t], s.alpha_bars[t]
            x = (x - (1 - alpha) / (1 - ab).sqrt() * eps) / alpha.sqrt()
            if noise is not None:
                x = x + s.sigma(t, self.flexibility) * noise
        return self.denormalize(x)
