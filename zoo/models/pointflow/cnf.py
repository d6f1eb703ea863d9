"""Continuous normalizing flows (FFJORD / PointFlow) solved with torchdiffeq.

A CNF transports a sample ``x = y(0)`` by ``dy/dt = f(y, t, c)`` to ``y(T)``; the log-density
changes by the instantaneous change of variables (Chen et al., NeurIPS 2018, Thm. 1)

    d log p(y(t)) / dt = -tr(df / dy),

so ``log p(x) = log N(y(T); 0, I) + int_0^T tr(df/dy) dt``. PointFlow (Yang et al., ICCV 2019,
eqs. 2-4) uses one such flow per point conditioned on a shape latent (the point CNF) and one
unconditional flow on the latent (the latent CNF), with ConcatSquash dynamics (tanh), an end time
``T`` initialised to 0.5 and trained (``T = sqrt_end_time^2``; reference ``args.py``:
``time_length=0.5``, ``train_T=True``).

Here time is rescaled to ``s = t / T in [0, 1]`` (``dy/ds = T f(y, sT, c)``), which gives the same
flow, lets fixed-step solvers use a fixed grid on [0, 1], and gives ``T`` its gradient through
the dynamics rather than through the integration limits.

Trace of the Jacobian, per flow (``divergence``):
- ``"exact"``: ``sum_i d f_i / d y_i``, computed by propagating the ``d`` tangent columns forward
  through the ConcatSquash net (``ConcatSquashNet.forward_with_trace``). The dynamics act on each
  row (each point, or each latent of a batch) independently given the context, so each row's
  Jacobian is (d, d): about 3 extra forward passes for the 3-D point flow, no double backward.
- ``"hutchinson"``: ``e^T (df/dy) e`` with one Gaussian ``e ~ N(0, I)`` per row held fixed over a
  solve (FFJORD, Grathwohl et al., ICLR 2019; PointFlow's ``divergence_approx``): one product,
  unbiased. Used for the 128-D latent flow, where the exact trace costs 128 products.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint

from zoo.nn.concat_squash import ConcatSquashNet

Divergence = Literal["exact", "hutchinson"]
FIXED_STEP_SOLVERS = ("euler", "midpoint", "heun3", "rk4")
ADAPTIVE_SOLVERS = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")


class ODEFunc(nn.Module):
    """Augmented dynamics ``(y, log p, c) -> (T f, -T tr(df/dy), 0)`` in rescaled time ``s``.

    Args:
        dim: dimension of ``y`` (3 for points).
        hidden: ConcatSquash hidden widths.
        ctx_dim: conditioning features (0 for an unconditional flow).
        activation: nonlinearity of the ConcatSquash net.
        divergence: ``"exact"`` or ``"hutchinson"`` (see the module docstring).
        time_length: initial end time ``T``.
        train_time: learn ``T`` (as ``sqrt_end_time^2``, PointFlow ``train_T``).
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int],
        ctx_dim: int = 0,
        activation: str = "tanh",
        divergence: Divergence = "exact",
        time_length: float = 0.5,
        train_time: bool = True,
    ) -> None:
        super().__init__()
        if divergence not in ("exact", "hutchinson"):
            raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {divergence!r}")
        if time_length <= 0:
            raise ValueError(f"time_length must be > 0, got {time_length}")
        self.dim, self.divergence = dim, divergence
        self.net = ConcatSquashNet(dim, hidden, ctx_dim + 1, activation=activation)
        sqrt_t = torch.tensor(math.sqrt(time_length))
        if train_time:
            self.sqrt_end_time = nn.Parameter(sqrt_t)
        else:
            self.register_buffer("sqrt_end_time", sqrt_t)
        # Per-solve settings, set by CNF.forward before each solve (not module-level state).
        self.noise: Tensor | None = None  # Hutchinson probe, fixed over one solve
        self.with_logp = True
        self.nfe = 0  # function evaluations of the last solve

    @property
    def end_time(self) -> Tensor:
        return self.sqrt_end_time * self.sqrt_end_time

    def _hutchinson(self, y: Tensor, tc: Tensor) -> tuple[Tensor, Tensor]:
        """f and the estimate ``e^T (df/dy) e`` (one vector-Jacobian product, autograd)."""
        e = self.noise
        if e is None or e.shape != y.shape:
            raise RuntimeError("Hutchinson probe not set: call through CNF.forward")
        need_graph = torch.is_grad_enabled()  # training: the estimate itself is differentiated
        with torch.enable_grad():
            if not need_graph or not y.requires_grad:
                y = y.detach().requires_grad_(True)
            f = self.net(y, tc)
            (e_jac,) = torch.autograd.grad(f, y, e, create_graph=need_graph)
        trace = (e_jac * e).sum(-1)
        return (f, trace) if need_graph else (f.detach(), trace.detach())

    def forward(self, s: Tensor, state: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, ...]:
        y, logp, ctx = state  # (B, [N,] d), (B, [N,] 1), (B, C)
        self.nfe += 1
        end = self.end_time
        t = (s * end).to(y.dtype).reshape(1, 1).expand(y.shape[0], 1)  # (B, 1)
        tc = torch.cat([t, ctx], dim=1)  # (B, 1 + C)
        if not self.with_logp:
            return end * self.net(y, tc), torch.zeros_like(logp), torch.zeros_like(ctx)
        if self.divergence == "exact":
            f, trace = self.net.forward_with_trace(y, tc)  # forward-mode, no autograd needed
        else:
            f, trace = self._hutchinson(y, tc)
        return end * f, -end * trace.unsqueeze(-1), torch.zeros_like(ctx)


class CNF(nn.Module):
    """A continuous normalizing flow between data (s = 0) and a standard Gaussian (s = 1).

    Args:
        dim, hidden, ctx_dim, activation, divergence, time_length, train_time: see
            :class:`ODEFunc`.
        solver: a torchdiffeq method; adaptive (``dopri5``, PointFlow's) uses ``atol``/``rtol``,
            fixed-step (``euler``, ``midpoint``, ``rk4``, ...) uses ``steps`` steps on [0, 1].
        atol, rtol: tolerances of adaptive solvers (PointFlow: 1e-5).
        steps: number of steps of fixed-step solvers.
        adjoint: backpropagate with the adjoint method (constant memory; PointFlow: on).
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int],
        ctx_dim: int = 0,
        activation: str = "tanh",
        divergence: Divergence = "exact",
        time_length: float = 0.5,
        train_time: bool = True,
        solver: str = "dopri5",
        atol: float = 1e-5,
        rtol: float = 1e-5,
        steps: int | None = None,
        adjoint: bool = False,
    ) -> None:
        super().__init__()
        if solver in FIXED_STEP_SOLVERS:
            if steps is None or steps < 1:
                raise ValueError(f"solver {solver!r} is fixed-step: give steps >= 1, got {steps}")
        elif solver not in ADAPTIVE_SOLVERS:
            raise ValueError(
                f"solver must be one of {FIXED_STEP_SOLVERS + ADAPTIVE_SOLVERS}, got {solver!r}"
            )
        self.ctx_dim = ctx_dim
        self.solver, self.atol, self.rtol, self.steps, self.adjoint = (
            solver,
            atol,
            rtol,
            steps,
            adjoint,
        )
        self.func = ODEFunc(dim, hidden, ctx_dim, activation, divergence, time_length, train_time)

    def forward(
        self,
        x: Tensor,
        ctx: Tensor | None = None,
        reverse: bool = False,
        with_logp: bool = True,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Solve the flow from ``x``.

        Args:
            x: (B, N, d) points or (B, d) vectors; data if not ``reverse``, Gaussian otherwise.
            ctx: (B, ctx_dim) condition (None for an unconditional flow).
            reverse: integrate Gaussian -> data (sampling) instead of data -> Gaussian.
            with_logp: also integrate the log-density change.
            noise: Hutchinson probe of ``x``'s shape (default: a fresh standard Gaussian).
        Returns:
            ``(y, delta)`` where ``delta = log p_end(y) - log p_start(x)`` (None without
            ``with_logp``); forwards, ``log p(x) = log N(y) - delta``.
        """
        if x.shape[-1] != self.func.dim or x.dim() not in (2, 3):
            raise ValueError(f"x must be (B, [N,] {self.func.dim}), got {tuple(x.shape)}")
        b = x.shape[0]
        if ctx is None:
            if self.ctx_dim:
                raise ValueError(f"this flow is conditional: give ctx of shape (B, {self.ctx_dim})")
            ctx = x.new_zeros(b, 0)
        elif ctx.shape != (b, self.ctx_dim):
            raise ValueError(f"ctx must be ({b}, {self.ctx_dim}), got {tuple(ctx.shape)}")
        self.func.with_logp = with_logp
        self.func.nfe = 0
        if with_logp and self.func.divergence == "hutchinson":
            self.func.noise = torch.randn_like(x) if noise is None else noise
        times = torch.tensor([1.0, 0.0] if reverse else [0.0, 1.0], device=x.device, dtype=x.dtype)
        state = (x, x.new_zeros(*x.shape[:-1], 1), ctx)
        kwargs: dict = {"method": self.solver}
        if self.solver in FIXED_STEP_SOLVERS:
            kwargs["options"] = {"step_size": 1.0 / self.steps}
        else:
            kwargs.update(atol=self.atol, rtol=self.rtol)
        if self.adjoint and torch.is_grad_enabled():
            kwargs["adjoint_params"] = tuple(self.func.parameters())
            ys, logps, _ = odeint_adjoint(self.func, state, times, **kwargs)
        else:
            ys, logps, _ = odeint(self.func, state, times, **kwargs)
        return ys[-1], (logps[-1] if with_logp else None)
