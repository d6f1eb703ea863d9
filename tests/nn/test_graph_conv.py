"""GraphConv / Adjacency (sparse CSR and index_add paths) against naive dense references."""

from __future__ import annotations

import pytest
import torch
import trimesh

from zoo.nn.graph_conv import (
    Adjacency,
    GraphConv,
    GraphResBlock,
    edges_from_faces,
    laplacian_coordinates,
)

# A tetrahedron plus a pendant vertex 4 attached to 0 and an isolated vertex 5.
TET_FACES = torch.tensor([[0, 1, 2], [0, 3, 1], [1, 3, 2], [2, 3, 0]])
EDGES = torch.cat([edges_from_faces(TET_FACES), torch.tensor([[0, 4]])])
NORMS = ["mean", "sym", "sum"]


def naive_adjacency(edges: torch.Tensor, n: int, normalization: str) -> torch.Tensor:
    """Loop-based reference: a_pq by hand from neighbour lists."""
    nbrs: list[set[int]] = [set() for _ in range(n)]
    for i, j in edges.tolist():
        nbrs[i].add(j)
        nbrs[j].add(i)
    a = torch.zeros(n, n)
    for p in range(n):
        for q in nbrs[p]:
            if normalization == "sum":
                a[p, q] = 1.0
            elif normalization == "mean":
                a[p, q] = 1.0 / len(nbrs[p])
            else:
                a[p, q] = 1.0 / (len(nbrs[p]) * len(nbrs[q])) ** 0.5
    return a


def test_edges_from_faces_tetrahedron() -> None:
    e = edges_from_faces(TET_FACES)
    assert e.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]


def test_edges_from_faces_icosphere_counts() -> None:
    ico = trimesh.creation.icosphere(subdivisions=1)
    e = edges_from_faces(torch.as_tensor(ico.faces))
    assert len(e) == len(ico.edges_unique) == 3 * len(ico.faces) // 2  # closed mesh


@pytest.mark.parametrize("normalization", NORMS)
def test_dense_adjacency_matches_naive(normalization: str) -> None:
    a = Adjacency(EDGES, 6, normalization).dense()
    torch.testing.assert_close(a, naive_adjacency(EDGES, 6, normalization))
    assert a[5].abs().sum() == 0  # isolated vertex


@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("in_dim,out_dim", [(4, 3), (3, 5)])  # both aggregation orders
def test_graph_conv_matches_dense_reference(normalization: str, in_dim: int, out_dim: int) -> None:
    torch.manual_seed(0)
    conv = GraphConv(in_dim, out_dim)
    torch.nn.init.normal_(conv.self_linear.bias)
    adj = Adjacency(EDGES, 6, normalization)
    x = torch.randn(2, 6, in_dim)  # (B, V, C)
    a = naive_adjacency(EDGES, 6, normalization)
    w0, w1, b = conv.self_linear.weight, conv.nbr_linear.weight, conv.self_linear.bias
    expected = x @ w0.T + a @ (x @ w1.T) + b  # (B, V, out)
    torch.testing.assert_close(conv(x, adj), expected, rtol=1e-5, atol=1e-6)
    # Unbatched and extra leading dimensions give the same rows.
    torch.testing.assert_close(conv(x[1], adj), expected[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(conv(x[None], adj)[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("normalization", NORMS)
def test_index_add_fallback_matches_dense(normalization: str) -> None:
    torch.manual_seed(3)
    adj = Adjacency(EDGES, 6, normalization)
    x = torch.randn(2, 6, 4).half()  # no CSR kernels for half: the index_add path
    expected = naive_adjacency(EDGES, 6, normalization) @ x.float()
    torch.testing.assert_close(adj(x).float(), expected, rtol=1e-2, atol=1e-2)


def test_graph_conv_gradients_match_dense() -> None:
    torch.manual_seed(1)
    conv = GraphConv(3, 2)
    adj = Adjacency(EDGES, 6, "mean")  # not symmetric: the backward needs A^T
    x = torch.randn(6, 3, requires_grad=True)
    conv(x, adj).square().sum().backward()
    g_sparse, w_grad = x.grad.clone(), conv.nbr_linear.weight.grad.clone()
    x.grad = None
    conv.zero_grad()
    a = naive_adjacency(EDGES, 6, "mean")
    y = x @ conv.self_linear.weight.T + a @ (x @ conv.nbr_linear.weight.T) + conv.self_linear.bias
    y.square().sum().backward()
    torch.testing.assert_close(g_sparse, x.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w_grad, conv.nbr_linear.weight.grad, rtol=1e-5, atol=1e-6)


def test_graph_conv_is_permutation_equivariant() -> None:
    torch.manual_seed(2)
    conv = GraphConv(3, 4)
    x = torch.randn(6, 3)
    perm = torch.randperm(6)
    inv = torch.argsort(perm)
    adj_p = Adjacency(inv[EDGES], 6)  # vertex perm[k] becomes k
    out = conv(x[perm], adj_p)
    torch.testing.assert_close(out, conv(x, Adjacency(EDGES, 6))[perm], rtol=1e-5, atol=1e-6)


def test_zero_init_and_resblock() -> None:
    adj = Adjacency(EDGES, 6)
    conv = GraphConv(3, 3, zero_init=True)
    assert conv(torch.randn(2, 6, 3), adj).abs().max() == 0
    block = GraphResBlock(8, 16)
    h = torch.randn(2, 6, 8)
    ref = 0.5 * (h + torch.relu(block.conv2(torch.relu(block.conv1(h, adj)), adj)))
    torch.testing.assert_close(block(h, adj), ref)


def test_laplacian_coordinates_vanish_at_regular_fan_centre() -> None:
    # A fan: centre 0 with 6 rim vertices evenly on a circle -> delta_0 = 0.
    ang = torch.arange(6) * (2 * torch.pi / 6)
    pts = torch.cat([torch.zeros(1, 3), torch.stack([ang.cos(), ang.sin(), 0 * ang], 1)])
    edges = torch.stack([torch.zeros(6, dtype=torch.long), torch.arange(1, 7)], 1)
    lap = laplacian_coordinates(pts, Adjacency(edges, 7))
    torch.testing.assert_close(lap[0], torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(lap[1:], pts[1:])  # each rim vertex's only neighbour is 0


def test_from_faces_and_bad_inputs() -> None:
    adj = Adjacency.from_faces(TET_FACES, 4, "sum")
    torch.testing.assert_close(adj.dense(), torch.ones(4, 4) - torch.eye(4))
    conv = GraphConv(3, 4)
    with pytest.raises(ValueError, match="x must be"):
        conv(torch.randn(6, 2), Adjacency(EDGES, 6))
    with pytest.raises(ValueError, match="x must be"):
        conv(torch.randn(4, 3), Adjacency(EDGES, 6))
    with pytest.raises(ValueError, match="outside"):
        Adjacency(EDGES, 4)
    with pytest.raises(ValueError, match="edges must be"):
        Adjacency(EDGES[:, :1], 6)
    with pytest.raises(ValueError, match="normalization"):
        Adjacency(EDGES, 6, "bogus")  # type: ignore[arg-type]
