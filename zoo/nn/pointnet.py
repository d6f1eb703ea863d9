"""A PointNet encoder: shared per-point MLP, max-pool, MLP head (optionally a Gaussian posterior).

Qi et al., "PointNet: Deep Learning on Point Sets for 3D Classification and Segmentation"
(CVPR 2017): per-point layers shared across points (1x1 convolutions) followed by a symmetric
max-pool give a permutation-invariant global feature.

The defaults follow the PointFlow encoder (Yang et al., ICCV 2019, supplementary; reference
``models/networks.py``): per-point widths 128-128-256-512 with batch norm and ReLU, no ReLU after
the last per-point layer (batch norm only) before the max-pool, then a head 256-128-``out_dim``
with batch norm and ReLU. With ``vae=True`` two such heads give the mean and the log-variance of
a diagonal Gaussian posterior ``q(z | X)``, as in PointFlow's VAE encoder.

The classification network of Qi et al. (``zoo.models.pointnet``) is the same module with a ReLU
after the last per-point layer too (``relu_last``) and dropout before the last linear layer
(``dropout``; the paper keeps 0.7); ``features`` returns every stage's activation (the pooled
global feature and each head layer), which the feature-based metrics read.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def _head(
    dims: Sequence[int], out_dim: int, batch_norm: bool, dropout: float = 0.0
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b) if batch_norm else nn.Identity(), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class PointNetEncoder(nn.Module):
    """(B, N, in_dim) point sets -> (B, out_dim) global codes, or (mean, logvar) with ``vae``.

    Args:
        in_dim: features per point (3 for xyz; 6 for xyz + normals, ...).
        hidden: widths of the shared per-point layers; the last is the global feature size.
        out_dim: size of the code.
        head: hidden widths of the MLP(s) after the max-pool.
        vae: return ``(mean, logvar)`` of a diagonal Gaussian instead of one code.
        batch_norm: batch norm after every hidden layer (PointFlow: yes). Batch norm needs
            more than one value per channel in training mode: per-point layers see B * N values,
            the head sees B, so train with B >= 2 (or ``batch_norm=False``).
        relu_last: ReLU after the last per-point layer too (Qi et al.; PointFlow: no).
        dropout: dropout probability before the head's last linear layer (Qi et al.: 0.3).
    """

    def __init__(
        self,
        in_dim: int = 3,
        hidden: Sequence[int] = (128, 128, 256, 512),
        out_dim: int = 128,
        head: Sequence[int] = (256, 128),
        vae: bool = False,
        batch_norm: bool = True,
        relu_last: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("hidden must name at least one per-point layer width")
        self.in_dim, self.out_dim, self.vae = in_dim, out_dim, vae
        layers: list[nn.Module] = []
        dims = [in_dim, *hidden]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers += [nn.Conv1d(a, b, 1), nn.BatchNorm1d(b) if batch_norm else nn.Identity()]
            if i < len(hidden) - 1 or relu_last:  # PointFlow: no ReLU before the max-pool
                layers.append(nn.ReLU())
        self.point_mlp = nn.Sequential(*layers)
        head_dims = [hidden[-1], *head]
        self.head = _head(head_dims, out_dim, batch_norm, dropout)
        self.head_logvar = _head(head_dims, out_dim, batch_norm, dropout) if vae else None

    def forward(self, points: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """points: (B, N, in_dim). Returns (B, out_dim), or (mean, logvar) each (B, out_dim)."""
        if points.dim() != 3 or points.shape[-1] != self.in_dim:
            raise ValueError(f"points must be (B, N, {self.in_dim}), got {tuple(points.shape)}")
        feat = self.point_mlp(points.transpose(1, 2))  # (B, C, N)
        glob = feat.max(dim=2).values  # (B, C)
        if self.head_logvar is None:
            return self.head(glob)
        return self.head(glob), self.head_logvar(glob)

    def features(self, points: Tensor) -> list[Tensor]:
        """Activations of every stage for points (B, N, in_dim): the pooled global feature
        (B, hidden[-1]), each head layer after its ReLU (B, head[i]), and the output
        (B, out_dim) (of the mean head with ``vae``)."""
        if points.dim() != 3 or points.shape[-1] != self.in_dim:
            raise ValueError(f"points must be (B, N, {self.in_dim}), got {tuple(points.shape)}")
        x = self.point_mlp(points.transpose(1, 2)).max(dim=2).values  # (B, C)
        out = [x]
        for layer in self.head:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                out.append(x)
        out.append(x)
        return out
