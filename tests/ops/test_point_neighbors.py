"""zoo.ops.point_neighbors: the voxel-hash radius search against brute force and hand-made
known answers."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.ops.point_neighbors import PointGrid, radius_knn, radius_knn_brute


@pytest.mark.parametrize(("n", "radius", "k"), [(500, 0.15, 8), (2000, 0.05, 4), (50, 0.5, 8)])
def test_matches_brute_force(n, radius, k):
    gen = torch.Generator().manual_seed(n)
    points = torch.rand(n, 3, generator=gen) * 2 - 1
    queries = torch.rand(300, 3, generator=gen) * 2.4 - 1.2  # some outside the points' box
    idx, d2 = radius_knn(queries, PointGrid(points, radius), k)
    ref_idx, ref_d2 = radius_knn_brute(queries, points, k, radius)
    assert torch.equal(torch.isinf(d2), torch.isinf(ref_d2))
    finite = torch.isfinite(d2)
    assert torch.allclose(d2[finite], ref_d2[finite], atol=1e-6)
    assert torch.equal(idx, ref_idx)  # random points: no ties
    assert bool(finite.any()) and bool((~finite).any())  # both cases exercised


def test_clustered_points_and_a_smaller_radius():
    """Many points in one cell (many slot iterations) and a radius below the cell size."""
    gen = torch.Generator().manual_seed(1)
    points = torch.cat([torch.rand(300, 3, generator=gen) * 0.05, torch.rand(50, 3, generator=gen)])
    grid = PointGrid(points, 0.2)
    assert grid.max_count >= 300
    queries = torch.rand(100, 3, generator=gen) * 0.3
    idx, d2 = radius_knn(queries, grid, 8, radius=0.1)
    ref_idx, ref_d2 = radius_knn_brute(queries, points, 8, 0.1)
    assert torch.equal(idx, ref_idx)
    assert torch.allclose(d2[idx >= 0], ref_d2[idx >= 0], atol=1e-6)


def test_hand_made_answer():
    points = torch.tensor([[0.0, 0, 0], [0.3, 0, 0], [0, 0.1, 0], [1.0, 1, 1]])
    idx, d2 = radius_knn(torch.tensor([[0.0, 0, 0], [5.0, 5, 5]]), PointGrid(points, 0.35), 3)
    assert idx.tolist() == [[0, 2, 1], [-1, -1, -1]]
    assert torch.allclose(d2[0], torch.tensor([0.0, 0.01, 0.09]))
    assert torch.isinf(d2[1]).all()


def test_empty_inputs_and_bad_arguments():
    idx, d2 = radius_knn(torch.zeros(2, 3), PointGrid(torch.zeros(0, 3), 0.1), 4)
    assert (idx == -1).all() and torch.isinf(d2).all()
    idx, _ = radius_knn(torch.zeros(0, 3), PointGrid(torch.rand(5, 3), 0.1), 4)
    assert idx.shape == (0, 4)
    with pytest.raises(ValueError, match="cell size"):
        radius_knn(torch.zeros(1, 3), PointGrid(torch.rand(5, 3), 0.1), 4, radius=0.2)
    with pytest.raises(ValueError, match="radius"):
        PointGrid(torch.rand(5, 3), math.nan)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        PointGrid(torch.rand(5, 2), 0.1)


def test_sparse_key_lookup_matches_the_dense_table(monkeypatch):
    import zoo.ops.point_neighbors as pn

    gen = torch.Generator().manual_seed(3)
    points = torch.rand(400, 3, generator=gen)
    queries = torch.rand(200, 3, generator=gen) * 1.2 - 0.1
    dense = radius_knn(queries, PointGrid(points, 0.1), 6)
    monkeypatch.setattr(pn, "DENSE_TABLE_CELLS", 0)
    grid = PointGrid(points, 0.1)
    assert grid.table is None
    sparse = radius_knn(queries, grid, 6)
    assert torch.equal(dense[0], sparse[0]) and torch.equal(dense[1], sparse[1])
