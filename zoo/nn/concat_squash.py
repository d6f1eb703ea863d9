"""ConcatSquash layers: linear layers gated and shifted by a context vector.

FFJORD (Grathwohl et al., ICLR 2019) and PointFlow (Yang et al., ICCV 2019, Sec. 4 and
supplementary) build the dynamics ``f(y, t, c)`` of a continuous normalizing flow from layers

    ConcatSquashLinear(x, ctx) = (W x + b) * sigmoid(G ctx + g) + B ctx

where ``ctx = [t, c]`` is the ODE time concatenated with a conditioning vector (PointFlow's
shape latent). The gate and the (bias-free) shift depend only on the context, so every point of
a cloud is transformed independently given ``ctx``: the Jacobian of the network with respect to
one point is a (d, d) block, which makes the exact trace of a 3-D point flow cheap.

:class:`ConcatSquashNet` stacks them with a nonlinearity between layers (PointFlow: ``tanh``)
and no nonlinearity after the last layer, mapping ``in_dim -> hidden... -> in_dim``.
:meth:`ConcatSquashNet.forward_with_trace` also returns the exact trace of the Jacobian
``d out / d x`` per row by forward-mode propagation of the ``in_dim`` tangent columns through
the layers (``J <- diag(gate) W J``, ``J <- diag(act'(h)) J``): about ``in_dim`` extra forward
passes of plain tensor algebra, so it is cheap for 3-D points and works without autograd (the
divergence of a CNF velocity field, FFJORD's exact trace).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

_ACTIVATIONS = {
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,  # slope 0.01 (Luo & Hu's point denoiser)
}


def _act_derivative(name: str, pre: Tensor, post: Tensor) -> Tensor:
    """d act / d pre, elementwise, from the pre- and post-activation values."""
    if name == "tanh":
        return 1.0 - post * post
    if name == "softplus":
        return torch.sigmoid(pre)
    if name == "relu":
        return (pre > 0).to(pre.dtype)
    if name == "leaky_relu":
        return torch.where(pre > 0, torch.ones_like(pre), torch.full_like(pre, 0.01))
    return torch.where(pre > 0, torch.ones_like(pre), post + 1.0)  # elu, alpha = 1


class ConcatSquashLinear(nn.Module):
    """``(W x + b) * sigmoid(G ctx + g) + B ctx``.

    Args:
        dim_in: features of ``x``.
        dim_out: output features.
        dim_ctx: features of the context (PointFlow: 1 for time + latent size).
    """

    def __init__(self, dim_in: int, dim_out: int, dim_ctx: int) -> None:
        super().__init__()
        if min(dim_in, dim_out, dim_ctx) < 1:
            raise ValueError(
                f"dim_in, dim_out, dim_ctx must be >= 1, got {dim_in}, {dim_out}, {dim_ctx}"
            )
        self.layer = nn.Linear(dim_in, dim_out)
        self.hyper_gate = nn.Linear(dim_ctx, dim_out)
        self.hyper_bias = nn.Linear(dim_ctx, dim_out, bias=False)

    def forward(self, x: Tensor, ctx: Tensor) -> Tensor:
        """x: (B, dim_in) or (B, N, dim_in); ctx: (B, dim_ctx). Returns x's shape with dim_out."""
        if ctx.dim() != 2 or ctx.shape[0] != x.shape[0]:
            raise ValueError(
                f"ctx must be (B, dim_ctx) with B = x.shape[0] = {x.shape[0]}, "
                f"got {tuple(ctx.shape)}"
            )
        gate = torch.sigmoid(self.hyper_gate(ctx))  # (B, dim_out)
        shift = self.hyper_bias(ctx)  # (B, dim_out)
        if x.dim() == 3:
            gate, shift = gate.unsqueeze(1), shift.unsqueeze(1)  # (B, 1, dim_out)
        elif x.dim() != 2:
            raise ValueError(f"x must be (B, D) or (B, N, D), got {tuple(x.shape)}")
        return self.layer(x) * gate + shift


class ConcatSquashNet(nn.Module):
    """An MLP of :class:`ConcatSquashLinear` layers: ``in_dim -> hidden... -> out_dim``.

    Args:
        in_dim: features of the input (3 for points, the latent size for a latent flow).
        hidden: hidden widths (PointFlow point CNF: 512-512-512; latent CNF: 256-256).
        ctx_dim: context features (time + condition).
        out_dim: output features; defaults to ``in_dim`` (a velocity field).
        activation: nonlinearity between layers (PointFlow: ``tanh``; Luo & Hu's point
            denoiser: ``leaky_relu``).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        ctx_dim: int,
        out_dim: int | None = None,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation}")
        dims = [in_dim, *hidden, out_dim or in_dim]
        self.layers = nn.ModuleList(
            ConcatSquashLinear(a, b, ctx_dim) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.activation = activation
        self.act = _ACTIVATIONS[activation]()

    def forward(self, x: Tensor, ctx: Tensor) -> Tensor:
        """x: (B, in_dim) or (B, N, in_dim); ctx: (B, ctx_dim)."""
        for i, layer in enumerate(self.layers):
            x = layer(x, ctx)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x

    def forward_with_trace(self, x: Tensor, ctx: Tensor) -> tuple[Tensor, Tensor]:
        """The output and ``tr(d out / d x)`` per row (exact).

        x: (B, D) or (B, N, D); ctx: (B, ctx_dim). Returns out (like x) and the trace (B,) or
        (B, N). Needs ``out_dim == in_dim``. Rows (points) are independent given ``ctx``, so each
        row's Jacobian is a (D, D) matrix, propagated column by column.
        """
        d = self.layers[0].layer.in_features
        if self.layers[-1].layer.out_features != d:
            raise ValueError(f"trace needs out_dim == in_dim, got {d} -> {self.layers[-1]}")
        rows = x.dim() == 3  # per-point rows: broadcast (B, out) context terms over N

        def gate_shift(cs: ConcatSquashLinear) -> tuple[Tensor, Tensor]:
            gate, shift = torch.sigmoid(cs.hyper_gate(ctx)), cs.hyper_bias(ctx)  # (B, out)
            return (gate.unsqueeze(1), shift.unsqueeze(1)) if rows else (gate, shift)

        h = x
        jac: Tensor | None = None  # (B, [N,] width, D) = d h / d x
        for cs in self.layers[:-1]:
            gate, shift = gate_shift(cs)
            pre = cs.layer(h) * gate + shift
            h = self.act(pre)
            # d pre / d x = diag(gate) W J (the first layer: diag(gate) W, the same for all rows)
            lin = cs.layer.weight if jac is None else torch.matmul(cs.layer.weight, jac)
            jac = _act_derivative(self.activation, pre, h).unsqueeze(-1) * (
                gate.unsqueeze(-1) * lin
            )
        last = self.layers[-1]
        gate, shift = gate_shift(last)
        out = last.layer(h) * gate + shift
        w = last.layer.weight  # (D, width)
        # Only the diagonal of diag(gate) W J is needed: sum_j W_ij J_ji.
        diag = torch.diagonal(w) if jac is None else (w.t() * jac).sum(-2)  # (..., D)
        return out, (gate * diag).sum(-1).expand(out.shape[:-1])
