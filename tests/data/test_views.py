"""Views datamodules: ray batches that hit the right pixels, epochs, loaders, info, splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from tests.helpers.shared_data import REAL as SHARED
from zoo.data.views import (
    BlenderDataModule,
    EpochSampler,
    SynthViewsDataModule,
    TinyNerfDataModule,
)
from zoo.structures.cameras import look_at

REAL = SHARED / "nerf"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"shared real data absent: {REAL}")
INFO_KEYS = {"form", "dataset", "near", "far", "background", "bbox_min", "bbox_max",
             "image_size", "scene"}  # fmt: skip


@pytest.fixture
def tiny_npz(tmp_path) -> Path:
    """7 random 6x8 views from distinct cameras (random colours make pixel matches strict)."""
    rng = np.random.default_rng(0)
    n = 7
    eyes = torch.tensor(rng.normal(size=(n, 3)), dtype=torch.float32)
    eyes = 4.0 * eyes / eyes.norm(dim=-1, keepdim=True)
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        images=rng.random((n, 6, 8, 3)).astype(np.float32),
        poses=look_at(eyes).numpy(),
        focal=np.float64(7.0),
    )
    return path


def _pixel_of_rays(cams, origins, directions):
    """(cam, row, col) of each ray by inverting the pinhole model: the camera whose centre is
    the origin, then the projection of ``o + d`` (a point at z-depth 1)."""
    cam = torch.cdist(origins, cams.centers).argmin(dim=1)  # (R,)
    assert torch.allclose(cams.centers[cam], origins, atol=1e-6)
    d_cam = torch.linalg.solve(cams.c2w[cam, :3, :3].double(), directions.double())  # (R, 3)
    assert torch.allclose(d_cam[:, 2], torch.full_like(d_cam[:, 2], -1.0), atol=1e-5)
    u = cams.fx[cam] * d_cam[:, 0] + cams.cx[cam]
    v = -cams.fy[cam] * d_cam[:, 1] + cams.cy[cam]
    col, row = u - 0.5, v - 0.5  # pixel centres
    assert (col - col.round()).abs().max() < 1e-3 and (row - row.round()).abs().max() < 1e-3
    return cam, row.round().long(), col.round().long()


def test_train_batches_hit_their_pixels(tiny_npz):
    dm = TinyNerfDataModule(tiny_npz, holdout=2, rays_per_batch=40)
    cams, images = dm.scene.splits["train"].cameras, dm.scene.splits["train"].images
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"origins", "directions", "radii", "rgb"}
    for key in ("origins", "directions", "rgb"):
        assert batch[key].shape == (40, 3) and batch[key].dtype == torch.float32
    # Each ray's footprint: 2 / sqrt(12) of the pixel width at unit z-depth (Mip-NeRF).
    assert batch["radii"].shape == (40,) and batch["radii"].dtype == torch.float32
    torch.testing.assert_close(batch["radii"], 2 / 12**0.5 / cams.fx[0].float().expand(40))
    assert 0.0 <= batch["rgb"].min() and batch["rgb"].max() <= 1.0
    cam, row, col = _pixel_of_rays(cams, batch["origins"], batch["directions"])
    assert torch.equal(batch["rgb"], images[cam, row, col])
    assert len(cams) == 5  # 7 views - 2 held out


def test_epoch_is_a_permutation_and_reproducible(tiny_npz):
    dm = TinyNerfDataModule(tiny_npz, holdout=2, rays_per_batch=16, seed=5)
    loader = dm.train_dataloader()
    n_pixels = 5 * 6 * 8
    assert len(loader) == n_pixels // 16 == 15
    ds = loader.dataset

    def epoch_pixels(epoch):
        loader.sampler.set_epoch(epoch)
        return torch.cat([ds.pixel_indices(k) for k in loader.sampler])

    e0, e1 = epoch_pixels(0), epoch_pixels(1)
    assert torch.equal(e0.sort().values, torch.arange(n_pixels))  # every pixel once
    assert not torch.equal(e0, e1)
    assert torch.equal(epoch_pixels(0), e0)  # same seed and epoch: same rays
    other = TinyNerfDataModule(tiny_npz, holdout=2, rays_per_batch=16, seed=6)
    assert not torch.equal(other.train_dataset().pixel_indices(0), ds.pixel_indices(0))
    # Without set_epoch the sampler advances by itself.
    s = EpochSampler(3)
    assert list(s) == [0, 1, 2] and list(s) == [3, 4, 5]
    dropped, used = iter(s), iter(s)  # worker DataLoaders call iter() twice
    assert list(used) == [6, 7, 8] and list(s) == [9, 10, 11]
    del dropped
    # Batches fit the rays: the batch from the loader equals the one rebuilt by index.
    loader.sampler.set_epoch(4)
    first = next(iter(loader))
    assert torch.equal(first["rgb"], ds[4 * 15]["rgb"])


def test_more_rays_than_pixels_wraps(tiny_npz):
    dm = TinyNerfDataModule(tiny_npz, holdout=2, rays_per_batch=500, batches_per_epoch=3)
    loader = dm.train_dataloader()
    assert len(loader) == 3
    batch = next(iter(loader))
    assert batch["rgb"].shape == (500, 3)


def test_val_and_test_loaders(tiny_npz):
    dm = TinyNerfDataModule(tiny_npz, holdout=3, val_views=2)
    cams, images = dm.eval_views("test")
    full = np.load(tiny_npz)
    assert torch.equal(images, torch.from_numpy(full["images"][4:]))  # the last 3 views
    assert torch.allclose(cams.c2w, torch.from_numpy(full["poses"][4:]))
    val = list(dm.val_dataloader())
    assert [b["view"] for b in val] == [0, 2]  # evenly spaced, at most val_views
    test = list(dm.test_dataloader())
    assert [b["view"] for b in test] == [0, 1, 2]
    for b in test:
        assert b["origins"].shape == b["directions"].shape == b["rgb"].shape == (48, 3)
        assert torch.equal(b["rgb"].reshape(6, 8, 3), images[b["view"]])
        cam, row, col = _pixel_of_rays(cams, b["origins"], b["directions"])
        assert (cam == b["view"]).all()
        assert torch.equal(row * 8 + col, torch.arange(48))  # row-major pixel order


def test_info_and_form(tiny_npz):
    dm = TinyNerfDataModule(tiny_npz, holdout=2)
    info = json.loads(json.dumps(dm.info()))
    assert INFO_KEYS <= set(info) and info["form"] == "views"
    assert info["near"] == 2.0 and info["far"] == 6.0 and info["background"] == [0, 0, 0]
    assert info["image_size"] == [8, 6] and info["bbox_min"] == [-1.5] * 3
    assert info["dataset"] == "tinynerf" and info["scene"] == "tiny"
    assert dm.eval_shapes() == []
    with pytest.raises(ValueError, match="this datamodule provides views; model needs points"):
        TinyNerfDataModule(tiny_npz, form="points")
    with pytest.raises(ValueError, match="holdout"):
        TinyNerfDataModule(tiny_npz, holdout=7).info()


def test_lightning_fit_sets_epochs(tiny_npz):
    """Two epochs through a Trainer: whole batches arrive (batch_size=None) and the second
    epoch draws a different permutation (Lightning calls the sampler's set_epoch)."""

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3))
            self.seen: list[tuple[int, torch.Tensor]] = []

        def training_step(self, batch, _):
            assert batch["origins"].shape == (32, 3)
            self.seen.append((self.current_epoch, batch["rgb"].clone()))
            return ((batch["rgb"] - self.w) ** 2).mean()

        def validation_step(self, batch, _):
            assert batch["rgb"].shape == (48, 3)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = TinyNerfDataModule(tiny_npz, holdout=2, rays_per_batch=32)
    probe = Probe()
    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(probe, datamodule=dm)
    assert [e for e, _ in probe.seen] == [0, 0, 1, 1]
    ds = dm.train_dataset()
    assert torch.equal(probe.seen[0][1], ds[0]["rgb"])  # epoch 0, batch 0
    assert torch.equal(probe.seen[2][1], ds[len(ds)]["rgb"])  # epoch 1, batch 0


@needs_real
def test_tinynerf_real_split():
    dm = TinyNerfDataModule(REAL / "tiny_lego_100px_derived.npz")
    info = dm.info()
    assert info["n_train_views"] == 90 and info["image_size"] == [100, 100]
    assert info["focal"] == pytest.approx(138.8889, abs=1e-3)
    cams, images = dm.eval_views("test")
    assert images.shape == (10, 100, 100, 3)
    poses = np.load(REAL / "tiny_lego_100px_derived.npz")["poses"]
    assert torch.allclose(cams.c2w, torch.from_numpy(poses[90:]))
    assert len(dm.train_dataloader()) == 90 * 100 * 100 // 1024


@needs_real
def test_blender_real_background_and_fallback_split():
    dm = BlenderDataModule(REAL / "nerfstudio_lego_test", background=[0.0, 0.0, 1.0])
    info = dm.info()
    assert info["near"] == 2.0 and info["far"] == 6.0 and info["background"] == [0, 0, 1]
    assert info["bbox_min"] == [-1.5] * 3 and info["bbox_max"] == [1.5] * 3
    assert info["image_size"] == [50, 50] and info["scene"] == "nerfstudio_lego_test"
    _, test_images = dm.eval_views("test")  # no test split on disk: the val split
    _, val_images = dm.eval_views("val")
    assert torch.equal(test_images, val_images)
    assert torch.allclose(test_images[0, 0, 0], torch.tensor([0.0, 0.0, 1.0]))  # blue corner
    assert dm.eval_shapes() == []
    with pytest.raises(ValueError, match="background"):
        BlenderDataModule(REAL / "nerfstudio_lego_test", background="grey")


@needs_real
def test_blender_real_lego_downscaled():
    dm = BlenderDataModule(REAL / "lego_blender_subset", downscale=8, rays_per_batch=256)
    assert dm.info()["image_size"] == [100, 100]
    batch = next(iter(dm.train_dataloader()))
    split = dm.scene.splits["train"]
    cam, row, col = _pixel_of_rays(split.cameras, batch["origins"], batch["directions"])
    assert torch.equal(batch["rgb"], split.images[cam, row, col])


@pytest.fixture(scope="module")
def synth_dm(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return SynthViewsDataModule(
        root, "chair", 0, resolution=24, n_train=4, n_val=2, n_test=3, rays_per_batch=64
    )


def test_synth_datamodule(synth_dm):
    info = json.loads(json.dumps(synth_dm.info()))
    assert INFO_KEYS <= set(info) and info["dataset"] == "synthshapes"
    assert info["near"] == pytest.approx(1.6 - 0.55) and info["far"] == pytest.approx(1.6 + 0.55)
    assert info["bbox_min"] == [-0.55] * 3 and info["background"] == [1, 1, 1]
    assert info["image_size"] == [24, 24] and info["scene"].startswith("chair/")
    batch = next(iter(synth_dm.train_dataloader()))
    split = synth_dm.scene.splits["train"]
    cam, row, col = _pixel_of_rays(split.cameras, batch["origins"], batch["directions"])
    assert torch.equal(batch["rgb"], split.images[cam, row, col])
    cams, images = synth_dm.eval_views("test")
    assert images.shape == (3, 24, 24, 3) and len(cams) == 3
    with pytest.raises(ValueError, match="split"):
        synth_dm.eval_views("holdout")


def test_synth_eval_shapes(synth_dm):
    from zoo.ops.mesh_queries import unsigned_distance

    (target,) = synth_dm.eval_shapes("test", limit=16, n_points=500)
    assert target.points.shape == (500, 3) and target.normals.shape == (500, 3)
    assert torch.allclose(target.normals.norm(dim=-1), torch.ones(500), atol=1e-4)
    assert unsigned_distance(target.mesh, target.points).max() < 1e-5  # samples on the mesh
    assert target.views.shape == (3, 24, 24, 3) and len(target.cameras) == 3
    # The object fits the announced box and the radius-0.5 sphere; ShapeNet normalisation.
    lo, hi = target.mesh.bounds
    assert np.linalg.norm(hi - lo) == pytest.approx(1.0, abs=1e-4)
    assert (np.abs(target.mesh.vertices) <= 0.5).all()
    assert synth_dm.eval_shapes(limit=0) == []


def test_images_form_serves_one_whole_view_per_step(tiny_npz):
    """form="images" (splatting models): each epoch visits every training view once, in an
    order fixed by (seed, epoch); val/test batches carry their camera."""
    dm = TinyNerfDataModule(tiny_npz, holdout=2, form="images")
    ds = dm.train_dataset()
    cams, images = dm.eval_views("train")
    n = len(cams)
    first = [ds[k]["view"] for k in range(n)]
    assert sorted(first) == list(range(n))
    assert [ds[k]["view"] for k in range(n)] == first  # a pure function of k
    batch = ds[0]
    v = batch["view"]
    assert torch.equal(batch["rgb"], images[v]) and torch.equal(batch["c2w"], cams.c2w[v])
    assert batch["intrinsics"].tolist() == [cams.fx[v], cams.fy[v], cams.cx[v], cams.cy[v]]
    val = next(iter(dm.val_dataloader()))
    assert {"c2w", "intrinsics", "size"} <= set(val) and val["size"].tolist() == [8, 6]
    centers = cams.centers
    want = 1.1 * float((centers - centers.mean(0)).norm(dim=-1).max())
    assert dm.info()["camera_extent"] == pytest.approx(want)
