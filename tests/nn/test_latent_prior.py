"""zoo.nn.latent_prior: per-category Gaussians on hand-made codes, state-dict compatibility, and
the training labels read from a datamodule's info."""

from __future__ import annotations

import pytest
import torch

from zoo.nn.latent_prior import (
    FlowLatentPrior,
    GaussianLatentPrior,
    build_latent_prior,
    draw_gaussian,
    fit_gaussian,
    train_labels,
)

CENTRES = {"a": torch.tensor([4.0, 0.0, 0.0]), "b": torch.tensor([-4.0, 0.0, 2.0])}


def _two_clusters(per: int = 30) -> tuple[torch.Tensor, list[str]]:
    """Codes (2 per, 3) around two far-apart centres (std 0.1), labels a, b interleaved."""
    g = torch.Generator().manual_seed(0)
    codes, labels = [], []
    for i in range(2 * per):
        label = "ab"[i % 2]
        codes.append(CENTRES[label] + 0.1 * torch.randn(3, generator=g))
        labels.append(label)
    return torch.stack(codes), labels


def _prior() -> GaussianLatentPrior:
    return GaussianLatentPrior(3, ["a", "b", "c"], ["Alpha", "Beta", "Gamma"], shrinkage=1e-3)


def test_each_category_samples_near_its_own_cluster() -> None:
    codes, labels = _two_clusters()
    prior = _prior()
    prior.fit(codes, labels)
    assert prior.ready.tolist() == [True, True, False]  # no code labelled c
    for label, centre in CENTRES.items():
        z = prior.sample(500, label, torch.Generator().manual_seed(1))  # (500, 3)
        assert z.shape == (500, 3)
        other = CENTRES["b" if label == "a" else "a"]
        assert (z - centre).norm(dim=1).max() < 1.0  # 0.1 std: within ~10 std of its centre
        assert (z - other).norm(dim=1).min() > 6.0  # the centres are 8.2 apart
        torch.testing.assert_close(z.mean(0), centre, atol=0.05, rtol=0)
    # A name selects the same Gaussian as its label (names case-insensitively); seeds repeat.
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    torch.testing.assert_close(prior.sample(4, "beta", g()), prior.sample(4, "b", g()))
    assert not torch.equal(prior.sample(4, "b", g()), prior.sample(4, "b"))


def test_unknown_and_unfitted_categories_raise_naming_the_known_ones() -> None:
    prior = _prior()
    prior.fit(*_two_clusters())
    with pytest.raises(ValueError, match=r"unknown category 'sofa'; known: Alpha \(a\), Beta"):
        prior.sample(2, "sofa")
    with pytest.raises(ValueError, match="'Gamma' has no fitted prior"):
        prior.sample(2, "c")
    with pytest.raises(ValueError, match=r"labels \['z'\] are not among"):
        prior.fit(torch.zeros(2, 3), ["a", "z"])
    with pytest.raises(ValueError, match="known: none"):
        GaussianLatentPrior(3).sample(1, "a")


def test_fit_gaussian_moments_shrinkage_and_a_single_code() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([[1.0, 0.0], [0.6, 0.3]])
    codes = torch.tensor([1.0, -2.0]) + torch.randn(20000, 2, generator=g) @ a.T
    mean, tril = fit_gaussian(codes, 0.0)
    torch.testing.assert_close(mean.float(), torch.tensor([1.0, -2.0]), atol=0.03, rtol=0)
    torch.testing.assert_close((tril @ tril.T).float(), a @ a.T, atol=0.03, rtol=0)
    # Shrinkage adds shrinkage * tr(S) / D to the diagonal.
    _, shrunk = fit_gaussian(codes, 0.5)
    cov = torch.cov(codes.double().T)
    torch.testing.assert_close(
        shrunk @ shrunk.T, cov + 0.25 * cov.trace() * torch.eye(2, dtype=cov.dtype)
    )
    # Fewer codes than dimensions: still a valid factor; one code: a point mass at it.
    few = torch.randn(3, 8, generator=g)
    assert torch.isfinite(fit_gaussian(few, 1e-3)[1]).all()
    m1, l1 = fit_gaussian(few[:1], 1e-3)
    z = draw_gaussian(m1.float(), l1.float(), 5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, few[:1].expand(5, -1), atol=1e-5, rtol=0)


def test_state_dict_holds_the_prior_and_old_weights_load_unfitted() -> None:
    prior = _prior()
    prior.fit(*_two_clusters())
    parent = torch.nn.Module()
    parent.category_prior = prior
    state = parent.state_dict()
    assert {"category_prior.mean", "category_prior.tril", "category_prior.ready"} <= set(state)
    fresh = torch.nn.Module()
    fresh.category_prior = _prior()
    fresh.load_state_dict(state)  # strict
    torch.testing.assert_close(fresh.category_prior.tril, prior.tril)
    assert fresh.category_prior.ready.tolist() == [True, True, False]
    # Weights from before the prior existed (none of its keys) load strictly, unfitted.
    old = torch.nn.Module()
    old.category_prior = _prior()
    old.load_state_dict({})
    assert not old.category_prior.ready.any()
    # A prior for other categories does not fit silently.
    other = torch.nn.Module()
    other.category_prior = GaussianLatentPrior(3, ["a", "b"])
    with pytest.raises(RuntimeError, match="size mismatch"):
        other.load_state_dict(state)


def test_train_labels_from_info() -> None:
    names = ["03001627/x", "04379243/y", "03001627/z"]
    info = {"synsets": ["03001627", "04379243"], "train_names": names}
    assert train_labels(info) == ["03001627", "04379243", "03001627"]  # from the names
    assert train_labels({**info, "train_synsets": ["s", "t", "s"]}) == ["s", "t", "s"]
    assert train_labels({**info, "train_names": ["x", "y", "z"]}) is None  # no synset prefix
    assert train_labels({"num_train_shapes": 3}) is None


def _parabola(n: int, seed: int) -> torch.Tensor:
    """(n, 2) codes with x2 = x1^2 + noise (std 0.05): a curved density no Gaussian fits."""
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, generator=g)
    return torch.stack([x1, x1**2 + 0.05 * torch.randn(n, generator=g)], 1)


def _off_curve(z: torch.Tensor) -> torch.Tensor:
    return (z[:, 1] - z[:, 0] ** 2).abs().median()


def test_flow_prior_learns_a_density_a_gaussian_cannot() -> None:
    """On a parabola the flow's draws stay on the curve where the Gaussian's fill the plane
    around it, and each category's flow draws near its own codes only."""
    shift = torch.tensor([20.0, 0.0])
    codes = torch.cat([_parabola(400, 0), _parabola(400, 1) + shift])  # (800, 2)
    labels = ["a"] * 400 + ["b"] * 400
    flow = FlowLatentPrior(2, ["a", "b"], hidden=32, depth=4, fit_steps=400, lr=1e-2)
    flow.fit(codes, labels)
    gauss = GaussianLatentPrior(2, ["a", "b"])
    gauss.fit(codes, labels)
    for label, offset in (("a", 0.0), ("b", shift)):
        zf = flow.sample(2000, label, torch.Generator().manual_seed(2)) - offset  # (2000, 2)
        zg = gauss.sample(2000, label, torch.Generator().manual_seed(2)) - offset
        assert _off_curve(zf) < 0.3 * _off_curve(zg), (_off_curve(zf), _off_curve(zg))
        assert zf[:, 0].abs().max() < 10.0  # no draw lands near the other category (20 away)
    # Seeded draws repeat; the fitted flows are in the state dict and reload.
    again = flow.sample(5, "a", torch.Generator().manual_seed(3))
    torch.testing.assert_close(flow.sample(5, "a", torch.Generator().manual_seed(3)), again)
    copy = FlowLatentPrior(2, ["a", "b"], hidden=32, depth=4)
    copy.load_state_dict(flow.state_dict())
    torch.testing.assert_close(copy.sample(5, "a", torch.Generator().manual_seed(3)), again)


def test_build_latent_prior_names_the_known_kinds() -> None:
    assert isinstance(build_latent_prior("gaussian", 3, ["a"]), GaussianLatentPrior)
    assert isinstance(build_latent_prior("flow", 3, ["a"], flow={"depth": 2}), FlowLatentPrior)
    with pytest.raises(ValueError, match="flow"):
        build_latent_prior("gmm", 3, ["a"])
