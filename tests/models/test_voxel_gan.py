"""Voxel 3D-GAN: networks, losses, the Representation methods and a learning test.

The learning evidence (issue 7): a generator trained briefly on one synthetic category (voxel
spheres of random radii at 16^3) gives samples whose 1-NNA against the training set is clearly
below the untrained generator's (which is 1.0: its samples are trivially told apart).
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import trimesh
from torch import nn
from torch.utils.data import DataLoader, Dataset

from zoo.metrics import generative_metrics, voxel_iou
from zoo.models.voxel_gan import VoxelGAN, losses
from zoo.models.voxel_gan.networks import VoxelDiscriminator, VoxelGenerator, hidden_widths
from zoo.ops.voxelize import voxel_centers, voxelize
from zoo.representation import ShapeTarget


@pytest.fixture(autouse=True)
def _one_thread():
    """Small 3D convolutions run far faster on one thread than on two contended ones (measured
    7x on the shared 2-core CPU); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def spheres(n: int, r: int, seed: int) -> torch.Tensor:
    """(n, r, r, r) float voxel balls centred in the [-0.5, 0.5]^3 box, radii in [0.15, 0.45]."""
    g = torch.Generator().manual_seed(seed)
    c = voxel_centers(r).reshape(r, r, r, 3)
    radius = 0.15 + 0.3 * torch.rand(n, generator=g)
    return (c.norm(dim=-1)[None] <= radius[:, None, None, None]).float()


class VoxelSet(Dataset):
    def __init__(self, grids: torch.Tensor) -> None:
        self.grids = grids

    def __len__(self) -> int:
        return len(self.grids)

    def __getitem__(self, i: int) -> dict:
        return {"voxels": self.grids[i][None], "idx": i}


def small_gan(**kwargs) -> VoxelGAN:
    args = dict(resolution=16, z_dim=16, g_channels=8, d_channels=8)
    args.update(kwargs)
    return VoxelGAN(**args)


def fit(model: VoxelGAN, grids: torch.Tensor, max_steps: int, batch_size: int = 16) -> None:
    trainer = pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = DataLoader(VoxelSet(grids), batch_size=batch_size, shuffle=True, drop_last=True)
    trainer.fit(model, loader)


# ------------------------------------------------------------------------------ networks
def test_paper_architecture_at_64() -> None:
    """Resolution 64 with base width 64 is the paper's network: five k4 s2 layers each way."""
    assert hidden_widths(64, 64) == [512, 256, 128, 64]
    g = VoxelGenerator(200, 64, 64)
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose3d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (200, 512),
        (512, 256),
        (256, 128),
        (128, 64),
        (64, 1),
    ]
    assert all(c.kernel_size == (4, 4, 4) and c.stride == (2, 2, 2) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm3d) for m in g.modules()) == 4
    d = VoxelDiscriminator(64, 64)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv3d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 64),
        (64, 128),
        (128, 256),
        (256, 512),
        (512, 1),
    ]
    slopes = {m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}


@pytest.mark.parametrize("resolution", [8, 16, 32, 64])
def test_shapes_follow_resolution(resolution: int) -> None:
    g = VoxelGenerator(12, resolution, 2)
    d = VoxelDiscriminator(resolution, 2)
    x = g(torch.randn(3, 12))
    assert x.shape == (3, 1, resolution, resolution, resolution)
    assert float(x.min()) > 0 and float(x.max()) < 1
    assert d(x).shape == (3,)
    n_convs = sum(isinstance(m, nn.ConvTranspose3d) for m in g.modules())
    assert n_convs == int(math.log2(resolution)) - 1


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="power of two"):
        VoxelGenerator(8, 24, 4)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        VoxelGenerator(8, 8, 4).logits(torch.zeros(2, 9))
    with pytest.raises(ValueError, match="batch norm"):
        VoxelGAN(resolution=8, loss="wgan_gp", d_norm="batch")
    with pytest.raises(ValueError, match="loss"):
        VoxelGAN(resolution=8, loss="hinge")
    with pytest.raises(ValueError, match="voxel resolution 64"):
        VoxelGAN(resolution=8).configure_from_data({"voxel_resolution": 64})
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8, 8\)"):
        VoxelGAN(resolution=8)._real_voxels({"voxels": torch.zeros(2, 8, 8, 8)})


# ------------------------------------------------------------------------------ losses
def test_losses_known_values() -> None:
    zero = torch.zeros(4)
    assert losses.gan_d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert losses.gan_g_loss(zero).item() == pytest.approx(math.log(2))
    acc = losses.discriminator_accuracy(torch.tensor([1.0, -1.0]), torch.tensor([-1.0, -2.0]))
    assert acc.item() == pytest.approx(0.75)
    assert losses.wgan_d_loss(torch.tensor([3.0]), torch.tensor([1.0])).item() == -2.0


def test_gradient_penalty_of_a_linear_critic() -> None:
    """D(x) = <w, x> has gradient w everywhere, so the penalty is (||w|| - 1)^2."""
    w = torch.randn(1, 1, 4, 4, 4)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1)

    real, fake = torch.rand(5, 1, 4, 4, 4), torch.rand(5, 1, 4, 4, 4)
    gp = losses.gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    w.requires_grad_(True)
    losses.gradient_penalty(critic, real, fake).backward()  # differentiable w.r.t. the critic
    assert torch.allclose(w.grad, 2 * (w.norm() - 1) * w / w.norm(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------ Representation
def test_mesh_and_points_of_a_voxel_ball() -> None:
    r = 16
    ball = spheres(1, r, 0)[0]
    model = small_gan()
    mesh = model.to_mesh(ball)
    assert mesh.is_watertight and mesh.volume > 0
    assert voxel_iou(voxelize(mesh, r), ball.bool()).item() == 1.0  # same cells back
    radius = voxel_centers(r)[ball.reshape(-1) > 0].norm(dim=-1).max()
    pts = model.to_points(ball, 500, seed=1)
    assert pts.shape == (500, 3)
    # Marching cubes at 0.5 puts the surface half a cell outside the outermost occupied centre.
    dist = pts.norm(dim=-1)
    assert float(dist.max()) <= radius + 1.0 / r and float(dist.min()) > radius - 2.0 / r
    assert torch.equal(pts, model.to_points(ball, 500, seed=1))


def test_points_fallback_without_surface() -> None:
    """Nothing above 0.5: no mesh, points at the most probable voxel centre instead."""
    model = small_gan()
    grid = torch.full((16, 16, 16), 0.1)
    grid[3, 4, 5] = 0.4
    assert len(model.to_mesh(grid).faces) == 0
    pts = model.to_points(grid, 10)
    centre = voxel_centers(16).reshape(16, 16, 16, 3)[3, 4, 5]
    assert torch.allclose(pts, centre.expand(10, 3))


def test_sample_is_seeded_and_in_range() -> None:
    model = small_gan()
    a, b = model.sample(3, seed=7), model.sample(3, seed=7)
    assert len(a) == 3 and a[0].shape == (16, 16, 16)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], model.sample(1, seed=8)[0])
    assert float(torch.stack(a).min()) >= 0 and float(torch.stack(a).max()) <= 1


def test_reconstruct_finds_a_generated_shape() -> None:
    """Latent search recovers a shape the generator can make: G(z*) for a hidden z*.

    The generator gets signal-preserving (Kaiming) weights so that its output depends strongly
    on z (the DCGAN init makes an untrained generator's output almost constant, 0.5 +- 1e-3).
    """
    torch.manual_seed(0)
    model = small_gan(recon_steps=300, recon_restarts=4, recon_lr=0.1)
    for m in model.generator.modules():
        if isinstance(m, nn.ConvTranspose3d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    target_grid = model.generate(torch.randn(1, 16))[0] >= 0.5  # (16, 16, 16) bool
    target = ShapeTarget(name="t", voxels=target_grid)
    start = model.sample(1, seed=0)[0]  # a restart's starting point, before any step
    recon = model.reconstruct(target)
    assert recon.shape == (16, 16, 16)
    iou_start = voxel_iou(start, target_grid).item()
    iou_recon = voxel_iou(recon, target_grid).item()
    assert iou_recon > 0.75 and iou_recon > iou_start + 0.2, (iou_start, iou_recon)
    assert all(p.requires_grad for p in model.generator.parameters())  # flags restored
    # A target at another resolution is resampled to the model's grid.
    coarse = ShapeTarget(name="c", voxels=torch.ones(8, 8, 8, dtype=torch.bool))
    assert model.reconstruct(coarse, steps=2).shape == (16, 16, 16)
    with pytest.raises(ValueError, match="voxels"):
        model.reconstruct(ShapeTarget(name="p", points=torch.zeros(10, 3)))


def test_interpolation_and_export(tmp_path: Path) -> None:
    model = small_gan()
    z = model.sample_latents(2, seed=3)
    frames = model.interpolate(z[0], z[1], steps=5)
    assert len(frames) == 5
    ends = model.generate(z)
    assert torch.allclose(frames[0], ends[0], atol=1e-6)
    assert torch.allclose(frames[-1], ends[1], atol=1e-6)
    paths = model.export_interpolation(tmp_path / "interp", z[0], z[1], steps=4, fmt="ply")
    assert [p.name for p in paths] == [f"interp_{i:03d}.ply" for i in range(4)]
    assert all(len(trimesh.load(p).faces) > 0 for p in paths)
    with pytest.raises(ValueError, match="steps"):
        model.interpolate(z[0], z[1], steps=1)
    with pytest.raises(ValueError, match="z_a must have 16"):
        model.interpolate(torch.zeros(3), z[1])


# ------------------------------------------------------------------------------ training
def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    """Whether two parameter lists are equal element by element."""
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_adaptive_discriminator_update() -> None:
    """Paper's rule: D steps only while its accuracy <= threshold (-1: never; None: always)."""
    grids = spheres(32, 8, 0)
    frozen = small_gan(resolution=8, d_acc_threshold=-1.0)
    before = [p.detach().clone() for p in frozen.discriminator.parameters()]
    g_before = [p.detach().clone() for p in frozen.generator.parameters()]
    fit(frozen, grids, max_steps=4)
    assert same(before, list(frozen.discriminator.parameters()))
    assert not same(g_before, list(frozen.generator.parameters()))
    always = small_gan(resolution=8, d_acc_threshold=None)
    before = [p.detach().clone() for p in always.discriminator.parameters()]
    fit(always, grids, max_steps=4)
    assert not same(before, list(always.discriminator.parameters()))


def test_wgan_gp_generator_steps_every_n_critic() -> None:
    grids = spheres(32, 8, 0)
    model = small_gan(resolution=8, loss="wgan_gp", n_critic=3)
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    fit(model, grids, max_steps=2)  # two critic steps: the generator has not moved
    assert int(model.batches_seen) == 2
    assert same(g_before, list(model.generator.parameters()))
    fit(model, grids, max_steps=2)  # a new trainer: third batch = critic step + generator step
    assert int(model.batches_seen) == 3
    assert not same(g_before, list(model.generator.parameters()))


def _one_nna(model: VoxelGAN, reference: torch.Tensor, n_points: int = 256) -> float:
    samples = model.sample(len(reference), seed=0)
    pts = torch.stack([model.to_points(s, n_points) for s in samples])
    ref = torch.stack([model.to_points(v, n_points) for v in reference])
    return generative_metrics(pts, ref, distance="chamfer")["1nna"]


@pytest.mark.slow
def test_brief_training_improves_1nna() -> None:
    """Issue 7 evidence: 1-NNA (Chamfer, surface points) of 48 samples vs 48 training shapes."""
    torch.manual_seed(0)
    grids = spheres(128, 16, 0)
    model = small_gan(
        optimizer=partial(torch.optim.Adam, lr=2e-3, betas=(0.5, 0.999)),
        optimizer_d=partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),
    )
    untrained = _one_nna(model, grids[:48])
    fit(model, grids, max_steps=600)
    trained = _one_nna(model, grids[:48])
    print(f"1-NNA untrained {untrained:.3f} -> trained {trained:.3f}")
    assert untrained >= 0.95
    assert trained <= 0.92 and trained < untrained - 0.08
