"""PointFlow: point clouds as samples of a latent-conditioned continuous normalizing flow.

Yang, Huang, Hao, Liu, Belongie, Hariharan, "PointFlow: 3D Point Cloud Generation with
Continuous Normalizing Flows", ICCV 2019. A shape is a distribution of points; a cloud X is
modelled through a shape latent z:

- encoder ``q(z | X)``: PointNet -> diagonal Gaussian (mean, log-variance), reparameterised;
- prior ``p(z)``: a latent CNF from N(0, I) (``use_latent_flow``; without it, N(0, I) itself);
- decoder ``p(x | z)``: a point CNF from N(0, I) in 3-D to the shape's points, conditioned on z.

Training maximises the ELBO (paper eq. 6; weights of the reference ``args.py``):

    loss = -recon_weight * log p(X | z) - prior_weight * log p(z) - entropy_weight * H[q(z | X)]

with ``log p(X | z) = sum_points log p(x | z)`` and both log-densities exact through the CNF
trace integral (see ``cnf.py``; exact trace for the point flow and Hutchinson for the latent flow
by default). Logged per dimension as in the reference: ``recon_nats = -log p(X|z) / (3N)``.

Normalisation, ``reconstruct``, ``to_mesh`` and ``ceiling``: PointFlow's ShapeNet-15k global
statistics and the rest of :class:`zoo.models.point_generator.PointGenerator`.

Solvers: the paper integrates with dopri5 at atol = rtol = 1e-5; the CPU default uses dopri5 at
1e-3. Fixed-step solvers are available but, trained for long, the optimiser exploits their
discretisation error (the integrated trace no longer equals the log-determinant of the computed
map; measured on synthshapes airplanes with one RK4 step: the end time grew from 0.5 to 2.8, the
training NLL fell to -15 nats per coordinate and samples got worse than untrained ones).

Differences from the reference code: no moving batch norm between CNF blocks; ``reconstruct``
encodes to the posterior mean (the reference draws a reparameterised sample); without the latent
flow the prior is N(0, I) (the reference then drops the prior term).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from zoo.models.point_generator import LatentShape, PointGenerator
from zoo.models.pointflow.cnf import CNF
from zoo.models.registry import register_model
from zoo.nn.pointnet import PointNetEncoder
from zoo.ops.random import randn

LOG_2PI = math.log(2 * math.pi)


def standard_normal_logprob(x: Tensor) -> Tensor:
    """Elementwise log N(x; 0, 1)."""
    return -0.5 * (LOG_2PI + x * x)


def halfway_linear_decay(
    optimizer: torch.optim.Optimizer, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """PointFlow's ``linear`` schedule: constant lr for the first half of ``total`` scheduler
    steps (epochs with ``scheduler_interval: epoch``, as the reference), then linearly to 0."""
    half = max(total / 2, 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - max(0.0, step - half) / half)
    )


PointFlowShape = LatentShape  # a native PointFlow shape: its latent code (zdim,)


@register_model("pointflow")
class PointFlow(PointGenerator):
    """PointFlow VAE with a latent CNF prior and a latent-conditioned point CNF.

    Args:
        zdim: shape latent size (paper: 128).
        encoder_hidden, encoder_head: PointNet widths (paper: 128-128-256-512, 256-128).
        point_dims: point CNF ConcatSquash widths (paper: 512-512-512).
        latent_dims: latent CNF widths (paper: 256-256).
        use_latent_flow: learn the prior with the latent CNF (paper: yes).
        activation: CNF nonlinearity (paper: tanh).
        time_length, train_time: initial CNF end time and whether it is learnt (0.5, yes).
        solver, atol, rtol, steps, adjoint: ODE solving (paper: dopri5, 1e-5, 1e-5, adjoint).
        point_divergence, latent_divergence: ``"exact"`` or ``"hutchinson"`` trace estimators.
        prior_weight, recon_weight, entropy_weight: ELBO weights (paper: 1, 1, 1).
        train_points: random subset of each training cloud per step (None: all points;
            paper: 2048 of the 10k training points).
        input_points: points of a target cloud fed to the encoder by ``reconstruct``.
        mesh_points: points decoded for the Poisson mesh of ``to_mesh``.
        mesh_density_quantile: fraction of the lowest-density Poisson vertices removed (the
            surface Poisson invents away from the samples; generated clouds are fuzzy, so more
            than the shared default of 0.02).
        chunk_points: decode at most this many points per ODE solve in ``to_points``.
        stats_max_batches: training batches read to compute the normalisation when the data
            info does not provide it.
    """

    def __init__(
        self,
        zdim: int = 128,
        encoder_hidden: Sequence[int] = (128, 128, 256, 512),
        encoder_head: Sequence[int] = (256, 128),
        point_dims: Sequence[int] = (512, 512, 512),
        latent_dims: Sequence[int] = (256, 256),
        use_latent_flow: bool = True,
        activation: str = "tanh",
        time_length: float = 0.5,
        train_time: bool = True,
        solver: str = "dopri5",
        atol: float = 1e-5,
        rtol: float = 1e-5,
        steps: int | None = None,
        adjoint: bool = False,
        point_divergence: str = "exact",
        latent_divergence: str = "hutchinson",
        prior_weight: float = 1.0,
        recon_weight: float = 1.0,
        entropy_weight: float = 1.0,
        train_points: int | None = None,
        input_points: int = 2048,
        mesh_points: int = 8192,
        mesh_density_quantile: float = 0.1,
        chunk_points: int = 16384,
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
        self.zdim = zdim
        self.weights = (float(prior_weight), float(recon_weight), float(entropy_weight))
        self.train_points, self.chunk_points = train_points, chunk_points
        self.encoder = PointNetEncoder(
            3, tuple(encoder_hidden), zdim, tuple(encoder_head), vae=True, batch_norm=True
        )
        solve = dict(
            activation=activation,
            time_length=time_length,
            train_time=train_time,
            solver=solver,
            atol=atol,
            rtol=rtol,
            steps=steps,
            adjoint=adjoint,
        )
        self.point_cnf = CNF(3, tuple(point_dims), zdim, divergence=point_divergence, **solve)
        self.latent_cnf = (
            CNF(zdim, tuple(latent_dims), 0, divergence=latent_divergence, **solve)
            if use_latent_flow
            else None
        )

    # ----------------------------------------------------------------- likelihoods
    def log_prior(self, z: Tensor) -> Tensor:
        """log p(z) (B,): latent CNF (z -> w Gaussian) or N(0, I)."""
        if self.latent_cnf is None:
            return standard_normal_logprob(z).sum(1)
        w, delta = self.latent_cnf(z)  # (B, zdim), (B, 1)
        return standard_normal_logprob(w).sum(1) - delta[:, 0]

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(X | z) (B,) summed over points; x (B, N, 3) normalised, z (B, zdim)."""
        y, delta = self.point_cnf(x, z)  # (B, N, 3), (B, N, 1)
        return (standard_normal_logprob(y).sum(-1) - delta[..., 0]).sum(1)

    def elbo_terms(self, points: Tensor, sample_z: bool = True) -> dict[str, Tensor]:
        """Per-shape terms (B,) for data-unit ``points`` (B, N, 3): recon = log p(X|z), prior =
        log p(z), entropy = H[q(z|X)] = sum(logvar)/2 + zdim (1 + log 2 pi) / 2."""
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
        x = self.normalize(points)
        mean, logvar = self.encoder(x)  # (B, zdim) each
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample_z else mean
        entropy = 0.5 * logvar.sum(1) + 0.5 * self.zdim * (1.0 + LOG_2PI)
        return {"recon": self.log_likelihood(x, z), "prior": self.log_prior(z), "entropy": entropy}

    # ----------------------------------------------------------------- Lightning
    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        points = batch["points"]  # (B, N, 3)
        n = self.train_points
        if stage == "train" and n is not None and points.shape[1] > n:
            points = points[:, torch.randperm(points.shape[1], device=points.device)[:n]]
        terms = self.elbo_terms(points, sample_z=stage == "train")
        wp, wr, we = self.weights
        loss = -(wr * terms["recon"] + wp * terms["prior"] + we * terms["entropy"]).mean()
        recon_nats = -terms["recon"].mean() / (3 * points.shape[1])
        bs = len(points)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", batch_size=bs)
        self.log(f"{stage}/recon_nats", recon_nats, prog_bar=stage == "val", batch_size=bs)
        self.log(f"{stage}/prior_nats", -terms["prior"].mean() / self.zdim, batch_size=bs)
        self.log(f"{stage}/entropy", terms["entropy"].mean(), batch_size=bs)
        if stage == "train":
            self.log("train/end_time", self.point_cnf.func.end_time.detach(), batch_size=bs)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        # The trace needs autograd: leave Lightning's inference mode / no_grad, and clone the
        # batch so it is not an inference tensor.
        with torch.inference_mode(False), torch.enable_grad():
            self._shared_step({"points": batch["points"].clone()}, "val")

    # ----------------------------------------------------------------- Representation
    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> list[PointFlowShape]:
        """n shape latents from the prior (latent CNF run backwards from N(0, I))."""
        w = randn(n, self.zdim, generator=self._generator(seed), device=self.device_)
        z = w if self.latent_cnf is None else self.latent_cnf(w, reverse=True, with_logp=False)[0]
        return [PointFlowShape(zi) for zi in z]

    @torch.no_grad()
    def to_points(self, shape: PointFlowShape, n: int = 2048, seed: int | None = 0) -> Tensor:
        """(n, 3) points in data units: Gaussian points through the point CNF given ``shape.z``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        z = shape.z.to(self.device_).reshape(1, self.zdim)
        y = randn(n, 3, generator=self._generator(seed), device=self.device_)  # (n, 3)
        out = [
            self.point_cnf(chunk[None], z, reverse=True, with_logp=False)[0][0]
            for chunk in y.split(self.chunk_points)
        ]
        return self.denormalize(torch.cat(out))
