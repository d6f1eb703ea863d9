"""Mip-NeRF (Barron et al., ICCV 2021): cone tracing with integrated positional encoding."""

from zoo.models.mipnerf.field import MipNeRFField
from zoo.models.mipnerf.model import MipNeRF, mip_lr_schedule

__all__ = ["MipNeRF", "MipNeRFField", "mip_lr_schedule"]
