"""PointNet classifier: it learns two shape categories, its features, and its Representation fit."""

from __future__ import annotations

import pytest
import torch

from zoo.models.pointnet import PointNetClassifier, PointNetLabel
from zoo.representation import ShapeTarget


def _clouds(k: int, n: int, g: torch.Generator) -> tuple[torch.Tensor, list[str]]:
    """k ellipsoid surfaces ("a") and k box surfaces ("b"), random sizes, (2k, n, 3)."""
    d = torch.randn(k, n, 3, generator=g)
    ell = d / d.norm(dim=-1, keepdim=True) * (0.2 + 0.2 * torch.rand(k, 1, 3, generator=g))
    p = torch.rand(k, n, 3, generator=g) * 2 - 1
    face = torch.randint(0, 3, (k, n, 1), generator=g)
    sign = torch.randint(0, 2, (k, n, 1), generator=g).float() * 2 - 1
    box = p.scatter(2, face, sign) * (0.2 + 0.2 * torch.rand(k, 1, 3, generator=g))
    return torch.cat([ell, box]), ["a"] * k + ["b"] * k


def _model() -> PointNetClassifier:
    torch.manual_seed(0)
    model = PointNetClassifier(
        hidden=(32, 64), head=(16,), dropout=0.0, train_points=128, input_points=128
    )
    model.configure_from_data({"synsets": ["a", "b"], "categories": ["ellipsoid", "box"]})
    return model


def test_learns_two_categories_and_generalises() -> None:
    g = torch.Generator().manual_seed(0)
    train, train_y = _clouds(16, 128, g)
    test, test_y = _clouds(16, 128, g)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(100):
        idx = torch.randperm(32, generator=g)[:16]
        loss = model._shared_step({"points": train[idx], "synset": [train_y[i] for i in idx]}, "x")
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = (model.classify(test).argmax(1) == model.labels_of(test_y)).float().mean()
    assert acc >= 0.85, float(acc)  # held-out shapes; chance is 0.5 (seeds 0-5: 0.97-1)
    label = model.reconstruct(ShapeTarget("t", points=test[0]))
    assert isinstance(label, PointNetLabel) and label.probs.shape == (2,)
    assert label.synset == "a" and label.category == "ellipsoid"


def test_features_and_the_classifier_fit() -> None:
    model = _model().eval()
    x = torch.rand(3, 50, 3)
    feats = model.features(x)
    assert [tuple(f.shape) for f in feats] == [(3, 64), (3, 16), (3, 2)]
    torch.testing.assert_close(feats[-1], model(x))  # the last stage is the logits
    assert model.classifier and not model.generative
    with pytest.raises(ValueError, match="classifier"):
        model.sample(2)
    with pytest.raises(ValueError, match="classifier"):
        model.to_mesh(None)
    with pytest.raises(ValueError, match="not in its training data"):
        model.labels_of(["c"])
