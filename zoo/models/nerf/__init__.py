"""NeRF (Mildenhall et al. 2020) and the radiance-field base shared with Instant-NGP."""

from zoo.models.nerf.field import NeRFField
from zoo.models.nerf.model import NeRF
from zoo.models.nerf.radiance import RadianceFieldModel, exponential_decay

__all__ = ["NeRF", "NeRFField", "RadianceFieldModel", "exponential_decay"]
