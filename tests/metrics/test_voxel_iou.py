"""Voxel IoU on hand-counted grids."""

from __future__ import annotations

import pytest
import torch
from _metrics_helpers import devices


@pytest.mark.parametrize("device", devices())
def test_hand_counted_iou(device: str) -> None:
    from zoo.metrics import voxel_iou

    a = torch.zeros(4, 4, 4, dtype=torch.bool, device=device)
    b = torch.zeros_like(a)
    a[0, 0, :4] = True  # 4 voxels
    b[0, 0, 2:4] = True  # 2 shared ...
    b[3, 3, 3] = True  # ... and 1 not: union 5
    assert voxel_iou(a, b).item() == pytest.approx(2 / 5)
    assert voxel_iou(a, a).item() == 1.0
    assert voxel_iou(a, ~a).item() == 0.0


def test_float_grids_threshold_at_half_and_empty_grids() -> None:
    from zoo.metrics import voxel_iou

    a = torch.tensor([0.5, 0.49, 0.9, 0.0]).reshape(1, 1, 4)
    b = torch.tensor([1.0, 1.0, 0.51, 0.2]).reshape(1, 1, 4)
    # a occupied: {0, 2}; b occupied: {0, 1, 2} -> 2 / 3
    assert voxel_iou(a, b).item() == pytest.approx(2 / 3)
    empty = torch.zeros(3, 3, 3)
    assert voxel_iou(empty, empty).item() == 1.0  # documented convention


def test_batched_and_validation() -> None:
    from zoo.metrics import voxel_iou

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 8, 8, 8, generator=g), torch.rand(3, 8, 8, 8, generator=g)
    iou = voxel_iou(a, b)
    assert iou.shape == (3,)
    for i in range(3):
        oa, ob = a[i] >= 0.5, b[i] >= 0.5
        assert iou[i].item() == pytest.approx((oa & ob).sum().item() / (oa | ob).sum().item())
    with pytest.raises(ValueError, match=r"same shape.*\(8, 8, 8\).*\(8, 8, 7\)"):
        voxel_iou(a[0], b[0, :, :, :7])
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        voxel_iou(a[0, 0], b[0, 0])
