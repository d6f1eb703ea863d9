"""Networks of the graph-convolution mesh model: an image encoder and the mesh deformer.

Deformer (Pixel2Mesh, Wang et al. ECCV 2018, Fig. 3 / reference ``P2MModel``): per stage a
"G-ResNet" — a graph convolution to ``hidden`` features, ``blocks`` residual graph blocks, and a
graph convolution to 3 — run on the stage's mesh, with graph unpooling (edge midpoints) between
stages; from the second stage on, the previous stage's hidden features are unpooled and
concatenated to the input, as in the reference. Every vertex is conditioned on one global
shape latent ``z`` (so the same decoder serves point-cloud and image encoders and a latent
prior can make it generative). Pixel2Mesh also conditions every vertex on image features
pooled at its projection ("perceptual feature pooling", Sec. 3.3: the features of the
encoder's maps at the vertex's current position, re-read at every stage); the point-cloud
analogue here is :class:`PointPooling` (every vertex reads, at every stage, the offsets to its
k nearest input points, through a shared MLP max-pooled over the k), used with the point
encoder. A stage predicts an offset that is added to its input coordinates; its last layer
starts at zero, so the untrained network returns the template.

Image encoder: a small CNN (3x3 convolutions, stride 2 then 1, with group norm — no running
statistics, so training and evaluation behave alike even for tiny batches — and ReLU, global
average pool, linear) on one rendered view (:func:`render_input_view`: the shared ray caster
from a fixed orbit camera); a light stand-in for Pixel2Mesh's VGG-16 on ShapeNet renders.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import trimesh
from torch import Tensor, nn

from zoo.data.render_cache import y_up_to_z_up
from zoo.export import orbit_cameras
from zoo.models.mesh_gcn.template import TemplateHierarchy, unpool
from zoo.nn.graph_conv import Adjacency, GraphConv, GraphResBlock, Normalization
from zoo.ops.raycast import render_mesh


class ImageEncoder(nn.Module):
    """(B, H, W, 3) images in [0, 1] -> (B, out_dim) codes.

    Args:
        out_dim: code size.
        channels: widths of the stride-2 conv layers (each halves the resolution).
    """

    def __init__(self, out_dim: int = 128, channels: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [
                nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(min(8, c), c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.GroupNorm(min(8, c), c),
                nn.ReLU(inplace=True),
            ]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, out_dim)
        self.out_dim = out_dim

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (B, H, W, 3), got {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2).float() * 2.0 - 1.0  # (B, 3, H, W) in [-1, 1]
        x = self.features(x).mean(dim=(2, 3))  # (B, C)
        return self.head(x)


def render_input_view(
    mesh: trimesh.Trimesh, view: int = 1, size: int = 64, n_orbit: int = 8
) -> Tensor:
    """The encoder's input image (size, size, 3) in [0, 1] of a ShapeNet-frame (+Y up) mesh.

    Camera ``view`` of :func:`zoo.export.orbit_cameras` (``n_orbit`` cameras on a ring at 25
    degrees elevation, radius 1.6, 40 degree field of view; view 1 of 8 is a three-quarter view)
    around the mesh turned +Z up, rendered by the shared ray caster :func:`render_mesh`.
    """
    if not 0 <= view < n_orbit:
        raise ValueError(f"view must be in [0, {n_orbit}), got {view}")
    cams = orbit_cameras(n_orbit, size)[view : view + 1]
    return render_mesh(y_up_to_z_up(mesh), cams)["rgb"][0]  # (H, W, 3)


class GCNStage(nn.Module):
    """One Pixel2Mesh deformation block: conv_in -> ReLU -> blocks -> conv_out (offsets)."""

    def __init__(self, in_dim: int, hidden: int, blocks: int) -> None:
        super().__init__()
        self.conv_in = GraphConv(in_dim, hidden)
        self.blocks = nn.ModuleList(GraphResBlock(hidden, hidden) for _ in range(blocks))
        self.conv_out = GraphConv(hidden, 3, zero_init=True)

    def forward(self, feat: Tensor, adj: Adjacency) -> tuple[Tensor, Tensor]:
        """feat (B, V, in_dim) -> offsets (B, V, 3), hidden features (B, V, hidden)."""
        h = F.relu(self.conv_in(feat, adj))
        for block in self.blocks:
            h = block(h, adj)
        return self.conv_out(h, adj), h


class PointPooling(nn.Module):
    """Per-vertex features read from the input points near the vertex: the point-cloud
    analogue of Pixel2Mesh's perceptual feature pooling (which reads image features at the
    vertex's projection, at every stage, so each vertex sees the evidence where it is now).

    For a vertex v and its ``k`` nearest input points p_1..p_k, a shared MLP of the scaled
    offsets ``(p_i - v) * offset_scale`` is max-pooled over the k (a PointNet of the vertex's
    neighbourhood in its own frame): the features say where the nearby surface is, relative
    to the vertex. ``offset_scale`` brings the data's 1e-2 to 1e-1 offsets (shapes within a
    unit-diagonal box) to order 1.
    """

    def __init__(self, k: int = 8, dim: int = 32, hidden: int = 32, offset_scale: float = 10.0):
        super().__init__()
        if k < 1 or dim < 1 or hidden < 1:
            raise ValueError(f"need k, dim, hidden >= 1; got {k}, {dim}, {hidden}")
        self.k, self.dim, self.offset_scale = int(k), int(dim), float(offset_scale)
        self.mlp = nn.Sequential(
            nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, dim),
        )  # fmt: skip

    def forward(self, verts: Tensor, points: Tensor) -> Tensor:
        """verts (B, V, 3), points (B, N, 3) -> (B, V, dim)."""
        k = min(self.k, points.shape[1])
        with torch.no_grad():
            idx = torch.cdist(verts, points).topk(k, dim=-1, largest=False).indices  # (B, V, k)
        b = torch.arange(len(points), device=points.device)[:, None, None]
        near = points[b, idx]  # (B, V, k, 3)
        offsets = (near - verts[:, :, None, :]) * self.offset_scale
        return self.mlp(offsets).max(dim=2).values


class MeshDeformer(nn.Module):
    """Deforms the template hierarchy given shape latents z (B, zdim).

    Args:
        template: the mesh hierarchy (one stage per level).
        zdim: latent size.
        hidden: graph-conv width (Pixel2Mesh: 192).
        blocks: residual blocks per stage (Pixel2Mesh: 6).
        normalization: adjacency normalisation of the graph convolutions.
        pool: optional :class:`PointPooling`: every stage also reads, per vertex, features of
            the input points near it (zeros where no points are given, e.g. when sampling).
    """

    def __init__(
        self,
        template: TemplateHierarchy,
        zdim: int,
        hidden: int = 192,
        blocks: int = 6,
        normalization: Normalization = "mean",
        pool: PointPooling | None = None,
    ) -> None:
        super().__init__()
        self.template = template
        self.zdim, self.normalization = zdim, normalization
        self.pool = pool
        pool_dim = pool.dim if pool is not None else 0
        self.stages = nn.ModuleList(
            GCNStage(3 + zdim + pool_dim + (hidden if s > 0 else 0), hidden, blocks)
            for s in range(template.n_levels)
        )

    def forward(
        self, z: Tensor, points: Tensor | None = None, keep: Tensor | None = None
    ) -> dict[str, list[Tensor]]:
        """z: (B, zdim); with a ``pool``, ``points`` (B, N, 3) to read per-vertex features from
        (None: zeros) and ``keep`` (B,) bool: shapes whose pooled features are used (the others
        get zeros, as when sampling; None: all). Returns ``coords`` (per stage (B, V_s, 3),
        after deformation) and ``before`` (per stage, the stage's input: the template, then
        the unpooled previous output), the two lists Pixel2Mesh's Laplacian and move terms
        compare."""
        if z.dim() != 2 or z.shape[1] != self.zdim:
            raise ValueError(f"z must be (B, {self.zdim}), got {tuple(z.shape)}")
        b = len(z)
        x = self.template.vertices.to(z.dtype).expand(b, -1, -1)  # (B, V0, 3)
        h: Tensor | None = None
        coords, before = [], []
        for s, stage in enumerate(self.stages):
            if s > 0:
                parents = self.template.parents(s - 1)
                x, h = unpool(x, parents), unpool(h, parents)
            parts = [x, z[:, None, :].expand(-1, x.shape[1], -1)]
            if self.pool is not None:
                if points is None:
                    local = x.new_zeros(b, x.shape[1], self.pool.dim)
                else:
                    local = self.pool(x, points)  # (B, V, dim): read where the vertex is now
                    if keep is not None:
                        local = local * keep.to(local.dtype)[:, None, None]
                parts.append(local)
            if h is not None:
                parts.append(h)
            adj = self.template.adjacency(s, self.normalization)
            offset, h = stage(torch.cat(parts, dim=-1), adj)
            before.append(x)
            x = x + offset
            coords.append(x)
        return {"coords": coords, "before": before}
