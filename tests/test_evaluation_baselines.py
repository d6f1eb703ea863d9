"""The generation metrics' model-free baselines (``zoo.evaluation.generation_baselines``): a
perfect generator (an independent draw of held-out shapes) and a memorising one (the training
shapes), scored like a model's samples against the same references; and per-category
generation."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch
from torch import Tensor

from tests.helpers.tiny_points import TinyPointSet
from zoo.data.shapes import ShapeNetDataModule, SynthShapesDataModule
from zoo.evaluation import (
    EvalConfig,
    evaluate,
    generation_baselines,
    one_nna_chance,
    reference_set,
    set_metrics,
    split_references,
    train_clouds,
)

PER_CATEGORY = 8  # references a category: 16 in all, 1-NNA's standard error ~0.1
CFG = EvalConfig(
    max_shapes=0, n_points=256, n_boot=50, ceilings=False, save_images=False,
    gen_references_per_category=PER_CATEGORY, generation_baselines=True,
)  # fmt: skip


def counts_of(synsets: list[str]) -> dict[str, int]:
    return {s: synsets.count(s) for s in dict.fromkeys(synsets)}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthShapesDataModule:
    root = tmp_path_factory.mktemp("synth_baselines")
    dm = SynthShapesDataModule(
        root=root, shapes_per_category=5, categories=["chair", "table"], resolution=24,
        progress=False,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("test")
    return dm


@pytest.fixture(scope="module")
def refs(synth: SynthShapesDataModule) -> tuple[Tensor, list[str]]:
    return reference_set(synth, synth.eval_shapes("test", limit=0), CFG)


@pytest.fixture(scope="module")
def metrics(synth: SynthShapesDataModule) -> dict[str, float]:
    """An untrained point-set generator (one blob, every sample alike) with the baselines."""
    return evaluate(TinyPointSet(), synth, CFG)


def test_data_row_is_near_chance_and_far_below_a_bad_generator(
    synth: SynthShapesDataModule, refs: tuple[Tensor, list[str]], metrics: dict[str, float]
) -> None:
    clouds, synsets = refs
    assert metrics["gen_data/split_halves"] == 0.0  # synthshapes draws more shapes
    assert metrics["gen_data/references"] == metrics["gen_data/samples"] == 2 * PER_CATEGORY
    assert abs(metrics["gen_data/1nna_cd"] - 0.5) < 0.2
    assert metrics["gen_data/1nna_cd_se"] > 0
    assert metrics["gen/1nna_cd"] > 0.9  # the untrained model, on the same references
    # the same draw shrunk x0.5: a deliberately bad generator
    counts = {s: PER_CATEGORY for s in dict.fromkeys(synsets)}
    draw = torch.cat(list(synth.independent_draw(counts, CFG.n_points).values()))
    bad = set_metrics(0.5 * draw, clouds, CFG, "bad", extras=False)
    assert bad["bad/1nna_cd"] > 0.95 > metrics["gen_data/1nna_cd"] + 0.3
    assert bad["bad/mmd_cd"] > 2 * metrics["gen_data/mmd_cd"]
    # never a reference: no drawn cloud is at distance 0 from one
    assert torch.cdist(draw.flatten(1), clouds.flatten(1)).min() > 0
    cached = sorted(p.name for p in (synth.synth_root / "references").glob("*_stream2_*.npy"))
    assert len(cached) == 2, cached  # cached like the references, one file a category


def test_train_copy_row_scores_the_training_shapes(
    synth: SynthShapesDataModule, refs: tuple[Tensor, list[str]], metrics: dict[str, float]
) -> None:
    clouds, synsets = refs
    train = synth.eval_shapes("train")
    n_train = sum(
        min(PER_CATEGORY, sum(t.extra["synset"] == s for t in train)) for s in counts_of(synsets)
    )
    assert 2 <= n_train < len(clouds)  # fewer training shapes than references: all of them
    assert metrics["gen_train/samples"] == n_train
    assert metrics["gen_train/references"] == len(clouds)
    assert metrics["gen_train/1nna_chance"] == pytest.approx(one_nna_chance(n_train, len(clouds)))
    for key in ("gen_train/mmd_cd", "gen_train/cov_cd", "gen_train/1nna_cd_se"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    assert metrics["gen_train/cov_cd"] <= n_train / len(clouds)  # at most one reference each
    copies = train_clouds(synth, synsets, CFG)
    assert copies.shape == (n_train, CFG.n_points, 3)
    for cloud, target in zip(copies, train, strict=True):  # points of that training shape
        gaps = (cloud[:, None] - target.points.float()[None]).abs().sum(-1)  # (n, K)
        assert gaps.min(dim=1).values.max() == 0  # every point is one of the shape's


def test_one_nna_chance_is_the_leave_one_out_rate_of_alike_sets() -> None:
    assert one_nna_chance(2, 2) == pytest.approx(4 / 12)  # each of 4 meets its twin 1 in 3
    assert one_nna_chance(600, 600) == pytest.approx(599 / 1199)
    assert one_nna_chance(84, 600) > 0.75  # far from 0.5 when the sets' sizes differ


def test_split_references_gives_disjoint_seeded_halves_per_category() -> None:
    synsets = ["a"] * 5 + ["b"] * 4 + ["c"]
    keep, take = split_references(synsets, seed=0)
    assert not set(keep) & set(take) and sorted(keep + take) == list(range(10))
    assert [sum(synsets[i] == c for i in take) for c in "abc"] == [2, 2, 0]
    assert [sum(synsets[i] == c for i in keep) for c in "abc"] == [3, 2, 1]
    assert split_references(synsets, seed=0) == (keep, take)
    assert any(split_references(synsets, seed=s) != (keep, take) for s in range(1, 5))


def test_data_without_extra_draws_scores_split_halves(
    synth: SynthShapesDataModule, refs: tuple[Tensor, list[str]]
) -> None:
    # The same tree read as plain ShapeNet: no independent_draw.
    plain = ShapeNetDataModule(
        root=synth.shapenet_root, categories=["chair", "table"], cache_dir=synth.synth_root,
        dataset_name="synthshapes", progress=False,
    )  # fmt: skip
    plain.setup("test")
    assert plain.independent_draw({"03001627": 2}, CFG.n_points) is None
    clouds, synsets = refs
    m = generation_baselines(plain, clouds, synsets, CFG)
    assert m["gen_data/split_halves"] == 1.0
    assert m["gen_data/samples"] == m["gen_data/references"] == PER_CATEGORY  # 4 + 4 of each
    assert abs(m["gen_data/1nna_cd"] - 0.5) < 0.3
    assert m["gen_train/references"] == len(clouds)


class CategorySampler(TinyPointSet):
    """Samples by category: the category's own reference-like blob (to test the plumbing)."""

    conditional = True

    def sample(self, n: int, seed: int | None = None, category: str | None = None) -> list[Tensor]:
        shift = 0.1 if category == "03001627" else -0.1
        return [self.cloud.detach() + shift] * n


def test_per_category_generation_only_for_models_that_sample_by_category(
    synth: SynthShapesDataModule, metrics: dict[str, float], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = replace(CFG, generation_baselines=False, gen_per_category=True)
    with caplog.at_level(logging.INFO, logger="zoo.evaluation"):
        plain = evaluate(TinyPointSet(), synth, cfg)
    assert plain["gen/categories"] == 2 and metrics["gen/categories"] == 2
    assert not [k for k in plain if k.startswith(("gen/chair/", "gen/table/"))]
    assert "does not sample by category" in caplog.text
    per = evaluate(CategorySampler(), synth, cfg)
    for cat in ("chair", "table"):
        for key in ("mmd_cd", "cov_cd", "1nna_cd", "1nna_cd_se"):
            assert f"gen/{cat}/{key}" in per, (cat, key)
    assert not [k for k in per if k.startswith("gen_data/")]  # baselines off


def test_references_know_their_categories(refs: tuple[Tensor, list[str]]) -> None:
    clouds, synsets = refs
    assert len(synsets) == len(clouds) and counts_of(synsets) == {
        "03001627": PER_CATEGORY,
        "04379243": PER_CATEGORY,
    }


class _CoarseCeiling(TinyPointSet):
    """A generator whose representation snaps every point to a grid of step 0.25."""

    def ceiling(self, target, n, resolution):
        pts = target.points[:n] if target.points is not None else None
        return None, torch.round(pts.float() / 0.25) * 0.25


def test_train_copy_through_a_representation_keeps_the_shapes_and_scores_its_limit(
    synth: SynthShapesDataModule, refs: tuple[Tensor, list[str]]
) -> None:
    """ceiling_train_clouds takes the train copy's shapes through model.ceiling; a coarse
    representation scores worse than the plain copy, a model without a ceiling gives none."""
    from zoo.evaluation import ceiling_train_clouds

    clouds, synsets = refs
    plain = train_clouds(synth, synsets, CFG)
    coarse = ceiling_train_clouds(_CoarseCeiling(), synth, synsets, CFG)
    assert coarse.shape == plain.shape
    assert ((coarse / 0.25) - (coarse / 0.25).round()).abs().max() < 1e-4  # on the grid
    assert len(ceiling_train_clouds(TinyPointSet(), synth, synsets, CFG)) == 0
    m_plain = set_metrics(plain, clouds, CFG, "p", extras=False)
    m_coarse = set_metrics(coarse, clouds, CFG, "c", extras=False)
    assert m_coarse["c/mmd_cd"] > 2 * m_plain["p/mmd_cd"]
