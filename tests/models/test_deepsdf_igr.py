"""DeepSDF trained from surface points with IGR (``model.loss=igr``): the eikonal term, the
geometric initialisation, the data form following the loss, and the evidence that a tiny
training on three point clouds (no normals, no SDF samples) puts the zero level set on them.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from tests.helpers.trainers import short_trainer
from zoo.cli_utils import CONF_DIR
from zoo.metrics import chamfer_distance
from zoo.models.deepsdf import DeepSDF, DeepSDFDecoder
from zoo.models.deepsdf.igr import (
    IGRConfig,
    eikonal_term,
    fit_latents_igr,
    igr_terms,
    kth_neighbour_distance,
    spatial_gradient,
)
from zoo.ops.surface import sample_surface
from zoo.representation import ShapeTarget


def sphere_points(r: float, n: int, seed: int) -> torch.Tensor:
    return sample_surface(trimesh.creation.icosphere(3, radius=r), n, seed=seed)[0]


def box_points(half: tuple[float, float, float], n: int, seed: int) -> torch.Tensor:
    return sample_surface(trimesh.creation.box(extents=[2 * h for h in half]), n, seed=seed)[0]


# A small sphere and two boxes, none like the initial sphere of radius 0.3.
CLOUDS = [
    lambda: sphere_points(0.15, 300, 0),
    lambda: box_points((0.4, 0.1, 0.25), 300, 1),
    lambda: box_points((0.12, 0.35, 0.12), 300, 2),
]


class AnalyticSDF(torch.nn.Module):
    """``scale * (|x - c| - r)`` as a "decoder" (the code is ignored)."""

    def __init__(self, r: float, scale: float = 1.0) -> None:
        super().__init__()
        self.r, self.scale = r, scale
        self.latent_size = 2
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, latent: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
        return self.scale * (xyz.norm(dim=-1) - self.r) + 0 * self.dummy


def small_igr_model(n_shapes: int, **kw) -> DeepSDF:
    torch.manual_seed(0)
    decoder = DeepSDFDecoder(16, [64] * 4, [2], dropout=0.0, weight_norm=True)
    defaults = dict(
        lr_decoder=5e-3, lr_codes=1e-2, code_reg_warmup_epochs=0, loss="igr",
        optimizer=partial(torch.optim.Adam), recon_iterations=100, recon_samples=300,
        points_resolution=32,
    )  # fmt: skip
    model = DeepSDF(decoder, **{**defaults, **kw})
    model.configure_from_data({"num_train_shapes": n_shapes})
    return model


def mesh_chamfer(mesh: trimesh.Trimesh, points: torch.Tensor) -> float:
    if len(mesh.faces) == 0:
        return math.inf
    return float(chamfer_distance(sample_surface(mesh, 1000, seed=0)[0], points))


# ------------------------------------------------------------------------ loss terms
def test_eikonal_term_is_zero_for_an_exact_sdf_and_positive_otherwise():
    x = (torch.rand(500, 3, generator=torch.Generator().manual_seed(0)) - 0.5).requires_grad_()
    exact = spatial_gradient(x.norm(dim=-1) - 0.3, x)
    assert eikonal_term(exact).abs().max() < 1e-10
    doubled = spatial_gradient(2 * (x.norm(dim=-1) - 0.3), x)  # |grad| = 2 everywhere
    assert torch.allclose(eikonal_term(doubled), torch.ones(500), atol=1e-5)
    squared = spatial_gradient(x.pow(2).sum(-1) - 0.09, x)  # |grad| = 2 |x|: not a distance
    expected = (2 * x.detach().norm(dim=-1) - 1).pow(2)
    assert torch.allclose(eikonal_term(squared), expected, atol=1e-5) and expected.mean() > 0.03

    pts = sphere_points(0.3, 400, 0)[None]  # (1, N, 3), on the zero level set
    sigma = kth_neighbour_distance(pts, 50)
    cfg = IGRConfig()
    z = torch.zeros(1, 2)
    ok = igr_terms(AnalyticSDF(0.3), z, pts, sigma, cfg)
    # The icosphere's faces lie within 0.3 * (1 - cos(edge / 2)) of the sphere.
    assert ok["surface"].item() < 2e-3 and ok["eikonal"].item() < 1e-10
    bad = igr_terms(AnalyticSDF(0.2, scale=3.0), z, pts, sigma, cfg)
    assert bad["surface"].item() > 0.25 and bad["eikonal"].item() == pytest.approx(4.0, rel=1e-4)
    assert torch.allclose(bad["loss"], bad["surface"] + 0.1 * bad["eikonal"])
    # With normals, the normal term compares grad f to them: exact for the sphere's own.
    normals = torch.nn.functional.normalize(pts, dim=-1)
    with_n = igr_terms(AnalyticSDF(0.3), z, pts, sigma, cfg, normals=normals)
    assert with_n["normals"].item() < 1e-5
    flipped = igr_terms(AnalyticSDF(0.3), z, pts, sigma, cfg, normals=-normals)
    assert flipped["normals"].item() == pytest.approx(2.0, rel=1e-4)


def test_kth_neighbour_distance_matches_brute_force():
    pts = torch.rand(2, 60, 3, generator=torch.Generator().manual_seed(1))
    d = torch.cdist(pts, pts).sort(dim=-1).values  # (2, 60, 60), 0 (the point) first
    assert torch.allclose(kth_neighbour_distance(pts, 5), d[..., 5], atol=1e-6)
    assert torch.allclose(kth_neighbour_distance(pts, 500), d[..., -1], atol=1e-6)  # capped
    assert kth_neighbour_distance(pts[:, :1], 5).abs().max() == 0


# ------------------------------------------------------------------ geometric init
@pytest.mark.parametrize("beta,weight_norm", [(300.0, True), (0.0, False)])
def test_geometric_init_is_about_a_sphere_sdf_whatever_the_code(beta, weight_norm):
    torch.manual_seed(0)
    dec = DeepSDFDecoder(
        64, [256] * 6, [3], dropout=0.0, weight_norm=weight_norm, output_tanh=False,
        softplus_beta=beta,
    ).geometric_init_(0.3)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(2, 1, 64, generator=g)
    with torch.no_grad():
        u = torch.nn.functional.normalize(torch.randn(100, 3, generator=g), dim=-1)
        r = torch.linspace(0, 0.55, 111)
        f = dec(z1, u[:, None, :] * r[None, :, None])  # (100, 111) along rays from the centre
        assert torch.equal(f, dec(z2, u[:, None, :] * r[None, :, None]))  # codes not read yet
    assert (f[:, 0] < 0).all() and (f[:, -1] > 0).all()  # negative inside
    radius = r[(f < 0).sum(dim=1).clamp(max=110)]  # first radius with f >= 0, per ray
    assert abs(radius.mean().item() - 0.3) < 0.06 and radius.std().item() < 0.08
    x = (torch.rand(1000, 3, generator=g) * 1.1 - 0.55).requires_grad_()
    grad = spatial_gradient(dec(z1, x), x).norm(dim=-1)
    assert 0.6 < grad.median().item() < 1.4


def test_data_form_and_decoder_follow_the_loss():
    sdf_model = DeepSDF(DeepSDFDecoder(8, [32, 32], [1]))
    assert sdf_model.data_form == "sdf" and sdf_model.decoder.output_tanh
    igr_model = DeepSDF(DeepSDFDecoder(8, [32, 32], [1]), loss="igr", igr={"neighbours": 7})
    assert igr_model.data_form == "points" and DeepSDF.data_form == "sdf"
    assert not igr_model.decoder.output_tanh and igr_model.decoder.softplus_beta == 300.0
    assert igr_model.igr_cfg is not None and igr_model.igr_cfg.neighbours == 7
    with pytest.raises(ValueError, match="loss must be"):
        DeepSDF(DeepSDFDecoder(8, [32, 32], [1]), loss="sal")
    with pytest.raises(ValueError, match="unknown model.igr option"):
        DeepSDF(DeepSDFDecoder(8, [32, 32], [1]), loss="igr", igr={"lambda": 0.1})
    with pytest.raises(RuntimeError, match="model.loss=igr"):
        sdf_model.configure_from_data({"num_train_shapes": 1})
        sdf_model.igr_loss({"points": torch.zeros(1, 4, 3), "idx": torch.zeros(1)})


def test_config_composes_with_point_arrays(tmp_path):
    overrides = [
        "model=deepsdf", "model.loss=igr", "data=point_arrays", f"data.root={tmp_path}",
        "data.categories=[chair]", f"run_dir={tmp_path}",
    ]  # fmt: skip
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    model = instantiate(cfg.model)
    assert model.loss_type == "igr" and model.data_form == "points"
    dm = instantiate(cfg.data, form=model.data_form)  # point_arrays refuses form "sdf"
    assert dm.form == "points"


# ------------------------------------------------------------------------ evidence
@pytest.fixture(scope="module")
def trained() -> dict:
    """The small IGR model trained 200 steps on the three clouds, with its state before."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clouds = torch.stack([make() for make in CLOUDS])  # (3, 300, 3)
        model = small_igr_model(len(clouds))
        idx = torch.arange(len(clouds))
        batch = {"points": clouds, "idx": idx}
        before = {
            "surface": model.igr_loss(batch)["surface"].item(),
            "chamfer": [mesh_chamfer(model.to_mesh(model.train_latent(i), 32), c)
                        for i, c in enumerate(clouds)],
        }  # fmt: skip
        opt = model.configure_optimizers()
        for _ in range(200):
            loss = model.igr_loss(batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        yield {"model": model, "clouds": clouds, "batch": batch, "before": before}
    finally:
        torch.set_num_threads(threads)


def test_training_puts_the_zero_level_set_on_the_points(trained):
    model, clouds, before = trained["model"], trained["clouds"], trained["before"]
    after = model.igr_loss(trained["batch"])
    assert after["surface"].item() < before["surface"] / 5, (before, after)
    for i, c in enumerate(clouds):
        cd = mesh_chamfer(model.to_mesh(model.train_latent(i), 32), c)
        assert cd < before["chamfer"][i] / 5, (i, cd, before)
        assert torch.isfinite(model.to_points(model.train_latent(i), 256)).all()


def test_reconstruct_from_points_without_normals_with_frozen_decoder(trained):
    model, clouds, before = trained["model"], trained["clouds"], trained["before"]
    params = [p.detach().clone() for p in model.decoder.parameters()]
    for i, c in enumerate(clouds):
        with torch.inference_mode():
            z = model.reconstruct(ShapeTarget(name=f"s{i}", points=c))
        cd = mesh_chamfer(model.to_mesh(z, 32), c)
        assert cd < before["chamfer"][i] / 5, (i, cd, before)
    assert all(torch.equal(p, q) for p, q in zip(params, model.decoder.parameters(), strict=True))
    # A mesh target is fitted on points sampled from it.
    mesh = trimesh.creation.icosphere(3, radius=0.15)
    z = model.reconstruct(ShapeTarget(name="mesh", mesh=mesh))
    assert mesh_chamfer(model.to_mesh(z, 32), clouds[0]) < before["chamfer"][0] / 5


def test_fit_latents_igr_is_seeded_and_validates(trained):
    dec, clouds = trained["model"].decoder, trained["clouds"]
    cfg = trained["model"].igr_cfg
    kw = dict(iterations=5, samples=200, seed=3)
    z_all, s_all = fit_latents_igr(dec, clouds[:2], cfg, **kw)
    assert z_all.shape == (2, 16) and s_all.shape == (2,) and torch.isfinite(s_all).all()
    assert torch.equal(z_all, fit_latents_igr(dec, clouds[:2], cfg, **kw)[0])
    with pytest.raises(ValueError, match="points must have shape"):
        fit_latents_igr(dec, clouds[0], cfg, **kw)


def test_lightning_fit_with_point_batches_and_validation():
    import pytorch_lightning as pl

    data = [{"points": make(), "idx": i} for i, make in enumerate(CLOUDS)]
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    model = small_igr_model(len(data), val_iterations=3)
    trainer = pl.Trainer(
        max_steps=4, val_check_interval=2, limit_val_batches=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(model, loader, loader)
    metrics = trainer.callback_metrics
    assert {"val/igr_surface", "train/loss", "train/igr_eikonal"} <= set(metrics)
    assert torch.isfinite(metrics["val/igr_surface"])


@pytest.mark.slow
def test_end_to_end_on_point_arrays_datamodule(tmp_path: Path):
    """The real datamodule (clouds in an .npz, no normals), training, the shared evaluator."""

    from zoo.data.point_arrays import PointArraysDataModule
    from zoo.evaluation import EvalConfig, evaluate

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        clouds = [
            box_points(tuple(rng.uniform(0.1, 0.4, 3)), 256, int(rng.integers(1 << 30)))
            for _ in range(n)
        ]
        np.savez(
            tmp_path / f"box_{split}.npz",
            points=torch.stack(clouds).numpy(),
            shape_ids=np.array([f"box_{split}_{i}" for i in range(n)]),
        )
    dm = PointArraysDataModule(tmp_path, ["box"], form="points", batch_size=3, n_points=256)
    dm.prepare_data()
    dm.setup("fit")
    model = small_igr_model(dm.info()["num_train_shapes"], val_iterations=3, recon_iterations=30)
    model.configure_from_data(dm.info())
    trainer = short_trainer(None, 30, 15, sanity_steps=0)
    trainer.fit(model, dm)
    cfg = EvalConfig(
        max_shapes=2, n_points=256, recon_points=1000, mesh_resolution=24, n_boot=50,
        save_images=False,
    )  # fmt: skip
    metrics = evaluate(model, dm, cfg)
    for key in ["recon/chamfer_l2", "recon/fscore@0.01", "gen/mmd_cd", "gen/cov_cd"]:
        assert key in metrics and math.isfinite(metrics[key]), metrics
