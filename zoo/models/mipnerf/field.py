"""Mip-NeRF's network (Barron et al., ICCV 2021; google/mipnerf ``internal/models.py: MLP``).

Integrated positional encoding of a frustum's Gaussian (degrees 0-15, no identity term) ->
``depth`` ReLU layers of ``width`` with the encoding concatenated after layer 4 (the
reference's ``skip_layer = 4``: after layers 4, 8, ...) -> raw density and a bottleneck of
``width``; bottleneck + encoded view direction (degrees 0-3 with the identity) -> one ReLU layer
of ``width // 2`` -> raw RGB. The outputs follow the reference: ``sigma = softplus(raw - 1)``
(``density_bias = -1``) and ``rgb = sigmoid(raw) (1 + 2 p) - p`` with ``p = 0.001``
(``rgb_padding``), so the colours 0 and 1 are reachable with finite logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.nn.mlp import MLP
from zoo.ops.mip import integrated_pos_enc, pos_enc


class MipNeRFField(nn.Module):
    """``(mean, var, viewdir) -> (sigma, rgb)`` of Gaussians in world space.

    Args:
        min_deg, max_deg: IPE degrees ``[min_deg, max_deg)`` (paper: 0, 16).
        deg_view: view-direction encoding degrees (paper: 4), identity included.
        depth, width: trunk (paper: 8 x 256); skip after every 4th layer.
        use_viewdirs: colour depends on the view direction (paper: yes).
        density_bias: added to the raw density before the softplus (paper: -1).
        rgb_padding: see the module docstring (paper: 0.001).

    Shapes: mean, var (N, 3), unit view directions (N, 3) -> sigma (N,), rgb (N, 3).
    """

    def __init__(
        self,
        min_deg: int = 0,
        max_deg: int = 16,
        deg_view: int = 4,
        depth: int = 8,
        width: int = 256,
        use_viewdirs: bool = True,
        density_bias: float = -1.0,
        rgb_padding: float = 0.001,
    ) -> None:
        super().__init__()
        if not 0 <= min_deg < max_deg or deg_view < 0 or depth < 1 or width < 2:
            raise ValueError(
                f"need 0 <= min_deg < max_deg, deg_view >= 0, depth >= 1, width >= 2; got "
                f"{min_deg}, {max_deg}, {deg_view}, {depth}, {width}"
            )
        self.min_deg, self.max_deg, self.deg_view = int(min_deg), int(max_deg), int(deg_view)
        self.use_viewdirs = use_viewdirs
        self.density_bias = float(density_bias)
        self.rgb_padding = float(rgb_padding)
        in_dim = 3 * 2 * (self.max_deg - self.min_deg)
        skips = [i for i in range(4, depth - 1, 4)]  # reference: after layers 5, 9, ... (1-based)
        self.trunk = MLP(in_dim, width, depth, out_dim=None, skips=skips)
        self.sigma_head = nn.Linear(self.trunk.out_dim, 1)
        if use_viewdirs:
            view_dim = 3 + 3 * 2 * self.deg_view
            self.bottleneck = nn.Linear(self.trunk.out_dim, width)
            self.rgb_head = MLP(width + view_dim, width // 2, 1, out_dim=3)
        else:
            self.rgb_head = nn.Linear(self.trunk.out_dim, 3)

    def encode(self, mean: Tensor, var: Tensor) -> Tensor:
        return integrated_pos_enc(mean, var, self.min_deg, self.max_deg)

    def density(self, mean: Tensor, var: Tensor) -> Tensor:
        """sigma (N,) of Gaussians (N, 3) + (N, 3) (the colour branch is skipped)."""
        h = self.trunk(self.encode(mean, var))
        return F.softplus(self.sigma_head(h)[..., 0] + self.density_bias)

    def forward(self, mean: Tensor, var: Tensor, viewdirs: Tensor) -> tuple[Tensor, Tensor]:
        if mean.shape != var.shape or mean.shape != viewdirs.shape or mean.shape[-1] != 3:
            raise ValueError(
                f"mean, var and viewdirs must all be (N, 3), got {tuple(mean.shape)}, "
                f"{tuple(var.shape)}, {tuple(viewdirs.shape)}"
            )
        h = self.trunk(self.encode(mean, var))  # (N, W)
        sigma = F.softplus(self.sigma_head(h)[..., 0] + self.density_bias)
        if self.use_viewdirs:
            feat = torch.cat([self.bottleneck(h), pos_enc(viewdirs, 0, self.deg_view)], dim=-1)
            raw = self.rgb_head(feat)
        else:
            raw = self.rgb_head(h)
        rgb = torch.sigmoid(raw) * (1 + 2 * self.rgb_padding) - self.rgb_padding
        return sigma, rgb


__all__ = ["MipNeRFField"]
