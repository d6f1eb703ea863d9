"""F-score and normal consistency on hand-made cases."""

from __future__ import annotations

import pytest
import torch
from _metrics_helpers import devices, fibonacci_sphere

from zoo.metrics import f_score, normal_consistency


def test_f_score_known_precision_and_recall() -> None:
    y = torch.tensor([[0.0, 0, 0], [10, 0, 0]])  # ground truth
    x = torch.tensor([[0.0, 0, 0], [0.001, 0, 0], [0, 0.002, 0], [5, 5, 5]])  # prediction
    # precision 3/4 (three predicted points near y_0), recall 1/2 (y_1 is missed)
    p, r = 0.75, 0.5
    assert f_score(x, y, threshold=0.01).item() == pytest.approx(2 * p * r / (p + r))  # 0.6
    assert f_score(y, x, threshold=0.01).item() == pytest.approx(0.6)  # P and R swap
    assert f_score(x, y, threshold=100.0).item() == 1.0
    assert f_score(x + 1000, y, threshold=0.01).item() == 0.0  # P = R = 0 -> 0, not NaN


def test_f_score_threshold_is_strict() -> None:
    x, y = torch.tensor([[0.5, 0, 0]]), torch.tensor([[0.0, 0, 0]])
    assert f_score(x, y, threshold=0.5).item() == 0.0
    assert f_score(x, y, threshold=0.5001).item() == 1.0


def test_f_score_batched_and_validation() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 200, 3, generator=g), torch.rand(3, 300, 3, generator=g)
    f = f_score(x, y, threshold=0.05)
    assert f.shape == (3,) and ((f > 0) & (f < 1)).all()
    for i in range(3):
        assert f[i] == f_score(x[i], y[i], threshold=0.05)
    with pytest.raises(ValueError, match="threshold"):
        f_score(x, y, threshold=0.0)


@pytest.mark.parametrize("device", devices())
def test_normal_consistency_identical_flipped_perpendicular(device: str) -> None:
    x = fibonacci_sphere(500).float().to(device)
    n = x.clone()  # outward normals of the unit sphere
    assert normal_consistency(x, n, x, n).item() == pytest.approx(1.0, abs=1e-6)
    assert normal_consistency(x, n, x, -n).item() == pytest.approx(1.0, abs=1e-6)
    assert normal_consistency(x, n, x, 3.0 * n).item() == pytest.approx(1.0, abs=1e-6)  # scale
    tangent = torch.cross(n, torch.randn(3, device=device).expand_as(n), dim=-1)
    assert normal_consistency(x, n, x, tangent).item() == pytest.approx(0.0, abs=1e-6)


def test_normal_consistency_mixed_and_asymmetric_case() -> None:
    x = torch.tensor([[0.0, 0, 0], [1, 0, 0]])
    nx = torch.tensor([[0.0, 0, 1], [0, 0, 1]])
    y = torch.tensor([[0.0, 0, 0]])
    ny = torch.tensor([[0.0, 1, 1]])  # 45 degrees from both x normals
    c = 2**-0.5
    # x -> y: both x points match y_0: mean |cos| = c; y -> x: y_0 matches x_0: c.
    assert normal_consistency(x, nx, y, ny).item() == pytest.approx(c)
    ny2 = torch.tensor([[0.0, 0, -1]])
    assert normal_consistency(x, nx, y, ny2).item() == pytest.approx(1.0)
    nx2 = torch.tensor([[0.0, 0, 1], [1, 0, 0]])  # x_1's normal is perpendicular to y_0's
    # x -> y: (1 + 0) / 2; y -> x: 1; average 0.75
    assert normal_consistency(x, nx2, y, ny2).item() == pytest.approx(0.75)


def test_normal_consistency_batched_and_validation() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 100, 3, generator=g), torch.rand(2, 120, 3, generator=g)
    nx, ny = torch.randn(2, 100, 3, generator=g), torch.randn(2, 120, 3, generator=g)
    nc = normal_consistency(x, nx, y, ny)
    assert nc.shape == (2,)
    torch.testing.assert_close(nc[1], normal_consistency(x[1], nx[1], y[1], ny[1]))
    with pytest.raises(ValueError, match=r"nx must have the shape of x \(2, 100, 3\)"):
        normal_consistency(x, nx[:, :50], y, ny)
