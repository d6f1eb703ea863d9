"""Point-NeRF (Xu et al., CVPR 2022): a radiance field carried by neural points."""

from zoo.models.pointnerf.field import PointAggregator
from zoo.models.pointnerf.model import PointNeRF

__all__ = ["PointAggregator", "PointNeRF"]
