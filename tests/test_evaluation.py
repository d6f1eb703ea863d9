"""The shared evaluator (zoo.evaluation.evaluate) on known answers: a stub model that returns
each target itself scores perfectly, one with no surface scores the documented empty value."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import trimesh
from torch import nn

from zoo.evaluation import EvalConfig, evaluate
from zoo.ops.surface import sample_surface
from zoo.ops.voxelize import voxelize
from zoo.representation import Representation, ShapeTarget

CFG = EvalConfig(recon_points=2000, n_points=256, n_boot=20, save_images=False)


def _targets() -> list[ShapeTarget]:
    meshes = [
        trimesh.creation.box(extents=(0.6, 0.4, 0.5)),
        trimesh.creation.icosphere(subdivisions=2, radius=0.3),
        trimesh.creation.cylinder(radius=0.2, height=0.7),
        trimesh.creation.box(extents=(0.3, 0.7, 0.2)),
    ]
    out = []
    for i, mesh in enumerate(meshes):
        points, normals = sample_surface(mesh, 3000, seed=7)
        out.append(
            ShapeTarget(
                name=f"shape{i}",
                points=points,
                normals=normals,
                mesh=mesh,
                voxels=voxelize(mesh, 16),
                extra={"synset": "03001627"},
            )
        )
    return out


class Shapes:
    """A datamodule as the evaluator reads it (``zoo.data.protocol.EvalData``): held-out
    shapes, no views, no more references."""

    def __init__(self, targets: list[ShapeTarget]) -> None:
        self.targets = targets

    def eval_shapes(
        self, split: str = "test", limit: int | None = None, points_only: bool = False
    ) -> list[ShapeTarget]:
        return self.targets[:limit] if limit else list(self.targets)

    def eval_views(self, split: str = "test") -> None:
        return None

    def eval_scales(self, split: str = "test") -> None:
        return None

    def extra_references(self, per_category: int, have: dict, n_points: int) -> dict:
        return {}

    def independent_draw(self, counts: dict, n_points: int) -> None:
        return None


class Oracle(nn.Module, Representation):
    """Reconstructs every target as itself and samples the held-out shapes; with ``empty``,
    has no surface at all."""

    name = "oracle"
    kind = "mesh"
    data_form = "mesh"
    generative = True

    def __init__(self, targets: list[ShapeTarget], empty: bool = False) -> None:
        super().__init__()
        self.targets, self.empty = targets, empty

    def sample(self, n: int, seed: int | None = None) -> list[Any]:
        return [self.targets[i % len(self.targets)] for i in range(n)]

    def reconstruct(self, target: ShapeTarget) -> ShapeTarget:
        return target

    def to_mesh(self, shape: ShapeTarget, resolution: int = 128) -> trimesh.Trimesh:
        if self.empty:
            raise ValueError("no surface")
        return shape.mesh

    def ceiling(self, target: ShapeTarget, n: int, resolution: int) -> tuple[Any, torch.Tensor]:
        return target.mesh, sample_surface(target.mesh, n, seed=0)[0]


def test_a_model_returning_each_target_scores_perfectly() -> None:
    targets = _targets()
    m = evaluate(Oracle(targets), Shapes(targets), CFG)
    assert m["recon/empty_surface"] == 0.0
    assert m["recon/chamfer_l2"] == 0.0 and m["recon/chamfer_l1"] == 0.0
    assert m["recon/fscore@0.01"] == 1.0
    assert m["recon/normal_consistency"] == pytest.approx(1.0, abs=1e-6)
    assert m["recon/iou"] == 1.0
    for key in ("frac/fscore@0.01", "frac/normal_consistency", "frac/iou"):
        assert m[key] == pytest.approx(1.0, abs=1e-6)
    # samples that are the references' shapes (other points on them): each reference covered,
    # and every cloud's nearest neighbour is its own shape from the other set
    assert m["gen/references"] == 4.0 and m["gen/empty_samples"] == 0.0
    assert m["gen/cov_cd"] == 1.0 and m["gen/1nna_cd"] == 0.0


def test_a_model_without_a_surface_scores_the_documented_empty_value() -> None:
    targets = _targets()
    m = evaluate(Oracle(targets, empty=True), Shapes(targets), CFG)
    assert m["recon/empty_surface"] == 1.0
    assert all(math.isnan(m[f"recon/{k}"]) for k in ("chamfer_l2", "chamfer_l1", "fscore@0.01"))
    # every sample without a surface counts, as a degenerate cloud at the origin
    assert m["gen/empty_samples"] == 4.0 and m["gen/cov_cd"] == 0.25


def test_a_worse_reconstruction_scores_worse() -> None:
    targets = _targets()

    class Shrunk(Oracle):
        def to_mesh(self, shape: ShapeTarget, resolution: int = 128) -> trimesh.Trimesh:
            return shape.mesh.copy().apply_scale(0.9)

    good = evaluate(Oracle(targets), Shapes(targets), CFG)
    bad = evaluate(Shrunk(targets), Shapes(targets), CFG)
    assert bad["recon/chamfer_l2"] > 1e-4 > good["recon/chamfer_l2"]
    assert bad["recon/iou"] < 0.9 and bad["frac/iou"] < 0.9
