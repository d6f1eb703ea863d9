"""PointNet classifier: shared per-point MLP, max-pool, MLP head to category logits.

Qi, Su, Mo, Guibas, "PointNet: Deep Learning on Point Sets for 3D Classification and
Segmentation", CVPR 2017 (classification network, Fig. 2): per-point layers 64-64-64-128-1024
with batch norm and ReLU, max-pool, head 512-256-k with batch norm, ReLU and dropout (keep 0.7)
before the last layer, softmax cross-entropy, Adam (lr 1e-3); augmentation by a random rotation
about the up axis and Gaussian jitter (sigma 0.01, clipped at 0.05). Not used here: the input and
feature transform nets (T-Net), which the paper reports add ~2 points of ModelNet40 accuracy.
The network is ``zoo.nn.pointnet.PointNetEncoder`` (shared with PointFlow's encoder) with
``relu_last`` and ``dropout``; the CPU default (``conf/model/pointnet.yaml``) is narrower.

Labels: the data's categories (``info["synsets"]``, sorted) in that order; batches name each
shape's synset. Rotation augmentation is off by default: the zoo's shapes share one canonical
orientation (ShapeNet's), as do generated samples.

How it fits the Representation interface (a classifier neither draws nor reconstructs
shapes): ``classifier = True`` and ``generative = False``; the evaluator then reports held-out
accuracy (``cls/accuracy``) instead of reconstruction scores. ``reconstruct`` returns a
:class:`PointNetLabel` (the predicted category and probabilities of the target's points);
``sample``, ``to_mesh`` and ``to_points`` raise ``ValueError`` (there is no shape to give).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import trimesh
from torch import Tensor, nn

from zoo.models.base import ZooModel
from zoo.models.registry import register_model
from zoo.nn.pointnet import PointNetEncoder
from zoo.representation import ShapeTarget


@dataclass
class PointNetLabel:
    """The classifier's native output for one cloud: category name, synset, probabilities."""

    category: str
    synset: str
    probs: Tensor  # (K,)


@register_model("pointnet")
class PointNetClassifier(ZooModel):
    """PointNet classification network (module docstring).

    Args:
        hidden: per-point widths (paper: 64-64-64-128-1024).
        head: head hidden widths (paper: 512-256).
        dropout: dropout before the last linear layer (paper: 0.3, i.e. keep 0.7).
        num_classes: categories before the data is seen (rebuilt from ``info["synsets"]``).
        train_points: random subset of each training cloud per step (None: all).
        input_points: points of a cloud given to ``reconstruct``/``classify`` (subsampled).
        jitter_sigma, jitter_clip: Gaussian jitter of training points (paper: 0.01, 0.05).
        rotate_up: random rotation about the up (y) axis during training (paper: yes).
    """

    kind = "points"
    data_form = "points"
    generative = False
    classifier: ClassVar[bool] = True

    def __init__(
        self,
        hidden: Sequence[int] = (64, 64, 64, 128, 1024),
        head: Sequence[int] = (512, 256),
        dropout: float = 0.3,
        num_classes: int = 6,
        train_points: int | None = 1024,
        input_points: int = 2048,
        jitter_sigma: float = 0.01,
        jitter_clip: float = 0.05,
        rotate_up: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden, self.head_dims, self.dropout = tuple(hidden), tuple(head), float(dropout)
        self.train_points, self.input_points = train_points, input_points
        self.jitter_sigma, self.jitter_clip, self.rotate_up = jitter_sigma, jitter_clip, rotate_up
        self.synsets: list[str] = []
        self.categories: list[str] = []
        self.net = self._build(num_classes)

    def _build(self, num_classes: int) -> PointNetEncoder:
        return PointNetEncoder(
            3, self.hidden, num_classes, self.head_dims, relu_last=True, dropout=self.dropout
        )

    def configure_from_data(self, info: dict[str, Any]) -> None:
        super().configure_from_data(info)
        synsets = list(info.get("synsets") or [])
        if len(synsets) < 2:
            raise ValueError(f"pointnet needs at least two categories in the data, got {synsets}")
        self.synsets = synsets
        self.categories = list(info.get("categories") or synsets)
        if self.net.out_dim != len(synsets):
            self.net = self._build(len(synsets))

    # ----------------------------------------------------------------- network
    def forward(self, points: Tensor) -> Tensor:
        """Logits (B, K) of clouds (B, N, 3) in data units."""
        return self.net(points)

    def features(self, points: Tensor) -> list[Tensor]:
        """Every stage's activation of clouds (B, N, 3): global feature, head layers, logits."""
        return self.net.features(points)

    def labels_of(self, synsets: Sequence[str]) -> Tensor:
        index = {s: i for i, s in enumerate(self.synsets)}
        unknown = sorted({s for s in synsets if s not in index})
        if unknown:
            raise ValueError(f"pointnet: categories {unknown} were not in its training data")
        return torch.tensor([index[s] for s in synsets], device=self.device_)

    def _augment(self, points: Tensor) -> Tensor:
        if self.rotate_up:
            angle = torch.rand(len(points), device=points.device) * 2 * math.pi
            c, s = angle.cos(), angle.sin()
            x, z = points[..., 0], points[..., 2]
            points = torch.stack(
                [c[:, None] * x + s[:, None] * z, points[..., 1], -s[:, None] * x + c[:, None] * z],
                dim=-1,
            )
        if self.jitter_sigma > 0:
            noise = (torch.randn_like(points) * self.jitter_sigma).clamp(
                -self.jitter_clip, self.jitter_clip
            )
            points = points + noise
        return points

    # ----------------------------------------------------------------- Lightning
    def _shared_step(self, batch: dict[str, Any], stage: str) -> Tensor:
        points = batch["points"]  # (B, N, 3)
        n = self.train_points
        if stage == "train":
            if n is not None and points.shape[1] > n:
                points = points[:, torch.randperm(points.shape[1], device=points.device)[:n]]
            points = self._augment(points)
        labels = self.labels_of(batch["synset"])
        if stage == "train" and len(points) == 1:
            # Batch norm cannot train on one shape (an epoch's last batch, a DDP shard): use
            # two independently jittered copies of it.
            points = torch.cat([points, self._augment(batch["points"][:, : points.shape[1]])])
            labels = labels.repeat(2)
        logits = self(points)  # (B, K)
        loss = nn.functional.cross_entropy(logits, labels)
        acc = (logits.argmax(dim=1) == labels).float().mean()
        bs = len(points)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", batch_size=bs)
        self.log(f"{stage}/accuracy", acc, prog_bar=stage == "val", batch_size=bs)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    # ----------------------------------------------------------------- Representation
    @torch.no_grad()
    def classify(self, clouds: Tensor) -> Tensor:
        """Class probabilities (B, K) of clouds (B, N, 3), in eval mode."""
        was = self.training
        self.eval()
        probs = self(clouds.to(self.device_, torch.float32)).softmax(dim=1)
        self.train(was)
        return probs

    def reconstruct(self, target: ShapeTarget) -> PointNetLabel:
        target.require("points", model=self.name)
        pts = target.points
        if len(pts) > self.input_points:
            g = torch.Generator().manual_seed(0)
            pts = pts[torch.randperm(len(pts), generator=g)[: self.input_points]]
        probs = self.classify(pts[None])[0].cpu()
        k = int(probs.argmax())
        name = self.categories[k] if k < len(self.categories) else str(k)
        return PointNetLabel(name, self.synsets[k] if self.synsets else str(k), probs)

    def sample(self, n: int, seed: int | None = None) -> list[Any]:
        raise ValueError("pointnet is a classifier: it draws no shapes")

    def to_mesh(self, shape: Any, resolution: int = 128) -> trimesh.Trimesh:
        raise ValueError("pointnet is a classifier: its output is a label, not a surface")

    def to_points(self, shape: Any, n: int = 2048, seed: int | None = 0) -> Tensor:
        raise ValueError("pointnet is a classifier: its output is a label, not a surface")
