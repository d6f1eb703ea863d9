"""Voxel 3D-GAN (Wu et al., NeurIPS 2016): ``model=voxel_gan``."""

from zoo.models.voxel_gan.model import VoxelGAN

__all__ = ["VoxelGAN"]
