"""DeepSDF: decoder architecture, losses, latent inference, latent prior, interpolation, and the
issue's evidence (training lowers the SDF loss by a large factor; reconstructed training shapes
are far closer to the truth than spheres of the same size).

The "shapes" are analytic SDFs (sphere, flat box, torus, tall box), so ground truth is exact and
no data cache is needed; SDF samples imitate the data cache (perturbed surface points at two
scales plus 20 % uniform points in the evaluation box).
"""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from tests.helpers.trainers import short_trainer
from zoo.metrics import chamfer_distance
from zoo.models.deepsdf import DeepSDF, DeepSDFDecoder
from zoo.models.deepsdf.fitting import (
    clamped_l1,
    fit_latents,
    gaussian_latents,
    oriented_point_sdf_samples,
    target_sdf_samples,
)
from zoo.ops.marching_cubes import evaluate_grid, marching_cubes
from zoo.ops.surface import sample_surface
from zoo.representation import ShapeTarget


# ------------------------------------------------------------------------ analytic shapes
def box_sdf(h: tuple[float, float, float]):
    half = torch.tensor(h)

    def f(p: torch.Tensor) -> torch.Tensor:
        q = p.abs() - half.to(p)
        return q.clamp_min(0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0)

    return f


def torus_sdf(big: float = 0.3, small: float = 0.1):
    def f(p: torch.Tensor) -> torch.Tensor:
        q = torch.stack([p[:, :2].norm(dim=-1) - big, p[:, 2]], dim=-1)
        return q.norm(dim=-1) - small

    return f


def sphere_sdf(r: float):
    return lambda p: p.norm(dim=-1) - r


SHAPES = {
    "sphere": sphere_sdf(0.35),
    "flat_box": box_sdf((0.4, 0.15, 0.08)),
    "torus": torus_sdf(),
    "tall_box": box_sdf((0.15, 0.15, 0.4)),
}


def gt_mesh(f, resolution: int = 64) -> trimesh.Trimesh:
    return marching_cubes(evaluate_grid(f, resolution))


def sdf_samples(f, n: int, seed: int) -> torch.Tensor:
    """(n, 4) samples like the data cache: 80 % near-surface (two scales), 20 % uniform."""
    g = torch.Generator().manual_seed(seed)
    n_uni = n // 5
    surf, _ = sample_surface(gt_mesh(f, 48), n - n_uni, seed=seed)
    sig = torch.where(torch.arange(len(surf)) % 2 == 0, 0.025, 0.0079)[:, None]
    near = surf + sig * torch.randn(surf.shape, generator=g)
    uni = (torch.rand(n_uni, 3, generator=g) - 0.5) * 1.1
    x = torch.cat([near, uni])
    return torch.cat([x, f(x)[:, None]], dim=-1)


SMALL_HIDDEN = [64] * 4


def small_model(n_shapes: int, **kwargs) -> DeepSDF:
    torch.manual_seed(0)
    dec = DeepSDFDecoder(latent_size=16, hidden=SMALL_HIDDEN, latent_in=[2], dropout=0.0)
    params = dict(
        lr_decoder=2e-3,
        lr_codes=2e-3,
        code_reg_warmup_epochs=0,
        recon_iterations=150,
        recon_samples=2048,
        points_resolution=48,
    )
    model = DeepSDF(decoder=dec, **(params | kwargs))
    model.configure_from_data({"num_train_shapes": n_shapes})
    return model


@pytest.fixture(scope="module")
def trained():
    """A small DeepSDF trained on the four analytic shapes, with its loss before / after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest on a shared machine
    try:
        yield _train()
    finally:
        torch.set_num_threads(threads)


def _train() -> dict:
    data = torch.stack([sdf_samples(f, 8192, seed=i) for i, f in enumerate(SHAPES.values())])
    model = small_model(len(SHAPES))
    opt = model.configure_optimizers()
    idx = torch.arange(len(SHAPES))
    g = torch.Generator().manual_seed(0)

    def eval_l1() -> float:
        with torch.no_grad():
            return float(model.sdf_loss({"sdf": data, "idx": idx})["l1"])

    before = eval_l1()
    for _ in range(400):
        sub = data[:, torch.randint(data.shape[1], (1024,), generator=g)]
        loss = model.sdf_loss({"sdf": sub, "idx": idx})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return {"model": model, "data": data, "before": before, "after": eval_l1()}


def gt_points(name: str, n: int = 2048) -> torch.Tensor:
    return sample_surface(gt_mesh(SHAPES[name], 96), n, seed=1)[0]


def sphere_baselines(name: str, n: int = 2048) -> dict[str, float]:
    """Chamfer of the shape against spheres of its bounding radius and its volume-equivalent
    radius, centred at the origin (the shapes' centre)."""
    mesh = gt_mesh(SHAPES[name], 96)
    pts = gt_points(name, n)
    r_bound = float(pts.norm(dim=-1).max())
    r_vol = (3 * mesh.volume / (4 * math.pi)) ** (1 / 3)
    out = {}
    for key, r in [("bounding", r_bound), ("volume", r_vol)]:
        sphere = trimesh.creation.icosphere(subdivisions=4, radius=r)
        out[key] = float(chamfer_distance(sample_surface(sphere, n, seed=2)[0], pts))
    return out


# ------------------------------------------------------------------------ evidence
@pytest.mark.slow
def test_training_lowers_sdf_loss_by_a_large_factor(trained):
    assert trained["after"] < trained["before"] / 8, (trained["before"], trained["after"])


@pytest.mark.slow
@pytest.mark.parametrize("name,factor", [("flat_box", 0.1), ("tall_box", 0.1), ("torus", 0.25)])
def test_trained_code_shape_far_better_than_sphere(trained, name, factor):
    """Measured (400 steps): boxes ~5e-4 vs spheres >= 1.5e-2 (the 2048-point sampling floor
    is ~5e-4); the torus, whose hole a short training only partly carves, ~3e-3 vs 2.3e-2."""
    model = trained["model"]
    i = list(SHAPES).index(name)
    cd = float(chamfer_distance(model.to_points(model.train_latent(i)), gt_points(name)))
    base = sphere_baselines(name)
    assert cd < factor * min(base.values()), (cd, base)


@pytest.mark.slow
def test_reconstruct_training_shape_from_samples_with_frozen_decoder(trained):
    model = trained["model"]
    name = "flat_box"
    i = list(SHAPES).index(name)
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    model.zero_grad(set_to_none=True)
    target = ShapeTarget(name=name, sdf=sdf_samples(SHAPES[name], 8192, seed=7))
    z = model.reconstruct(target)
    assert z.shape == (model.latent_size,)
    for k, v in model.decoder.state_dict().items():
        torch.testing.assert_close(v, before[k])  # decoder frozen
    assert all(p.grad is None for p in model.parameters())  # no gradient reached the weights
    cd = float(chamfer_distance(model.to_points(z), gt_points(name)))
    base = sphere_baselines(name)
    # Measured: ~5.6e-3 against spheres of 1.8e-2 / 8.9e-2. Inference from N(0, 0.01^2) lands in
    # a local minimum of the 4-shape latent space (SDF L1 8e-3 vs 4e-3 at the trained code),
    # so it is a coarser fit than the trained code's ~5e-4, yet still far from a sphere.
    assert cd < 0.4 * min(base.values()), (cd, base)
    # The inferred code decodes a shape closer to this one than to the other training shapes.
    others = [
        float(chamfer_distance(model.to_points(model.train_latent(j)), gt_points(name)))
        for j in range(len(SHAPES))
        if j != i
    ]
    assert cd < min(others), (cd, others)


@pytest.mark.slow
def test_reconstruct_from_mesh_and_oriented_points(trained):
    """The other target kinds: a mesh (sampled like the data cache) and points + normals."""
    model = trained["model"]
    name = "tall_box"
    mesh = gt_mesh(SHAPES[name], 64)
    base = min(sphere_baselines(name).values())
    z_mesh = model.reconstruct(ShapeTarget(name=name, mesh=mesh))
    cd_mesh = float(chamfer_distance(model.to_points(z_mesh), gt_points(name)))
    pts, nrm = sample_surface(mesh, 4096, seed=3)
    z_pts = model.reconstruct(ShapeTarget(name=name, points=pts, normals=nrm))
    cd_pts = float(chamfer_distance(model.to_points(z_pts), gt_points(name)))
    assert cd_mesh < 0.4 * base and cd_pts < 0.4 * base, (cd_mesh, cd_pts, base)


@pytest.mark.slow
def test_sample_interpolate_and_export(trained, tmp_path):
    model = trained["model"]
    lat = model.sample(3, seed=0)
    assert len(lat) == 3 and all(z.shape == (model.latent_size,) for z in lat)
    torch.testing.assert_close(torch.stack(model.sample(3, seed=0)), torch.stack(lat))
    meshes = [model.to_mesh(z, 32) for z in lat]
    assert all(len(m.faces) > 0 for m in meshes)

    za, zb = model.train_latent(1), model.train_latent(2)
    seq = model.interpolate(1, 2, steps=5)
    torch.testing.assert_close(seq[0], za)
    torch.testing.assert_close(seq[-1], zb)
    torch.testing.assert_close(seq[2], 0.5 * (za + zb))
    paths = model.export_interpolation(za, zb, 3, tmp_path / "interp", resolution=32)
    assert [p.name for p in paths] == ["interp_000.obj", "interp_001.obj", "interp_002.obj"]
    first = trimesh.load(paths[0], force="mesh")
    assert len(first.faces) > 0
    np_first = model.to_mesh(za, 32)
    assert abs(first.area - np_first.area) < 1e-3 * np_first.area
    ply = model.export_interpolation(za, zb, 2, tmp_path / "ply", resolution=32, file_type="ply")
    assert all(p.suffix == ".ply" and p.stat().st_size > 0 for p in ply)


# ------------------------------------------------------------------------ units
def test_decoder_widths_and_parameter_count_of_paper_network():
    dec = DeepSDFDecoder(latent_size=256, hidden=[512] * 8, latent_in=[4], dropout=0.2)
    in_dim = 256 + 3
    dims_in = [in_dim, 512, 512, 512, 512, 512, 512, 512]
    dims_out = [512, 512, 512, 512 - in_dim, 512, 512, 512, 512]
    # Weight-normalised linear: weight (out, in) + magnitude g (out) + bias (out); plain output.
    expected = sum(o * i + 2 * o for i, o in zip(dims_in, dims_out, strict=True)) + 512 + 1
    assert sum(p.numel() for p in dec.parameters()) == expected
    z, x = torch.randn(2, 1, 256), torch.randn(2, 7, 3)
    out = dec(z, x)
    assert out.shape == (2, 7) and out.abs().max() < 1


def test_decoder_reinjection_and_validation():
    dec = DeepSDFDecoder(latent_size=4, hidden=[32] * 4, latent_in=[2], dropout=0.0)
    assert dec.layers[1].weight.shape == (32 - 7, 32)  # narrowed before the re-injection
    assert dec.layers[2].weight.shape == (32, 32)
    plain = DeepSDFDecoder(latent_size=4, hidden=[8], latent_in=[], weight_norm=False,
                           output_tanh=False)  # fmt: skip
    assert isinstance(plain.layers[0], torch.nn.Linear)
    with pytest.raises(ValueError, match="latent_in"):
        DeepSDFDecoder(latent_size=4, hidden=[32] * 4, latent_in=[4])
    with pytest.raises(ValueError, match="must exceed"):
        DeepSDFDecoder(latent_size=40, hidden=[32] * 4, latent_in=[2])
    with pytest.raises(ValueError, match="latent must have shape"):
        dec(torch.zeros(3), torch.zeros(5, 3))


def test_clamped_l1_known_values():
    pred = torch.tensor([0.5, 0.05, -0.3, 0.0])
    gt = torch.tensor([0.2, 0.0, 0.05, -0.5])
    torch.testing.assert_close(clamped_l1(pred, gt, 0.1), torch.tensor([0.0, 0.05, 0.15, 0.1]))


def test_loss_value_matches_formula_and_validates_batches():
    model = small_model(3, code_reg_lambda=0.5)
    batch = {"sdf": torch.randn(2, 50, 4) * 0.2, "idx": torch.tensor([2, 0])}
    out = model.sdf_loss(batch)
    z = model.codes.weight[[2, 0]]
    pred = model.decoder(z[:, None], batch["sdf"][..., :3])
    l1 = (pred.clamp(-0.1, 0.1) - batch["sdf"][..., 3].clamp(-0.1, 0.1)).abs().mean()
    torch.testing.assert_close(out["loss"], l1 + 0.5 * z.norm(dim=-1).mean())
    with pytest.raises(ValueError, match="out of range"):
        model.sdf_loss({"sdf": batch["sdf"], "idx": torch.tensor([3, 0])})
    with pytest.raises(ValueError, match=r"S, 4\)"):
        model.sdf_loss({"sdf": torch.zeros(2, 50, 3), "idx": torch.tensor([0, 1])})


def test_codes_sized_from_data_and_bounded():
    model = small_model(5)
    assert model.codes.weight.shape == (5, 16)
    with torch.no_grad():
        model.codes.weight.mul_(10)
    assert model.train_latent(torch.arange(5)).norm(dim=-1).max() <= 1.0 + 1e-5  # CodeBound
    with pytest.raises(ValueError, match="num_train_shapes"):
        DeepSDF(decoder=DeepSDFDecoder(4, [16], latent_in=[])).configure_from_data({})
    with pytest.raises(RuntimeError, match="configure_from_data"):
        DeepSDF(decoder=DeepSDFDecoder(4, [16], latent_in=[])).train_latent(0)


def test_fit_latents_under_inference_mode_recovers_a_known_code():
    """A decoder whose SDF is a sphere of radius 0.3 + z[0]: inference must find z[0]."""

    class RadiusDecoder(torch.nn.Module):
        latent_size = 2

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, z, x):
            return x.norm(dim=-1) - (0.3 + self.w * z[..., 0])

    dec = RadiusDecoder()
    x = (torch.rand(2, 4000, 3) - 0.5) * 0.9
    radii = torch.tensor([0.05, -0.08])[:, None]
    sdf = torch.cat([x, (x.norm(dim=-1) - 0.3 - radii)[..., None]], dim=-1)
    with torch.inference_mode():
        z, err = fit_latents(dec, sdf, iterations=300, samples=1000, lr=1e-2, l2_reg=0.0)
    torch.testing.assert_close(z[:, 0], radii[:, 0], atol=2e-3, rtol=0)
    assert err.max() < 2e-3
    assert dec.w.grad is None and dec.w.item() == 1.0


def test_gaussian_latents_match_fitted_moments():
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(6, 3, generator=g) * torch.tensor([1.0, 0.5, 0.1]) + 2.0
    mu, cov = codes.mean(0), torch.cov(codes.T)
    full = gaussian_latents(codes, 40000, "full", seed=1)
    torch.testing.assert_close(full.mean(0), mu, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(full.T), cov, atol=0.03, rtol=0.05)
    diag = gaussian_latents(codes, 40000, "diag", seed=1)
    torch.testing.assert_close(torch.cov(diag.T).diagonal(), cov.diagonal(), atol=0.02, rtol=0.05)
    assert torch.cov(diag.T)[0, 1].abs() < 0.02
    # With fewer codes than dimensions the full Gaussian stays in the codes' affine span.
    few = torch.randn(3, 8, generator=g)
    s = gaussian_latents(few, 50, "full", seed=2) - few.mean(0)
    basis = torch.linalg.svd(few - few.mean(0), full_matrices=False).Vh[:2]  # (2, 8)
    torch.testing.assert_close(s @ basis.T @ basis, s, atol=1e-5, rtol=0)
    torch.testing.assert_close(gaussian_latents(few[:1], 4, seed=0), few[:1].expand(4, -1))


def test_target_samples_from_oriented_points_are_exact_on_a_sphere():
    g = torch.Generator().manual_seed(0)
    n = torch.nn.functional.normalize(torch.randn(500, 3, generator=g), dim=-1)
    s = oriented_point_sdf_samples(0.3 * n, n, 2000, near_std=0.02)
    torch.testing.assert_close(s[:, :3].norm(dim=-1) - 0.3, s[:, 3], atol=1e-6, rtol=0)
    no_normals = oriented_point_sdf_samples(0.3 * n, None, 100)
    assert (no_normals[:, 3] == 0).all()
    with pytest.raises(ValueError, match="no sdf, mesh or points"):
        target_sdf_samples(ShapeTarget(name="empty"), 10)


def test_target_samples_from_mesh_match_analytic_box():
    box = trimesh.creation.box(extents=(0.6, 0.3, 0.2))
    s = target_sdf_samples(ShapeTarget(name="box", mesh=box), 3000, seed=0)
    ref = box_sdf((0.3, 0.15, 0.1))(s[:, :3])
    assert s.shape == (3000, 4)
    torch.testing.assert_close(s[:, 3], ref, atol=1e-4, rtol=0)
    assert (s[:, 3] < 0).float().mean() > 0.2  # near-surface samples fall on both sides


def test_to_points_without_surface_and_to_mesh_orientation():
    model = small_model(1)
    with torch.no_grad():
        model.decoder.out.bias.fill_(5.0)  # SDF > 0 everywhere: no surface
        model.decoder.out.weight.zero_()
    z = torch.zeros(16)
    assert len(model.to_mesh(z, 16).faces) == 0
    pts = model.to_points(z, 100)
    assert pts.shape == (100, 3) and torch.isfinite(pts).all()
    calls = []
    grid_fn = model.sdf_grid
    model.sdf_grid = lambda z, r: (calls.append(r), grid_fn(z, r))[1]
    model.to_mesh(z, 16)
    model.to_mesh(z, 16)
    assert calls == [16]  # the evaluator's second request is served from the cache
    with torch.no_grad():
        model.decoder.out.bias.fill_(-5.0)  # weights changed in place: the cache is stale
    assert len(model.to_mesh(z, 16).faces) == 0 and calls == [16, 16]
    with pytest.raises(ValueError, match="latent must have shape"):
        model.to_mesh(torch.zeros(3), 16)


def test_state_dict_roundtrip_through_zoo_checkpoint(tmp_path):
    from zoo.checkpoint import load_model

    model = small_model(3)
    cfg = {
        "_target_": "zoo.models.deepsdf.DeepSDF",
        "decoder": {
            "_target_": "zoo.models.deepsdf.DeepSDFDecoder",
            "latent_size": 16,
            "hidden": SMALL_HIDDEN,
            "latent_in": [2],
            "dropout": 0.0,
        },
    }
    path = tmp_path / "m.ckpt"
    meta = {"model_name": "deepsdf", "model_cfg": cfg, "data_info": {"num_train_shapes": 3}}
    torch.save({"state_dict": model.state_dict(), "zoo": meta}, path)
    loaded, _ = load_model(path, expect_model="deepsdf")
    x = torch.rand(10, 3) - 0.5
    for i in range(3):
        torch.testing.assert_close(
            loaded(loaded.train_latent(i), x), model(model.train_latent(i), x)
        )


def test_lightning_fit_with_validation_under_inference_mode():
    import pytorch_lightning as pl

    data = [{"sdf": sdf_samples(f, 512, seed=i), "idx": i} for i, f in enumerate(SHAPES.values())]
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    model = small_model(len(SHAPES), val_iterations=3, train_samples=256)
    trainer = pl.Trainer(
        max_steps=4, val_check_interval=2, limit_val_batches=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(model, loader, loader)
    assert "val/sdf_l1" in trainer.callback_metrics and "train/loss" in trainer.callback_metrics
    assert torch.isfinite(trainer.callback_metrics["val/sdf_l1"])


@pytest.mark.slow
def test_end_to_end_on_synthshapes_datamodule(tmp_path):
    """Real datamodule (tiny generated data): configure, fit, then the shared evaluator."""

    from zoo.data.shapes import SynthShapesDataModule
    from zoo.evaluation import EvalConfig, evaluate

    dm = SynthShapesDataModule(
        root=tmp_path / "synth", categories=["mug", "table"], shapes_per_category=4,
        resolution=48, form="sdf", batch_size=4, sdf_samples=512, n_surface=3000,
        sdf_cache_samples=4000, progress=False,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    info = dm.info()
    model = small_model(info["num_train_shapes"], val_iterations=3, recon_iterations=30)
    model.configure_from_data(info)
    assert model.codes.num_embeddings == info["num_train_shapes"]
    trainer = short_trainer(None, 30, 15, sanity_steps=0)
    trainer.fit(model, dm)
    cfg = EvalConfig(
        max_shapes=2, n_points=256, recon_points=2000, mesh_resolution=24, n_boot=50,
        save_images=False,
    )  # fmt: skip
    metrics = evaluate(model, dm, cfg)
    for key in ["recon/chamfer_l2", "recon/fscore@0.01", "gen/mmd_cd", "gen/cov_cd"]:
        assert key in metrics and math.isfinite(metrics[key]), metrics
        assert metrics[f"{key}_se"] >= 0, metrics
    # The ceiling (the true SDF at the same grid) beats 30 steps of training by far.
    assert metrics["ceil/fscore@0.01"] > 1.5 * metrics["recon/fscore@0.01"], metrics
    assert metrics["ceil/chamfer_l2"] < 0.5 * metrics["recon/chamfer_l2"], metrics
    assert metrics["gen/references"] == len(dm.items("test")), metrics


def _labelled_info(n_per: int) -> dict:
    """Data info of 2 * n_per training shapes: chairs (even indices) and tables (odd)."""
    synsets = ["03001627", "04379243"]
    return {
        "num_train_shapes": 2 * n_per,
        "synsets": synsets,
        "categories": ["chair", "table"],
        "train_synsets": [synsets[i % 2] for i in range(2 * n_per)],
    }


def test_sample_by_category_draws_from_that_categorys_codes():
    """Training codes in two clusters by category: a category's samples fall in its cluster;
    without a category, the all-codes Gaussian of ``gaussian_latents`` as before."""
    model = small_model(12)
    model.configure_from_data(_labelled_info(6))
    assert model.conditional and model.category_prior.labels == ["03001627", "04379243"]
    centre = torch.zeros(2, 16)
    centre[0, 0], centre[1, 1] = 0.7, -0.7  # inside the code bound (max_norm 1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.codes.weight.copy_(
            centre[torch.arange(12) % 2] + 0.02 * torch.randn(12, 16, generator=g)
        )
    for k, name in enumerate(["chair", "04379243"]):  # by name or by synset
        z = torch.stack(model.sample(64, seed=1, category=name))  # fitted on first use
        d = torch.cdist(z, centre)  # (64, 2)
        assert (d.argmin(dim=1) == k).all() and d[:, k].max() < 0.3, d
    assert bool(model.category_prior.ready.all())
    torch.testing.assert_close(
        torch.stack(model.sample(3, seed=4, category="table")),
        torch.stack(model.sample(3, seed=4, category="table")),
    )
    codes = model.train_latent(torch.arange(12))
    torch.testing.assert_close(
        torch.stack(model.sample(5, seed=2)), gaussian_latents(codes, 5, "full", seed=2)
    )
    with pytest.raises(ValueError, match=r"unknown category 'sofa'; known: chair \(03001627\)"):
        model.sample(1, category="sofa")
    # finalize_training refits to the codes as they are at the end of training.
    with torch.no_grad():
        model.codes.weight.copy_(centre[1 - torch.arange(12) % 2])  # swap the clusters
    model.finalize_training()
    z = torch.stack(model.sample(8, seed=1, category="chair"))
    assert (torch.cdist(z, centre).argmin(dim=1) == 1).all()


def test_category_prior_is_in_checkpoints_and_old_ones_still_load(tmp_path):
    from zoo.checkpoint import load_model

    info = _labelled_info(3)
    model = small_model(6)
    model.configure_from_data(info)
    model.finalize_training()
    cfg = {
        "_target_": "zoo.models.deepsdf.DeepSDF",
        "decoder": {"_target_": "zoo.models.deepsdf.DeepSDFDecoder", "latent_size": 16,
                    "hidden": SMALL_HIDDEN, "latent_in": [2], "dropout": 0.0},
    }  # fmt: skip
    meta = {"model_name": "deepsdf", "model_cfg": cfg, "data_info": info}
    torch.save({"state_dict": model.state_dict(), "zoo": meta}, tmp_path / "new.ckpt")
    loaded, _ = load_model(tmp_path / "new.ckpt")
    torch.testing.assert_close(loaded.category_prior.tril, model.category_prior.tril)
    assert bool(loaded.category_prior.ready.all())
    # Weights from before the per-category prior: no such keys; they load and sample as before.
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("category_prior.")}
    torch.save({"state_dict": old, "zoo": meta}, tmp_path / "old.ckpt")
    loaded, _ = load_model(tmp_path / "old.ckpt")
    assert not loaded.category_prior.ready.any()
    torch.testing.assert_close(torch.stack(loaded.sample(3, seed=0)),
                               torch.stack(model.sample(3, seed=0)))  # fmt: skip
    torch.testing.assert_close(
        torch.stack(loaded.sample(3, seed=0, category="chair")),  # fitted from the codes
        torch.stack(model.sample(3, seed=0, category="chair")),
    )


FLOW = {"hidden": 16, "depth": 2, "fit_steps": 150, "lr": 1e-2}


def test_flow_prior_samples_each_category_and_the_mixture_and_checkpoints(tmp_path):
    """latent_prior=flow: a category's draws fall in its cluster; unconditional draws come
    from both clusters; the fitted flows travel in checkpoints."""
    from zoo.checkpoint import load_model

    info = _labelled_info(20)
    model = small_model(40, latent_prior="flow", prior_flow=FLOW)
    model.configure_from_data(info)
    centre = torch.zeros(2, 16)
    centre[0, 0], centre[1, 1] = 0.7, -0.7
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.codes.weight.copy_(
            centre[torch.arange(40) % 2] + 0.02 * torch.randn(40, 16, generator=g)
        )
    model.finalize_training()
    for k, name in enumerate(["chair", "table"]):
        z = torch.stack(model.sample(32, seed=1, category=name))  # (32, 16)
        d = torch.cdist(z, centre)
        assert (d.argmin(dim=1) == k).all() and d[:, k].median() < 0.2, d
    nearest = torch.cdist(torch.stack(model.sample(64, seed=3)), centre).argmin(dim=1)
    assert 16 < int((nearest == 0).sum()) < 48  # half of the training codes are chairs
    cfg = {
        "_target_": "zoo.models.deepsdf.DeepSDF",
        "decoder": {"_target_": "zoo.models.deepsdf.DeepSDFDecoder", "latent_size": 16,
                    "hidden": SMALL_HIDDEN, "latent_in": [2], "dropout": 0.0},
        "latent_prior": "flow", "prior_flow": FLOW,
    }  # fmt: skip
    meta = {"model_name": "deepsdf", "model_cfg": cfg, "data_info": info}
    torch.save({"state_dict": model.state_dict(), "zoo": meta}, tmp_path / "flow.ckpt")
    loaded, _ = load_model(tmp_path / "flow.ckpt")
    torch.testing.assert_close(
        torch.stack(loaded.sample(4, seed=5, category="table")),
        torch.stack(model.sample(4, seed=5, category="table")),
    )
