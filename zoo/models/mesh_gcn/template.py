"""The template mesh and its coarse-to-fine hierarchy (Pixel2Mesh's graph unpooling).

Pixel2Mesh (Wang et al., ECCV 2018, Sec. 3.4 "Graph unpooling layer") deforms an ellipsoid of
156 vertices, then twice adds a vertex at the midpoint of every edge and splits every triangle
into four (156 -> 618 -> 2466 vertices). Here the template is an ico-sphere
(``trimesh.creation.icosphere``, 12 * 4^k-ish vertices: 42, 162, 642, 2562, ...) scaled per axis
into a sphere or an ellipsoid; subdividing it keeps it a closed genus-0 2-manifold, so every
level, however deformed, is watertight by construction.

The new vertex ``V + k`` sits at the midpoint of the k-th unique edge ``parent_edges[k]``; its
features (coordinates and hidden features alike) are the average of its two parents', which is
exactly :func:`unpool`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import trimesh
from torch import Tensor, nn

from zoo.nn.graph_conv import Adjacency, Normalization, edges_from_faces


def subdivide_faces(faces: Tensor, n_vertices: int) -> tuple[Tensor, Tensor]:
    """Edge-midpoint (1-to-4) subdivision of the topology of a triangle mesh.

    Args:
        faces: (F, 3) vertex indices in [0, n_vertices).
        n_vertices: V, the number of vertices of the coarse mesh.
    Returns:
        new_faces (4F, 3) on V + E vertices, with the winding of ``faces`` (each triangle
        ``(a, b, c)`` with midpoints ``ab, bc, ca`` becomes ``(a, ab, ca), (ab, b, bc),
        (ca, bc, c), (ab, bc, ca)``), and parent_edges (E, 2): new vertex ``V + k`` is the
        midpoint of ``parent_edges[k]`` (the sorted unique edges of ``faces``).
    """
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    if len(faces) and int(faces.max()) >= n_vertices:
        raise ValueError(f"faces index vertex {int(faces.max())} but n_vertices={n_vertices}")
    faces = faces.long()
    parent_edges = edges_from_faces(faces)  # (E, 2), sorted
    # Index of each face's edge (a, b), (b, c), (c, a) in parent_edges, by a sorted-key lookup.
    key = parent_edges[:, 0] * n_vertices + parent_edges[:, 1]  # (E,) increasing
    corners = [faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]
    mids = []
    for e in corners:
        e = torch.sort(e, dim=1).values
        mids.append(n_vertices + torch.searchsorted(key, e[:, 0] * n_vertices + e[:, 1]))
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    ab, bc, ca = mids
    new_faces = torch.cat(
        [
            torch.stack([a, ab, ca], 1),
            torch.stack([ab, b, bc], 1),
            torch.stack([ca, bc, c], 1),
            torch.stack([ab, bc, ca], 1),
        ]
    )  # (4F, 3)
    return new_faces, parent_edges


def unpool(x: Tensor, parent_edges: Tensor) -> Tensor:
    """Append the midpoint features of ``parent_edges`` (E, 2): (..., V, C) -> (..., V + E, C)."""
    mid = 0.5 * (x.index_select(-2, parent_edges[:, 0]) + x.index_select(-2, parent_edges[:, 1]))
    return torch.cat([x, mid], dim=-2)


def subdivide(vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Edge-midpoint subdivision of a mesh: (new_vertices (V+E, 3), new_faces (4F, 3),
    parent_edges (E, 2)); the vertices ``V + k`` are the midpoints of ``parent_edges[k]``."""
    if vertices.dim() != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {tuple(vertices.shape)}")
    new_faces, parent_edges = subdivide_faces(faces.to(vertices.device), len(vertices))
    return unpool(vertices, parent_edges), new_faces, parent_edges


class TemplateHierarchy(nn.Module):
    """An ico-sphere template and its ``n_levels - 1`` midpoint subdivisions.

    Args:
        subdivisions: ico-sphere subdivisions of the coarsest level (1: 42 vertices, 2: 162).
        n_levels: levels of the hierarchy (Pixel2Mesh: 3).
        axes: semi-axes (x, y, z) of the template; equal values give a sphere.
    Buffers (not saved in checkpoints: they are rebuilt from the arguments):
        ``vertices`` (V0, 3) coarsest template; ``faces_<l>`` (F_l, 3) and ``edges_<l>`` (E_l, 2)
        of every level; ``parents_<l>`` (E_l, 2) the parent edges that unpool level l to l + 1.
    """

    def __init__(
        self, subdivisions: int = 2, n_levels: int = 3, axes: Sequence[float] = (0.3, 0.3, 0.3)
    ) -> None:
        super().__init__()
        if n_levels < 1 or subdivisions < 0:
            raise ValueError(
                f"need n_levels >= 1 and subdivisions >= 0, got {n_levels}, {subdivisions}"
            )
        axes_t = torch.as_tensor(list(axes), dtype=torch.float32)
        if axes_t.shape != (3,) or not bool((axes_t > 0).all()):
            raise ValueError(f"axes must be 3 positive semi-axes, got {list(axes)}")
        self.n_levels = n_levels
        self._adjacency: dict[tuple[int, str, torch.device], Adjacency] = {}
        ico = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
        verts = torch.as_tensor(ico.vertices, dtype=torch.float32) * axes_t  # (V0, 3)
        faces = torch.as_tensor(ico.faces, dtype=torch.long)  # (F0, 3), outward winding
        self.register_buffer("vertices", verts, persistent=False)
        n = len(verts)
        self.num_vertices = [n]
        for level in range(n_levels):
            self.register_buffer(f"faces_{level}", faces, persistent=False)
            self.register_buffer(f"edges_{level}", edges_from_faces(faces), persistent=False)
            if level + 1 < n_levels:
                faces, parents = subdivide_faces(faces, n)
                self.register_buffer(f"parents_{level}", parents, persistent=False)
                n += len(parents)
                self.num_vertices.append(n)

    def faces(self, level: int) -> Tensor:
        return getattr(self, f"faces_{level}")

    def edges(self, level: int) -> Tensor:
        return getattr(self, f"edges_{level}")

    def adjacency(self, level: int, normalization: Normalization = "mean") -> Adjacency:
        """The vertex adjacency of ``level`` on the buffers' device (built once per device)."""
        edges = self.edges(level)
        key = (level, normalization, edges.device)
        if key not in self._adjacency:
            self._adjacency[key] = Adjacency(edges, self.num_vertices[level], normalization)
        return self._adjacency[key]

    def parents(self, level: int) -> Tensor:
        """Parent edges unpooling level ``level`` to ``level + 1``."""
        return getattr(self, f"parents_{level}")

    def level_vertices(self, level: int) -> Tensor:
        """The undeformed template at ``level`` (midpoints of the coarser levels), (V_l, 3)."""
        x = self.vertices
        for lv in range(level):
            x = unpool(x, self.parents(lv))
        return x

    def extra_repr(self) -> str:
        return f"vertices per level={self.num_vertices}"
