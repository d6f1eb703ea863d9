"""Earth mover's distance: brute-force permutations, shifts, permutations, approximation error."""

from __future__ import annotations

import itertools

import pytest
import torch
from _metrics_helpers import devices, fibonacci_sphere

from zoo.metrics import earth_movers_distance


def test_exact_equals_enumeration_of_all_matchings() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.rand(7, 3, generator=g, dtype=torch.float64),
        torch.rand(7, 3, generator=g, dtype=torch.float64),
    )
    best = min(
        (x - y[list(p)]).norm(dim=-1).mean().item() for p in itertools.permutations(range(7))
    )
    assert earth_movers_distance(x, y).item() == pytest.approx(best, rel=1e-12)
    # Matching by index (not optimal) is worse than the optimum.
    assert (x - y).norm(dim=-1).mean().item() > best


@pytest.mark.parametrize("method", ["exact", "approx"])
def test_shift_gives_the_shift_length(method: str) -> None:
    x = torch.rand(1500, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.tensor([0.03, -0.04, 0.12], dtype=torch.float64)
    emd = earth_movers_distance(x, x + t, method=method, leaf_size=256).item()
    assert emd == pytest.approx(t.norm().item(), rel=1e-9)


@pytest.mark.parametrize("method", ["exact", "approx"])
def test_permutation_of_itself_is_zero(method: str) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1200, 3, generator=g)
    perm = torch.randperm(1200, generator=g)
    assert earth_movers_distance(x, x[perm], method=method, leaf_size=256).item() == 0.0


def test_approximation_within_documented_error_of_exact() -> None:
    """Module docstring: two samples of one surface at N = 2048, +0.4..0.6 % (we allow 1.5 %)."""
    g = torch.Generator().manual_seed(3)
    sphere = fibonacci_sphere(40000, 0.5)
    x = sphere[torch.randperm(40000, generator=g)[:2048]]
    y = sphere[torch.randperm(40000, generator=g)[:2048]]
    exact = earth_movers_distance(x, y, method="exact").item()
    approx = earth_movers_distance(x, y, method="approx").item()
    assert exact - 1e-12 <= approx <= exact * 1.015  # an upper bound, and close
    coarse = earth_movers_distance(x, y, method="approx", iterations=0).item()
    assert approx <= coarse  # refinement never increases the cost


def test_auto_switches_to_approx_above_the_threshold() -> None:
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(300, 3, generator=g), torch.rand(300, 3, generator=g)
    exact = earth_movers_distance(x, y, method="exact")
    assert earth_movers_distance(x, y) == exact
    approx = earth_movers_distance(x, y, method="approx", leaf_size=64)
    assert earth_movers_distance(x, y, exact_max_points=100, leaf_size=64) == approx
    assert approx >= exact - 1e-6


@pytest.mark.parametrize("device", devices())
def test_batched_device_and_gradient(device: str) -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 50, 3, generator=g).to(device).requires_grad_()
    y = torch.rand(3, 50, 3, generator=g).to(device)
    emd = earth_movers_distance(x, y)
    assert emd.shape == (3,) and emd.device.type == device
    for i in range(3):
        torch.testing.assert_close(emd[i], earth_movers_distance(x[i], y[i]))
    emd.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"equal size.*\(10, 3\).*\(11, 3\)"):
        earth_movers_distance(torch.zeros(10, 3), torch.zeros(11, 3))
    with pytest.raises(ValueError, match="method"):
        earth_movers_distance(torch.zeros(4, 3), torch.zeros(4, 3), method="sinkhorn")  # type: ignore[arg-type]
