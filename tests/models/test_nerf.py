"""model=nerf: known-answer rendering tests with analytic fields, the Representation interface,
and training evidence on a small synthetic scene."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from tests.helpers.configs import compose_train
from tests.helpers.toy_scenes import (
    INFO,
    RADIUS,
    SphereField,
    heldout_psnr,
    lightning_fit,
    ring_cameras,
    toy_scene,
)
from zoo.models.nerf import NeRF, NeRFField, exponential_decay
from zoo.nn.mlp import MLP
from zoo.ops.occupancy import OccupancyGrid
from zoo.representation import ShapeTarget


def small_nerf(**kw) -> NeRF:
    field = NeRFField(pos_freqs=4, dir_freqs=2, depth=3, width=64, skips=(), use_viewdirs=False)
    model = NeRF(field, num_samples=32, optimizer=lambda p: torch.optim.Adam(p, lr=5e-3), **kw)
    model.configure_from_data(INFO)
    return model


def grid_nerf(**kw) -> NeRF:
    """``small_nerf`` sampling through an occupancy grid (NerfAcc-style empty-space skipping)."""
    field = NeRFField(pos_freqs=4, dir_freqs=2, depth=3, width=64, skips=(), use_viewdirs=True)
    grid = OccupancyGrid(resolution=24, decay=0.8, update_every=2, warmup_steps=16)
    model = NeRF(
        field,
        occupancy=grid,
        steps_per_diagonal=128,
        optimizer=lambda p: torch.optim.Adam(p, lr=5e-3),
        **kw,
    )
    model.configure_from_data(INFO)
    return model


# ---- building blocks ----------------------------------------------------------------------
def test_mlp_skip_concatenates_the_input():
    mlp = MLP(63, 256, 8, out_dim=None, skips=(4,))  # NeRF's trunk
    assert [layer.in_features for layer in mlp.layers] == [63, 256, 256, 256, 256, 319, 256, 256]
    assert mlp(torch.zeros(5, 63)).shape == (5, 256)
    assert MLP(4, 8, 2, out_dim=3)(torch.zeros(2, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match="skips"):
        MLP(4, 8, 2, skips=(1,))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        MLP(4, 8, 2)(torch.zeros(2, 5))


def test_nerf_field_density_depends_on_position_only():
    torch.manual_seed(0)
    field = NeRFField(pos_freqs=10, dir_freqs=4, depth=8, width=256, density_activation="softplus")
    x = torch.randn(16, 3)
    d1 = torch.nn.functional.normalize(torch.randn(16, 3), dim=-1)
    s1, c1 = field(x, d1)
    s2, c2 = field(x, -d1)
    assert s1.shape == (16,) and c1.shape == (16, 3)
    assert torch.allclose(s1, s2) and not torch.allclose(c1, c2)
    assert torch.allclose(field.density(x), s1)
    assert torch.all((c1 > 0) & (c1 < 1))


# ---- rendering with analytic fields -------------------------------------------------------
def _rays_through_sphere(offsets: Tensor) -> tuple[Tensor, Tensor]:
    """Rays from (b, 0, 1.6) along -z (camera z = -1 directions) for impact parameters b."""
    o = torch.stack([offsets, torch.zeros_like(offsets), torch.full_like(offsets, RADIUS)], -1)
    d = torch.tensor([0.0, 0.0, -1.0]).expand_as(o).contiguous()
    return o, d


def test_render_pass_matches_beer_lambert_through_a_sphere():
    model = small_nerf(num_importance=0)
    model.field = SphereField(radius=0.3, sigma=2.0)
    model.num_samples = 512
    b = torch.tensor([0.0, 0.1, 0.2, 0.29, 0.35])
    out = model.render_rays(*_rays_through_sphere(b))
    chord = 2 * (0.3**2 - b.clamp(max=0.3) ** 2).sqrt()
    assert torch.allclose(out["opacity"], 1 - torch.exp(-2.0 * chord), atol=0.01)
    # Colour: the sphere's colour weighted by opacity over the white background.
    expect = out["opacity"][:, None] * torch.tensor([0.2, 0.6, 0.9]) + (1 - out["opacity"])[:, None]
    assert torch.allclose(out["rgb"], expect, atol=1e-5)


def test_fine_pass_finds_the_surface():
    # An opaque ball: depth = distance to its surface (1.3). 8 coarse samples are 0.1375 apart
    # and the coarse depth is the first sample inside (1.394). The fine pass resamples densely
    # the bin between the mid-points around that sample ([1.325, 1.4625], run_nerf.py's bins),
    # so its first sample inside is at 1.325: error 0.025, a quarter of the coarse one.
    torch.manual_seed(0)
    field = SphereField(radius=0.3, sigma=1e3)
    model = small_nerf()
    model.field = field
    model.num_samples = 8
    coarse_err = (model.render_rays(*_rays_through_sphere(torch.zeros(4)))["depth"] - 1.3).abs()
    model.fine_field, model.num_importance = field, 64
    out = model.render_rays(*_rays_through_sphere(torch.zeros(4)))
    fine_err = (out["depth"] - 1.3).abs()
    assert "rgb_coarse" in out
    assert torch.allclose(coarse_err, torch.full((4,), 0.09375), atol=1e-4)
    assert fine_err.max() < 0.03 and fine_err.max() < 0.3 * coarse_err.max()


def test_render_maps_and_mesh_of_an_analytic_sphere():
    model = small_nerf()
    model.field = SphereField(radius=0.3, sigma=50.0)
    maps = model.render_maps(model, ring_cameras(2, 16))
    assert maps["rgb"].shape == (2, 16, 16, 3) and maps["depth"].shape == (2, 16, 16)
    assert maps["opacity"].shape == (2, 16, 16)
    centre, corner = maps["opacity"][:, 8, 8], maps["opacity"][:, 0, 0]
    assert torch.all(centre > 0.99) and torch.all(corner < 1e-6)
    assert torch.allclose(maps["depth"][:, 8, 8], torch.tensor([1.3, 1.3]), atol=0.03)
    assert torch.allclose(maps["rgb"][:, 0, 0], torch.ones(2, 3))  # background
    model.density_threshold = 25.0
    mesh = model.to_mesh(model, resolution=40)
    r = torch.as_tensor(mesh.vertices).norm(dim=-1)
    assert len(mesh.faces) > 100 and torch.allclose(r, torch.full_like(r, 0.3), atol=0.03)
    assert model.sample(3) == [model] * 3
    assert model.to_points(model, 64).shape == (64, 3)


def test_occupancy_march_matches_beer_lambert_and_skips_empty_space():
    model = grid_nerf()
    model.field = SphereField(radius=0.3, sigma=2.0)
    b = torch.tensor([0.0, 0.1, 0.2, 0.29, 0.4])
    rays = _rays_through_sphere(b)
    full = model.render_rays(*rays)  # no update yet: every cell occupied, nothing skipped
    chord = 2 * (0.3**2 - b.clamp(max=0.3) ** 2).sqrt()
    assert torch.allclose(full["opacity"], 1 - torch.exp(-2.0 * chord), atol=0.02)
    # The same as the paper's stratified sampler (fine steps on both sides).
    plain = small_nerf()
    plain.field, plain.num_samples = model.field, 512
    assert torch.allclose(plain.render_rays(*rays)["opacity"], full["opacity"], atol=0.02)
    torch.manual_seed(0)
    for step in range(1, 9):  # warm-up updates: every cell gets a random point each time
        model.before_train_step(step)
    assert model.occupancy.num_updates.item() == 4  # every update_every = 2 steps
    assert 0.01 < model.occupancy.occupancy_fraction() < 0.2  # the ball and boundary cells
    skipped = model.render_rays(*rays)
    assert torch.allclose(skipped["opacity"], full["opacity"], atol=0.01)
    assert torch.allclose(skipped["rgb"], full["rgb"], atol=0.01)
    assert int(skipped["samples"]) < 0.5 * int(full["samples"])
    # The mesh ignores empty cells; an emptied grid renders the background.
    model.occupancy.occupied.fill_(False)
    empty = model.render_rays(*rays)
    assert int(empty["samples"]) == 0 and torch.equal(empty["rgb"], torch.ones(5, 3))
    assert torch.all(model.mesh_density(torch.zeros(4, 3)) == 0)


def test_occupancy_is_optional_and_excludes_the_fine_pass():
    # The class default is the paper's sampler (old checkpoints and configs reproduce).
    assert NeRF(NeRFField()).occupancy is None
    with pytest.raises(ValueError, match="fine pass"):
        NeRF(NeRFField(), fine_field=NeRFField(), num_importance=8, occupancy=OccupancyGrid(8))
    with pytest.raises(ValueError, match="steps_per_diagonal"):
        NeRF(NeRFField(), occupancy=OccupancyGrid(8), steps_per_diagonal=1)
    model = grid_nerf()
    model.occupancy.occupied.fill_(False)
    model.reset_scene_state()  # a fresh copy forgets the grid
    assert model.occupancy.occupancy_fraction() == 1.0
    assert model.occupancy.step_size == pytest.approx(math.sqrt(3) * 1.1 / 128)


def test_configure_from_data_validates():
    model = small_nerf()
    assert model.background == [1.0, 1.0, 1.0] and model.near == 1.05
    with pytest.raises(ValueError, match="near"):
        model.configure_from_data({**INFO, "near": 3.0})
    with pytest.raises(ValueError, match="bbox_max"):
        model.configure_from_data({k: v for k, v in INFO.items() if k != "bbox_max"})
    with pytest.raises(ValueError, match="fine_field"):
        NeRF(NeRFField(), num_importance=16)


def test_exponential_decay_schedule():
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=5e-4)
    sched = exponential_decay(opt, decay_steps=100)
    for _ in range(50):
        opt.step()
        sched.step()
    assert math.isclose(opt.param_groups[0]["lr"], 5e-4 * 0.1**0.5, rel_tol=1e-6)


# ---- training evidence --------------------------------------------------------------------
@pytest.mark.slow
def test_nerf_training_raises_heldout_psnr():
    torch.manual_seed(0)
    train_cams, train_imgs, test_cams, test_imgs = toy_scene(32)
    model = small_nerf()
    before = heldout_psnr(model, test_cams, test_imgs)
    history = model.fit_views(train_cams, train_imgs, steps=300, rays_per_batch=512)
    after = heldout_psnr(model, test_cams, test_imgs)
    assert after > before + 5.0, (before, after)
    assert sum(history[-20:]) / 20 > sum(history[:20]) / 20 + 5.0
    # reconstruct: the training scene is returned as is; another scene gets a fitted copy.
    model.data_info["scene"] = "toy_box"
    assert model.reconstruct(ShapeTarget(name="toy_box")) is model
    model.reconstruct_steps = 2
    other = model.reconstruct(ShapeTarget(name="other", cameras=test_cams, views=test_imgs))
    assert other is not model and isinstance(other, NeRF)
    assert not torch.equal(other.field.head.weight, model.field.head.weight)
    with pytest.raises(ValueError, match="views"):
        model.reconstruct(ShapeTarget(name="other"))


@pytest.mark.slow
def test_nerf_with_occupancy_grid_learns_and_skips():
    torch.manual_seed(0)
    train_cams, train_imgs, test_cams, test_imgs = toy_scene(32)
    model = grid_nerf()
    before = heldout_psnr(model, test_cams, test_imgs)
    model.fit_views(train_cams, train_imgs, steps=300, rays_per_batch=512)
    after = heldout_psnr(model, test_cams, test_imgs)
    assert after > before + 5.0, (before, after)
    # The grid has found the box: most of the scene box is skipped.
    assert model.occupancy.num_updates.item() > 100
    assert model.occupancy.occupancy_fraction() < 0.5


def test_configs_cpu_default_and_paper_preset():
    from hydra.utils import instantiate

    cpu = instantiate(compose_train(["model=nerf"]).model)
    assert isinstance(cpu, NeRF) and cpu.fine_field is None and cpu.num_samples == 64
    assert len(cpu.field.trunk.layers) == 4 and cpu.field.trunk.layers[0].out_features == 128
    assert isinstance(cpu.occupancy, OccupancyGrid) and cpu.field.use_viewdirs
    assert (
        instantiate(compose_train(["model=nerf", "model.occupancy=null"]).model).occupancy is None
    )
    cfg = compose_train(["experiment=nerf_paper"])
    paper = instantiate(cfg.model)
    assert paper.num_samples == 64 and paper.num_importance == 128
    for field in (paper.field, paper.fine_field):
        assert field.use_viewdirs and field.pos_enc.num_freqs == 10 and field.dir_enc.num_freqs == 4
        assert len(field.trunk.layers) == 8 and field.trunk.skips == (4,)
    assert cfg.data.rays_per_batch == 1024 and cfg.model.optimizer.lr == 5e-4
    opt = paper.configure_optimizers()
    for _ in range(10):
        opt["optimizer"].step()
        opt["lr_scheduler"]["scheduler"].step()
    assert math.isclose(opt["optimizer"].param_groups[0]["lr"], 5e-4 * 0.1 ** (10 / 500000))


def test_lightning_training_logs_loss_and_val_psnr():
    metrics = lightning_fit(small_nerf())
    for key in ("train/loss", "train/psnr", "val/psnr"):
        assert key in metrics and torch.isfinite(metrics[key]), key
