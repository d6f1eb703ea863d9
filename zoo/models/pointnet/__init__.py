"""PointNet classification (Qi et al., CVPR 2017): the zoo's own point-cloud classifier, whose
features score generated shapes (``zoo.metrics.features``: FPD, P-FID, P-IS)."""

from zoo.models.pointnet.model import PointNetClassifier, PointNetLabel

__all__ = ["PointNetClassifier", "PointNetLabel"]
