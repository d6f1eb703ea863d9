"""A hash-grid radiance field after Instant-NGP (Müller et al. 2022), in plain PyTorch."""

from zoo.models.ngp.hash_field import HashField
from zoo.models.ngp.model import InstantNGP
from zoo.models.ngp.occupancy_grid import OccupancyGrid

__all__ = ["HashField", "InstantNGP", "OccupancyGrid"]
