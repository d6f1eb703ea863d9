"""Graph convolution over a mesh's vertex adjacency (Kipf & Welling; Pixel2Mesh's G-ResNet).

Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional Networks" (ICLR 2017)
propagate features with a normalised adjacency, ``H' = A_hat H W``. Pixel2Mesh (Wang et al.,
"Pixel2Mesh: Generating 3D Mesh Models from Single RGB Images", ECCV 2018, eq. 1) keeps the
vertex's own feature apart from its neighbours' with two weight matrices:

    f'_p = W_0 f_p + sum_{q in N(p)} a_pq W_1 f_q + b

where ``a_pq`` are the entries of the normalised adjacency :class:`Adjacency`, built once per
graph from an undirected edge list (E, 2) and applied as a sparse (CSR) matrix product, O(E C);
on devices without sparse CSR kernels it falls back to ``index_add`` over the 2E directed
messages (same result). The graph is an argument of ``forward``, not part of the layer, so one
layer runs on any mesh, e.g. on every level of a coarse-to-fine hierarchy. Normalisations:

- ``"mean"``: ``a_pq = 1 / deg(p)``, the row-normalised ``D^-1 A`` (the neighbours' average);
- ``"sym"``: ``a_pq = 1 / sqrt(deg(p) deg(q))``, Kipf & Welling's ``D^-1/2 A D^-1/2``;
- ``"sum"``: ``a_pq = 1``, the plain adjacency.

:class:`GraphResBlock` is Pixel2Mesh's residual block (two graph convolutions with ReLU, output
``(x + h) / 2``, reference ``GResBlock``).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Normalization = Literal["mean", "sym", "sum"]
NORMALIZATIONS = ("mean", "sym", "sum")
SPARSE_DEVICES = ("cpu", "cuda")  # device types with sparse CSR @ dense (and its backward)


def edges_from_faces(faces: Tensor) -> Tensor:
    """The unique undirected edges (E, 2), ``i < j``, sorted, of triangles ``faces`` (F, 3)."""
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    faces = faces.long()
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # (3F, 2)
    return torch.unique(torch.sort(e, dim=1).values, dim=0)  # (E, 2), lexicographic


def _check_normalization(normalization: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def _check_edges(edges: Tensor, n: int) -> None:
    if edges.dim() != 2 or edges.shape[1] != 2:
        raise ValueError(f"edges must be (E, 2), got {tuple(edges.shape)}")
    if len(edges) and (int(edges.min()) < 0 or int(edges.max()) >= n):
        raise ValueError(
            f"edges index vertices outside [0, {n}) (range {int(edges.min())}..{int(edges.max())})"
        )


class _SparseMatmul(torch.autograd.Function):
    """``a @ x`` for a constant sparse CSR ``a`` (n, n) and dense x (n, K), with the backward
    ``a^T @ grad`` through a precomputed CSR ``a^T`` (torch's own backward re-converts the
    transpose to CSR on every call, which dominated the cost)."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:
        ctx.a_t = a_t
        return a @ x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor]:
        return None, None, ctx.a_t @ grad


class Adjacency:
    """The normalised adjacency ``A_hat`` (n, n) of an undirected graph, ready to apply.

    Args:
        edges: (E, 2) undirected edges (each pair once; the reverse direction is implied).
        n: number of vertices (isolated vertices are allowed: their rows are zero).
        normalization: ``"mean"``, ``"sym"`` or ``"sum"`` (module docstring).
    ``adj @ x`` (or ``adj(x)``) maps features (..., n, C) to ``A_hat x`` of the same shape.
    """

    def __init__(self, edges: Tensor, n: int, normalization: Normalization = "mean") -> None:
        _check_normalization(normalization)
        _check_edges(edges, n)
        self.n, self.normalization = int(n), normalization
        self.edges = edges.long()
        e = self.edges
        self.dst = torch.cat([e[:, 0], e[:, 1]])  # (2E,) message k goes src[k] -> dst[k]
        self.src = torch.cat([e[:, 1], e[:, 0]])
        ones = torch.ones(len(self.dst), device=e.device)
        deg = torch.zeros(self.n, device=e.device).index_add_(0, self.dst, ones).clamp_min(1.0)
        if normalization == "sum":
            self.weights = ones
        elif normalization == "mean":
            self.weights = 1.0 / deg[self.dst]
        else:
            self.weights = torch.rsqrt(deg[self.dst] * deg[self.src])
        self._csr: dict[tuple[torch.dtype, bool], Tensor] = {}

    @classmethod
    def from_faces(cls, faces: Tensor, n: int, normalization: Normalization = "mean") -> Adjacency:
        """The vertex adjacency of a triangle mesh with faces (F, 3) on n vertices."""
        return cls(edges_from_faces(faces), n, normalization)

    @property
    def device(self) -> torch.device:
        return self.edges.device

    def to(self, device: torch.device | str) -> Adjacency:
        """This graph on ``device`` (self when already there)."""
        device = torch.device(device)
        if self.device == device:
            return self
        return Adjacency(self.edges.to(device), self.n, self.normalization)  # type: ignore[arg-type]

    def sparse(self, dtype: torch.dtype = torch.float32, transpose: bool = False) -> Tensor:
        """The (n, n) sparse CSR matrix, or its transpose (built once per dtype)."""
        key = (dtype, transpose)
        if key not in self._csr:
            rows, cols = (self.src, self.dst) if transpose else (self.dst, self.src)
            coo = torch.sparse_coo_tensor(
                torch.stack([rows, cols]), self.weights.to(dtype), (self.n, self.n),
                check_invariants=True,
            ).coalesce()  # fmt: skip
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support.*")
                self._csr[key] = coo.to_sparse_csr()
        return self._csr[key]

    def dense(self) -> Tensor:
        """The (n, n) dense matrix (for tests and tiny graphs)."""
        a = torch.zeros(self.n, self.n, device=self.device)
        return a.index_put_((self.dst, self.src), self.weights, accumulate=True)

    def __call__(self, x: Tensor) -> Tensor:
        """``A_hat x`` for x (..., n, C); rows of isolated vertices are zero."""
        if x.dim() < 2 or x.shape[-2] != self.n:
            raise ValueError(f"x must be (..., {self.n}, C), got {tuple(x.shape)}")
        if x.device != self.device:
            raise ValueError(f"x is on {x.device} but the adjacency on {self.device}")
        if x.device.type not in SPARSE_DEVICES or x.dtype not in (torch.float32, torch.float64):
            msg = x.index_select(-2, self.src) * self.weights.to(x.dtype)[:, None]
            return torch.zeros_like(x).index_add_(x.dim() - 2, self.dst, msg)
        lead, c = x.shape[:-2], x.shape[-1]
        xt = x.reshape(-1, self.n, c).transpose(0, 1).reshape(self.n, -1)  # (n, B*C)
        a, a_t = self.sparse(x.dtype), self.sparse(x.dtype, transpose=True)
        out = _SparseMatmul.apply(a, a_t, xt)  # (n, B*C)
        return out.reshape(self.n, -1, c).transpose(0, 1).reshape(*lead, self.n, c)

    __matmul__ = __call__

    def __repr__(self) -> str:
        return f"Adjacency(n={self.n}, edges={len(self.edges)}, normalization={self.normalization})"


class GraphConv(nn.Module):
    """``y_p = W_self x_p + sum_q a_pq W_nbr x_q + b`` on (..., V, in_dim) features.

    Args:
        in_dim, out_dim: feature sizes.
        bias: add ``b``.
        zero_init: start with all weights zero (for a last layer that predicts offsets, so that
            the network starts at the identity deformation).
    Weights are Xavier-uniform, as in the Pixel2Mesh reference (``GConv``), bias zero. The
    normalisation of ``a_pq`` is the :class:`Adjacency`'s, passed to ``forward``.
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, zero_init: bool = False):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.self_linear = nn.Linear(in_dim, out_dim, bias=bias)
        self.nbr_linear = nn.Linear(in_dim, out_dim, bias=False)
        for lin in (self.self_linear, self.nbr_linear):
            init = nn.init.zeros_ if zero_init else nn.init.xavier_uniform_
            init(lin.weight)
        if bias:
            nn.init.zeros_(self.self_linear.bias)

    def forward(self, x: Tensor, adj: Adjacency) -> Tensor:
        """x: (..., V, in_dim), adj: the graph on V vertices. Returns (..., V, out_dim)."""
        if x.dim() < 2 or x.shape[-1] != self.in_dim:
            raise ValueError(f"x must be (..., V, {self.in_dim}), got {tuple(x.shape)}")
        # Aggregate the narrower side: after the projection when it shrinks the features.
        if self.out_dim <= self.in_dim:
            nbr = adj(self.nbr_linear(x))
        else:
            nbr = self.nbr_linear(adj(x))
        return self.self_linear(x) + nbr

    def extra_repr(self) -> str:
        return f"{self.in_dim} -> {self.out_dim}"


class GraphResBlock(nn.Module):
    """Pixel2Mesh's G-ResNet block: ``(x + relu(conv2(relu(conv1(x))))) / 2`` (reference
    ``GResBlock`` with activation; the halving keeps the scale of stacked blocks constant)."""

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim
        self.conv1 = GraphConv(dim, hidden)
        self.conv2 = GraphConv(hidden, dim)

    def forward(self, x: Tensor, adj: Adjacency) -> Tensor:
        h = F.relu(self.conv1(x, adj))
        h = F.relu(self.conv2(h, adj))
        return 0.5 * (x + h)


def laplacian_coordinates(x: Tensor, adj: Adjacency) -> Tensor:
    """``delta_p = x_p - sum_q a_pq x_q`` (..., V, C); with ``"mean"`` normalisation these are the
    uniform Laplacian coordinates ``x_p - mean_{q in N(p)} x_q`` of Pixel2Mesh's regulariser."""
    return x - adj(x)


__all__ = [
    "Adjacency",
    "GraphConv",
    "GraphResBlock",
    "edges_from_faces",
    "laplacian_coordinates",
]
