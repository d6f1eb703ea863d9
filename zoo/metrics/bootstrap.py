"""Bootstrap standard errors of the benchmark's means and set metrics (Efron & Tibshirani 1993).

Every mean the evaluator reports comes with the standard deviation of that statistic over
``n_boot`` bootstrap resamples (with replacement) of the units it averages over:

- a reconstruction metric is a mean over held-out shapes: the shapes are resampled;
- MMD / COV / 1-NNA are functions of two sets: samples and references are resampled
  independently (a two-sample bootstrap) and the statistic recomputed from the already
  computed distance matrices (no new distances), so the error costs milliseconds.

Copies of one cloud drawn twice into a bootstrap set are the same cloud: 1-NNA's leave-one-out
leaves out every copy (a copy at distance 0 would otherwise be its own nearest neighbour and
inflate the accuracy), and COV counts a reference as covered when any copy of it is some
sample's nearest reference. Resampling indices come from numpy's PCG64 with a fixed seed, so
the errors are identical on every machine for identical inputs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from zoo.metrics.jsd import jensen_shannon_divergence, occupancy_counts

DEFAULT_BOOT = 1000


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def bootstrap_se(
    values: np.ndarray | list[float], n_boot: int = DEFAULT_BOOT, seed: int = 0
) -> float:
    """Bootstrap standard error of the mean of ``values`` (NaN entries dropped).

    Returns NaN with fewer than two finite values (one shape says nothing about the spread).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan")
    idx = _rng(seed).integers(0, len(v), size=(n_boot, len(v)))  # (B, n)
    return float(v[idx].mean(axis=1).std(ddof=1))


def _set_metrics(
    d_ss: np.ndarray, d_sr: np.ndarray, d_rr: np.ndarray, si: np.ndarray, ri: np.ndarray
) -> tuple[float, float, float]:
    """MMD, COV, 1-NNA of the resampled sets ``si`` (samples) and ``ri`` (references)."""
    sr = d_sr[np.ix_(si, ri)]  # (S', R')
    mmd = float(sr.min(axis=0).mean())
    nearest = ri[sr.argmin(axis=1)]  # original ids of each sample's nearest reference
    cov = float(np.isin(ri, nearest).mean())
    s, r = len(si), len(ri)
    full = np.block([[d_ss[np.ix_(si, si)], sr], [sr.T, d_rr[np.ix_(ri, ri)]]])  # (S'+R', S'+R')
    origin = np.concatenate([si, ri + d_ss.shape[0]])  # one id per original cloud
    full[origin[:, None] == origin[None, :]] = np.inf  # leave out the cloud and its copies
    labels = np.concatenate([np.zeros(s, dtype=np.int64), np.ones(r, dtype=np.int64)])
    nna = float((labels[full.argmin(axis=1)] == labels).mean())
    return mmd, cov, nna


def generative_bootstrap_se(
    d_ss: Tensor, d_sr: Tensor, d_rr: Tensor, n_boot: int = DEFAULT_BOOT, seed: int = 0
) -> dict[str, float]:
    """Two-sample bootstrap standard errors of MMD, COV and 1-NNA from their distance matrices.

    Args:
        d_ss: (S, S), d_sr: (S, R), d_rr: (R, R) distances (those of
            ``zoo.metrics.generative_metrics``; diagonals ignored).
    Returns:
        ``{"mmd": se, "cov": se, "1nna": se}`` (NaN when S or R is below 2).
    """
    d_ss, d_sr, d_rr = (torch.as_tensor(d).double().cpu().numpy() for d in (d_ss, d_sr, d_rr))
    s, r = d_sr.shape
    if s < 2 or r < 2:
        return {"mmd": float("nan"), "cov": float("nan"), "1nna": float("nan")}
    rng = _rng(seed)
    stats = np.array(
        [
            _set_metrics(d_ss, d_sr, d_rr, rng.integers(0, s, s), rng.integers(0, r, r))
            for _ in range(n_boot)
        ]
    )  # (B, 3)
    se = stats.std(axis=0, ddof=1)
    return {"mmd": float(se[0]), "cov": float(se[1]), "1nna": float(se[2])}


def jsd_bootstrap_se(
    samples: Tensor,
    references: Tensor,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    resolution: int = 28,
    in_unit_sphere: bool = True,
) -> float:
    """Two-sample bootstrap standard error of PointFlow's JSD (``zoo.metrics.jsd``).

    As for MMD / COV / 1-NNA, the clouds of each set are resampled with replacement (samples
    first, then references, from one generator); the JSD of a resampled pair of sets is that
    of their pooled grid counts, so each cloud's counts are computed once and summed.

    Args:
        samples: (S, N, 3) and references: (R, M, 3) clouds.
    Returns:
        The standard error in bits (NaN when S or R is below 2).
    """
    s, r = len(samples), len(references)
    if s < 2 or r < 2:
        return float("nan")
    c_s = torch.stack([occupancy_counts(c[None], resolution, in_unit_sphere) for c in samples])
    c_r = torch.stack(
        [occupancy_counts(c[None], resolution, in_unit_sphere) for c in references]
    )  # (S, G), (R, G)
    rng = _rng(seed)
    vals = []
    for _ in range(n_boot):
        i_s, i_r = rng.integers(0, s, s), rng.integers(0, r, r)
        vals.append(jensen_shannon_divergence(c_s[i_s].sum(0), c_r[i_r].sum(0)))
    return float(np.std(vals, ddof=1))


__all__ = ["DEFAULT_BOOT", "bootstrap_se", "generative_bootstrap_se", "jsd_bootstrap_se"]
