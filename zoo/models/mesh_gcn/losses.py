"""Pixel2Mesh's losses (Wang et al., ECCV 2018, Sec. 3.5; weights of noahcao/Pixel2Mesh
``options.py``).

Per stage s with predicted vertices ``p`` (B, V_s, 3), the stage input ``p0`` (template, or the
unpooled previous stage), edges E_s and ground-truth surface samples ``q`` with normals ``n_q``:

- Chamfer: ``w_s * (mean_q min_p |p - q|^2 + w_opp * mean_p min_q |p - q|^2)`` on the vertices
  (shared :func:`zoo.metrics.chamfer_distance`, squared); reference weights ``w_s = 1, 1, 1``,
  ``w_opp = 1`` (``options.py``; only its TensorFlow-aligned preset uses 0.55, not offered here);
- normal: ``mean |<(p_i - p_j)/|p_i - p_j|, n_{q(i)}>|`` over both directions of every edge,
  ``q(i)`` the nearest ground-truth point of vertex i (edges should be orthogonal to the normal);
- edge length: ``mean_edges |p_i - p_j|^2``;
- Laplacian: ``c_s * mean_i |delta_i(p) - delta_i(p0)|^2`` with uniform Laplacian coordinates
  ``delta_i(x) = x_i - mean_{j in N(i)} x_j`` (keeps the deformation locally smooth); reference
  per-stage factors ``c_s = 0.2, 1, 1``;
- move: ``c_s * mean_i |p_i - p0_i|^2`` for the stages after the first (reference: only those).

Total: ``chamfer + 1.6e-4 normal + 0.3 edge + 0.5 laplace + 0.1 move`` (reference defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.metrics import chamfer_distance, nearest_neighbors
from zoo.nn.graph_conv import Adjacency, laplacian_coordinates


@dataclass(frozen=True)
class LossWeights:
    """Weights of the Pixel2Mesh loss (defaults: noahcao/Pixel2Mesh ``options.py``)."""

    chamfer: Sequence[float] = (1.0, 1.0, 1.0)
    normal: float = 1.6e-4
    edge: float = 0.3
    laplace: float = 0.5
    move: float = 0.1
    stage_laplace: Sequence[float] = (0.2, 1.0, 1.0)

    def per_stage(self, values: Sequence[float], s: int) -> float:
        """Stage ``s``'s factor; stages past the list reuse its last entry."""
        return float(values[min(s, len(values) - 1)])


def nearest_indices(pred: Tensor, gt: Tensor) -> Tensor:
    """(B, V) index of the nearest point of gt (B, N, 3) for every point of pred (B, V, 3)
    (the shared :func:`zoo.metrics.nearest_neighbors`)."""
    return nearest_neighbors(pred.detach(), gt.detach())[1]


def normal_loss(pred: Tensor, edges: Tensor, gt_normals: Tensor, nearest: Tensor) -> Tensor:
    """Mean |cos| between every directed edge (i -> j) and the normal nearest to vertex i."""
    src = torch.cat([edges[:, 0], edges[:, 1]])  # (2E,)
    dst = torch.cat([edges[:, 1], edges[:, 0]])
    direction = F.normalize(pred[:, dst] - pred[:, src], dim=-1, eps=1e-12)  # (B, 2E, 3)
    n = torch.gather(gt_normals, 1, nearest[:, src, None].expand(-1, -1, 3))  # (B, 2E, 3)
    return (direction * F.normalize(n, dim=-1)).sum(-1).abs().mean()


def edge_loss(pred: Tensor, edges: Tensor) -> Tensor:
    """Mean squared edge length of pred (B, V, 3) over edges (E, 2)."""
    return (pred[:, edges[:, 0]] - pred[:, edges[:, 1]]).square().sum(-1).mean()


def laplacian_loss(before: Tensor, after: Tensor, adj: Adjacency) -> Tensor:
    """Mean squared change of the Laplacian coordinates (uniform with a ``"mean"`` adjacency),
    (B, V, 3) -> scalar."""
    diff = laplacian_coordinates(after, adj) - laplacian_coordinates(before, adj)
    return diff.square().sum(-1).mean()


def move_loss(before: Tensor, after: Tensor) -> Tensor:
    """Mean squared vertex displacement."""
    return (after - before).square().sum(-1).mean()


def mesh_losses(
    coords: Sequence[Tensor],
    before: Sequence[Tensor],
    graphs: Sequence[Adjacency],
    gt_points: Tensor,
    gt_normals: Tensor | None,
    weights: LossWeights,
) -> dict[str, Tensor]:
    """The weighted Pixel2Mesh loss summed over stages, with its unweighted parts.

    Args:
        coords, before: per stage (B, V_s, 3) output and input vertices (see
            :class:`~zoo.models.mesh_gcn.networks.MeshDeformer`).
        graphs: per stage the mesh adjacency, ``"mean"``-normalised (uniform Laplacian); its
            ``edges`` (E_s, 2) are used by the normal and edge terms.
        gt_points: (B, N, 3) surface samples; gt_normals: (B, N, 3) their normals, or None
            (the normal term is then 0).
    Returns:
        ``loss`` and the stage-summed ``chamfer``, ``normal``, ``edge``, ``laplace``, ``move``
        (Chamfer with its stage weights, Laplacian/move with their stage factors, as the
        reference logs them), plus ``chamfer_final`` (the last stage's symmetric Chamfer).
    """
    if gt_points.dim() != 3 or gt_points.shape[-1] != 3:
        raise ValueError(f"gt_points must be (B, N, 3), got {tuple(gt_points.shape)}")
    zero = gt_points.new_zeros(())
    parts = {k: zero for k in ("chamfer", "normal", "edge", "laplace", "move")}
    chamfer_final = zero
    for s, (p, p0, adj) in enumerate(zip(coords, before, graphs, strict=True)):
        if adj.normalization != "mean":
            raise ValueError(f"graphs must be 'mean'-normalised, got {adj.normalization!r}")
        e = adj.edges
        cd = chamfer_distance(p, gt_points)  # (B,) squared, mean over both directions
        chamfer_final = cd.mean()
        parts["chamfer"] = parts["chamfer"] + weights.per_stage(weights.chamfer, s) * cd.mean()
        if gt_normals is not None:
            parts["normal"] = parts["normal"] + normal_loss(
                p, e, gt_normals, nearest_indices(p, gt_points)
            )
        parts["edge"] = parts["edge"] + edge_loss(p, e)
        c = weights.per_stage(weights.stage_laplace, s)
        parts["laplace"] = parts["laplace"] + c * laplacian_loss(p0, p, adj)
        if s > 0:
            parts["move"] = parts["move"] + c * move_loss(p0, p)
    loss = (
        parts["chamfer"]
        + weights.normal * parts["normal"]
        + weights.edge * parts["edge"]
        + weights.laplace * parts["laplace"]
        + weights.move * parts["move"]
    )
    return {"loss": loss, **parts, "chamfer_final": chamfer_final}
