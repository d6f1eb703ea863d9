"""Chamfer distance: hand cases, concentric spheres, conventions, batching, gradients."""

from __future__ import annotations

import pytest
import torch
from _metrics_helpers import devices, fibonacci_sphere

from zoo.metrics import chamfer_distance, nearest_neighbors_naive


def _naive_chamfer(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").square()
    return d.min(1).values.mean() + d.min(0).values.mean()


def test_hand_case_both_conventions() -> None:
    x = torch.tensor([[0.0, 0, 0], [2, 0, 0]])
    y = torch.tensor([[0.0, 0, 0]])
    # x -> y: squared distances 0 and 4 (mean 2); y -> x: 0.
    assert chamfer_distance(x, y).item() == pytest.approx(2.0)
    # ONet Chamfer-L1: 0.5 * (mean(0, 2) + 0) = 0.5.
    assert chamfer_distance(x, y, squared=False).item() == pytest.approx(0.5)
    assert chamfer_distance(x, x).item() == 0.0


@pytest.mark.parametrize(
    ("backend", "n", "dtype"),
    [
        ("auto", 20000, torch.float64),
        ("kdtree", 20000, torch.float32),
        ("torch", 5000, torch.float32),
    ],
)
def test_concentric_spheres_approach_twice_the_squared_gap(
    backend: str, n: int, dtype: torch.dtype
) -> None:
    r1, r2 = 0.5, 0.4
    x, y = fibonacci_sphere(n, r1).to(dtype), fibonacci_sphere(3 * n // 4, r2).to(dtype)
    expected = 2 * (r1 - r2) ** 2
    cd = chamfer_distance(x, y, backend=backend).item()
    # Every point is at least |r1 - r2| from the other sphere, and dense sampling adds little
    # (tangential offsets of about the point spacing s: relative excess ~ s^2 / (r1 - r2)^2).
    tol = 0.01 if n >= 20000 else 0.03
    assert expected * (1 - 1e-6) <= cd < expected * (1 + tol)
    l1 = chamfer_distance(x, y, squared=False, backend=backend).item()
    assert (r1 - r2) * (1 - 1e-6) <= l1 < (r1 - r2) * (1 + tol)


def test_sparse_spheres_are_further_from_the_limit() -> None:
    """The limit is approached from above: sparser sampling gives a larger value."""
    cd_sparse = chamfer_distance(fibonacci_sphere(200, 0.5), fibonacci_sphere(150, 0.4)).item()
    cd_dense = chamfer_distance(fibonacci_sphere(8000, 0.5), fibonacci_sphere(6000, 0.4)).item()
    assert 0.02 < cd_dense < cd_sparse


@pytest.mark.parametrize("backend", ["torch", "kdtree"])
def test_fast_equals_bruteforce_and_batched_equals_per_item(backend: str) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 600, 3, generator=g), torch.randn(5, 400, 3, generator=g)
    batched = chamfer_distance(x, y, backend=backend)
    assert batched.shape == (5,)
    for i in range(5):
        ref = _naive_chamfer(x[i], y[i])
        torch.testing.assert_close(chamfer_distance(x[i], y[i], backend=backend), ref)
        torch.testing.assert_close(batched[i], ref)
    sq_x, _ = nearest_neighbors_naive(x, y)
    sq_y, _ = nearest_neighbors_naive(y, x)
    l1 = 0.5 * (sq_x.sqrt().mean(-1) + sq_y.sqrt().mean(-1))
    torch.testing.assert_close(chamfer_distance(x, y, squared=False, backend=backend), l1)


@pytest.mark.parametrize("device", devices())
def test_device_and_gradient(device: str) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, generator=g).to(device).requires_grad_()
    y = torch.randn(80, 3, generator=g).to(device)
    cd = chamfer_distance(x, y)
    assert cd.device.type == device and cd.ndim == 0
    cd.backward()
    # Moving x onto y is the descent direction: one small step must reduce the distance.
    with torch.no_grad():
        assert chamfer_distance(x - 0.1 * x.grad, y) < cd


def test_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, squared=False), (x, y))


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"\(4, 3, 2\)"):
        chamfer_distance(torch.zeros(4, 3, 2), torch.zeros(4, 3, 2))
    with pytest.raises(ValueError, match="floating"):
        chamfer_distance(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3))
