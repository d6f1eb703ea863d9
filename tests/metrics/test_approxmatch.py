"""The papers' approximate EMDs (PointFlow, PVD/LION): a loop transcription, known answers,
the pairwise orientation of PointFlow's evaluation, and the generation metrics over them."""

from __future__ import annotations

import math

import pytest
import torch
from _metrics_helpers import devices, random_cubes, random_ellipsoids

from zoo.metrics import _approxmatch_native as native
from zoo.metrics import _native, earth_movers_distance, generative_metrics, pairwise_distances
from zoo.metrics.approxmatch import (
    LEVELS_POINTFLOW,
    LEVELS_PVD,
    approxmatch_emd,
    approxmatch_emd_both,
)

BACKENDS = ["fused", "torch"]


def approxmatch_loop(x1: list, x2: list, levels: tuple[float, ...], squared: bool) -> float:
    """Naive reference: the CUDA kernels' three sweeps per level, one scalar at a time, with the
    match matrix stored (as ``approxmatch`` + ``matchcost`` do), divided by N. The initial
    masses are the kernel's ``multiL``, ``multiR`` (C integer division)."""
    n, m = len(x1), len(x2)

    def d2(k: int, l: int) -> float:
        return sum((x2[l][c] - x1[k][c]) ** 2 for c in range(3))

    multi_l, multi_r = (1, n // m) if n >= m else (m // n, 1)
    remain_l, remain_r = [float(multi_l)] * n, [float(multi_r)] * m
    match = [[0.0] * m for _ in range(n)]
    for level in levels:
        ratio_l, ratio_r = [0.0] * n, [0.0] * m
        for k in range(n):
            s = 1e-9
            for l in range(m):
                s += math.exp(level * d2(k, l)) * remain_r[l]
            ratio_l[k] = remain_l[k] / s
        for l in range(m):
            s = 0.0
            for k in range(n):
                s += math.exp(level * d2(k, l)) * ratio_l[k]
            s *= remain_r[l]
            ratio_r[l] = min(remain_r[l] / (s + 1e-9), 1.0) * remain_r[l]
            remain_r[l] = max(0.0, remain_r[l] - s)
        for k in range(n):
            s = 0.0
            for l in range(m):
                w = math.exp(level * d2(k, l)) * ratio_l[k] * ratio_r[l]
                match[k][l] += w
                s += w
            remain_l[k] = max(0.0, remain_l[k] - s)
    cost = 0.0
    for k in range(n):
        for l in range(m):
            cost += match[k][l] * (d2(k, l) if squared else math.sqrt(d2(k, l)))
    return cost / n


VARIANTS = {"pointflow": (LEVELS_POINTFLOW, False), "pvd": (LEVELS_PVD, True)}


def test_levels_are_the_kernels() -> None:
    assert LEVELS_POINTFLOW == (-16384, -4096, -1024, -256, -64, -16, -4, -1, -0.25)
    assert LEVELS_PVD == LEVELS_POINTFLOW + (0.0,)


def _clouds(spread: float, n: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (2, n, 3), (2, m, 3) float64 clouds of unequal spread (anisotropic, shifted)."""
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(2, n, 3, generator=g, dtype=torch.float64) * spread
    x2 = torch.randn(2, m, 3, generator=g, dtype=torch.float64) * spread
    return x1, x2 * torch.tensor([1.0, 0.3, 2.5], dtype=torch.float64) + 0.2 * spread


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["pointflow", "pvd"])
@pytest.mark.parametrize(("spread", "n", "m"), [(0.04, 24, 24), (0.3, 24, 17), (2.0, 17, 40)])
def test_matches_the_loop_transcription(
    backend: str, variant: str, spread: float, n: int, m: int
) -> None:
    """Clouds of unequal spread and size (N != M: the kernel's masses 1 and m // n): agreement
    to 1e-5 relative, in float64 and in float32 (the kernels' precision), for the fused C++
    kernel and the torch path."""
    x1, x2 = _clouds(spread, n, m, int(spread * 100) + n + m)
    levels, squared = VARIANTS[variant]
    got64 = approxmatch_emd(x1, x2, variant, backend=backend)  # type: ignore[arg-type]
    got32 = approxmatch_emd(x1.float(), x2.float(), variant, backend=backend)  # type: ignore[arg-type]
    assert got64.dtype == torch.float64 and got32.dtype == torch.float32
    for p in range(2):
        ref = approxmatch_loop(x1[p].tolist(), x2[p].tolist(), levels, squared)
        assert got64[p].item() == pytest.approx(ref, rel=1e-5)
        assert got32[p].item() == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("variant", ["pointflow", "pvd"])
def test_fused_kernel_skips_only_exact_zeros(variant: str) -> None:
    """Clouds spread wide enough that the fused kernel skips blocks at the steep levels (it
    evaluates fewer than the 2 * levels * N * M dense exponentials); the result still equals the
    loop transcription, in float32 and float64, and so do both orders at once."""
    x1, x2 = _clouds(1.0, 64, 64, 7)
    levels, squared = VARIANTS[variant]
    idx = torch.arange(2)
    evals = torch.zeros(2, dtype=torch.int64)
    both = native.approxmatch_cost(
        x1.float(), idx, x2.float(), idx, levels, squared, True, 1, evals
    )
    dense = 2 * len(levels) * 64 * 64
    assert (evals < 0.9 * dense).all() and (evals > 0).all()
    for p in range(2):
        ref = approxmatch_loop(x1[p].tolist(), x2[p].tolist(), levels, squared)
        swapped = approxmatch_loop(x2[p].tolist(), x1[p].tolist(), levels, squared)
        assert both[p, 0].item() / 64 == pytest.approx(ref, rel=1e-5)
        assert both[p, 1].item() / 64 == pytest.approx(swapped, rel=1e-5)
        got64 = approxmatch_emd(x1[p : p + 1], x2[p : p + 1], variant, backend="fused")  # type: ignore[arg-type]
        assert got64.item() == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("variant", ["pointflow", "pvd"])
def test_fused_equals_torch_on_shapes(variant: str) -> None:
    """512-point shapes in float32 (the benchmark's setting at a quarter size): the fused
    kernel and the torch path agree to 1e-5 relative, one order and both orders."""
    a = random_ellipsoids(2, 512, torch.Generator().manual_seed(20))
    b = random_cubes(2, 512, torch.Generator().manual_seed(21))
    fused = approxmatch_emd_both(a, b, variant, backend="fused")  # type: ignore[arg-type]
    ref = approxmatch_emd_both(a, b, variant, backend="torch")  # type: ignore[arg-type]
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=0)
    one = approxmatch_emd(b, a, variant, backend="fused")  # type: ignore[arg-type]
    torch.testing.assert_close(one, ref[:, 1], rtol=1e-5, atol=0)


def test_without_a_compiler_the_torch_path_runs_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setattr(_native, "_libraries", {})
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    x1, x2 = _clouds(0.3, 20, 20, 3)
    expected = approxmatch_emd(x1, x2, backend="torch")
    with pytest.warns(RuntimeWarning, match="could not be built"):
        got = approxmatch_emd(x1, x2)
    torch.testing.assert_close(got, expected)
    d = pairwise_distances(x1.float(), None, "emd_pointflow")  # no second warning, torch path
    assert d[0, 1].item() == pytest.approx(approxmatch_emd(x1[1:], x1[:1]).item(), rel=1e-5)
    with pytest.raises(RuntimeError, match="could not be built"):
        approxmatch_emd(x1, x2, backend="fused")


def _grid(spacing: float) -> torch.Tensor:
    """(64, 3) points of a 4x4x4 grid: neighbours far apart at the finest level."""
    r = torch.arange(4, dtype=torch.float64) * spacing
    return torch.cartesian_prod(r, r, r)


@pytest.mark.parametrize("variant", ["pointflow", "pvd"])
def test_known_answers(variant: str) -> None:
    x = _grid(0.2)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    # Identical (even permuted) clouds: every point is matched to itself at the first level.
    assert earth_movers_distance(x, x[perm], method=variant).item() == pytest.approx(0, abs=1e-9)
    # A small translation t: each point to its own translate at the first level, cost |t|
    # (PointFlow) or |t|^2 (PVD, squared cost).
    t = torch.tensor([0.004, -0.003, 0.005], dtype=torch.float64)
    expected = t.square().sum().item() if variant == "pvd" else t.norm().item()
    got = earth_movers_distance(x, x[perm] + t, method=variant).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_the_level_zero_pass_completes_the_transport() -> None:
    """Two single points 10 apart: PointFlow's nine levels move only exp(-25) / (1e-9 +
    exp(-25)) of the mass (the last level, -1/4, has weight exp(-25)); PVD's level-0 pass moves
    the rest, at the squared cost 100."""
    x1 = torch.zeros(1, 3, dtype=torch.float64)
    x2 = torch.tensor([[10.0, 0.0, 0.0]], dtype=torch.float64)
    w = math.exp(-25.0)
    pointflow = earth_movers_distance(x1, x2, method="pointflow").item()
    assert pointflow == pytest.approx(10 * w / (1e-9 + w), rel=1e-6)
    assert earth_movers_distance(x1, x2, method="pvd").item() == pytest.approx(100.0, rel=1e-8)


@pytest.mark.parametrize("device", devices())
def test_batched_device_and_asymmetry(device: str) -> None:
    a, b = (
        random_ellipsoids(3, 50, torch.Generator().manual_seed(1)),
        random_cubes(3, 50, torch.Generator().manual_seed(2)),
    )
    batch = earth_movers_distance(a.to(device), b.to(device), method="pointflow")
    assert batch.shape == (3,) and batch.device.type == device
    for i in range(3):
        one = earth_movers_distance(a[i], b[i], method="pointflow").item()
        assert batch[i].item() == pytest.approx(one, rel=1e-5)
    # The approximation is not symmetric: the argument order matters (hence the pairwise
    # orientation below).
    swapped = earth_movers_distance(b, a, method="pointflow")
    assert not torch.allclose(swapped, batch.cpu(), rtol=1e-7, atol=0)


@pytest.mark.parametrize("distance", ["emd_pointflow", "emd_pvd"])
def test_pairwise_follows_pointflows_orientation(distance: str) -> None:
    """D[i, j] = approxmatch(x1=b_j, x2=a_i); with b=None every ordered pair, diagonal 0."""
    method = distance.removeprefix("emd_")
    a, b = (
        random_ellipsoids(3, 40, torch.Generator().manual_seed(3)),
        random_cubes(2, 40, torch.Generator().manual_seed(4)),
    )
    d_ab = pairwise_distances(a, b, distance)  # type: ignore[arg-type]
    d_aa = pairwise_distances(a, None, distance)  # type: ignore[arg-type]
    for i in range(3):
        for j in range(2):
            expected = earth_movers_distance(b[j], a[i], method=method).item()  # type: ignore[arg-type]
            assert d_ab[i, j].item() == pytest.approx(expected, rel=1e-5)
        for j in range(3):
            expected = 0.0 if i == j else earth_movers_distance(a[j], a[i], method=method).item()  # type: ignore[arg-type]
            assert d_aa[i, j].item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("distance", ["emd_pointflow", "emd_pvd"])
def test_generation_metrics_on_the_easy_cases(distance: str) -> None:
    refs = random_ellipsoids(5, 64, torch.Generator().manual_seed(10))
    same = generative_metrics(refs.clone(), refs, distance=distance)  # type: ignore[arg-type]
    assert same["cov"] == 1.0 and same["1nna"] == 0.0
    far = random_cubes(5, 64, torch.Generator().manual_seed(11)) + torch.tensor([2.0, 0, 0])
    apart = generative_metrics(far, refs, distance=distance)  # type: ignore[arg-type]
    assert apart["1nna"] == 1.0
    assert apart["mmd"] > 10 * same["mmd"]


@pytest.mark.parametrize("variant", ["pointflow", "pvd"])
def test_both_orders_at_once_equal_two_calls(variant: str) -> None:
    a, b = (
        random_ellipsoids(2, 60, torch.Generator().manual_seed(5)),
        random_cubes(2, 60, torch.Generator().manual_seed(6)),
    )
    both = approxmatch_emd_both(a, b, variant)  # type: ignore[arg-type]
    torch.testing.assert_close(both[:, 0], approxmatch_emd(a, b, variant), rtol=1e-5, atol=0)  # type: ignore[arg-type]
    torch.testing.assert_close(both[:, 1], approxmatch_emd(b, a, variant), rtol=1e-5, atol=0)  # type: ignore[arg-type]
