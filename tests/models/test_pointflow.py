"""PointFlow: ConcatSquash layers, CNF likelihood maths, normalisation, interface, learning."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch.autograd.functional import jacobian
from torch.utils.data import DataLoader

from tests.helpers.configs import compose_train
from tests.helpers.point_generators import Clouds, sample_distance
from tests.helpers.trainers import short_trainer
from zoo.models.pointflow import CNF, PointFlow, PointFlowShape
from zoo.models.pointflow.cnf import ODEFunc
from zoo.nn.concat_squash import ConcatSquashLinear, ConcatSquashNet
from zoo.representation import ShapeTarget

TINY = dict(
    zdim=8,
    encoder_hidden=(32, 64),
    encoder_head=(32,),
    point_dims=(64, 64),
    latent_dims=(32, 32),
    solver="rk4",
    steps=1,
)


def _row_traces(jac: torch.Tensor, b: int, n: int | None) -> torch.Tensor:
    """Per-row traces of a full autograd Jacobian of a (B, [N,] D) -> (B, [N,] D) map."""
    if n is None:
        return torch.stack([jac[i, :, i, :].trace() for i in range(b)])
    return torch.stack(
        [torch.stack([jac[i, j, :, i, j, :].trace() for j in range(n)]) for i in range(b)]
    )


# ------------------------------------------------------------------ ConcatSquash
def test_concat_squash_linear_formula():
    torch.manual_seed(0)
    layer = ConcatSquashLinear(3, 4, 2)
    x, ctx = torch.randn(5, 7, 3), torch.randn(5, 2)
    ref = (x @ layer.layer.weight.T + layer.layer.bias) * torch.sigmoid(
        ctx @ layer.hyper_gate.weight.T + layer.hyper_gate.bias
    )[:, None] + (ctx @ layer.hyper_bias.weight.T)[:, None]
    torch.testing.assert_close(layer(x, ctx), ref)
    assert layer.hyper_bias.bias is None  # the shift has no bias of its own (FFJORD/PointFlow)
    with pytest.raises(ValueError, match="ctx must be"):
        layer(x, torch.randn(4, 2))


@pytest.mark.parametrize("activation", ["tanh", "softplus", "elu"])
@pytest.mark.parametrize("hidden", [(), (6,), (6, 5)])
def test_forward_with_trace_matches_autograd(activation, hidden):
    torch.manual_seed(1)
    net = ConcatSquashNet(3, hidden, 4, activation=activation).double()
    ctx = torch.randn(2, 4, dtype=torch.float64)
    for shape in [(2, 5, 3), (2, 3)]:
        x = torch.randn(shape, dtype=torch.float64)
        out, trace = net.forward_with_trace(x, ctx)
        torch.testing.assert_close(out, net(x, ctx))
        ref = _row_traces(
            jacobian(lambda y: net(y, ctx), x), 2, shape[1] if len(shape) == 3 else None
        )
        torch.testing.assert_close(trace, ref)


# ------------------------------------------------------------------ CNF maths
def _tiny_cnf(**kw) -> CNF:
    torch.manual_seed(2)
    args = dict(ctx_dim=2, solver="dopri5", atol=1e-9, rtol=1e-9, time_length=0.7)
    return CNF(3, (8, 8), **{**args, **kw}).double()


def test_cnf_change_of_variables_and_inverse():
    """delta = log p_end(y) - log p(x) = -log|det dy/dx| (Chen et al. 2018), and the reverse
    solve inverts the forward one."""
    cnf = _tiny_cnf()
    ctx = torch.randn(1, 2, dtype=torch.float64)
    x = torch.randn(1, 1, 3, dtype=torch.float64)
    y, delta = cnf(x, ctx)
    jac = jacobian(lambda p: cnf(p, ctx, with_logp=False)[0], x).reshape(3, 3)
    torch.testing.assert_close(delta.reshape(()), -torch.linalg.slogdet(jac)[1], atol=1e-6, rtol=0)
    assert abs(float(delta.detach())) > 1e-3  # a non-trivial volume change
    x_back, none = cnf(y, ctx, reverse=True, with_logp=False)
    assert none is None
    torch.testing.assert_close(x_back, x, atol=1e-6, rtol=0)


def test_cnf_adjoint_gradients_match_direct():
    """The adjoint method gives the gradients of direct backprop, including the context's."""
    grads = []
    for adjoint in (False, True):
        cnf = _tiny_cnf(adjoint=adjoint)
        x = torch.randn(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        ctx = torch.randn(2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
        ctx.requires_grad_(True)
        y, delta = cnf(x, ctx)
        ((y**2).sum() + delta.sum()).backward()
        grads.append([ctx.grad] + [p.grad for p in cnf.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_hutchinson_is_unbiased():
    """The mean of many probes e^T J e approaches the exact trace (within 5 standard errors)."""
    torch.manual_seed(5)
    func = ODEFunc(3, (16,), ctx_dim=2, divergence="hutchinson").double()
    rows = 20000  # one point repeated: every row is an independent probe of the same Jacobian
    y = torch.randn(1, 1, 3, dtype=torch.float64).expand(1, rows, 3).contiguous()
    ctx = torch.randn(1, 2, dtype=torch.float64)
    state = (y, torch.zeros(1, rows, 1, dtype=torch.float64), ctx)
    func.noise = torch.randn_like(y)
    with torch.no_grad():
        est = -func(torch.tensor(0.3, dtype=torch.float64), state)[1].reshape(-1)
    func.divergence, func.with_logp = "exact", True
    with torch.no_grad():
        exact = -func(torch.tensor(0.3, dtype=torch.float64), state)[1].reshape(-1)[0]
    se = est.std() / math.sqrt(rows)
    assert est.std() > 0  # really stochastic
    assert abs(est.mean() - exact) < 5 * se


def test_cnf_checks_its_inputs():
    with pytest.raises(ValueError, match="fixed-step"):
        CNF(3, (4,), solver="rk4")
    with pytest.raises(ValueError, match="solver must be"):
        CNF(3, (4,), solver="magic")
    cnf = CNF(3, (4,), ctx_dim=2, solver="euler", steps=2)
    with pytest.raises(ValueError, match="conditional"):
        cnf(torch.randn(1, 5, 3))
    with pytest.raises(ValueError, match=r"ctx must be \(1, 2\)"):
        cnf(torch.randn(1, 5, 3), torch.randn(1, 3))


# ------------------------------------------------------------------ model plumbing
def test_fit_normalization_is_pointflows_global_statistics():
    g = torch.Generator().manual_seed(6)
    batches = [
        {"points": torch.randn(3, 50, 3, generator=g) * torch.tensor([0.1, 0.2, 0.3]) + 0.4}
        for _ in range(2)
    ]
    model = PointFlow(**TINY)
    assert not bool(model.stats_ready)
    model.fit_normalization(batches)
    pts = torch.cat([b["points"] for b in batches]).reshape(-1, 3).double().numpy()
    np.testing.assert_allclose(model.points_mean.numpy(), pts.mean(0), rtol=1e-5)
    np.testing.assert_allclose(float(model.points_std), pts.reshape(-1).std(), rtol=1e-5)
    assert bool(model.stats_ready)
    other = PointFlow(**TINY)
    other.configure_from_data({"points_mean": [0.1, 0.2, 0.3], "points_std": 0.5})
    torch.testing.assert_close(other.points_mean, torch.tensor([0.1, 0.2, 0.3]))
    assert float(other.points_std) == 0.5
    # the statistics are buffers: they travel in the state dict (so in checkpoints)
    third = PointFlow(**TINY)
    third.load_state_dict(other.state_dict())
    assert float(third.points_std) == 0.5 and bool(third.stats_ready)


def test_outputs_are_in_data_units_for_any_n():
    torch.manual_seed(7)
    a = PointFlow(**TINY).eval()
    b = copy.deepcopy(a)
    a.set_normalization(torch.zeros(3), 1.0)
    b.set_normalization(torch.tensor([0.1, -0.2, 0.3]), 0.25)
    shape = a.sample(1, seed=0)[0]
    pa, pb = a.to_points(shape, 300, seed=1), b.to_points(shape, 300, seed=1)
    assert pa.shape == (300, 3)
    torch.testing.assert_close(pb, pa * 0.25 + torch.tensor([0.1, -0.2, 0.3]))
    a.chunk_points = 64  # decoding in chunks gives the same cloud (points are independent)
    torch.testing.assert_close(a.to_points(shape, 300, seed=1), pa)
    assert a.to_points(shape, 1, seed=1).shape == (1, 3)


def test_sample_reconstruct_interface():
    torch.manual_seed(8)
    model = PointFlow(**TINY)
    model.set_normalization(torch.zeros(3), 0.2)
    s1, s2 = model.sample(3, seed=4), model.sample(3, seed=4)
    assert len(s1) == 3 and isinstance(s1[0], PointFlowShape) and s1[0].z.shape == (8,)
    torch.testing.assert_close(torch.stack([s.z for s in s1]), torch.stack([s.z for s in s2]))
    assert not torch.allclose(s1[0].z, model.sample(1, seed=5)[0].z)
    pts = torch.randn(3000, 3) * 0.2
    model.train()
    rec = model.reconstruct(ShapeTarget("t", points=pts))
    assert model.encoder.training  # restored
    model.eval()
    g = torch.Generator().manual_seed(0)
    sub = pts[torch.randperm(3000, generator=g)[: model.input_points]]
    torch.testing.assert_close(rec.z, model.encoder(model.normalize(sub)[None])[0][0])
    with pytest.raises(ValueError, match="has no points"):
        model.reconstruct(ShapeTarget("empty"))


def test_training_step_on_a_batch_of_one_uses_running_batch_norm_statistics():
    """A trailing batch of one shape (e.g. one DDP rank's share) still gives a loss with
    gradients (DDP needs every rank in the backward); batch norm is not updated by it."""
    from torch.nn.modules.batchnorm import _BatchNorm

    model = PointFlow(**TINY).train()
    bns = [m for m in model.encoder.modules() if isinstance(m, _BatchNorm)]
    assert bns  # the paper encoder has batch norm
    before = [m.running_mean.clone() for m in bns]
    loss = model.training_step({"points": torch.randn(1, 16, 3)}, 0)
    assert loss is not None and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.encoder.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns, strict=True))
    assert all(m.training for m in bns)  # modes restored


# ------------------------------------------------------------------ configs
def test_cpu_default_and_paper_preset_configs():
    cfg = compose_train(["model=pointflow"])
    model = instantiate(cfg.model)
    assert isinstance(model, PointFlow) and model.point_cnf.solver == "dopri5"
    paper = compose_train(["experiment=pointflow_paper"])
    m = paper.model
    assert (m.zdim, list(m.point_dims), list(m.latent_dims)) == (128, [512] * 3, [256, 256])
    assert (m.solver, m.atol, m.rtol, m.optimizer.lr) == ("dopri5", 1e-5, 1e-5, 2e-3)
    assert (paper.data.batch_size, paper.data.n_points) == (16, 2048)
    big = instantiate(m)
    assert big.point_cnf.func.net.layers[0].layer.out_features == 512
    sched = big.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert sched.lr_lambdas[0](1000) == 1.0 and sched.lr_lambdas[0](3000) == pytest.approx(0.5)


# ------------------------------------------------------------------ learning
def _spheres(n_shapes: int, n_points: int, seed: int) -> torch.Tensor:
    """(S, N, 3) points on spheres of radius 0.15-0.35 about random centres."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n_shapes, n_points, 3, generator=g)
    radius = 0.15 + 0.2 * torch.rand(n_shapes, 1, 1, generator=g)
    centre = 0.05 * torch.randn(n_shapes, 1, 3, generator=g)
    return d / d.norm(dim=-1, keepdim=True) * radius + centre


def _nll(model: PointFlow, clouds: torch.Tensor) -> float:
    """Per-coordinate NLL (nats) of the clouds given their posterior-mean latents."""
    model.eval()
    with torch.no_grad():
        terms = model.elbo_terms(clouds, sample_z=False)
    return float(-terms["recon"].mean() / (3 * clouds.shape[1]))


@pytest.fixture
def one_thread():
    """Tiny matrices: intra-op threads only add overhead (a lot on a busy shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_training_lowers_nll_and_moves_samples_onto_the_shapes(tmp_path):
    pl.seed_everything(0, verbose=False)
    clouds = _spheres(16, 512, seed=0)
    model = PointFlow(**TINY, optimizer=lambda p: torch.optim.Adam(p, lr=5e-3))
    held = clouds[:, :256]
    before_nll = _nll(model.train(), held)  # statistics unset: identity normalisation
    model.train()
    trainer = short_trainer(tmp_path, 200, 100)
    train = DataLoader(Clouds(clouds, 256), batch_size=8, shuffle=True)
    val = DataLoader(Clouds(clouds, 128), batch_size=8)
    untrained = copy.deepcopy(model)
    trainer.fit(model, train, val)
    # the normalisation came from the training loader (no datamodule info)
    assert bool(model.stats_ready)
    pts = clouds.reshape(-1, 3)
    torch.testing.assert_close(model.points_mean, pts.mean(0), atol=0.01, rtol=0)
    assert float(model.points_std) == pytest.approx(float(pts.reshape(-1).std()), rel=0.05)
    assert "val/recon_nats" in trainer.callback_metrics  # validation ran (inference mode)

    untrained.set_normalization(model.points_mean, model.points_std)  # same units, no training
    # Trained with one RK4 step for speed; judged with an accurate adaptive solve, so the fall
    # in NLL is the flow's, not a discretisation artefact (see conf/model/pointflow.yaml).
    for m in (model, untrained):
        for cnf in (m.point_cnf, m.latent_cnf):
            cnf.solver, cnf.atol, cnf.rtol = "dopri5", 1e-5, 1e-5
    nll0, nll1 = _nll(untrained, held), _nll(model, held)
    assert nll1 < nll0 - 0.1, (before_nll, nll0, nll1)
    d0, d1 = sample_distance(untrained, clouds), sample_distance(model, clouds)
    assert d1 < 0.7 * d0, (d0, d1)
    mesh = model.to_mesh(model.sample(1, seed=3)[0], resolution=32)
    assert len(mesh.faces) > 0
