"""PSNR and SSIM: known values and agreement with scikit-image."""

from __future__ import annotations

import math

import pytest
import torch
from _metrics_helpers import devices
from skimage.metrics import structural_similarity

from zoo.metrics import psnr, ssim


def _images(b: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth images plus noise (SSIM of pure noise is near 0 and tests little)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = torch.rand(b, 1, 1, 3, generator=g) * 6
    base = 0.5 + 0.4 * torch.sin(6 * xx[None, ..., None] + 4 * yy[None, ..., None] + phase)
    target = base.clamp(0, 1)
    pred = (target + 0.08 * torch.randn(b, h, w, 3, generator=g)).clamp(0, 1)
    return pred.double(), target.double()


def test_psnr_identical_is_inf_and_known_mse() -> None:
    img = torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(0))
    assert psnr(img, img).item() == math.inf
    target = torch.full((8, 8, 3), 0.5)
    assert psnr(target + 0.1, target).item() == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert psnr(target + 0.01, target).item() == pytest.approx(40.0, abs=1e-2)  # MSE 1e-4
    pred = target.clone()
    pred[0, 0, 0] = 1.0  # one error of 0.5 over 192 values: MSE = 0.25 / 192
    assert psnr(pred, target).item() == pytest.approx(-10 * math.log10(0.25 / 192), rel=1e-5)


def test_psnr_batched_per_image() -> None:
    pred, target = _images(3, 20, 24)
    p = psnr(pred, target)
    assert p.shape == (3,)
    for i in range(3):
        mse = ((pred[i] - target[i]) ** 2).mean().item()
        assert p[i].item() == pytest.approx(-10 * math.log10(mse), rel=1e-10)


def test_ssim_identical_is_one() -> None:
    pred, _ = _images(2, 32, 32)
    torch.testing.assert_close(ssim(pred, pred), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ssim_matches_skimage(dtype: torch.dtype) -> None:
    pred, target = _images(3, 40, 53, seed=1)
    ours = ssim(pred.to(dtype), target.to(dtype))
    for i in range(3):
        ref = structural_similarity(
            pred[i].numpy(),
            target[i].numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
            channel_axis=-1,
        )
        assert 0.1 < ref < 0.95  # a non-trivial case
        assert ours[i].item() == pytest.approx(ref, abs=1e-4 if dtype == torch.float32 else 1e-10)


def test_ssim_is_symmetric_and_drops_with_noise() -> None:
    pred, target = _images(1, 32, 32, seed=2)
    torch.testing.assert_close(ssim(pred, target), ssim(target, pred))
    noisier = (
        target
        + 0.2
        * torch.randn(target.shape, generator=torch.Generator().manual_seed(3), dtype=target.dtype)
    ).clamp(0, 1)
    assert ssim(noisier, target) < ssim(pred, target) < 1


@pytest.mark.parametrize("device", devices())
def test_device_and_unbatched(device: str) -> None:
    pred, target = _images(1, 24, 24, seed=4)
    s = ssim(pred[0].to(device), target[0].to(device))
    assert s.ndim == 0 and s.device.type == device
    assert s.item() == pytest.approx(ssim(pred, target)[0].item(), abs=1e-10)
    assert psnr(pred[0].to(device), target[0].to(device)).device.type == device


def test_validation() -> None:
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(10, 30, 3), torch.zeros(10, 30, 3))
    with pytest.raises(ValueError, match=r"same shape.*\(12, 12, 3\).*\(12, 12, 4\)"):
        psnr(torch.zeros(12, 12, 3), torch.zeros(12, 12, 4))
    with pytest.raises(ValueError, match=r"\(12, 12\)"):
        psnr(torch.zeros(12, 12), torch.zeros(12, 12))
