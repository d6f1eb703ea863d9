"""Every model of the zoo; importing this package registers them (see ``registry``)."""

from zoo.models import (
    deepsdf,
    gaussians,
    mesh_gcn,
    mipnerf,
    nerf,
    ngp,
    point_diffusion,
    pointflow,
    pointnerf,
    pointnet,
    voxel_gan,
)

__all__ = [
    "deepsdf",
    "gaussians",
    "mesh_gcn",
    "mipnerf",
    "nerf",
    "ngp",
    "point_diffusion",
    "pointflow",
    "pointnerf",
    "pointnet",
    "voxel_gan",
]
