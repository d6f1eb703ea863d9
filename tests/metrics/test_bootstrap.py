"""Bootstrap standard errors (zoo.metrics.bootstrap) against known answers and a naive loop."""

from __future__ import annotations

import math

import numpy as np
import torch

from zoo.metrics.bootstrap import bootstrap_se, generative_bootstrap_se


def test_se_of_a_mean_matches_the_textbook_formula():
    # For a mean, the bootstrap SE tends to std / sqrt(n) (population std of the sample).
    v = np.random.default_rng(0).normal(3.0, 2.0, size=60)
    want = v.std(ddof=0) / math.sqrt(len(v))
    got = bootstrap_se(v, n_boot=4000)
    assert abs(got - want) < 0.08 * want, (got, want)
    assert bootstrap_se(np.full(10, 0.25)) == 0.0  # no spread, no error
    assert math.isnan(bootstrap_se([1.0])) and math.isnan(bootstrap_se([]))
    assert bootstrap_se([1.0, float("nan"), 3.0]) == bootstrap_se([1.0, 3.0])  # NaN dropped


def _chamfer(a: torch.Tensor, b: torch.Tensor) -> float:
    d = ((a[:, None] - b[None]) ** 2).sum(-1)
    return float(d.min(1).values.mean() + d.min(0).values.mean())


def _naive_set_metrics(samples, refs, s_ids, r_ids):
    """MMD / COV / 1-NNA of explicitly built bootstrap sets (clouds copied, distances
    recomputed), every copy of a cloud left out of its own 1-NN search."""
    xs = [samples[i] for i in s_ids] + [refs[j] for j in r_ids]
    labels = [0] * len(s_ids) + [1] * len(r_ids)
    origin = [("s", i) for i in s_ids] + [("r", j) for j in r_ids]
    mins = []
    for j in r_ids:
        mins.append(min(_chamfer(samples[i], refs[j]) for i in s_ids))
    covered = set()
    for i in s_ids:
        d = [_chamfer(samples[i], refs[j]) for j in r_ids]
        covered.add(r_ids[int(np.argmin(d))])
    cov = sum(j in covered for j in r_ids) / len(r_ids)
    correct = 0
    for a in range(len(xs)):
        best, best_d = None, math.inf
        for b in range(len(xs)):
            if origin[b] == origin[a]:
                continue
            d = _chamfer(xs[a], xs[b])
            if d < best_d:
                best, best_d = b, d
        correct += labels[best] == labels[a]
    return float(np.mean(mins)), cov, correct / len(xs)


def test_generative_se_equals_a_naive_loop_over_explicit_resamples():
    g = torch.Generator().manual_seed(1)
    samples = [torch.rand(12, 3, generator=g) * 0.7 for _ in range(5)]
    refs = [torch.rand(12, 3, generator=g) * 0.8 for _ in range(6)]
    d_ss = torch.tensor([[_chamfer(a, b) for b in samples] for a in samples])
    d_sr = torch.tensor([[_chamfer(a, b) for b in refs] for a in samples])
    d_rr = torch.tensor([[_chamfer(a, b) for b in refs] for a in refs])
    n_boot, seed = 25, 7
    got = generative_bootstrap_se(d_ss, d_sr, d_rr, n_boot=n_boot, seed=seed)
    rng = np.random.Generator(np.random.PCG64(seed))  # the documented draw order
    stats = []
    for _ in range(n_boot):
        s_ids = list(rng.integers(0, 5, 5))
        r_ids = list(rng.integers(0, 6, 6))
        stats.append(_naive_set_metrics(samples, refs, s_ids, r_ids))
    want = np.asarray(stats).std(axis=0, ddof=1)
    np.testing.assert_allclose([got["mmd"], got["cov"], got["1nna"]], want, rtol=1e-6, atol=1e-9)
    assert got["1nna"] > 0 and got["mmd"] > 0


def test_generative_se_needs_two_of_each():
    one = torch.zeros(1, 1)
    out = generative_bootstrap_se(one, torch.zeros(1, 3), torch.zeros(3, 3))
    assert all(math.isnan(v) for v in out.values())


def test_jsd_se_equals_a_naive_loop_over_explicit_resamples():
    """The JSD bootstrap (per-cloud grid counts summed) against rebuilding every resampled pair
    of sets and calling ``jsd`` on them, with the same index draws."""
    from zoo.metrics import jsd
    from zoo.metrics.bootstrap import jsd_bootstrap_se

    g = torch.Generator().manual_seed(2)
    samples = torch.rand(5, 40, 3, generator=g) * 0.6 - 0.3  # (S, N, 3)
    refs = torch.rand(6, 40, 3, generator=g) * 0.8 - 0.4
    got = jsd_bootstrap_se(samples, refs, n_boot=40, seed=3)
    rng = np.random.default_rng(3)
    vals = []
    for _ in range(40):
        i_s, i_r = rng.integers(0, 5, 5), rng.integers(0, 6, 6)
        vals.append(jsd(samples[torch.from_numpy(i_s)], refs[torch.from_numpy(i_r)]))
    want = float(np.std(vals, ddof=1))
    assert want > 0 and abs(got - want) <= 1e-9 * want, (got, want)
    assert math.isnan(jsd_bootstrap_se(samples[:1], refs))
