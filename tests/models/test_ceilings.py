"""Representation ceilings (``Representation.ceiling``): the ground truth pushed through each
shape model's own representation, scored by the shared evaluator."""

from __future__ import annotations

import torch
import trimesh

from zoo.evaluation import EvalConfig, ground_truth_cloud, surface_metrics
from zoo.models.deepsdf import DeepSDF, DeepSDFDecoder
from zoo.models.mesh_gcn import MeshGCN
from zoo.models.pointflow import PointFlow
from zoo.models.voxel_gan import VoxelGAN
from zoo.ops.surface import sample_surface
from zoo.ops.voxelize import voxelize
from zoo.representation import ShapeTarget

CFG = EvalConfig(recon_points=4000, n_boot=0, mesh_resolution=32, save_images=False)


def _target(mesh: trimesh.Trimesh, voxels: torch.Tensor | None = None) -> ShapeTarget:
    pts, normals = ground_truth_cloud(ShapeTarget("t", mesh=mesh), 4000)
    return ShapeTarget("box", points=pts, normals=normals, mesh=mesh, voxels=voxels)


def _score(model, target: ShapeTarget) -> dict[str, float]:
    mesh, points = model.ceiling(target, CFG.recon_points, CFG.mesh_resolution)
    assert points.shape == (CFG.recon_points, 3)
    return surface_metrics(mesh, points, target, CFG)


BOX = trimesh.creation.box(extents=(0.7, 0.4, 0.55))


def _sampling_noise(target: ShapeTarget) -> dict[str, float]:
    """The score of a second, independent sample of the true surface."""
    return surface_metrics(None, sample_surface(BOX, CFG.recon_points, seed=5)[0], target, CFG)


def test_voxel_ceiling_is_the_target_grid_exactly():
    vox = voxelize(BOX, 16)
    model = VoxelGAN(resolution=16, z_dim=8, g_channels=4, d_channels=4)
    m = _score(model, _target(BOX, vox))
    assert m["iou"] == 1.0  # the data's own voxels, meshed and re-voxelised, are unchanged
    # ...but a 16^3 grid rounds the box's faces to its cells: far from perfect points.
    assert m["fscore@0.01"] < 0.5, m
    finer = _score(VoxelGAN(resolution=32, z_dim=8, g_channels=4, d_channels=4), _target(BOX))
    assert finer["chamfer_l1"] < m["chamfer_l1"], (finer, m)
    assert finer["fscore@0.01"] > m["fscore@0.01"], (finer, m)  # a finer grid, a higher ceiling


def test_sdf_ceiling_is_near_perfect_at_the_grid():
    model = DeepSDF(
        decoder=DeepSDFDecoder(latent_size=8, hidden=[16, 16], latent_in=[1]), points_resolution=32
    )
    target = _target(BOX)
    m = _score(model, target)
    noise = _sampling_noise(target)  # a second sample of the true surface
    assert m["fscore@0.01"] > 0.85 * noise["fscore@0.01"], (m, noise)
    assert m["chamfer_l2"] < 1.3 * noise["chamfer_l2"] and m["normal_consistency"] > 0.95, m


def test_point_ceiling_is_the_sampling_noise():
    model = PointFlow(zdim=4, encoder_hidden=(8,), encoder_head=(8,), point_dims=(8,),
                      latent_dims=(8,), mesh_points=2000)  # fmt: skip
    target = _target(BOX)
    m = _score(model, target)
    # Exactly what a second independent sample of the true surface scores (4000 points on a
    # box of area 1.8 lie ~0.02 apart, so F@0.01 is far below 1: the metric's own noise).
    noise = _sampling_noise(target)
    for k in ("chamfer_l2", "fscore@0.01"):
        assert abs(m[k] - noise[k]) < 0.1 * noise[k], (k, m, noise)


def test_mesh_ceiling_fits_the_template_to_the_surface():
    model = MeshGCN(zdim=4, hidden=8, blocks=1, ico_subdivisions=1, stages=2,
                    encoder_hidden=(8,), encoder_head=(8,))  # fmt: skip
    target = _target(BOX)
    sphere = model.template.level_vertices(1)  # the undeformed template, 162 vertices
    before = surface_metrics(
        trimesh.Trimesh(sphere.numpy(), model.template.faces(1).numpy()),
        sphere, target, CFG,
    )  # fmt: skip
    mesh, _ = model.ceiling(target, 100, 32)
    assert len(mesh.vertices) == len(sphere) and mesh.euler_number == 2  # same count, genus 0
    m = _score(model, target)
    assert m["chamfer_l1"] < 0.5 * before["chamfer_l1"], (m, before)
    assert m["fscore@0.01"] > 2 * before["fscore@0.01"], (m, before)
