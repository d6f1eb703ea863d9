"""The shared metric suite.

Every point metric takes torch tensors (N, 3) -> scalar or batched (B, N, 3) -> (B,), on any
device; no metric normalises its inputs (values are in the caller's units). See each function's
docstring for its formula and convention.

- ``chamfer_distance``: squared, sum of directions (PointFlow/pytorch3d) or ONet Chamfer-L1.
- ``f_score``, ``normal_consistency``: reconstruction metrics (Tatarchenko 2019, ONet).
- ``earth_movers_distance``: exact assignment (approximate upper bound above 4096 points), or the
  papers' approximations (``method="pointflow"`` / ``"pvd"``, ``zoo.metrics.approxmatch``).
- ``voxel_iou``; ``psnr``, ``ssim`` for rendered views.
- ``zoo.metrics.features``: FPD, P-FID, P-IS over the zoo's own PointNet classifier (not
  comparable with the papers' networks).
- ``generative_metrics``: MMD / COV / 1-NNA over sets of clouds (PointFlow); ``jsd``: PointFlow's
  Jensen-Shannon divergence of the sets' occupancy grids.
- ``nearest_neighbors`` (+ the ``nearest_neighbors_naive`` reference), ``pairwise_distances``.
"""

from zoo.metrics.chamfer import chamfer_distance
from zoo.metrics.emd import earth_movers_distance
from zoo.metrics.f_score import f_score
from zoo.metrics.generative import generative_metrics, mmd_cov, one_nn_accuracy
from zoo.metrics.image import mse_to_psnr, psnr, ssim
from zoo.metrics.jsd import jsd
from zoo.metrics.knn import nearest_neighbors, nearest_neighbors_naive
from zoo.metrics.normal_consistency import normal_consistency
from zoo.metrics.pairwise import pairwise_distances
from zoo.metrics.voxel import voxel_iou

__all__ = [
    "chamfer_distance",
    "earth_movers_distance",
    "f_score",
    "generative_metrics",
    "jsd",
    "mmd_cov",
    "nearest_neighbors",
    "nearest_neighbors_naive",
    "mse_to_psnr",
    "normal_consistency",
    "one_nn_accuracy",
    "pairwise_distances",
    "psnr",
    "ssim",
    "voxel_iou",
]
