"""``model=gaussians``: 3D Gaussian splatting (Kerbl et al., SIGGRAPH 2023) on the CPU."""

from zoo.models.gaussians.model import GaussianSplatting
from zoo.models.gaussians.ply import read_splat_ply, write_splat_ply
from zoo.models.gaussians.strategy import DensityControl

__all__ = ["DensityControl", "GaussianSplatting", "read_splat_ply", "write_splat_ply"]
