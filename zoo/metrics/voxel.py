"""Volumetric IoU of occupancy grids (3D-R2N2, Choy et al. 2016; Occupancy Networks)."""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.metrics._checks import grid_pair, unbatch


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
    a, b, batched = grid_pair(a, b, ("a", "b"), "a (R, R, R) or (B, R, R, R)")
    oa = _occupied(a).flatten(1)  # (B, V)
    ob = _occupied(b).flatten(1)
    inter = (oa & ob).sum(-1).to(torch.float32)
    union = (oa | ob).sum(-1).to(torch.float32)
    iou = torch.where(union > 0, inter / union.clamp_min(1), 1.0)
    return unbatch(iou, batched)


def _occupied(g: Tensor) -> Tensor:
    return g if g.dtype == torch.bool else g >= 0.5
