"""3D-GAN generator and discriminator (Wu et al., "Learning a Probabilistic Latent Space of Object
Shapes via 3D Generative-Adversarial Modeling", NeurIPS 2016, Sec. 3.1 and Fig. 1).

Paper setting (resolution 64, widths 512-256-128-64): the generator maps a 200-d latent vector
through five volumetric transposed convolutions of kernel 4 and stride 2 (the first, with no
padding, projects the 1^3 input to 4^3), batch norm + ReLU in between and a sigmoid at the end:
z -> 512x4^3 -> 256x8^3 -> 128x16^3 -> 64x32^3 -> 1x64^3. The discriminator mirrors it with
LeakyReLU(0.2): 1x64^3 -> 64x32^3 -> 128x16^3 -> 256x8^3 -> 512x4^3 -> one logit. There are no
pooling or linear layers.

Here the depth follows the resolution (any power of two >= 8): ``log2(R) - 2`` stride-2 layers
after the 4^3 projection, with widths ``base * 2^k`` halving towards the output, so
``resolution=64, base_channels=64`` is exactly the paper's network and ``resolution=32,
base_channels=16`` (the CPU default) is 64x4^3 -> 32x8^3 -> 16x16^3 -> 1x32^3.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.nn.conv3d import Norm, down_block3d, up_block3d


def num_stride2_layers(resolution: int) -> int:
    """Number of size-doubling layers between 4^3 and ``resolution``^3 (a power of two >= 8)."""
    r = int(resolution)
    if r != resolution or r < 8 or r & (r - 1):
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution!r}")
    return int(math.log2(r)) - 2


def hidden_widths(resolution: int, base_channels: int) -> list[int]:
    """Channel widths of the hidden feature maps at 4^3, 8^3, ..., (R/2)^3 (generator order)."""
    if base_channels < 1:
        raise ValueError(f"base_channels must be >= 1, got {base_channels}")
    n = num_stride2_layers(resolution)
    return [base_channels * 2 ** (n - 1 - i) for i in range(n)]


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016, Sec. 4): conv weights ~ N(0, 0.02), norm
    scales ~ N(1, 0.02), biases 0. Apply with ``net.apply(dcgan_init)``."""
    if isinstance(module, nn.Conv3d | nn.ConvTranspose3d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm3d | nn.GroupNorm | nn.InstanceNorm3d):
        if module.weight is not None:
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)


class VoxelGenerator(nn.Module):
    """z (B, z_dim) -> occupancy logits (B, 1, R, R, R); ``forward`` applies the sigmoid."""

    def __init__(
        self, z_dim: int = 200, resolution: int = 64, base_channels: int = 64, norm: Norm = "batch"
    ) -> None:
        super().__init__()
        if z_dim < 1:
            raise ValueError(f"z_dim must be >= 1, got {z_dim}")
        self.z_dim = int(z_dim)
        self.resolution = int(resolution)
        widths = hidden_widths(resolution, base_channels)
        layers = [up_block3d(z_dim, widths[0], norm, first=True)]  # (B, C0, 4, 4, 4)
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers.append(up_block3d(c_in, c_out, norm))  # S -> 2S
        layers.append(nn.ConvTranspose3d(widths[-1], 1, 4, 2, 1))  # (B, 1, R, R, R)
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def logits(self, z: Tensor) -> Tensor:
        """Pre-sigmoid occupancy (B, 1, R, R, R) of latent codes z (B, z_dim)."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z[:, :, None, None, None])

    def forward(self, z: Tensor) -> Tensor:
        """Occupancy probabilities (B, 1, R, R, R) in (0, 1)."""
        return torch.sigmoid(self.logits(z))


class VoxelDiscriminator(nn.Module):
    """Occupancy grid (B, 1, R, R, R) -> one real/fake logit (or critic score) per grid, (B,).

    As in DCGAN (Radford et al. 2016, Sec. 3), the input layer has no normalisation.
    """

    def __init__(
        self,
        resolution: int = 64,
        base_channels: int = 64,
        norm: Norm = "batch",
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.resolution = int(resolution)
        widths = hidden_widths(resolution, base_channels)[::-1]  # (R/2)^3 ... 4^3
        layers = [down_block3d(1, widths[0], "none", negative_slope)]  # (B, C, R/2, ...)
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers.append(down_block3d(c_in, c_out, norm, negative_slope))  # S -> S/2
        layers.append(nn.Conv3d(widths[-1], 1, 4, 1, 0))  # (B, 1, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, voxels: Tensor) -> Tensor:
        r = self.resolution
        if voxels.ndim != 5 or tuple(voxels.shape[1:]) != (1, r, r, r):
            raise ValueError(
                f"voxels must have shape (B, 1, {r}, {r}, {r}), got {tuple(voxels.shape)}"
            )
        return self.net(voxels).reshape(-1)


__all__ = [
    "VoxelDiscriminator",
    "VoxelGenerator",
    "dcgan_init",
    "hidden_widths",
    "num_stride2_layers",
]
