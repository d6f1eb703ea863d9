"""MMD / COV / 1-NNA on constructed cases, and the pairwise distance matrices behind them."""

from __future__ import annotations

import pytest
import torch
from _metrics_helpers import devices, random_cubes, random_ellipsoids

from zoo.metrics import (
    chamfer_distance,
    earth_movers_distance,
    generative_metrics,
    mmd_cov,
    one_nn_accuracy,
    pairwise_distances,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("backend", ["fused", "kdtree", "torch"])
def test_pairwise_chamfer_matches_chamfer_distance(backend: str) -> None:
    # 150 and 130 points: neither a multiple of 16 (the fused kernel's padding) nor equal
    a, b = random_ellipsoids(4, 150, _gen(0)), random_cubes(3, 130, _gen(1))
    d_ab = pairwise_distances(a, b, backend=backend)
    d_aa = pairwise_distances(a, None, backend=backend)
    assert d_ab.shape == (4, 3) and d_aa.shape == (4, 4) and d_ab.dtype == torch.float64
    for i in range(4):
        for j in range(3):
            assert d_ab[i, j].item() == pytest.approx(chamfer_distance(a[i], b[j]).item(), rel=1e-5)
        for j in range(4):
            expected = 0.0 if i == j else chamfer_distance(a[i], a[j]).item()
            assert d_aa[i, j].item() == pytest.approx(expected, rel=1e-5)


def test_fused_chamfer_is_symmetric_and_falls_back_to_the_kdtree_without_a_compiler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zoo.metrics import _native

    a = random_ellipsoids(5, 70, _gen(4)).double()  # float64 in, float32 in the kernel
    b = random_cubes(2, 33, _gen(5))
    fused = pairwise_distances(a, b, backend="fused")
    torch.testing.assert_close(pairwise_distances(b, a, backend="fused"), fused.T)
    monkeypatch.setattr(_native, "_libraries", {})
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.warns(RuntimeWarning, match="could not be built"):
        auto = pairwise_distances(a, b)
    torch.testing.assert_close(auto, fused, rtol=1e-5, atol=0)
    with pytest.raises(RuntimeError, match="could not be built"):
        pairwise_distances(a, b, backend="fused")


def test_pairwise_emd_matches_earth_movers_distance() -> None:
    a, b = random_ellipsoids(3, 40, _gen(2)), random_ellipsoids(2, 40, _gen(3))
    d = pairwise_distances(a, b, "emd")
    for i in range(3):
        for j in range(2):
            assert d[i, j].item() == pytest.approx(
                earth_movers_distance(a[i], b[j]).item(), rel=1e-5
            )
    with pytest.raises(ValueError, match="equal size"):
        pairwise_distances(a, b[:, :30], "emd")


def test_mmd_cov_and_1nna_on_hand_made_matrices() -> None:
    d_sr = torch.tensor([[1.0, 5.0, 9.0], [2.0, 3.0, 8.0]])  # 2 samples x 3 references
    mmd, cov = mmd_cov(d_sr)
    assert mmd == pytest.approx((1 + 3 + 8) / 3)  # column minima
    assert cov == pytest.approx(1 / 3)  # both samples' nearest reference is r0
    d_ss = torch.tensor([[0.0, 4.0], [4.0, 0.0]])
    d_rr = torch.tensor([[0.0, 0.5, 7.0], [0.5, 0.0, 7.0], [7.0, 7.0, 0.0]])
    # s0 -> r0 (1 < 4): wrong; s1 -> r0 (2): wrong; r0 -> r1: right; r1 -> r0: right;
    # r2 -> r1? distances to s: 9, 8; to r: 7, 7 -> r0 (first): right. 3 / 5.
    assert one_nn_accuracy(d_ss, d_sr, d_rr) == pytest.approx(3 / 5)


def test_samples_equal_to_references() -> None:
    refs = random_ellipsoids(6, 128, _gen(4))
    m = generative_metrics(refs.clone(), refs)
    assert m["mmd"] == 0.0 and m["cov"] == 1.0
    assert m["1nna"] == 0.0  # every cloud's nearest neighbour is its copy from the other set


def test_identical_samples_cover_one_reference() -> None:
    refs = random_ellipsoids(8, 128, _gen(5))
    samples = refs[3:4].expand(5, -1, -1).clone()
    m = generative_metrics(samples, refs)
    assert m["cov"] == pytest.approx(1 / 8)
    expected_mmd = sum(chamfer_distance(refs[3], r).item() for r in refs) / 8
    assert m["mmd"] == pytest.approx(expected_mmd, rel=1e-5)


def test_1nna_same_distribution_near_half_separated_near_one() -> None:
    same = generative_metrics(
        random_ellipsoids(40, 128, _gen(6)), random_ellipsoids(40, 128, _gen(7))
    )
    assert abs(same["1nna"] - 0.5) < 0.15  # 80 clouds: binomial std of a coin is 0.056
    assert same["cov"] > 0.4
    apart = generative_metrics(random_cubes(40, 128, _gen(8)), random_ellipsoids(40, 128, _gen(9)))
    assert apart["1nna"] > 0.95
    assert apart["mmd"] > same["mmd"]


def test_emd_variant_runs_and_agrees_on_the_easy_cases() -> None:
    refs = random_ellipsoids(5, 64, _gen(10))
    m = generative_metrics(refs.clone(), refs, distance="emd")
    assert m == {"mmd": 0.0, "cov": 1.0, "1nna": 0.0}
    far = random_cubes(5, 64, _gen(11)) + torch.tensor([2.0, 0.0, 0.0])  # well separated
    apart = generative_metrics(far, refs, distance="emd")
    assert apart["1nna"] == 1.0 and apart["cov"] <= 1.0
    assert apart["mmd"] > 1.5


@pytest.mark.parametrize("device", devices())
def test_device_agnostic(device: str) -> None:
    s, r = random_ellipsoids(5, 100, _gen(12)), random_ellipsoids(6, 90, _gen(13))
    on_device = generative_metrics(s.to(device), r.to(device))
    reference = generative_metrics(s, r, backend="torch")
    for key in ("mmd", "cov", "1nna"):
        assert on_device[key] == pytest.approx(reference[key], rel=1e-5)


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"samples must be a \(K, N, 3\).*\(100, 3\)"):
        generative_metrics(torch.zeros(100, 3), torch.zeros(2, 100, 3))
    with pytest.raises(ValueError, match="distance"):
        generative_metrics(torch.zeros(2, 10, 3), torch.zeros(2, 10, 3), distance="l2")  # type: ignore[arg-type]
