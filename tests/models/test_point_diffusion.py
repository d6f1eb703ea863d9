"""Point diffusion (Luo & Hu 2021): schedule, coupling flow, loss, interface, configs, learning."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from tests.helpers.configs import compose_train
from tests.helpers.point_generators import Clouds, sample_distance
from tests.helpers.trainers import short_trainer
from zoo.models.point_diffusion import PointDiffusion, VarianceSchedule, linear_lr_between
from zoo.models.point_generator import LatentShape
from zoo.nn.coupling_flow import CouplingFlow
from zoo.representation import ShapeTarget

TINY = dict(
    zdim=8,
    encoder_hidden=(32, 64),
    encoder_head=(32,),
    denoiser_dims=(64, 64),
    flow_depth=4,
    flow_hidden=32,
    num_steps=50,
)


# ------------------------------------------------------------------ schedule and flow
def test_variance_schedule_matches_the_ddpm_formulas():
    s = VarianceSchedule(4, 0.1, 0.4)
    betas = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    ab = np.cumprod(1 - betas)
    np.testing.assert_allclose(s.betas.numpy(), betas, rtol=1e-6)
    np.testing.assert_allclose(s.alpha_bars.numpy(), ab, rtol=1e-6)
    post = betas[2] * (1 - ab[1]) / (1 - ab[2])  # posterior variance at t = 2
    assert float(s.sigma(2, 0.0)) == pytest.approx(np.sqrt(post), rel=1e-5)
    assert float(s.sigma(2, 1.0)) == pytest.approx(np.sqrt(0.2), rel=1e-5)
    assert float(s.sigma(1, 0.0)) == 0.0  # x_0 is drawn without noise
    t = s.sample_t(1000)
    assert int(t.min()) >= 1 and int(t.max()) <= 4
    with pytest.raises(ValueError, match="beta_1"):
        VarianceSchedule(10, 0.5, 0.1)
    with pytest.raises(ValueError, match="flexibility"):
        s.sigma(1, 2.0)


def test_coupling_flow_inverse_and_log_density():
    torch.manual_seed(0)
    flow = CouplingFlow(5, hidden=16, depth=4)
    for p in flow.parameters():  # away from the near-identity start, so the test can fail
        p.data.normal_(0, 0.2)
    z = torch.randn(7, 5, dtype=torch.float64)
    flow = flow.double()
    w, logdet = flow(z)
    torch.testing.assert_close(flow.inverse(w), z, atol=1e-9, rtol=0)
    with torch.no_grad():
        w, logdet = flow(z)
    jac = torch.autograd.functional.jacobian(lambda x: flow(x[None])[0][0], z[0])
    assert float(logdet[0]) == pytest.approx(float(torch.linalg.slogdet(jac)[1]), abs=1e-9)
    expected = -0.5 * (np.log(2 * np.pi) * 5 + (w[0] ** 2).sum()) + logdet[0]
    assert float(flow.log_prob(z)[0]) == pytest.approx(float(expected), abs=1e-9)
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        flow(torch.zeros(3, 4, dtype=torch.float64))


# ------------------------------------------------------------------ model
def test_loss_terms_interface_and_data_units():
    torch.manual_seed(0)
    model = PointDiffusion(**TINY)
    model.set_normalization(torch.tensor([1.0, -2.0, 3.0]), 10.0)
    clouds = torch.randn(3, 128, 3) * 10 + torch.tensor([1.0, -2.0, 3.0])
    terms = model.loss_terms(clouds)
    assert (
        terms["mse"].ndim == 0 and terms["prior"].shape == (3,) and terms["entropy"].shape == (3,)
    )
    # a fixed generator fixes the validation loss
    a = model.loss_terms(clouds, sample_z=False, generator=torch.Generator().manual_seed(1))
    b = model.loss_terms(clouds, sample_z=False, generator=torch.Generator().manual_seed(1))
    assert float(a["mse"]) == float(b["mse"])
    model.eval()
    shapes = model.sample(2, seed=0)
    assert len(shapes) == 2 and isinstance(shapes[0], LatentShape) and shapes[0].z.shape == (8,)
    pts = model.to_points(shapes[0], 100, seed=0)
    assert pts.shape == (100, 3) and torch.isfinite(pts).all()
    torch.testing.assert_close(pts, model.to_points(shapes[0], 100, seed=0))  # seeded
    # outputs are in data units: the same model in normalised units gives (pts - mean) / std
    unit = copy.deepcopy(model)
    unit.set_normalization(torch.zeros(3), 1.0)
    expected = unit.to_points(shapes[0], 100, seed=0) * 10.0 + torch.tensor([1.0, -2.0, 3.0])
    torch.testing.assert_close(pts, expected, atol=1e-4, rtol=1e-5)
    rec = model.reconstruct(ShapeTarget("t", points=clouds[0]))
    assert rec.z.shape == (8,)
    with pytest.raises(ValueError, match="points"):
        model.reconstruct(ShapeTarget("none"))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        model.loss_terms(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="n must be"):
        model.to_points(shapes[0], 0)


def test_cpu_default_and_paper_preset_configs():
    model = instantiate(compose_train(["model=point_diffusion"]).model)
    assert isinstance(model, PointDiffusion) and model.schedule.num_steps == 100
    paper = compose_train(["experiment=point_diffusion_paper"])
    m = paper.model
    assert (m.zdim, list(m.denoiser_dims), m.flow_depth, m.flow_hidden) == (
        256,
        [128, 256, 512, 256, 128],
        14,
        256,
    )
    assert (m.beta_1, m.beta_T, m.kl_weight, m.optimizer.lr) == (1e-4, 0.02, 1e-3, 2e-3)
    assert (paper.data.batch_size, paper.trainer.gradient_clip_val) == (128, 10.0)
    big = instantiate(m)
    assert big.denoiser.net.layers[2].layer.out_features == 512
    sched = big.configure_optimizers()["lr_scheduler"]["scheduler"]
    f = sched.lr_lambdas[0]
    assert f(100_000) == 1.0 and f(300_000) == pytest.approx(0.525)
    assert f(500_000) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="start < end"):
        linear_lr_between(torch.optim.SGD([torch.zeros(1)], lr=1.0), 10, 5, 0.1)


# ------------------------------------------------------------------ learning
def _two_families(n_shapes: int, n_points: int, seed: int) -> torch.Tensor:
    """(S, N, 3): half spheres of radius 0.3, half flat squares of side 0.6 in the xy plane."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n_shapes, n_points, 3, generator=g)
    spheres = d / d.norm(dim=-1, keepdim=True) * 0.3
    squares = (torch.rand(n_shapes, n_points, 3, generator=g) - 0.5) * 0.6
    squares[..., 2] = 0.0
    return torch.cat([spheres[: n_shapes // 2], squares[n_shapes // 2 :]])


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.usefixtures("one_thread")
def test_training_lowers_the_denoising_loss_and_moves_samples_onto_the_shapes(tmp_path):
    pl.seed_everything(0, verbose=False)
    clouds = _two_families(16, 512, seed=0)
    model = PointDiffusion(**TINY, optimizer=lambda p: torch.optim.Adam(p, lr=5e-3))
    trainer = short_trainer(tmp_path, 300, 150)
    train = DataLoader(Clouds(clouds, 256), batch_size=8, shuffle=True)
    val = DataLoader(Clouds(clouds, 256), batch_size=8)
    untrained = copy.deepcopy(model)
    trainer.fit(model, train, val)
    assert bool(model.stats_ready) and "val/mse" in trainer.callback_metrics
    untrained.set_normalization(model.points_mean, model.points_std)  # same units, no training
    for m in (model, untrained):
        m.eval()
    with torch.no_grad():
        g0, g1 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        mse0 = float(untrained.loss_terms(clouds, sample_z=False, generator=g0)["mse"])
        mse1 = float(model.loss_terms(clouds, sample_z=False, generator=g1)["mse"])
    assert mse1 < 0.7 * mse0, (mse0, mse1)
    d0, d1 = sample_distance(untrained, clouds, 6), sample_distance(model, clouds, 6)
    assert d1 < 0.5 * d0, (d0, d1)
