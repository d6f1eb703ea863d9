"""The mesh model's representation ceiling: its template fitted directly to a known surface.

A graph-convolution mesh model can only output the template's deformations: the same vertex
count, connectivity and genus (a sphere's), deformed coarse to fine with the same unpooling.
The ceiling asks what the best such mesh scores: no network, the vertices of every level are
optimised directly (Adam) against the ground-truth surface samples with the model's own
Pixel2Mesh loss (Chamfer + normal + edge + Laplacian + move, its weights), level by level from
the undeformed template, each level starting from the unpooled previous one, as the deformer's
stages do. A direct optimisation is an estimate of the ceiling (a local optimum of the same
loss), not a bound; it is what the network would reach with a perfect encoder and decoder.
"""

from __future__ import annotations

import torch
import trimesh
from torch import Tensor

from zoo.models.mesh_gcn.losses import LossWeights, mesh_losses
from zoo.models.mesh_gcn.template import TemplateHierarchy, unpool

FIT_STEPS = 300  # Adam steps per level (the loss is flat after ~200 on the embedded shapes)
FIT_LR = 5e-3
FIT_POINTS = 4096  # ground-truth samples the loss sees


def fit_template(
    template: TemplateHierarchy,
    points: Tensor,
    normals: Tensor | None,
    weights: LossWeights,
    steps: int = FIT_STEPS,
    lr: float = FIT_LR,
) -> trimesh.Trimesh:
    """The final level of ``template`` fitted to ``points`` (N, 3) (with ``normals``), as a mesh.

    Deterministic for given inputs (no random draws; float64 so that CPUs agree).
    """
    gt = points.double()[None]  # (1, N, 3)
    gt_n = normals.double()[None] if normals is not None else None
    x = template.vertices.double()  # (V0, 3)
    for level in range(template.n_levels):
        if level > 0:
            x = unpool(x, template.parents(level - 1).to(x.device))
        before = x.detach()[None]  # (1, V_l, 3)
        verts = before.clone().requires_grad_(True)
        adj = template.adjacency(level, "mean")
        stage = LossWeights(
            chamfer=(weights.per_stage(weights.chamfer, level),),
            normal=weights.normal,
            edge=weights.edge,
            laplace=weights.laplace,
            move=weights.move if level > 0 else 0.0,
            stage_laplace=(weights.per_stage(weights.stage_laplace, level),),
        )
        opt = torch.optim.Adam([verts], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            loss = mesh_losses([verts], [before], [adj], gt, gt_n, stage)["loss"]
            loss.backward()
            opt.step()
        x = verts.detach()[0]
    faces = template.faces(template.n_levels - 1).cpu().numpy()
    return trimesh.Trimesh(x.cpu().numpy(), faces, process=False)
