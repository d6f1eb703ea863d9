"""Image metrics for rendered views: PSNR and SSIM (images in [0, 1], channels last)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.metrics._checks import float_dtype, grid_pair, unbatch

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _image_pair(pred: object, target: object) -> tuple[Tensor, Tensor, bool]:
    """Validate (H, W, C) / (B, H, W, C) images of equal shape; return them batched."""
    p, t, batched = grid_pair(pred, target, ("pred", "target"), "an (H, W, C) or (B, H, W, C)")
    dtype = float_dtype(p, t)
    p, t = p.to(dtype), t.to(dtype)
    return p, t, batched


def mse_to_psnr(mse: Tensor, floor: float = 1e-10) -> Tensor:
    """PSNR in dB of images in [0, 1] from their mean squared error: ``-10 log10(mse)``, the
    MSE clamped below at ``floor`` (1e-10: at most 100 dB, so a perfect fit stays finite in
    training logs and averages; 0 gives ``+inf`` for identical images)."""
    return -10.0 * torch.log10(mse.clamp_min(floor))


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB for images with values in [0, 1] (data range 1)::

        PSNR = -10 log10( MSE ),   MSE = mean over H, W, C of (pred - target)^2

    The MSE is per image (NeRF convention: PSNR of each view, then average the PSNRs).
    Identical images give ``+inf`` (no cap); filter or clamp before averaging if needed.
    Values are not clipped to [0, 1]: the caller should clip predictions first.

    Args:
        pred, target: (H, W, C) or (B, H, W, C).
    Returns:
        scalar, or (B,) for batched inputs.
    """
    p, t, batched = _image_pair(pred, target)
    mse = (p - t).square().flatten(1).mean(-1)  # (B,)
    return unbatch(mse_to_psnr(mse, floor=0.0), batched)


def gaussian_window(
    size: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Normalised 1D Gaussian ``exp(-k^2 / (2 sigma^2))`` for k = -(size//2) .. size//2."""
    k = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(k**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004), per image, data range 1.

    Local statistics use the paper's 11 x 11 Gaussian window (sigma 1.5, normalised), with
    population (not sample) covariances; C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 1::

        SSIM(p, q) = (2 mu_p mu_q + C1)(2 s_pq + C2) / ((mu_p^2 + mu_q^2 + C1)(s_p^2 + s_q^2 + C2))

    The map is computed only where the window fits inside the image ("valid", i.e. a 5-pixel
    border is dropped) and averaged over pixels and channels. This equals
    ``skimage.metrics.structural_similarity(p, q, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1)``. No downsampling of large
    images (unlike the authors' MATLAB script). Differentiable.

    Args:
        pred, target: (H, W, C) or (B, H, W, C) with H, W >= 11.
    Returns:
        scalar, or (B,) for batched inputs.
    """
    p, t, batched = _image_pair(pred, target)
    b, h, w, c = p.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least 11 x 11 pixels, got {tuple(pred.shape)}")
    g = gaussian_window(device=p.device, dtype=p.dtype)
    p = p.permute(0, 3, 1, 2).reshape(b * c, 1, h, w)  # each channel is one image
    t = t.permute(0, 3, 1, 2).reshape(b * c, 1, h, w)
    stack = torch.cat([p, t, p * p, t * t, p * t], dim=1)  # (B*C, 5, H, W)
    kx = g.view(1, 1, 1, -1).expand(5, 1, 1, -1)
    ky = g.view(1, 1, -1, 1).expand(5, 1, -1, 1)
    stats = F.conv2d(F.conv2d(stack, kx, groups=5), ky, groups=5)  # separable valid filter
    mu_p, mu_t, e_pp, e_tt, e_pt = stats.unbind(1)
    var_p = e_pp - mu_p**2
    var_t = e_tt - mu_t**2
    cov = e_pt - mu_p * mu_t
    c1, c2 = (SSIM_K1 * 1.0) ** 2, (SSIM_K2 * 1.0) ** 2
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    den = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    s = (num / den).reshape(b, c, -1).mean(dim=(1, 2))  # (B,)
    return unbatch(s, batched)
