"""A hash-grid radiance field after Instant-NGP (Müller et al. 2022), in plain PyTorch."""

from zoo.models.ngp.hash_field import HashField
from zoo.models.ngp.model import InstantNGP
from zoo.ops.occupancy import OccupancyGrid  # its home is the shared ops; kept here for old configs

__all__ = ["HashField", "InstantNGP", "OccupancyGrid"]
