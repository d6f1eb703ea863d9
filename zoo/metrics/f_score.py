"""F-score at a distance threshold (Tatarchenko et al. 2019, "What Do Single-view 3D
Reconstruction Networks Learn?"; also the ONet / ConvONet evaluation)."""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.metrics._checks import point_pair, unbatch
from zoo.metrics.knn import Backend, nearest_neighbors


def f_score(x: Tensor, y: Tensor, threshold: float = 0.01, *, backend: Backend = "auto") -> Tensor:
    """Harmonic mean of precision and recall of a predicted cloud at distance ``threshold``.

    ``x`` is the prediction, ``y`` the ground truth; a point counts when the Euclidean distance
    to its nearest neighbour in the other cloud is strictly below ``threshold``::

        precision = 1/N #{i : min_j |x_i - y_j| < t}      recall = 1/M #{j : min_i |y_j - x_i| < t}
        F = 2 P R / (P + R)   (0 when P = R = 0)

    The threshold is in input units (with ShapeNet-style normalisation, bounding-box diagonal 1,
    ``0.01`` is 1% of the diagonal). Not differentiable (a count).

    Returns:
        scalar in [0, 1], or (B,) for batched inputs.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    xb, yb, batched = point_pair(x, y, ("x (prediction)", "y (ground truth)"))
    d_xy, _ = nearest_neighbors(xb, yb, backend=backend)  # (B, N) squared
    d_yx, _ = nearest_neighbors(yb, xb, backend=backend)  # (B, M)
    t2 = float(threshold) ** 2  # compare squared distances: d < t  <=>  d^2 < t^2
    precision = (d_xy < t2).to(d_xy.dtype).mean(-1)
    recall = (d_yx < t2).to(d_yx.dtype).mean(-1)
    denom = precision + recall
    f = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-12), 0.0)
    return unbatch(f.detach(), batched)
