"""The DeepSDF decoder f_theta(z, x) -> s: an MLP from a shape code and a point to its SDF.

Park et al., "DeepSDF: Learning Continuous Signed Distance Functions for Shape Representation",
CVPR 2019, Sec. 5 and supplementary: 8 fully connected layers of 512 units with ReLU, weight
normalisation (Salimans & Kingma 2016) and dropout 0.2 on every hidden layer, the input
``[z, x]`` concatenated again to the input of the fourth layer (``latent_in = [4]`` in the
reference ``examples/chairs/specs.json``), and a final ``tanh`` so the output lies in (-1, 1).
The layer that feeds a re-injection layer is narrowed by ``dim(z) + 3`` so that the
re-injection layer sees exactly ``hidden`` inputs, as in the reference architecture.

For training from surface points with IGR (:mod:`zoo.models.deepsdf.igr`) the decoder has two
more options, both from the IGR reference network (``code/model/network.py`` of
amosgropp/IGR, ``ImplicitNet``): a Softplus activation with ``beta = 100`` (a smooth ReLU, so
the gradient ``df/dx`` the eikonal term constrains is continuous) and the geometric
initialisation of Atzmon & Lipman ("SAL: Sign Agnostic Learning of Shapes from Raw Data",
CVPR 2020, Sec. 4), :meth:`DeepSDFDecoder.geometric_init_`, under which the network starts as
(approximately) the SDF ``|x| - r`` of a sphere, negative inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from zoo.nn.weight_norm import WeightNormLinear
from zoo.ops.random import randn


class DeepSDFDecoder(nn.Module):
    """MLP ``(z, x) -> sdf`` with skip re-injection of ``[z, x]``.

    Args:
        latent_size: L, size of the shape code ``z``.
        hidden: widths of the hidden layers (paper: ``[512] * 8``).
        latent_in: indices of hidden layers whose input is ``[h, z, x]`` (paper: ``[4]``).
        dropout: dropout probability after every hidden ReLU (paper: 0.2; 0 disables).
        weight_norm: weight normalisation on every linear layer but the output one
            (paper/reference: ``norm_layers = 0..7``).
        output_tanh: squash the output with ``tanh`` (the reference decoder always does).
        softplus_beta: 0 for ReLU (DeepSDF); > 0 for ``softplus(beta h) / beta`` (IGR: 100).
    """

    def __init__(
        self,
        latent_size: int = 256,
        hidden: Sequence[int] = (512,) * 8,
        latent_in: Sequence[int] = (4,),
        dropout: float = 0.2,
        weight_norm: bool = True,
        output_tanh: bool = True,
        softplus_beta: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        latent_in = sorted({int(i) for i in latent_in})
        if latent_size < 0:
            raise ValueError(f"latent_size must be >= 0, got {latent_size}")
        if not hidden:
            raise ValueError("hidden must list at least one layer width")
        if any(i < 1 or i >= len(hidden) for i in latent_in):
            raise ValueError(
                f"latent_in entries must be hidden-layer indices in 1..{len(hidden) - 1}, "
                f"got {latent_in}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if softplus_beta < 0:
            raise ValueError(f"softplus_beta must be >= 0 (0: ReLU), got {softplus_beta}")
        self.latent_size = int(latent_size)
        self.latent_in = tuple(latent_in)
        self.dropout = float(dropout)
        in_dim = self.latent_size + 3
        dims = [in_dim, *hidden]
        layers = []
        for k in range(len(hidden)):
            out = dims[k + 1]
            if k + 1 in self.latent_in:  # this layer's output is concatenated with [z, x]
                out -= in_dim
                if out < 1:
                    raise ValueError(
                        f"hidden[{k + 1}]={dims[k + 1]} must exceed latent_size + 3 = {in_dim} "
                        "to re-inject [z, x] there"
                    )
            # A picklable weight-normed layer (the parametrised one breaks ddp_spawn).
            lin = WeightNormLinear(dims[k], out) if weight_norm else nn.Linear(dims[k], out)
            layers.append(lin)
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(dims[-1], 1)
        self.output_tanh = bool(output_tanh)
        self.softplus_beta = float(softplus_beta)

    def forward(self, latent: Tensor, xyz: Tensor) -> Tensor:
        """Signed distances at ``xyz`` of the shapes coded by ``latent``.

        Args:
            latent: (..., L) codes, broadcast against the leading dims of ``xyz``
                (e.g. (B, 1, L) with (B, S, 3)).
            xyz: (..., 3) query points.
        Returns:
            (...) predicted signed distances (negative inside).
        """
        if xyz.shape[-1] != 3:
            raise ValueError(f"xyz must have shape (..., 3), got {tuple(xyz.shape)}")
        if latent.shape[-1] != self.latent_size:
            raise ValueError(
                f"latent must have shape (..., {self.latent_size}), got {tuple(latent.shape)}"
            )
        lead = torch.broadcast_shapes(latent.shape[:-1], xyz.shape[:-1])
        inp = torch.cat(
            [latent.expand(*lead, self.latent_size), xyz.expand(*lead, 3)], dim=-1
        )  # (..., L + 3)
        h = inp
        for k, lin in enumerate(self.layers):
            if k in self.latent_in:
                h = torch.cat([h, inp], dim=-1)
            h = lin(h)
            if self.softplus_beta > 0:
                h = nn.functional.softplus(h, beta=self.softplus_beta)
            else:
                h = torch.relu(h)
            if self.dropout > 0:
                h = nn.functional.dropout(h, self.dropout, self.training)
        s = self.out(h).squeeze(-1)  # (...)
        return torch.tanh(s) if self.output_tanh else s

    @torch.no_grad()
    def geometric_init_(self, radius: float) -> DeepSDFDecoder:
        """Re-initialise so that ``f(z, x)`` is approximately ``|x| - radius`` for every ``z``.

        SAL's geometric initialisation as in IGR's ``ImplicitNet``: hidden weights from
        N(0, 2 / fan_out) with zero biases, the output weights from N(sqrt(pi / fan_in),
        1e-5^2) with bias ``-radius`` (then a wide ReLU network's mean output is ``|input|``
        minus the radius). IGR divides the re-injected ``[h, z, x]`` by sqrt(2); here the
        re-injection layer's weights are scaled by 1/sqrt(2) instead (the same function at
        initialisation, no change to ``forward``). The weights that read the code ``z`` (in
        the first and every re-injection layer) start at zero, so every code starts at the same
        sphere whatever its norm (DeepSDF's codes start at norm about 1, IGR's at about 0).
        With weight normalisation the direction ``v`` is the drawn weight and ``g = |v|``.
        Returns ``self``.
        """
        if radius <= 0:
            raise ValueError(f"radius must be > 0, got {radius}")
        in_dim = self.latent_size + 3
        for k, lin in enumerate(self.layers):
            out_dim, fan_in = lin.out_features, lin.in_features
            w = randn(out_dim, fan_in) * math.sqrt(2.0 / out_dim)  # (out, in)
            if k == 0:
                w[:, : self.latent_size] = 0.0
            if k in self.latent_in:  # input [h, z, x]: h first, then the code, then x
                start = fan_in - in_dim
                w[:, start : start + self.latent_size] = 0.0
                w /= math.sqrt(2.0)
            _set_weight(lin, w)
            lin.bias.zero_()
        fan_in = self.out.in_features
        self.out.weight.copy_(math.sqrt(math.pi / fan_in) + 1e-5 * randn(1, fan_in))
        self.out.bias.fill_(-float(radius))
        return self


def _set_weight(lin: nn.Module, w: Tensor) -> None:
    """Make the effective weight of ``lin`` (a plain or weight-normed linear layer) ``w``."""
    if isinstance(lin, WeightNormLinear):
        lin.weight_v.copy_(w)
        lin.weight_g.copy_(w.norm(dim=1, keepdim=True))
    else:
        lin.weight.copy_(w)
