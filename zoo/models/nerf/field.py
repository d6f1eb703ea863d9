"""NeRF's radiance field network (Mildenhall et al., ECCV 2020, Sec. 5 / Fig. 7).

Position -> positional encoding (L = 10) -> 8 ReLU layers of 256 with the encoded input
concatenated again after the fifth -> density sigma (ReLU, from position only) and a 256-d
feature; feature + encoded view direction (L = 4) -> one ReLU layer of 128 -> RGB (sigmoid).
Without view directions the trunk's last activations map directly to (sigma, RGB).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.nn.encodings import PositionalEncoding
from zoo.nn.mlp import MLP

DENSITY_ACTIVATIONS = ("relu", "softplus")


class NeRFField(nn.Module):
    """``(x, d) -> (sigma, rgb)``.

    Args:
        pos_freqs: positional-encoding frequencies of positions (paper: 10).
        dir_freqs: of view directions (paper: 4).
        depth, width: trunk layers and width (paper: 8 x 256).
        skips: trunk layers after which the encoded position is concatenated (paper: (4,)).
        use_viewdirs: colour depends on the view direction (paper: yes).
        density_activation: "relu" (paper) or "softplus" (smooth, does not die at init).

    Shapes: points (N, 3) in world units, unit directions (N, 3) -> sigma (N,), rgb (N, 3).
    """

    def __init__(
        self,
        pos_freqs: int = 10,
        dir_freqs: int = 4,
        depth: int = 8,
        width: int = 256,
        skips: Sequence[int] = (4,),
        use_viewdirs: bool = True,
        density_activation: str = "relu",
    ) -> None:
        super().__init__()
        if density_activation not in DENSITY_ACTIVATIONS:
            raise ValueError(
                f"density_activation must be one of {DENSITY_ACTIVATIONS}, got "
                f"{density_activation!r}"
            )
        self.use_viewdirs = use_viewdirs
        self.density_activation = density_activation
        self.pos_enc = PositionalEncoding(3, pos_freqs)
        self.trunk = MLP(self.pos_enc.out_dim, width, depth, out_dim=None, skips=skips)
        if use_viewdirs:
            self.dir_enc = PositionalEncoding(3, dir_freqs)
            self.sigma_head = nn.Linear(width, 1)
            self.feature = nn.Linear(width, width)
            self.rgb_head = MLP(width + self.dir_enc.out_dim, width // 2, 1, out_dim=3)
        else:
            self.head = nn.Linear(width, 4)

    def _sigma(self, raw: Tensor) -> Tensor:
        return F.relu(raw) if self.density_activation == "relu" else F.softplus(raw)

    def density(self, x: Tensor) -> Tensor:
        """sigma (N,) at points (N, 3) (the colour branch is skipped)."""
        h = self.trunk(self.pos_enc(x))
        raw = self.sigma_head(h) if self.use_viewdirs else self.head(h)[..., :1]
        return self._sigma(raw[..., 0])

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape != d.shape or x.shape[-1] != 3:
            raise ValueError(
                f"points and directions must both be (N, 3), got {tuple(x.shape)}, {tuple(d.shape)}"
            )
        h = self.trunk(self.pos_enc(x))  # (N, W)
        if self.use_viewdirs:
            sigma = self._sigma(self.sigma_head(h)[..., 0])
            feat = torch.cat([self.feature(h), self.dir_enc(d)], dim=-1)
            rgb = torch.sigmoid(self.rgb_head(feat))
        else:
            raw = self.head(h)
            sigma, rgb = self._sigma(raw[..., 0]), torch.sigmoid(raw[..., 1:])
        return sigma, rgb


__all__ = ["NeRFField"]
