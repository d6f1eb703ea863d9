"""Nearest-neighbour search: every fast backend agrees with the brute-force cdist reference."""

from __future__ import annotations

import pytest
import torch
from _metrics_helpers import devices

from zoo.metrics import nearest_neighbors, nearest_neighbors_naive


def _clouds(b: int, n: int, m: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, 3, generator=g) - 0.5, torch.rand(b, m, 3, generator=g) - 0.5


@pytest.mark.parametrize("backend", ["auto", "torch", "kdtree", "open3d"])
def test_fast_backends_match_bruteforce(backend: str) -> None:
    x, y = _clouds(3, 700, 500)
    sq_ref, idx_ref = nearest_neighbors_naive(x, y)
    sq, idx = nearest_neighbors(x, y, backend=backend)
    assert sq.shape == idx.shape == (3, 700) and idx.dtype == torch.int64
    torch.testing.assert_close(sq, sq_ref, rtol=1e-5, atol=1e-8)
    assert (idx == idx_ref).float().mean() > 0.999  # only exact ties may differ
    # The returned distance is the one to the returned index.
    torch.testing.assert_close(
        sq, (x - torch.gather(y, 1, idx[..., None].expand(-1, -1, 3))).square().sum(-1)
    )


def test_naive_reference_is_right_on_a_hand_case() -> None:
    x = torch.tensor([[0.0, 0, 0], [1, 1, 0], [5, 0, 0]])
    y = torch.tensor([[1.0, 0, 0], [1, 2, 0], [4, 0, 0]])
    sq, idx = nearest_neighbors_naive(x, y)
    assert idx.tolist() == [0, 0, 2]
    assert sq.tolist() == [1.0, 1.0, 1.0]


def test_batched_equals_per_item_and_unbatched_shapes() -> None:
    x, y = _clouds(4, 300, 900, seed=1)
    sq, idx = nearest_neighbors(x, y)
    for i in range(4):
        sq_i, idx_i = nearest_neighbors(x[i], y[i])
        assert sq_i.shape == (300,)
        torch.testing.assert_close(sq[i], sq_i)
        assert torch.equal(idx[i], idx_i)


def test_torch_chunking_over_rows_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.metrics.knn as knn

    monkeypatch.setattr(knn, "_TORCH_BUDGET", 1000)  # forces many small chunks
    x, y = _clouds(3, 257, 129, seed=2)
    sq, _ = nearest_neighbors(x, y, backend="torch")
    torch.testing.assert_close(sq, nearest_neighbors_naive(x, y)[0], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("device", devices())
def test_device_agnostic(device: str) -> None:
    x, y = _clouds(2, 200, 300, seed=3)
    sq, idx = nearest_neighbors(x.to(device), y.to(device))
    assert sq.device.type == idx.device.type == device
    torch.testing.assert_close(sq.cpu(), nearest_neighbors_naive(x, y)[0], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("backend", ["torch", "kdtree"])
def test_distances_are_differentiable(backend: str) -> None:
    x, y = _clouds(1, 6, 5, seed=4)
    x, y = x.double().requires_grad_(), y.double().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: nearest_neighbors(a, b, backend=backend)[0], (x, y)
    )


def test_validation_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"x must have shape .* got \(10, 2\)"):
        nearest_neighbors(torch.zeros(10, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="batch sizes differ"):
        nearest_neighbors(torch.zeros(2, 10, 3), torch.zeros(3, 5, 3))
    with pytest.raises(ValueError, match="both"):
        nearest_neighbors(torch.zeros(10, 3), torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="empty"):
        nearest_neighbors(torch.zeros(0, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="backend"):
        nearest_neighbors(torch.zeros(4, 3), torch.zeros(5, 3), backend="bogus")  # type: ignore[arg-type]
