"""model=gaussians: training evidence, density control, checkpoints with a changing number of
Gaussians (load and resume), the splat PLY round trip, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.configs import compose_train
from tests.helpers.toy_scenes import INFO, ring_cameras, toy_fit, toy_scene
from zoo.data.io import DataError
from zoo.metrics import psnr
from zoo.models.gaussians import DensityControl, GaussianSplatting
from zoo.models.gaussians.ply import SPLAT_FIELDS, read_ply_header, read_splat_ply
from zoo.representation import ShapeTarget


def small_model(**kw) -> GaussianSplatting:
    strategy = kw.pop(
        "strategy",
        DensityControl(refine_start=20, refine_stop=200, refine_every=20, max_gaussians=3000),
    )
    model = GaussianSplatting(
        strategy=strategy, num_init=400, init_scale=0.5, sh_degree_every=50, **kw
    )
    model.configure_from_data({**INFO, "camera_extent": 1.9})
    return model


@pytest.fixture(scope="module")
def trained():
    """A model fitted for 150 steps to the toy box at 24 px (~5 s), with its held-out PSNR
    before and after."""
    torch.manual_seed(0)
    train_cams, train_imgs, test_cams, test_imgs = toy_scene(24)
    model = small_model()
    before = float(psnr(model.render(model, test_cams).clamp(0, 1), test_imgs).mean())
    n0 = model.num_gaussians
    model.fit_views(train_cams, train_imgs, steps=150)
    after = float(psnr(model.render(model, test_cams).clamp(0, 1), test_imgs).mean())
    return model, before, after, n0


def test_training_raises_heldout_psnr_and_densifies(trained):
    model, before, after, n0 = trained
    assert after > before + 6.0, (before, after)
    assert model.num_gaussians != n0  # clone / split / prune ran
    assert model.active_sh_degree(149) == 2  # +1 every 50 steps
    assert model.sh_rest[:, :8].abs().sum() > 0 and model.sh_rest[:, 8:].abs().sum() == 0


def test_density_control_clones_small_and_splits_large_gaussians():
    model = small_model(strategy=DensityControl(refine_start=0, grad_threshold=1e-3))
    n = model.num_gaussians
    opt = model.configure_optimizers()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()  # Adam state exists for every parameter
    with torch.no_grad():
        model.log_scales[:2] = torch.log(torch.tensor(0.001))  # small: clone
        model.log_scales[2:4] = torch.log(torch.tensor(0.2))  # large (> 0.01 x 1.9): split
        model.opacity_logits[:] = 0.0
        model.opacity_logits[4] = -10.0  # transparent: pruned
    model.grad_accum[:4] = 1.0
    model.grad_count[:4] = 1.0
    done = model.strategy.densify_and_prune(model, opt, step=100)
    assert done == {"cloned": 2, "split": 2, "pruned": 3}  # 2 split originals + 1 transparent
    assert model.num_gaussians == n + 2 + 4 - 3
    for group in opt.param_groups:  # the optimiser holds the new parameters and moments
        p = group["params"][0]
        assert p is getattr(model, group["name"]) and len(p) == model.num_gaussians
        assert opt.state[p]["exp_avg"].shape == p.shape
    split_scales = model.log_scales.exp()[-4:]
    assert torch.allclose(split_scales, torch.full_like(split_scales, 0.2 / 1.6), rtol=1e-5)
    assert model.grad_accum.abs().sum() == 0 and len(model.grad_accum) == model.num_gaussians
    model.strategy.reset_opacity(model, opt)
    assert torch.sigmoid(model.opacity_logits).max() <= 0.01 + 1e-6


def test_ply_round_trip_gives_the_same_renders(trained, tmp_path):
    model, *_ = trained
    path = model.save_ply(str(tmp_path / "scene.ply"))
    header = read_ply_header(path)
    assert header.startswith("ply\nformat binary_little_endian 1.0\n")
    props = [ln.split()[2] for ln in header.splitlines() if ln.startswith("property")]
    assert props == SPLAT_FIELDS and len(props) == 62
    assert f"element vertex {model.num_gaussians}" in header
    # f_rest is channel-major: f_rest_15 is the first higher coefficient of green.
    arrays = read_splat_ply(path)
    raw = np.frombuffer(Path(path).read_bytes()[len(header) + 1 :], dtype="<f4").reshape(
        model.num_gaussians, 62
    )
    assert np.allclose(raw[:, 9 + 15], model.sh_rest[:, 0, 1].detach().numpy())
    assert np.allclose(raw[:, 6 + 3 + 45], model.opacity_logits.detach().numpy())  # logits
    other = small_model()
    other.load_arrays(arrays)
    cams = ring_cameras(3, 24, 0.5)
    a, b = model.render(model, cams), other.render(other, cams)
    assert float(psnr(b, a).min()) > 50.0
    assert torch.equal(other.sh_rest, model.sh_rest.detach())


def test_checkpoint_load_and_resume_with_a_changed_count(tmp_path):

    from zoo.checkpoint import build_model

    def fit(model, steps, ckpt=None):
        return toy_fit(model, steps, ckpt, tmp_path, form="images")

    cfg = {"refine_start": 2, "refine_stop": 100, "refine_every": 3, "grad_threshold": 1e-5}
    model = small_model(strategy=DensityControl(**cfg))
    n0 = model.num_gaussians
    trainer = fit(model, 7)
    assert model.num_gaussians != n0
    assert "val/psnr" in trainer.callback_metrics and "train/loss" in trainer.callback_metrics
    ckpt = tmp_path / "a.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)
    meta = {
        "model_name": "gaussians",
        "data_info": model.data_info,
        "model_cfg": {
            "_target_": "zoo.models.gaussians.GaussianSplatting",
            "num_init": 400,
            "strategy": {"_target_": "zoo.models.gaussians.DensityControl", **cfg},
        },
    }
    fresh = build_model(meta, state["state_dict"], ckpt)  # as zoo.checkpoint.load_model
    assert fresh.num_gaussians == model.num_gaussians
    cams = ring_cameras(2, 16, 0.5)
    assert torch.allclose(fresh.render(fresh, cams), model.render(model, cams), atol=1e-6)
    # Resume: another fresh model continues from the checkpoint (optimiser state included).
    resumed = small_model(strategy=DensityControl(**cfg))
    trainer = fit(resumed, 10, ckpt=str(ckpt))
    assert trainer.global_step == 10 and torch.isfinite(resumed.means).all()
    opt = trainer.optimizers[0]
    for group in opt.param_groups:
        p = group["params"][0]
        assert p is getattr(resumed, group["name"]) and len(p) == resumed.num_gaussians


def test_interface_mesh_points_and_reconstruct(trained):
    model, *_ = trained
    model.mesh_views, model.points_resolution = 6, 24  # a coarse, quick TSDF
    pts = model.to_points(model, 300)
    assert pts.shape == (300, 3)
    assert (pts.abs() <= 0.8).all()  # near the box (half extents 0.3, 0.225, 0.25)
    mesh = model.to_mesh(model, resolution=24)
    assert len(mesh.faces) > 50
    v = torch.as_tensor(mesh.vertices, dtype=torch.float32)
    assert (v.abs().amax(0) < torch.tensor([0.5, 0.45, 0.45])).all()
    assert (v.abs().amax(0) > torch.tensor([0.2, 0.15, 0.15])).all()
    maps = model.render_maps(model, ring_cameras(2, 16, 0.5))
    assert maps["rgb"].shape == (2, 16, 16, 3) and maps["depth"].shape == (2, 16, 16)
    assert model.sample(2) == [model, model]
    assert model.reconstruct(ShapeTarget(name="toy_box")) is model
    # Another scene: a fresh initialisation (same settings) fitted to its views.
    model.reconstruct_steps = 2
    cams, imgs = ring_cameras(3, 16, 0.5), torch.rand(3, 16, 16, 3)
    other = model.reconstruct(ShapeTarget(name="other", cameras=cams, views=imgs))
    assert isinstance(other, GaussianSplatting) and other is not model
    assert other.num_gaussians == model.num_init and other.init_scale == model.init_scale


def test_configs_cpu_default_and_paper_preset():
    from hydra.utils import instantiate

    cpu = instantiate(compose_train(["model=gaussians"]).model)
    assert isinstance(cpu, GaussianSplatting) and cpu.num_init == 10000
    paper = instantiate(compose_train(["experiment=gaussians_paper"]).model)
    s = paper.strategy
    assert (paper.num_init, paper.init_scale, paper.sh_degree, paper.sh_degree_every) == (
        100000,
        1.0,
        3,
        1000,
    )
    assert (s.refine_start, s.refine_stop, s.refine_every, s.reset_every) == (500, 15000, 100, 3000)
    assert (s.grad_threshold, s.percent_dense, s.prune_opacity) == (0.0002, 0.01, 0.005)
    assert paper.lrs == {
        "means": 1.6e-4,
        "sh_dc": 2.5e-3,
        "sh_rest": 2.5e-3 / 20,
        "opacity_logits": 0.05,
        "log_scales": 5e-3,
        "quats": 1e-3,
    }
    paper.scene_extent = 4.0
    assert paper.means_lr(0) == pytest.approx(6.4e-4)
    assert paper.means_lr(30000) == pytest.approx(6.4e-6)
    assert paper.means_lr(15000) == pytest.approx(6.4e-5)  # log-linear
    groups = paper.configure_optimizers().param_groups
    assert all(g["eps"] == 1e-15 for g in groups)


# ------------------------------------------------------------------ bad input
def _write_ply(path: Path, names: list[str], n: int = 4) -> Path:
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n"
    header += "".join(f"property float {k}\n" for k in names) + "end_header\n"
    path.write_bytes(header.encode() + np.zeros((n, len(names)), "<f4").tobytes())
    return path


def test_ply_without_required_properties_names_file_and_field(tmp_path):
    names = [k for k in SPLAT_FIELDS if k != "opacity"]
    bad = _write_ply(tmp_path / "bad.ply", names)
    with pytest.raises(DataError) as info:
        read_splat_ply(bad)
    assert str(bad) in str(info.value) and info.value.field == "opacity"
    with pytest.raises(DataError) as info:
        GaussianSplatting(init_ply=str(_write_ply(tmp_path / "noz.ply", ["x", "y"])))
    assert info.value.field == "z"
    # A point PLY (x y z red green blue) is a valid start: means and colours.
    pts = _write_ply(tmp_path / "pts.ply", ["x", "y", "z"], n=5)
    model = GaussianSplatting(init_ply=str(pts), num_init=3)
    model.configure_from_data(INFO)
    assert model.num_gaussians == 5


def test_camera_behind_every_gaussian_names_the_pose_file(tmp_path):
    model = small_model()
    cams = ring_cameras(2, 16, 0.5)
    model.check_cameras(cams, ("transforms_train.json", "transform_matrix"))  # fine
    away = cams.c2w.clone()
    away[:, :3, 2] *= -1  # look away from the scene (camera z axis flipped)
    away[:, :3, 0] *= -1
    cams.c2w = away
    with pytest.raises(DataError) as info:
        model.check_cameras(cams, ("scene/transforms_train.json", "transform_matrix"))
    assert "scene/transforms_train.json" in str(info.value)
    assert "transform_matrix (view 0)" in str(info.value)


def _tiny_npz(path: Path, n: int = 6, away: bool = False, res: int = 16) -> Path:
    """A tiny-NeRF style .npz: n views of the origin from a ring of radius 4 (or looking away
    from it), black images."""
    cams = ring_cameras(n, res, 0.4)
    c2w = cams.c2w.clone()
    c2w[:, :3, 3] *= 4.0 / c2w[:, :3, 3].norm(dim=-1, keepdim=True)
    if away:
        c2w[:, :3, 0] *= -1
        c2w[:, :3, 2] *= -1
    images = np.zeros((n, res, res, 3), np.float32)
    np.savez(path, images=images, poses=c2w.numpy(), focal=np.float32(res))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", ["ply_without_opacity", "no_views", "camera_behind"])
def test_cli_bad_input_is_one_error_line_and_changes_nothing(tmp_path, case):
    from tests.reliability.clirun import last_line, run, snapshot

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"an earlier run's checkpoint")
    npz = _tiny_npz(tmp_path / "scene.npz")
    extra = []
    if case == "ply_without_opacity":
        bad = _write_ply(tmp_path / "bad.ply", [k for k in SPLAT_FIELDS if k != "opacity"])
        extra, where, field = [f"model.init_ply={bad}"], str(bad), "opacity"
    elif case == "no_views":
        np.savez(npz, images=np.zeros((0, 16, 16, 3), np.float32), poses=np.zeros((0, 4, 4)))
        where, field = str(npz), "images"
    else:
        _tiny_npz(npz, away=True)
        where, field = str(npz), "poses"
    before = snapshot(run_dir)
    proc = run(
        "zoo.train",
        "model=gaussians",
        "data=tinynerf",
        f"data.path={npz}",
        "data.holdout=2",
        "model.num_init=200",
        "trainer.max_steps=2",
        "logger=none",
        f"hydra.run.dir={run_dir}",
        *extra,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    line = last_line(proc.stderr)
    assert line.startswith("error: ") and where in line and field in line, proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(run_dir) == before
