"""model=mipnerf: cone tracing against known answers (a uniform medium's opacity), the paper's
loss and schedule, the configs, and training evidence on the toy box scene."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from tests.helpers.configs import compose_train
from tests.helpers.toy_scenes import INFO, heldout_psnr, lightning_fit, toy_scene
from zoo.models.mipnerf import MipNeRF, MipNeRFField, mip_lr_schedule
from zoo.ops.mip import conical_frustums
from zoo.ops.occupancy import OccupancyGrid


class UniformMedium(nn.Module):
    """Stub field: density ``sigma`` everywhere, one colour; records the variances it saw."""

    def __init__(self, sigma: float = 0.7) -> None:
        super().__init__()
        self.sigma = sigma
        self.anchor = nn.Parameter(torch.zeros(()))
        self.seen_var: list[Tensor] = []

    def forward(self, mean: Tensor, var: Tensor, viewdirs: Tensor) -> tuple[Tensor, Tensor]:
        self.seen_var.append(var.detach())
        sigma = torch.full_like(mean[:, 0], self.sigma) + 0 * self.anchor
        return sigma, torch.tensor([0.2, 0.5, 0.8]).expand(len(mean), 3)

    def density(self, mean: Tensor, var: Tensor) -> Tensor:
        return torch.full_like(mean[:, 0], self.sigma)


def small_mip(**kw) -> MipNeRF:
    field = MipNeRFField(depth=3, width=64, deg_view=2, max_deg=8)
    model = MipNeRF(field, num_samples=16, optimizer=lambda p: torch.optim.Adam(p, lr=5e-3), **kw)
    model.configure_from_data(INFO)
    return model


def grid_mip(**kw) -> MipNeRF:
    """``small_mip`` with its coarse level marched through an occupancy grid."""
    grid = OccupancyGrid(resolution=24, decay=0.8, update_every=2, warmup_steps=16)
    return small_mip(occupancy=grid, steps_per_diagonal=128, **kw)


def _rays(n: int = 6):
    gen = torch.Generator().manual_seed(0)
    origins = torch.randn(n, 3, generator=gen) * 0.1
    directions = torch.randn(n, 3, generator=gen)
    return origins, directions, torch.full((n,), 0.002)


def test_uniform_medium_opacity_is_beer_lambert_over_near_far():
    """The frustums tile [near, far] exactly (no infinite last segment), so a uniform medium
    has opacity 1 - exp(-sigma (far - near) |d|) at the coarse level, and at the resampled
    level when it is deterministic (random resampled posts, as the reference's, need not reach
    near and far)."""
    model = MipNeRF(UniformMedium(0.7), num_samples=8)
    model.configure_from_data(INFO)
    o, d, radii = _rays()
    length = (INFO["far"] - INFO["near"]) * d.norm(dim=-1)
    expected = 1 - torch.exp(-0.7 * length)
    bg = torch.tensor(INFO["background"])
    colour = expected[:, None] * torch.tensor([0.2, 0.5, 0.8]) + (1 - expected[:, None]) * bg
    out = model.render_rays(o, d, perturb=False, radii=radii)
    torch.testing.assert_close(out["opacity"], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["rgb"], colour, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["rgb_coarse"], colour, atol=1e-5, rtol=0)
    # Jittered posts lose at most half a bin at each end: one bin of L / S in all.
    out = model.render_rays(o, d, perturb=True, radii=radii)
    coarse_opacity = (out["rgb_coarse"][:, 0] - bg[0]) / (0.2 - bg[0])
    lower = 1 - torch.exp(-0.7 * length * (1 - 1 / 8))
    assert (coarse_opacity <= expected + 1e-5).all() and (coarse_opacity >= lower - 1e-5).all()
    assert (out["opacity"] <= expected + 1e-5).all()


def test_one_network_for_both_levels_and_wider_cones_blur_more():
    field = UniformMedium()
    model = MipNeRF(field, num_samples=8, num_levels=2)
    model.configure_from_data(INFO)
    o, d, radii = _rays()
    model.render_rays(o, d, radii=radii)
    assert len(field.seen_var) == 2  # the same module was called at both levels
    model.render_rays(o, d, radii=4 * radii)
    # The covariance grows with the footprint (variance across the cone x 16).
    assert (field.seen_var[2] > field.seen_var[0]).all()
    with pytest.raises(ValueError, match="radii"):
        model.render_rays(o, d)
    with pytest.raises(ValueError, match="radii"):
        model._render(o, d, None, False)


def test_field_outputs_follow_the_reference_activations():
    field = MipNeRFField(depth=6, width=16, deg_view=2, max_deg=4)
    assert field.trunk.skips == (4,)  # the encoded input again after the fifth layer
    for module in field.modules():  # raw outputs all zero
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
    x = torch.zeros(4, 3)
    sigma, rgb = field(x, torch.zeros(4, 3), torch.nn.functional.normalize(torch.ones(4, 3)))
    torch.testing.assert_close(sigma, torch.full((4,), math.log1p(math.exp(-1.0))))  # bias -1
    torch.testing.assert_close(rgb, torch.full((4, 3), 0.5))  # sigmoid(0) padded stays 0.5
    nn.init.constant_(field.rgb_head.out.bias, 50.0)
    _, rgb = field(x, torch.zeros(4, 3), torch.nn.functional.normalize(torch.ones(4, 3)))
    torch.testing.assert_close(rgb, torch.full((4, 3), 1.001))  # padding 0.001 past 1


def test_loss_weights_coarse_by_0p1_and_rays_by_lossmult():
    model = small_mip()
    target = torch.zeros(2, 3)
    out = {"rgb": torch.tensor([[0.1] * 3, [0.3] * 3]), "rgb_coarse": torch.full((2, 3), 0.5)}
    assert float(model.photometric_loss(out, target)) == pytest.approx(
        (0.01 + 0.09) / 2 + 0.1 * 0.25
    )
    w = torch.tensor([1.0, 3.0])  # weighted mean over rays
    assert float(model.photometric_loss(out, target, w)) == pytest.approx(
        (0.01 + 3 * 0.09) / 4 + 0.1 * 0.25
    )


def test_lr_schedule_is_log_linear_after_a_sine_warm_up():
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=5e-4)
    sched = mip_lr_schedule(opt, max_steps=1000, final_ratio=0.01, delay_steps=100)
    factor = sched.lr_lambdas[0]
    assert factor(0) == pytest.approx(0.01)
    assert factor(50) == pytest.approx((0.01 + 0.99 * math.sin(math.pi / 4)) * 0.01**0.05)
    assert factor(500) == pytest.approx(0.1)
    assert factor(1000) == pytest.approx(0.01) and factor(5000) == pytest.approx(0.01)


def test_configs_cpu_default_and_paper_preset():
    from hydra.utils import instantiate

    cpu = instantiate(compose_train(["model=mipnerf"]).model)
    assert isinstance(cpu, MipNeRF) and cpu.num_levels == 1 and cpu.coarse_loss_weight == 0.1
    assert isinstance(cpu.occupancy, OccupancyGrid)
    assert cpu.field.max_deg == 16 and cpu.field.min_deg == 0 and cpu.resample_padding == 0.01
    cfg = compose_train(["experiment=mipnerf_paper"])
    paper = instantiate(cfg.model)
    assert paper.num_samples == 128 and len(paper.field.trunk.layers) == 8
    assert paper.num_levels == 2
    assert paper.occupancy is None  # the paper's stratified coarse level
    assert paper.field.trunk.skips == (4,) and paper.field.density_bias == -1.0
    assert paper.field.rgb_padding == 0.001 and cfg.data.rays_per_batch == 4096
    opt = paper.configure_optimizers()
    assert opt["optimizer"].param_groups[0]["lr"] == pytest.approx(5e-4 * 0.01)  # warm-up


def test_density_and_mesh_of_an_untrained_model():
    model = small_mip()
    model.data_info["focal"] = 40.0
    assert model.point_variance() > 0
    sigma = model.density(torch.zeros(7, 3))
    assert sigma.shape == (7,) and (sigma >= 0).all()
    maps = model.render_maps(model, toy_scene(8)[2])
    assert maps["rgb"].shape == (4, 8, 8, 3) and torch.isfinite(maps["rgb"]).all()


@pytest.mark.slow
def test_mipnerf_training_raises_heldout_psnr():
    torch.manual_seed(0)
    train_cams, train_imgs, test_cams, test_imgs = toy_scene(24)
    model = small_mip()
    before = heldout_psnr(model, test_cams, test_imgs)
    history = model.fit_views(train_cams, train_imgs, steps=150, rays_per_batch=512)
    after = heldout_psnr(model, test_cams, test_imgs)
    # Measured: 9.3 -> 21.5 dB (two seeds); the thresholds leave half of that as margin.
    assert after > before + 6.0, (before, after)
    assert sum(history[-20:]) / 20 > sum(history[:20]) / 20 + 5.0


def test_lightning_training_logs_loss_and_val_psnr():
    metrics = lightning_fit(small_mip())  # the views datamodule's batches carry radii
    for key in ("train/loss", "train/psnr", "val/psnr"):
        assert key in metrics and torch.isfinite(metrics[key]), key


def _box_rays(n: int = 6):
    """Rays from z = 1.6 towards the toy box (INFO: box [-0.55, 0.55]^3, t in [1.05, 2.15]),
    the last one pointing away from it."""
    gen = torch.Generator().manual_seed(1)
    origins = torch.tensor([0.0, 0.0, 1.6]) + 0.02 * torch.randn(n, 3, generator=gen)
    directions = torch.tensor([0.0, 0.0, -1.0]) + 0.05 * torch.randn(n, 3, generator=gen)
    directions[-1] = torch.tensor([0.0, 0.3, 1.0])  # misses the box
    return origins, directions, torch.full((n,), 0.004)


def test_marched_intervals_tile_the_segment_and_give_beer_lambert():
    """Grid-marched coarse level: sample k stands for the interval t_k +- dt / 2, consecutive
    intervals tile the marched segment, each is encoded as its own conical frustum, and a
    uniform medium (every cell occupied, no early stop) has opacity 1 - exp(-sigma n step) at
    both levels (the resampled posts stay within the evaluated span); a ray missing the box
    is not evaluated and shows the background."""
    field = UniformMedium(0.7)
    grid = OccupancyGrid(resolution=8)  # never updated: every cell occupied
    model = MipNeRF(
        field,
        num_samples=8,
        occupancy=grid,
        steps_per_diagonal=64,
        early_stop_eps=0.0,
        march_segments=1,
    )
    model.configure_from_data(INFO)
    o, d, radii = _box_rays()
    coarse = model.march_coarse(o, d, radii, perturb=False)
    t, edges, evaluated = coarse["t"], coarse["edges"], coarse["evaluated"]
    dt = model.step_size / d.norm(dim=-1)  # (R,) interval length in t
    torch.testing.assert_close(edges[:, :-1], t - dt[:, None] / 2)
    torch.testing.assert_close(edges[:, 1:], t + dt[:, None] / 2)  # no gaps, no overlaps
    n_eval = evaluated.sum(-1)
    assert n_eval[-1] == 0 and (n_eval[:-1] > 20).all()
    assert (coarse["weights"][~evaluated] == 0).all()
    assert (evaluated[:, :-1] | ~evaluated[:, 1:]).all()  # one contiguous run from the entry
    # The field saw exactly the frustums of the evaluated intervals (ray-major packing).
    _, var = conical_frustums(o, d, edges, radii)  # (R, S, 3)
    torch.testing.assert_close(field.seen_var[0], var[evaluated])
    expected = 1 - torch.exp(-0.7 * n_eval * model.step_size)
    torch.testing.assert_close(coarse["opacity"], expected, atol=1e-5, rtol=0)
    out = model.render_rays(o, d, perturb=False, radii=radii)
    torch.testing.assert_close(out["opacity"], expected, atol=1e-5, rtol=0)
    bg = torch.tensor(INFO["background"])
    colour = expected[:, None] * torch.tensor([0.2, 0.5, 0.8]) + (1 - expected[:, None]) * bg
    torch.testing.assert_close(out["rgb"], colour, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["rgb_coarse"], colour, atol=1e-5, rtol=0)
    assert len(field.seen_var[-1]) == 5 * 8  # the fine level: N frustums, hit rays only
    # Jittered: posts still inside the evaluated span, so the opacity cannot exceed it.
    out = model.render_rays(o, d, perturb=True, radii=radii)
    assert (out["opacity"] <= expected + 1e-5).all() and out["opacity"][-1] == 0


@pytest.mark.slow
def test_grid_marched_mipnerf_prunes_space_and_learns():
    torch.manual_seed(0)
    train_cams, train_imgs, test_cams, test_imgs = toy_scene(24)
    model = grid_mip()
    before = heldout_psnr(model, test_cams, test_imgs)
    history = model.fit_views(train_cams, train_imgs, steps=60, rays_per_batch=256)
    after = heldout_psnr(model, test_cams, test_imgs)
    # Measured (seeds 0-2): 17-20 % of the cells left occupied, held-out PSNR 9.3-9.5 ->
    # 16.5-17.2 dB, training PSNR +4.5-4.9 dB; the thresholds leave about half as margin.
    assert model.occupancy.occupancy_fraction() < 0.5  # empty space was dropped
    assert after > before + 3.5, (before, after)
    assert sum(history[-20:]) / 20 > sum(history[:20]) / 20 + 2.5
