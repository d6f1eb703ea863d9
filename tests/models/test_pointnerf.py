"""model=pointnerf: neighbour aggregation with known answers, empty space, growing, pruning,
the starting points (PLY, capture points, random), the PLY export, checkpoints, and training
evidence on the toy box scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from torch import Tensor, nn

from tests.helpers.toy_scenes import INFO, heldout_psnr, toy_scene
from zoo.data.io import DataError
from zoo.models.pointnerf import PointAggregator, PointNeRF
from zoo.models.pointnerf.ply import read_init_points
from zoo.ops.surface import sample_surface


def small_model(**kw) -> PointNeRF:
    args = {
        "num_init": 500,
        "max_points": 3000,
        "steps_per_diagonal": 64,
        "grid_resolution": 24,
        "optimizer": lambda p: torch.optim.Adam(p, lr=5e-3),
        "lr_points": 1e-2,
        **kw,
    }
    agg = PointAggregator(feature_dim=8, hidden_dim=32, feature_layers=2, colour_layers=1)
    model = PointNeRF(agg, **args)
    model.configure_from_data(INFO)
    return model


def box_points(n: int = 1500) -> Tensor:
    """Points on the toy scene's box (the true surface)."""
    return sample_surface(trimesh.creation.box(extents=(0.6, 0.45, 0.5)), n, seed=0)[0].float()


class WeightProbe(nn.Module):
    """An aggregator whose density is the sum of the weights it is given and whose colour is
    the weighted mean of the first feature: exposes the weighting."""

    feature_dim = 1

    def forward(self, features, rel, weights, directions):
        sigma = weights.sum(-1)
        rgb = (weights * features[..., 0]).sum(-1, keepdim=True).expand(-1, 3)
        return sigma, None if directions is None else rgb


def test_inverse_distance_weights_times_confidence():
    model = PointNeRF(PointAggregator(feature_dim=1), radius=0.5, num_init=2, max_points=4)
    model.configure_from_data(INFO)
    model.set_points(torch.tensor([[0.1, 0, 0], [-0.3, 0, 0], [0.45, 0.45, 0.45]]))
    model.aggregator = WeightProbe()
    gamma = torch.tensor([0.8, 0.4, 0.9])
    with torch.no_grad():
        model.conf_logits[:3] = torch.logit(gamma)
        model.features[:3, 0] = torch.tensor([1.0, 0.0, 5.0])
    sigma, rgb, nearest = model.shade(torch.zeros(1, 3), torch.tensor([[0.0, 0, -1]]))
    w = torch.tensor([1 / 0.1, 1 / 0.3])  # the third point is beyond the radius
    w = w / w.sum()
    assert sigma.item() == pytest.approx(float((gamma[:2] * w).sum()), rel=1e-5)
    assert rgb[0, 0].item() == pytest.approx(float(gamma[0] * w[0]), rel=1e-5)
    assert nearest.item() == pytest.approx(0.1, rel=1e-5)


def test_locations_without_a_point_are_empty_and_rays_there_see_the_background():
    model = small_model(radius=0.05)
    model.set_points(torch.tensor([[0.4, 0.4, 0.4], [0.41, 0.4, 0.4]]))
    x = torch.tensor([[0.0, 0.0, 0.0], [0.4, 0.4, 0.42]])
    sigma, _, nearest = model.shade(x, torch.tensor([[0.0, 0, -1]] * 2))
    assert sigma[0] == 0 and torch.isinf(nearest[0]) and sigma[1] > 0
    assert model.occupancy.occupancy_fraction() < 0.01  # only the cells near the two points
    o = torch.tensor([[0.0, 0.0, 1.6], [0.1, -0.1, 1.6]])
    out = model.render_rays(o, torch.tensor([[0.0, 0, -1]] * 2))
    assert int(out["samples"]) == 0  # both rays miss every point's cells: nothing is shaded
    assert torch.equal(out["rgb"], torch.ones(2, 3)) and torch.all(out["opacity"] == 0)


def test_grow_adds_points_only_where_far_from_the_others_and_prune_removes_doubtful_ones():
    model = small_model(radius=0.1, grow_every=1, grow_distance=0.5, grow_max=10)
    model.set_points(torch.tensor([[0.0, 0, 0], [0.3, 0, 0]]))
    near, far = torch.tensor([[0.02, 0, 0]]), torch.tensor([[0.08, 0, 0]])
    model._grow_pool = [near, far, far + 1e-4]  # the last two share a cell: one new point
    assert model.grow() == 1
    assert model.num_points == 3
    assert torch.allclose(model.positions[model.active][-1], far[0])
    with torch.no_grad():
        model.conf_logits[1] = -5.0  # gamma 0.007 < 0.1
    assert model.prune() == 1 and model.num_points == 2
    assert not bool(model.active[1])
    with torch.no_grad():
        model.conf_logits[:] = -5.0  # never prune the last points away
    assert model.prune() == 0 and model.num_points == 2


def test_starting_points_ply_capture_points_random_and_bad_files(tmp_path):
    pts = box_points(200).numpy()
    ply = tmp_path / "cloud.ply"
    trimesh.PointCloud(pts).export(ply)
    model = small_model(init_ply=str(ply))
    assert model.num_points == 200
    assert np.allclose(model.positions[model.active].numpy(), pts, atol=1e-6)
    # The capture's sparse points (info()["init_points"]), when no init_ply is given.
    info = dict(INFO, init_points={"path": str(ply), "transform": np.eye(4)[:3].tolist()})
    model = small_model(max_points=150)
    model.configure_from_data(info)
    assert model.num_points == 150  # a seeded subset of the 200
    # Random in the scene box otherwise.
    model = small_model(num_init=300)
    p = model.positions[model.active]
    assert len(p) == 300 and bool((p.abs() <= 0.55).all())
    # An empty or non-finite point file is refused, naming the file.
    empty = tmp_path / "empty.ply"
    empty.write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\n"
                     "property float y\nproperty float z\nend_header\n")  # fmt: skip
    bad = tmp_path / "nan.ply"
    bad.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\n"
                   "property float y\nproperty float z\nend_header\n0 0 0\nnan 0 0\n")  # fmt: skip
    for path in (empty, bad, tmp_path / "missing.ply"):
        with pytest.raises(DataError) as info:
            small_model(init_ply=str(path))
        assert str(path) in str(info.value)
    # Capture points: none is a capture without points (random start), NaN is an error.
    model = small_model(num_init=100)
    model.configure_from_data(dict(INFO, init_points={"path": str(empty)}))
    assert model.num_points == 100
    with pytest.raises(DataError) as info:
        model.configure_from_data(dict(INFO, init_points={"path": str(bad)}))
    assert str(bad) in str(info.value) and "init_points" in str(info.value)


def test_ply_export_has_positions_colours_confidence_and_features(tmp_path):
    model = small_model()
    model.set_points(box_points(100))
    path = model.export_files(model, tmp_path / "scene")[0]
    assert path.name == "scene_neural_points.ply"
    header = path.read_bytes().split(b"end_header")[0].decode()
    for name in ("x", "red", "confidence", "f_0", "f_7"):
        assert f" {name}\n" in header, header
    assert np.allclose(read_init_points(path), model.positions[model.active].numpy(), atol=1e-6)
    cloud = trimesh.load(path, process=False)
    assert len(cloud.vertices) == 100 and cloud.colors.shape[0] == 100


def test_checkpoint_state_restores_grown_and_pruned_points():
    model = small_model(radius=0.1)
    model.set_points(box_points(300))
    model._grow_pool = [torch.tensor([[0.36, 0.0, 0.0]])]  # 0.06 off the x = 0.3 face
    assert model.grow() == 1
    with torch.no_grad():
        model.conf_logits[:10] = -5.0
    model.prune()
    other = small_model(radius=0.1)  # different starting points
    other.load_state_dict(model.state_dict())
    x = box_points(50) * 1.05
    d = torch.tensor([[0.0, 0.0, -1.0]]).expand(50, 3)
    assert other.num_points == model.num_points
    assert torch.allclose(other.shade(x, d)[0], model.shade(x, d)[0])


def test_learns_the_toy_box_from_its_surface_points():
    """From surface points (Point-NeRF col's setting): held-out PSNR rises well above the
    initial render within a few seconds of training."""
    torch.manual_seed(0)
    cams, images, test_cams, test_images = toy_scene(16)
    model = small_model(init_ply=None)
    model.set_points(box_points(1500))
    before = heldout_psnr(model, test_cams, test_images)
    history = model.fit_views(cams, images, steps=40, rays_per_batch=256)
    after = heldout_psnr(model, test_cams, test_images)
    assert all(np.isfinite(history))
    assert after > before + 4.0, (before, after)


def test_reconstruct_another_scene_fits_a_fresh_copy_from_fresh_points():
    from zoo.representation import ShapeTarget

    cams, images, _, _ = toy_scene(12)
    model = small_model(reconstruct_steps=3, reconstruct_rays=64)
    model.set_points(box_points(300))
    with torch.no_grad():
        model.features.add_(1.0)
    fitted = model.reconstruct(ShapeTarget("other", cameras=cams, views=images))
    assert fitted is not model and fitted.num_points == 500  # num_init random points again
    assert not torch.equal(fitted.features, model.features)
    assert model.reconstruct(ShapeTarget(INFO["scene"])) is model


def test_carving_keeps_the_random_points_inside_the_visual_hull():
    cams, images, _, _ = toy_scene(24)
    model = small_model(num_init=2000, carve_fraction=0.1)
    assert model._random_start
    assert model.carve(cams, images) == 2000  # refilled to as many inside the hull
    kept = model.positions[model.active]
    assert model.num_points == 2000
    # The box is 0.6 x 0.45 x 0.5; its visual hull from two rings of views is a little larger
    # (most along z, seen from at most 52 degrees of elevation); the scene box is 1.1 wide.
    assert bool((kept.abs() <= torch.tensor([0.42, 0.36, 0.45])).all()), kept.abs().max(0)
    # No background in the images (a photograph): nothing is carved.
    model = small_model(num_init=300, carve_fraction=0.1)
    assert model.carve(cams, torch.rand_like(images) * 0.5) == 0 and model.num_points == 300


@pytest.mark.slow
@pytest.mark.parametrize("case", ["empty", "nan"])
def test_cli_bad_point_file_is_one_error_line_and_changes_nothing(tmp_path, case):
    from test_gaussians import _tiny_npz

    from tests.reliability.clirun import last_line, run, snapshot

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"an earlier run's checkpoint")
    npz = _tiny_npz(tmp_path / "scene.npz")
    bad = tmp_path / f"{case}.ply"
    rows = "" if case == "empty" else "0 0 0\nnan 0 0\n"
    bad.write_text(
        f"ply\nformat ascii 1.0\nelement vertex {len(rows.splitlines())}\nproperty float x\n"
        f"property float y\nproperty float z\nend_header\n{rows}"
    )
    before = snapshot(run_dir)
    proc = run(
        "zoo.train",
        "model=pointnerf",
        "data=tinynerf",
        f"data.path={npz}",
        "data.holdout=2",
        f"model.init_ply={bad}",
        "trainer.max_steps=2",
        "logger=none",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    line = last_line(proc.stderr)
    assert line.startswith("error: ") and str(bad) in line, proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(run_dir) == before
