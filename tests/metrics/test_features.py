"""FPD / P-FID / P-IS: the Fréchet distance against an eigen-decomposition reference and closed
forms, the Inception score's known answers, and the feature metrics on a small classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _metrics_helpers import random_cubes, random_ellipsoids

from zoo.metrics.features import (
    classified_as,
    fpd,
    frechet_distance,
    inception_score,
    p_fid,
    p_is,
)
from zoo.models.pointnet import PointNetClassifier


def frechet_naive(a: np.ndarray, b: np.ndarray) -> float:
    """tr sqrt(Sa Sb) = tr sqrt(Sa^1/2 Sb Sa^1/2), both roots from symmetric eigendecompositions."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    ra = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(ra @ sb @ ra)
    tr_root = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * tr_root)


def test_frechet_matches_the_eigen_reference_and_known_answers() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(150, 6)) * 1.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(frechet_naive(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Shifting every feature by t adds |t|^2 exactly.
    t = np.array([0.5, -1.0, 0, 0, 2.0, 0])
    assert frechet_distance(a, a + t) == pytest.approx(t @ t, rel=1e-6)
    # Scaling by s: covariance s^2 S, so the trace term is (1 - s)^2 tr S.
    s = 3.0
    expected = (1 - s) ** 2 * np.trace(np.cov(a, rowvar=False)) + ((1 - s) * a.mean(0)) @ (
        (1 - s) * a.mean(0)
    )
    assert frechet_distance(a, s * a) == pytest.approx(expected, rel=1e-6)


def test_inception_score_known_answers() -> None:
    assert inception_score(torch.full((10, 4), 0.25)) == pytest.approx(1.0)
    confident = torch.eye(4).repeat(3, 1)  # each class equally often, fully confident
    assert inception_score(confident) == pytest.approx(4.0, rel=1e-6)
    one_class = torch.tensor([[1.0, 0.0]]).repeat(5, 1)
    assert inception_score(one_class) == pytest.approx(1.0)
    p = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    m = p.mean(0)
    kl = (p * (p / m).log()).sum(1).mean()
    assert inception_score(p) == pytest.approx(math.exp(float(kl)), rel=1e-6)


def test_feature_metrics_on_a_classifier() -> None:
    torch.manual_seed(0)
    model = PointNetClassifier(hidden=(8, 16), head=(8,), dropout=0.0)
    model.configure_from_data({"synsets": ["a", "b"], "categories": ["a", "b"]})
    g = torch.Generator().manual_seed(1)
    refs = random_ellipsoids(12, 64, g)
    assert fpd(refs.clone(), refs, model) == pytest.approx(0.0, abs=1e-4)
    assert p_fid(refs.clone(), refs, model) == pytest.approx(0.0, abs=1e-4)
    other = random_cubes(12, 64, g) + 0.5
    assert fpd(other, refs, model) > 1e-2
    assert 1.0 <= p_is(refs, model) <= 2.0  # at most the number of classes
    pred = model.classify(refs).argmax(1)
    assert classified_as(refs, pred, model) == 1.0
    assert classified_as(refs, 1 - pred, model) == 0.0
