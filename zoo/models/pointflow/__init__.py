"""PointFlow (Yang et al., ICCV 2019): ``model=pointflow``."""

from zoo.models.pointflow.cnf import CNF, ODEFunc
from zoo.models.pointflow.model import PointFlow, PointFlowShape, halfway_linear_decay

__all__ = ["CNF", "ODEFunc", "PointFlow", "PointFlowShape", "halfway_linear_decay"]
