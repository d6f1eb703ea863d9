"""Extra held-out synthshapes for the generation metrics (``zoo.data.synthshapes.references``)
and the evaluator's reference sets built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.data.shapes import SynthShapesDataModule
from zoo.data.synthshapes import generate_shape, shape_seed
from zoo.data.synthshapes.references import (
    DATA_STREAM,
    ensure_references,
    reference_file,
    reference_seed,
)
from zoo.evaluation import EvalConfig, evaluate, reference_clouds
from zoo.models.voxel_gan import VoxelGAN
from zoo.ops.surface import sample_surface


def test_reference_seeds_never_meet_the_datasets_shapes() -> None:
    for category in ("chair", "airplane"):
        dataset = {shape_seed(0, category, i) for i in range(500)}
        refs = [reference_seed(0, category, i) for i in range(500)]
        assert len(set(refs)) == 500 and not dataset & set(refs)
    assert reference_seed(0, "chair", 3) != reference_seed(1, "chair", 3)
    # the data baseline's stream meets neither the dataset nor the references
    data = {reference_seed(0, "chair", i, DATA_STREAM) for i in range(500)}
    refs = {reference_seed(0, "chair", i) for i in range(500)}
    dataset = {shape_seed(0, "chair", i) for i in range(500)}
    assert len(data) == 500 and not data & refs and not data & dataset
    assert reference_file("r", "chair", 0, 96, 2048, DATA_STREAM) != reference_file(
        "r", "chair", 0, 96, 2048
    )


def test_references_lie_on_their_shapes_and_grow_without_changing(tmp_path: Path) -> None:
    kw = {"resolution": 24, "n_points": 200, "workers": 1, "progress": False}
    two = ensure_references(tmp_path, "chair", 2, **kw)  # type: ignore[arg-type]
    assert two.shape == (2, 200, 3) and two.dtype == np.float32
    three = ensure_references(tmp_path, "03001627", 3, **kw)  # the synset names it too
    np.testing.assert_array_equal(three[:2], two)
    seed = reference_seed(0, "chair", 2)
    expected, _ = sample_surface(generate_shape("chair", seed, 24).mesh, 200, seed=seed)
    np.testing.assert_array_equal(three[2], expected.numpy())  # surface points of that shape
    assert np.abs(three[2]).max() <= 0.5 + 1e-6  # normalised like the dataset (diagonal 1)
    # a truncated cache file is regenerated, not trusted
    path = reference_file(tmp_path, "chair", 0, 24, 200)
    path.write_bytes(path.read_bytes()[:100])
    again = ensure_references(tmp_path, "chair", 3, **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(again, three)


@pytest.fixture(scope="module")
def small_synth(tmp_path_factory: pytest.TempPathFactory) -> SynthShapesDataModule:
    root = tmp_path_factory.mktemp("synth_refs")
    dm = SynthShapesDataModule(
        root=root, shapes_per_category=5, categories=["chair", "table"], resolution=24,
        voxel_resolution=16, progress=False,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("test")
    return dm


def test_reference_clouds_top_up_the_split_per_category(small_synth: SynthShapesDataModule) -> None:
    targets = small_synth.eval_shapes("test")
    split = reference_clouds(small_synth, targets, EvalConfig(n_points=128))
    assert split.shape == (len(targets), 128, 3)
    cfg = EvalConfig(n_points=128, gen_references_per_category=4)
    refs = reference_clouds(small_synth, targets, cfg)
    assert refs.shape == (8, 128, 3)  # 2 categories x 4
    torch.testing.assert_close(refs[: len(targets)], split)  # the split's shapes come first
    assert len({tuple(c[0].tolist()) for c in refs}) == 8  # no shape twice


def test_evaluator_scores_generation_against_the_topped_up_set(
    small_synth: SynthShapesDataModule,
) -> None:
    model = VoxelGAN(resolution=16, z_dim=8, g_channels=4, d_channels=4)
    cfg = EvalConfig(
        max_shapes=0, n_points=128, n_boot=20, ceilings=False, save_images=False,
        gen_references_per_category=3, generation_emd="pointflow", generation_emd_references=4,
    )  # fmt: skip
    m = evaluate(model, small_synth, cfg)
    assert m["gen/references"] == 6 and m["gen/references_emd"] == 4
    for key in ("gen/1nna_cd", "gen/mmd_cd", "gen/1nna_emd", "gen/1nna_cd_se"):
        assert np.isfinite(m[key]), key
