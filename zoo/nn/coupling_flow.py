"""An affine coupling flow over latent vectors: a learnt prior p(z) with exact log-density.

Luo & Hu, "Diffusion Probabilistic Models for 3D Point Cloud Generation", CVPR 2021, Sec. 4.3:
the shape latent's prior is a normalizing flow ``F: w -> z`` from ``w ~ N(0, I)``, a stack of
affine coupling layers (Dinh et al., "Density estimation using Real NVP", ICLR 2017). The
reference code (luost26/diffusion-point-cloud, ``models/flow.py``, settings of ``train_gen.py``:
14 layers of hidden width 256) keeps the first ``d - d // 2`` features of a layer unchanged and
moves the others by ``y = x * scale + shift`` with ``scale = sigmoid(s + 2)`` (so ``scale`` starts
near 0.88 and stays in (0, 1), which keeps the inverse stable) and ``(s, shift)`` from a
two-hidden-layer ReLU MLP of the unchanged half; consecutive layers swap the halves (here the
kept half is the first or the last ``d - d // 2`` features, so odd sizes invert exactly too).

``scale="exp"`` is Real NVP's own form instead, ``scale = exp(s)`` with ``s`` soft-clamped to
(-3, 3) by ``3 tanh(s / 3)`` (the clamp of Ardizzone et al., "Analyzing inverse problems with
invertible neural networks", ICLR 2019) and the last linear layer zero-initialised (each layer
starts as the identity): unlike the sigmoid form it can expand as well as contract, which a
flow fitted on its own to thin, curved code distributions needs (the sigmoid form relies on an
encoder trained jointly with it).

Direction: ``forward(z)`` maps data-side latents to the Gaussian side and returns
``log |det dw/dz|``, so ``log p(z) = log N(w; 0, I) + logdet``; ``inverse(w)`` draws latents.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)


class AffineCoupling(nn.Module):
    """One coupling layer on (B, dim) vectors; ``swap`` exchanges which half is transformed."""

    def __init__(self, dim: int, hidden: int, swap: bool, scale: str = "sigmoid") -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"a coupling layer needs dim >= 2, got {dim}")
        if scale not in ("sigmoid", "exp"):
            raise ValueError(f"scale must be 'sigmoid' or 'exp', got {scale!r}")
        self.scale = scale
        self.keep = dim - dim // 2  # features passed through unchanged
        self.swap = swap
        self.net = nn.Sequential(
            nn.Linear(self.keep, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * (dim - self.keep)),
        )
        if scale == "exp":
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(kept, moved): the first ``keep`` features are kept, or with ``swap`` the last."""
        if self.swap:
            return x[:, x.shape[1] - self.keep :], x[:, : x.shape[1] - self.keep]
        return x[:, : self.keep], x[:, self.keep :]

    def _join(self, kept: Tensor, moved: Tensor) -> Tensor:
        return torch.cat([moved, kept], 1) if self.swap else torch.cat([kept, moved], 1)

    def _scale_shift(self, a: Tensor) -> tuple[Tensor, Tensor]:
        s, shift = self.net(a).chunk(2, dim=1)  # (B, dim - keep) each
        if self.scale == "exp":
            return torch.exp(3.0 * torch.tanh(s / 3.0)), shift
        return torch.sigmoid(s + 2.0), shift

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, dim) -> (y (B, dim), log|det dy/dx| (B,))."""
        a, b = self._split(x)
        scale, shift = self._scale_shift(a)
        return self._join(a, b * scale + shift), torch.log(scale).sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        a, b = self._split(y)
        scale, shift = self._scale_shift(a)
        return self._join(a, (b - shift) / scale)


class CouplingFlow(nn.Module):
    """A stack of :class:`AffineCoupling` layers: latents z (B, dim) <-> Gaussian w (B, dim).

    Args:
        dim: latent size.
        hidden: hidden width of each layer's MLP (Luo & Hu: 256).
        depth: number of layers (Luo & Hu: 14).
        scale: ``sigmoid`` (Luo & Hu's layer) or ``exp`` (Real NVP's, soft-clamped).
    """

    def __init__(
        self, dim: int, hidden: int = 256, depth: int = 14, scale: str = "sigmoid"
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.dim = dim
        self.layers = nn.ModuleList(
            AffineCoupling(dim, hidden, swap=i % 2 == 0, scale=scale) for i in range(depth)
        )

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z (B, dim) -> (w (B, dim), log|det dw/dz| (B,))."""
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"latents must be (B, {self.dim}), got {tuple(z.shape)}")
        logdet = z.new_zeros(len(z))
        for layer in self.layers:
            z, ld = layer(z)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, w: Tensor) -> Tensor:
        """w (B, dim) -> z (B, dim)."""
        if w.dim() != 2 or w.shape[1] != self.dim:
            raise ValueError(f"Gaussian draws must be (B, {self.dim}), got {tuple(w.shape)}")
        for layer in reversed(self.layers):
            w = layer.inverse(w)
        return w

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) (B,) under the flow from N(0, I)."""
        w, logdet = self(z)
        return -0.5 * (LOG_2PI + w * w).sum(1) + logdet
