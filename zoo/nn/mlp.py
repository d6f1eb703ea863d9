"""A plain fully connected network with optional input skip connections (as NeRF's trunk).

NeRF (Mildenhall et al. 2020, Fig. 7): 8 layers of 256 ReLU units, the encoded input
concatenated again to the activations after the fifth layer (``skips=(4,)``, as
``run_nerf.py``). Instant-NGP's tiny MLPs are the same block with 1-2 hidden layers of 64.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

_ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus, "silu": nn.SiLU, "none": nn.Identity}


class MLP(nn.Module):
    """``num_layers`` hidden linear layers of width ``hidden_dim`` with activations, then an
    optional linear output layer.

    Args:
        in_dim: input features.
        hidden_dim: width of the hidden layers.
        num_layers: number of hidden layers (each Linear + activation).
        out_dim: size of a final linear output layer (no activation); None: the network ends
            with the last hidden activation (out_dim = hidden_dim).
        skips: indices of hidden layers after which the network input is concatenated to the
            activations (so layer ``i + 1`` takes ``hidden_dim + in_dim`` features).
        activation: "relu", "softplus", "silu" or "none".
        out_bias: whether the output layer has a bias.

    Shapes: (..., in_dim) -> (..., out_dim or hidden_dim).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        num_layers: int,
        out_dim: int | None = None,
        skips: Sequence[int] = (),
        activation: str = "relu",
        out_bias: bool = True,
    ) -> None:
        super().__init__()
        if in_dim < 1 or hidden_dim < 1 or num_layers < 0:
            raise ValueError(
                f"invalid MLP: in_dim={in_dim}, hidden_dim={hidden_dim}, num_layers={num_layers}"
            )
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        if num_layers == 0 and out_dim is None:
            raise ValueError("an MLP with no hidden layer needs an out_dim")
        self.in_dim = in_dim
        self.skips = tuple(int(s) for s in skips)
        bad = [s for s in self.skips if not 0 <= s < num_layers - 1]
        if bad:
            raise ValueError(f"skips must index hidden layers 0..{num_layers - 2}, got {bad}")
        layers = []
        width = in_dim
        for i in range(num_layers):
            layers.append(nn.Linear(width, hidden_dim))
            width = hidden_dim + (in_dim if i in self.skips else 0)
        self.layers = nn.ModuleList(layers)
        self.act = _ACTIVATIONS[activation]()
        self.out = nn.Linear(width, out_dim, bias=out_bias) if out_dim is not None else None
        self.out_dim = out_dim if out_dim is not None else hidden_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected (..., {self.in_dim}) inputs, got {tuple(x.shape)}")
        h = x
        for i, layer in enumerate(self.layers):
            h = self.act(layer(h))
            if i in self.skips:
                h = torch.cat([x, h], dim=-1)
        return self.out(h) if self.out is not None else h


__all__ = ["MLP"]
