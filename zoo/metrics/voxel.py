"""Volumetric IoU of occupancy grids (3D-R2N2, Choy et al. 2016; Occupancy Networks)."""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.metrics._checks import unbatch


def voxel_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of two occupancy grids.

    ``IoU = |A and B| / |A or B|`` over voxels. Bool grids are used as they are; numeric grids
    are occupancy probabilities, occupied where ``>= 0.5`` (the ONet convention). Two empty grids
    are identical, so their IoU is defined as 1 (instead of 0/0).

    Args:
        a, b: (D, H, W) grids (usually R^3) or batches (B, D, H, W), same shape.
    Returns:
        scalar float32, or (B,) for batched inputs.
    """
    for name, g in (("a", a), ("b", b)):
        if not isinstance(g, Tensor) or g.ndim not in (3, 4):
            shape = tuple(g.shape) if isinstance(g, Tensor) else type(g)
            raise ValueError(f"{name} must be a (R, R, R) or (B, R, R, R) tensor, got {shape}")
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.device != b.device:
        raise ValueError(f"a is on {a.device} but b is on {b.device}")
    batched = a.ndim == 4
    oa = _occupied(a if batched else a.unsqueeze(0)).flatten(1)  # (B, V)
    ob = _occupied(b if batched else b.unsqueeze(0)).flatten(1)
    inter = (oa & ob).sum(-1).to(torch.float32)
    union = (oa | ob).sum(-1).to(torch.float32)
    iou = torch.where(union > 0, inter / union.clamp_min(1), 1.0)
    return unbatch(iou, batched)


def _occupied(g: Tensor) -> Tensor:
    return g if g.dtype == torch.bool else g >= 0.5
