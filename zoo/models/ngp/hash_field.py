"""Instant-NGP's radiance field: hash encoding + tiny density and colour MLPs (Müller et al.,
SIGGRAPH 2022, Sec. 5.4).

density MLP: hash features (L F) -> 1 hidden layer of 64 ReLU -> 16 outputs, the first being
log-density (sigma = exp, with the gradient of exp clamped as in common re-implementations);
colour MLP: those 16 outputs + degree-4 spherical harmonics of the view direction (16) ->
2 hidden layers of 64 ReLU -> RGB (sigmoid).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from zoo.nn.encodings import HashEncoding, SphericalHarmonicsEncoding
from zoo.nn.mlp import MLP


class _TruncExp(torch.autograd.Function):
    """``exp(x)`` whose backward uses ``exp(clamp(x, max=15))`` (no overflowing gradients)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.exp(x.clamp(max=15.0))

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(-15.0, 15.0))


def trunc_exp(x: Tensor) -> Tensor:
    return _TruncExp.apply(x)


class HashField(nn.Module):
    """``(x, d) -> (sigma, rgb)`` with x in world units inside the scene box.

    Args:
        encoding: the multiresolution hash encoding (inputs normalised to [0, 1]^3 by the box).
        hidden_dim: width of both MLPs (paper: 64).
        density_layers: hidden layers of the density MLP (paper: 1).
        geo_feat_dim: outputs of the density MLP besides log-density (paper: 15).
        colour_layers: hidden layers of the colour MLP (paper: 2).
        sh_degree: spherical-harmonics degree of the view direction (paper: 4, 16 values).
        bbox_min, bbox_max: the scene box (set from the data by the model).
    """

    def __init__(
        self,
        encoding: HashEncoding,
        hidden_dim: int = 64,
        density_layers: int = 1,
        geo_feat_dim: int = 15,
        colour_layers: int = 2,
        sh_degree: int = 4,
        bbox_min: Sequence[float] = (-1.5, -1.5, -1.5),
        bbox_max: Sequence[float] = (1.5, 1.5, 1.5),
    ) -> None:
        super().__init__()
        self.encoding = encoding
        self.density_net = MLP(encoding.out_dim, hidden_dim, density_layers, 1 + geo_feat_dim)
        self.dir_enc = SphericalHarmonicsEncoding(sh_degree)
        self.colour_net = MLP(1 + geo_feat_dim + self.dir_enc.out_dim, hidden_dim, colour_layers, 3)
        self.register_buffer("bbox_min", torch.tensor(bbox_min, dtype=torch.float32), False)
        self.register_buffer("bbox_max", torch.tensor(bbox_max, dtype=torch.float32), False)

    def set_bbox(self, bbox_min: Sequence[float], bbox_max: Sequence[float]) -> None:
        self.bbox_min = torch.tensor(bbox_min, dtype=torch.float32, device=self.bbox_min.device)
        self.bbox_max = torch.tensor(bbox_max, dtype=torch.float32, device=self.bbox_max.device)

    def _geometry(self, x: Tensor) -> Tensor:
        unit = (x - self.bbox_min) / (self.bbox_max - self.bbox_min)  # (N, 3) in [0, 1]
        return self.density_net(self.encoding(unit))  # (N, 1 + geo_feat_dim)

    def density(self, x: Tensor) -> Tensor:
        """sigma (N,) at world points (N, 3)."""
        return trunc_exp(self._geometry(x)[:, 0])

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """sigma (N,) and rgb (N, 3) at world points (N, 3) seen along unit directions (N, 3)."""
        h = self._geometry(x)
        sigma = trunc_exp(h[:, 0])
        rgb = torch.sigmoid(self.colour_net(torch.cat([h, self.dir_enc(d)], dim=-1)))
        return sigma, rgb


__all__ = ["HashField", "trunc_exp"]
