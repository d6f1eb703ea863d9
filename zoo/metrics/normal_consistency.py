"""Normal consistency between oriented point clouds (Occupancy Networks, Mescheder et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.metrics._checks import float_dtype, point_pair, same_shape_as, unbatch
from zoo.metrics.knn import Backend, nearest_neighbors


def normal_consistency(
    x: Tensor, nx: Tensor, y: Tensor, ny: Tensor, *, backend: Backend = "auto"
) -> Tensor:
    """Mean absolute cosine between each point's normal and its nearest neighbour's normal.

    As in ONet's evaluation, normals are normalised, orientation is ignored (absolute value, so
    a flipped normal counts as consistent), and the two directions are averaged::

        NC = 0.5 * ( 1/N sum_i |<nx_i, ny_nn_y(i)>|  +  1/M sum_j |<ny_j, nx_nn_x(j)>| )

    where ``nn_y(i)`` is the nearest point of ``y`` to ``x_i``. A zero normal contributes 0.

    Args:
        x: (N, 3) or (B, N, 3) points; nx: their normals, same shape.
        y: (M, 3) or (B, M, 3) points; ny: their normals, same shape.
    Returns:
        scalar in [0, 1], or (B,) for batched inputs.
    """
    xb, yb, batched = point_pair(x, y)
    nxb = same_shape_as("nx", nx, "x", x).reshape(xb.shape)
    nyb = same_shape_as("ny", ny, "y", y).reshape(yb.shape)
    _, i_xy = nearest_neighbors(xb, yb, backend=backend)  # (B, N) index into y
    _, i_yx = nearest_neighbors(yb, xb, backend=backend)  # (B, M) index into x
    dtype = float_dtype(nxb, nyb)
    nxb = torch.nn.functional.normalize(nxb.to(dtype), dim=-1)
    nyb = torch.nn.functional.normalize(nyb.to(dtype), dim=-1)
    ny_at_x = torch.gather(nyb, 1, i_xy.unsqueeze(-1).expand(-1, -1, 3))  # (B, N, 3)
    nx_at_y = torch.gather(nxb, 1, i_yx.unsqueeze(-1).expand(-1, -1, 3))  # (B, M, 3)
    acc = (nxb * ny_at_x).sum(-1).abs().mean(-1)
    comp = (nyb * nx_at_y).sum(-1).abs().mean(-1)
    return unbatch(0.5 * (acc + comp), batched)
