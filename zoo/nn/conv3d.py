"""Volumetric up / down convolution blocks (kernel 4, stride 2) for voxel generators and critics.

The blocks follow the DCGAN recipe (Radford et al., ICLR 2016) carried to 3D by 3D-GAN (Wu et
al., NeurIPS 2016, Sec. 3.1): a stride-2 (transposed) convolution with kernel 4 and padding 1
exactly doubles (halves) the spatial size, followed by a normalisation and a ReLU (LeakyReLU 0.2
in the discriminator). No pooling, no linear layers.

Normalisations: ``"batch"`` (BatchNorm3d, the paper's choice), ``"layer"`` (GroupNorm with one
group = layer norm over (C, D, H, W) with a per-channel affine, what Gulrajani et al. 2017
recommend for a WGAN-GP critic since a gradient penalty per sample is not defined through batch
statistics), ``"instance"`` (InstanceNorm3d with affine) and ``"none"``.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

Norm = Literal["batch", "layer", "instance", "none"]
NORMS = ("batch", "layer", "instance", "none")


def norm3d(kind: Norm, channels: int) -> nn.Module:
    """A normalisation layer for (B, C, D, H, W) features (``nn.Identity`` for ``"none"``)."""
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def up_block3d(
    in_channels: int,
    out_channels: int,
    norm: Norm = "batch",
    first: bool = False,
) -> nn.Sequential:
    """ConvTranspose3d(k=4, s=2) -> norm -> ReLU.

    ``first=True`` uses padding 0, so a (B, C, 1, 1, 1) input becomes (B, C', 4, 4, 4) (the
    3D-GAN generator's projection of z); otherwise padding 1 doubles the size: S -> 2S.
    The convolution has no bias when a normalisation follows (the norm's shift replaces it).
    """
    pad = 0 if first else 1
    return nn.Sequential(
        nn.ConvTranspose3d(in_channels, out_channels, 4, 2, pad, bias=norm == "none"),
        norm3d(norm, out_channels),
        nn.ReLU(inplace=True),
    )


def down_block3d(
    in_channels: int,
    out_channels: int,
    norm: Norm = "batch",
    negative_slope: float = 0.2,
) -> nn.Sequential:
    """Conv3d(k=4, s=2, p=1) -> norm -> LeakyReLU: (B, C, S, S, S) -> (B, C', S/2, S/2, S/2)."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 4, 2, 1, bias=norm == "none"),
        norm3d(norm, out_channels),
        nn.LeakyReLU(negative_slope, inplace=True),
    )


__all__ = ["NORMS", "Norm", "down_block3d", "norm3d", "up_block3d"]
