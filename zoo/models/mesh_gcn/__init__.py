"""Graph-convolution template-deformation mesh model (Pixel2Mesh-style), ``model=mesh_gcn``."""

from zoo.models.mesh_gcn.model import MeshGCN, MeshGCNShape

__all__ = ["MeshGCN", "MeshGCNShape"]
