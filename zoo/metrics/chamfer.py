"""Chamfer distance between point clouds (two conventions: PointFlow/pytorch3d and ONet L1)."""

from __future__ import annotations

from torch import Tensor

from zoo.metrics._checks import point_pair, unbatch
from zoo.metrics.knn import Backend, nearest_neighbors


def chamfer_distance(
    x: Tensor, y: Tensor, squared: bool = True, *, backend: Backend = "auto"
) -> Tensor:
    """Symmetric Chamfer distance.

    ``squared=True`` (default; PointFlow, Yang et al. 2019, and ``pytorch3d.loss.chamfer_distance``
    with mean point reduction): the **sum** of the two directional means of squared distances::

        CD(x, y) = 1/N sum_i min_j |x_i - y_j|^2  +  1/M sum_j min_i |y_j - x_i|^2

    ``squared=False``: Occupancy Networks' "Chamfer-L1" (Mescheder et al. 2019): the **average**
    of the two directional means of Euclidean distances (accuracy and completeness)::

        CD_L1(x, y) = 0.5 * (1/N sum_i min_j |x_i - y_j|  +  1/M sum_j min_i |y_j - x_i|)

    No normalisation is applied: the value is in the units (squared units) of the input. Papers
    often print CD x 10^3 or x 10^4; the caller scales. Differentiable w.r.t. both clouds.

    Args:
        x: (N, 3) or (B, N, 3). y: (M, 3) or (B, M, 3); N and M may differ.
        squared: see above.
        backend: nearest-neighbour search of ``zoo.metrics.knn.nearest_neighbors`` (``auto``:
            scipy KD-tree on CPU for large clouds, chunked brute force in torch otherwise).
    Returns:
        scalar, or (B,) for batched inputs.
    """
    xb, yb, batched = point_pair(x, y)
    d_xy, _ = nearest_neighbors(xb, yb, backend=backend)  # (B, N)
    d_yx, _ = nearest_neighbors(yb, xb, backend=backend)  # (B, M)
    if squared:
        cd = d_xy.mean(-1) + d_yx.mean(-1)
    else:
        cd = 0.5 * (d_xy.sqrt().mean(-1) + d_yx.sqrt().mean(-1))
    return unbatch(cd, batched)
