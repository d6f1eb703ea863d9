"""Diffusion point-cloud generation (Luo & Hu, CVPR 2021): ``model=point_diffusion``."""

from zoo.models.point_diffusion.model import PointDenoiser, PointDiffusion, linear_lr_between
from zoo.models.point_diffusion.schedule import VarianceSchedule

__all__ = ["PointDenoiser", "PointDiffusion", "VarianceSchedule", "linear_lr_between"]
