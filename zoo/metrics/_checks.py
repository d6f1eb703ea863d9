"""Input validation shared by the metrics: ``ValueError``s naming the argument and its shape."""

from __future__ import annotations

import torch
from torch import Tensor


def as_point_batch(name: str, x: object) -> tuple[Tensor, bool]:
    """Check a point cloud (N, 3) or a batch (B, N, 3); return it batched and whether it was.

    Returns:
        (B, N, 3) tensor (a view, B = 1 for an unbatched input) and ``True`` if ``x`` was batched.
    """
    if not isinstance(x, Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (N, 3) or (B, N, 3), got {type(x)}"
        )
    if x.ndim not in (2, 3) or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, 3) or (B, N, 3), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[-2] == 0:
        raise ValueError(f"{name} is an empty point cloud: shape {tuple(x.shape)}")
    batched = x.ndim == 3
    return (x if batched else x.unsqueeze(0)), batched


def point_pair(
    x: object, y: object, names: tuple[str, str] = ("x", "y")
) -> tuple[Tensor, Tensor, bool]:
    """Validate two clouds of the same batching, batch size and device; return them batched."""
    xb, bx = as_point_batch(names[0], x)
    yb, by = as_point_batch(names[1], y)
    if bx != by:
        raise ValueError(
            f"{names[0]} and {names[1]} must both be (N, 3) or both (B, N, 3), got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if xb.shape[0] != yb.shape[0]:
        raise ValueError(
            f"batch sizes differ: {names[0]} {tuple(xb.shape)} vs {names[1]} {tuple(yb.shape)}"
        )
    if xb.device != yb.device:
        raise ValueError(f"{names[0]} is on {xb.device} but {names[1]} is on {yb.device}")
    return xb, yb, bx


def grid_pair(
    x: object, y: object, names: tuple[str, str], layout: str
) -> tuple[Tensor, Tensor, bool]:
    """Validate two tensors of one (3-D) item or a (4-D) batch of the same shape and device
    (images, voxel grids); return them batched (a view) and whether they were.

    Args:
        layout: the two accepted shapes, for the message, e.g. ``"an (H, W, C) or (B, H, W, C)"``.
    """
    for name, t in zip(names, (x, y), strict=True):
        if not isinstance(t, Tensor) or t.ndim not in (3, 4):
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t)
            raise ValueError(f"{name} must be {layout} tensor, got {shape}")
    if x.shape != y.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    if x.device != y.device:
        raise ValueError(f"{names[0]} is on {x.device} but {names[1]} is on {y.device}")
    batched = x.ndim == 4
    return (x if batched else x.unsqueeze(0)), (y if batched else y.unsqueeze(0)), batched


def same_shape_as(name: str, t: object, ref_name: str, ref: Tensor) -> Tensor:
    """Check that tensor ``t`` has exactly the shape (and device) of ``ref``."""
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t)}")
    if t.shape != ref.shape:
        raise ValueError(
            f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(t.shape)}"
        )
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")
    return t


def unbatch(value: Tensor, batched: bool) -> Tensor:
    """(B,) -> scalar when the input was not batched."""
    return value if batched else value[0]


def float_dtype(*tensors: Tensor) -> torch.dtype:
    """Promoted floating dtype of the inputs, at least float32 (half precision is not enough)."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return torch.promote_types(dtype, torch.float32)
