"""Point-NeRF's aggregation networks: from the K neural points around a shading location to
its density and view-dependent colour (Xu et al., "Point-NeRF: Point-based Neural Radiance
Fields", CVPR 2022, Sec. 3.1, Eqs. 2-5).

For a shading location ``x`` with neighbours ``p_i`` (features ``f_i``, confidences
``gamma_i``):

    f_{i,x} = F(f_i, gamma(x - p_i))                       per-point feature MLP (Eq. 2)
    w_i     = 1 / |p_i - x|                                inverse-distance weights
    f_x     = sum_i gamma_i w_i f_{i,x} / sum_i w_i        (Eq. 3)
    r       = R(f_x, gamma(d))                             view-dependent radiance (Eq. 4)
    sigma   = sum_i gamma_i w_i T(f_{i,x}) / sum_i w_i     per-point density (Eq. 5)

``gamma(.)`` is NeRF's positional encoding: of the relative position in units of the query
radius with 5 frequencies (the reference's ``dist_xyz_freq=5``) and of the view direction
with 4 (``num_viewdir_freqs=4``). The reference's lego setting (Xharlie/pointnerf
``dev_scripts/w_n360/lego.sh``): 32 point features, F of 256 units (``shading_feature_num``,
two plus two layers), T of one layer, R of four, LeakyReLU. Here ReLU (zoo's :class:`MLP`),
the density activation is a choice (exp by default), and the widths / depths come from the
config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.ngp.hash_field import trunc_exp
from zoo.nn.encodings import PositionalEncoding
from zoo.nn.mlp import MLP


class PointAggregator(nn.Module):
    """``(features, relative positions, weights, directions) -> (sigma, rgb)``.

    Args:
        feature_dim: C, neural point features (paper: 32).
        hidden_dim: width of F and R (paper: 256).
        feature_layers: hidden layers of F (paper: 4).
        colour_layers: hidden layers of R (paper: 4).
        rel_freqs: frequencies of the relative-position encoding (paper: 5).
        dir_freqs: frequencies of the view-direction encoding (paper: 4).
        density_bias: pre-activation offset of T, so that a young field is nearly transparent
            rather than a grey fog.
        density_activation: "exp" (truncated-gradient exp, as Instant-NGP: densities of a thin
            shell of points must reach hundreds, which exp reaches in few steps) or "softplus".
    """

    def __init__(
        self,
        feature_dim: int = 32,
        hidden_dim: int = 256,
        feature_layers: int = 4,
        colour_layers: int = 4,
        rel_freqs: int = 5,
        dir_freqs: int = 4,
        density_bias: float = -1.0,
        density_activation: str = "exp",
    ) -> None:
        super().__init__()
        if feature_dim < 1 or feature_layers < 1:
            raise ValueError(
                f"need feature_dim >= 1 and feature_layers >= 1, got {feature_dim}, "
                f"{feature_layers}"
            )
        self.feature_dim = int(feature_dim)
        self.rel_enc = PositionalEncoding(3, rel_freqs)
        self.dir_enc = PositionalEncoding(3, dir_freqs)
        self.point_net = MLP(feature_dim + self.rel_enc.out_dim, hidden_dim, feature_layers)
        self.density_head = nn.Linear(hidden_dim, 1)
        self.colour_net = MLP(hidden_dim + self.dir_enc.out_dim, hidden_dim, colour_layers, 3)
        self.density_bias = float(density_bias)
        if density_activation not in ("exp", "softplus"):
            raise ValueError(
                f"density_activation must be exp or softplus, got {density_activation!r}"
            )
        self.density_act = trunc_exp if density_activation == "exp" else F.softplus

    def forward(
        self, features: Tensor, rel: Tensor, weights: Tensor, directions: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """
        Args:
            features: (M, K, C) features of each location's neighbours.
            rel: (M, K, 3) ``x - p_i`` in units of the query radius.
            weights: (M, K) ``gamma_i w_i / sum_j w_j`` (0 for missing neighbours).
            directions: (M, 3) unit view directions, or None for density only.
        Returns:
            sigma (M,) and rgb (M, 3) in [0, 1] (None without directions).
        """
        h = self.point_net(torch.cat([features, self.rel_enc(rel)], dim=-1))  # (M, K, H)
        sigma_i = self.density_act(self.density_head(h)[..., 0] + self.density_bias)  # (M, K)
        sigma = (weights * sigma_i).sum(-1)  # (M,)
        if directions is None:
            return sigma, None
        f_x = (weights[..., None] * h).sum(-2)  # (M, H)
        rgb = torch.sigmoid(self.colour_net(torch.cat([f_x, self.dir_enc(directions)], -1)))
        return sigma, rgb


__all__ = ["PointAggregator"]
