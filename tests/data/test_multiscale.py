"""Mip-NeRF's multiscale Blender format: the writer's box averages, focal lengths and loss
weights, the reader's cameras (a coarse pixel's ray is the mean of its four fine rays), the
all-scale ray batches, per-scale evaluation, and bad input."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from zoo.data.formats.multiscale_blender import load_multiscale, read_metadata, write_multiscale
from zoo.data.io import DataError
from zoo.data.multiscale import MultiscaleDataModule, main
from zoo.ops.rays import generate_radii, generate_rays

ANGLE = 0.69


def make_blender(root, n=(3, 2), size=16, seed=0):
    """A Blender-format scene: random straight-RGBA PNGs and look-at poses."""
    from zoo.structures.cameras import look_at

    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "test"), n, strict=True):
        (root / split).mkdir(parents=True, exist_ok=True)
        phi = torch.arange(count) * 1.3 + (0.0 if split == "train" else 0.4)
        eyes = 4.0 * torch.stack([phi.cos(), phi.sin(), torch.full_like(phi, 0.5)], -1)
        frames = []
        for i in range(count):
            rgba = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
            iio.imwrite(root / split / f"r_{i}.png", rgba)
            frames.append(
                {
                    "file_path": f"./{split}/r_{i}",
                    "transform_matrix": look_at(eyes[i : i + 1])[0].tolist(),
                }
            )
        (root / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": ANGLE, "frames": frames})
        )
    return root


def _png(path):
    return iio.imread(path).astype(np.float64) / 255.0


def test_writer_box_averages_straight_rgba_and_writes_the_reference_fields(tmp_path):
    src, dst = make_blender(tmp_path / "scene"), tmp_path / "ms"
    write_multiscale(src, dst, levels=4)
    meta = json.loads((dst / "metadata.json").read_text())
    assert set(meta) == {"train", "test"}
    train = meta["train"]
    assert len(train["file_path"]) == 3 * 4
    assert train["label"][:4] == [0, 1, 2, 3] and train["lossmult"][:4] == [1, 4, 16, 64]
    assert train["width"][:4] == [16, 8, 4, 2] and train["near"][0] == 2 and train["far"][0] == 6
    focal = 0.5 * 16 / math.tan(0.5 * ANGLE)
    assert train["focal"][:4] == pytest.approx([focal, focal / 2, focal / 4, focal / 8])
    k_inv = np.array(train["pix2cam"][1])  # pixel centre of the image centre -> (0, 0, -1)
    np.testing.assert_allclose(k_inv @ [4.0, 4.0, 1.0], [0, 0, -1], atol=1e-12)
    # Each level is the 2x2 mean of the previous one's straight RGBA (8-bit rounding apart).
    full = _png(src / "train" / "r_1.png")
    d1, d2 = _png(dst / train["file_path"][5]), _png(dst / train["file_path"][6])
    np.testing.assert_allclose(d1, full.reshape(8, 2, 8, 2, 4).mean((1, 3)), atol=0.5 / 255)
    np.testing.assert_allclose(
        d2, d1.reshape(4, 2, 4, 2, 4).mean((1, 3)), atol=1.0 / 255
    )  # d1 rounded too
    with pytest.raises(DataError, match="already exists"):  # nothing overwritten
        write_multiscale(src, dst)


def test_reader_cameras_make_coarse_rays_the_mean_of_their_fine_rays(tmp_path):
    dst = write_multiscale(make_blender(tmp_path / "scene"), tmp_path / "ms", levels=3)
    levels = load_multiscale(dst, "train", (1.0, 1.0, 1.0))
    assert [lv.label for lv in levels] == [0, 1, 2] and [lv.lossmult for lv in levels] == [1, 4, 16]
    assert [lv.images.shape[1] for lv in levels] == [16, 8, 4]
    _, d0 = generate_rays(levels[0].cameras)  # (B, 16, 16, 3)
    o1, d1 = generate_rays(levels[1].cameras)  # (B, 8, 8, 3)
    torch.testing.assert_close(d1, d0.reshape(3, 8, 2, 8, 2, 3).mean((2, 4)), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        generate_radii(levels[1].cameras), 2 * generate_radii(levels[0].cameras)[:, ::2, ::2]
    )
    # Composited on white from the straight RGBA of the level's file.
    rgba = torch.from_numpy(_png(dst / "images_train" / "001_d1.png")).float()
    expected = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    torch.testing.assert_close(levels[1].images[1], expected)


def test_training_batches_cover_every_scale_with_area_weights(tmp_path):
    dst = write_multiscale(make_blender(tmp_path / "scene"), tmp_path / "ms", levels=3)
    dm = MultiscaleDataModule(dst, rays_per_batch=16)
    ds = dm.train_dataset()
    n = 3 * (16 * 16 + 8 * 8 + 4 * 4)
    assert ds.n_pixels == n and len(ds) == n // 16
    seen = torch.cat([ds.pixel_indices(k) for k in range(len(ds))])
    assert len(seen.unique()) == len(seen)  # one epoch: each pixel at most once
    batch = ds[3]
    level = torch.bucketize(ds.pixel_indices(3), ds.offsets[1:], right=True)
    torch.testing.assert_close(batch["lossmult"], 4.0**level)
    fx = torch.tensor([lv.cameras.fx[0] for lv in ds.levels])[level]
    torch.testing.assert_close(batch["radii"], 2 / math.sqrt(12) / fx)
    info = dm.info()
    assert info["scales"] == [0, 1, 2] and info["near"] == 2.0 and info["far"] == 6.0


def test_evaluator_reports_every_scale_and_their_mean(tmp_path):
    from tests.models.test_mipnerf import small_mip
    from zoo.evaluation import EvalConfig, evaluate

    dst = write_multiscale(make_blender(tmp_path / "scene", size=20), tmp_path / "ms", levels=2)
    dm = MultiscaleDataModule(dst, rays_per_batch=16)
    model = small_mip()
    model.configure_from_data(dm.info())
    metrics = evaluate(model, dm, EvalConfig(save_images=False, max_shapes=0))
    per = [metrics[f"view/psnr_d{j}"] for j in (0, 1)]
    assert metrics["view/psnr"] == pytest.approx(sum(per) / 2)
    # SSIM needs 11 x 11 pixels: undefined (NaN) at 10 px, left out of the mean.
    assert math.isnan(metrics["view/ssim_d1"]) and math.isfinite(metrics["view/ssim_d0"])
    assert metrics["view/ssim"] == pytest.approx(metrics["view/ssim_d0"])


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        ("train.lossmult", lambda m: m["train"].pop("lossmult")),
        ("train.focal[2]", lambda m: m["train"]["focal"].__setitem__(2, "x")),
        ("train.cam2world", lambda m: m["train"]["cam2world"].pop()),
        ("train.pix2cam[0]", lambda m: m["train"]["pix2cam"].__setitem__(0, [[1, 0, 0]] * 3)),
    ],
)
def test_bad_metadata_names_the_file_and_field(tmp_path, field, edit):
    dst = write_multiscale(make_blender(tmp_path / "scene", size=8), tmp_path / "ms", levels=2)
    meta = json.loads((dst / "metadata.json").read_text())
    edit(meta)
    (dst / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as err:
        read_metadata(dst, "train")
    assert "metadata.json" in str(err.value) and repr(field)[1:-1] in str(err.value)


def test_missing_image_names_the_file(tmp_path):
    dst = write_multiscale(make_blender(tmp_path / "scene", size=8), tmp_path / "ms", levels=2)
    (dst / "images_train" / "001_d1.png").unlink()
    with pytest.raises(DataError, match=r"001_d1\.png.*train\.file_path\[3\]"):
        load_multiscale(dst, "train", (1.0, 1.0, 1.0))


def test_converter_cli_error_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "nope"), str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "transforms_train.json" in err[0]
    src = make_blender(tmp_path / "scene", size=12)  # 12 px cannot make 4 levels
    with pytest.raises(SystemExit):
        main([str(src), str(tmp_path / "out")])
    assert "not divisible by 8" in capsys.readouterr().err
    assert main([str(src), str(tmp_path / "out2"), "--levels", "3"]) == 0
    before = (tmp_path / "out2" / "metadata.json").read_bytes()
    with pytest.raises(SystemExit):
        main([str(src), str(tmp_path / "out2"), "--levels", "3"])
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "out2" / "metadata.json").read_bytes() == before


def test_embedded_renders_as_multiscale_data(tmp_path):
    from zoo.data.multiscale import SynthMultiscaleDataModule

    kw = dict(root=tmp_path, resolution=16, n_train=3, n_val=1, n_test=1, shapes_per_category=2)
    dm = SynthMultiscaleDataModule(levels=2, rays_per_batch=8, **kw)
    dm.setup()
    assert [im.shape[1] for _, _, im in dm.eval_scales()] == [16, 8]
    assert dm.info()["near"] > 0 and dm.info()["bbox_max"][0] < 1.0  # the renders' bounds
    # Other render settings: a fresh conversion, not the stale one.
    other = SynthMultiscaleDataModule(levels=2, **{**kw, "resolution": 12})
    other.setup()
    assert other.scene_root() != dm.scene_root()
    assert [im.shape[1] for _, _, im in other.eval_scales()] == [12, 6]
