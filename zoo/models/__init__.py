"""Every model of the zoo; importing this package registers them (see ``registry``)."""

from zoo.models import deepsdf, mesh_gcn, nerf, ngp, pointflow, voxel_gan

__all__ = ["deepsdf", "mesh_gcn", "nerf", "ngp", "pointflow", "voxel_gan"]
