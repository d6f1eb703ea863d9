"""The shape datamodules' common part: the training datasets of each form and the base
class (splits, loaders, ``info``, ``eval_shapes``). See :mod:`zoo.data.shapes`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.data import cache as cache_mod
from zoo.data.formats import deepsdf, pc15k
from zoo.data.formats.mesh import load_mesh, normalize_mesh
from zoo.data.formats.shapenet import (
    SPLITS,
    name_of,
)
from zoo.data.io import DataError
from zoo.data.resumable import ResumableDataLoader
from zoo.representation import ShapeTarget

EVAL_BBOX = ((-0.55, -0.55, -0.55), (0.55, 0.55, 0.55))
VOXEL_BBOX = ((-0.5, -0.5, -0.5), (0.5, 0.5, 0.5))


def train_cut(n_cloud: int) -> int:
    """How many leading points of a cloud are for training (PointFlow: 10000 of 15000)."""
    return min(pc15k.TRAIN_POINTS, (2 * n_cloud) // 3)


@dataclass(frozen=True)
class ShapeItem:
    """Where the data of one shape lives (fields a datamodule does not provide are None)."""

    name: str  # "<synset>/<model_id>"
    synset: str
    model_id: str
    split: str
    cloud: Path | None = None  # (K, 3) .npy surface points
    normals: Path | None = None  # (K, 3) .npy normals of `cloud`
    sdf: Path | None = None  # DeepSDF .npz
    surface: Path | None = None  # DeepSDF SurfaceSamples .ply
    voxels: Path | None = None  # (R, R, R) bool .npy
    mesh: Path | None = None  # mesh file
    normalize_mesh: bool = True


# ------------------------------------------------------------------------------ datasets
class PointsDataset(Dataset):
    """Surface points (and normals) of shapes; see the module docstring for the protocol."""

    def __init__(
        self, items: Sequence[ShapeItem], n_points: int, train: bool, with_normals: bool = False
    ) -> None:
        self.items, self.n_points, self.train = list(items), int(n_points), train
        self.with_normals = with_normals

    def __len__(self) -> int:
        return len(self.items)

    def select(self, n_cloud: int) -> torch.Tensor:
        """Indices into a cloud of ``n_cloud`` points."""
        cut, n = train_cut(n_cloud), self.n_points
        if self.train:
            if n <= cut:
                return torch.randperm(cut)[:n]
            return torch.randint(0, cut, (n,))
        if n <= n_cloud - cut:  # held-out points, fixed
            return torch.arange(cut, cut + n)
        return torch.arange(n) % n_cloud

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.items[i]
        cloud = pc15k.load_cloud(item.cloud, None)  # (K, 3)
        sel = self.select(len(cloud))
        out: dict[str, Any] = {
            "points": torch.from_numpy(cloud)[sel],
            "idx": i,
            "synset": item.synset,  # the category label (zoo.models.pointnet)
        }
        if self.with_normals:
            normals = pc15k.load_cloud(item.normals, len(cloud), field="normals")
            out["normals"] = torch.from_numpy(normals)[sel]
        return out


class VoxelDataset(Dataset):
    """(1, R, R, R) float32 occupancy grids."""

    def __init__(self, items: Sequence[ShapeItem], resolution: int) -> None:
        self.items, self.resolution = list(items), int(resolution)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        v = cache_mod.load_voxels(self.items[i].voxels, self.resolution)
        return {"voxels": torch.from_numpy(v).float()[None], "idx": i}


class SdfDataset(Dataset):
    """S SDF samples per shape, half positive and half negative (DeepSDF)."""

    def __init__(self, items: Sequence[ShapeItem], n_samples: int, train: bool) -> None:
        self.items, self.n_samples, self.train = list(items), int(n_samples), train

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        pos, neg = deepsdf.load_sdf_samples(self.items[i].sdf)
        # Training draws from torch's RNG (seeded per worker by the DataLoader); evaluation
        # batches are fixed per shape.
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item()) if self.train else i
        samples = deepsdf.sample_sdf(pos, neg, self.n_samples, np.random.default_rng(seed))
        return {"sdf": torch.from_numpy(samples), "idx": i}


# ------------------------------------------------------------------------------ base class
class ShapeDataModuleBase(pl.LightningDataModule):
    """Form handling, loaders, ``info``, ``eval_shapes`` shared by the shape datamodules.

    Subclasses set ``forms`` and implement :meth:`_build_items` (per-split :class:`ShapeItem`
    lists for the current form, building caches as needed).
    """

    forms: ClassVar[tuple[str, ...]] = ("points", "voxels", "sdf", "mesh")
    root: Path  # the data folder (subclasses without one override ``dataset_root``)

    def __init__(
        self,
        form: str = "points",
        batch_size: int = 16,
        n_points: int = 2048,
        voxel_resolution: int = 32,
        sdf_samples: int = 16384,
        num_workers: int = 0,
        eval_points: int = 2048,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in [
            ("batch_size", batch_size),
            ("n_points", n_points),
            ("voxel_resolution", voxel_resolution),
            ("sdf_samples", sdf_samples),
            ("eval_points", eval_points),
        ]:
            if int(value) != value or value < 1:
                raise ValueError(
                    f"{type(self).__name__}: {name} must be a positive int, got {value!r}"
                )
        self.batch_size = int(batch_size)
        self.n_points = int(n_points)
        self.voxel_resolution = int(voxel_resolution)
        self.sdf_samples = int(sdf_samples)
        self.num_workers = int(num_workers)
        self.eval_points = int(eval_points)
        self.seed = int(seed)
        self._form = ""
        self.form = form
        self._items: dict[str, list[ShapeItem]] | None = None
        self._items_form: str | None = None

    # ------------------------------------------------------------------ form
    @property
    def form(self) -> str:
        """The batch form; may be changed before ``setup()`` (or later: data is re-prepared)."""
        return self._form

    @form.setter
    def form(self, value: str) -> None:
        if value not in self.forms:
            raise ValueError(
                f"{type(self).__name__} does not support form {value!r}; it supports "
                f"{', '.join(repr(f) for f in self.forms)}"
            )
        self._form = value

    # ------------------------------------------------------------------ preparation
    def _build_items(self) -> dict[str, list[ShapeItem]]:
        raise NotImplementedError

    @property
    def dataset_name(self) -> str:
        """The dataset's name in ``info()`` (default: the root folder's name)."""
        return self.dataset_root.name

    def prepare_data(self) -> None:
        """Build missing caches (Lightning calls this once per node before ``setup``)."""
        self._ensure()

    def setup(self, stage: str | None = None) -> None:
        self._ensure()

    def _ensure(self) -> dict[str, list[ShapeItem]]:
        if self._items is None or self._items_form != self.form:
            self._items = self._build_items()
            self._items_form = self.form
            if not self._items["train"]:
                raise DataError(self.dataset_root, "train", "the training split has no shapes")
        return self._items

    @property
    def dataset_root(self) -> Path:
        """The folder the data is read from (default: the subclass's ``root``)."""
        return Path(self.root)

    def items(self, split: str) -> list[ShapeItem]:
        """The shapes of ``split`` (train/val/test) in index order."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self._ensure()[split]

    # ------------------------------------------------------------------ loaders
    def dataset(self, split: str) -> Dataset:
        """The torch Dataset of ``split`` in the current form."""
        items, train = self.items(split), split == "train"
        if self.form in ("points", "mesh"):
            return PointsDataset(items, self.n_points, train, with_normals=self.form == "mesh")
        if self.form == "voxels":
            return VoxelDataset(items, self.voxel_resolution)
        return SdfDataset(items, self.sdf_samples, train)

    def _loader(self, split: str) -> DataLoader:
        # Training: a run resumed mid-epoch continues the epoch where it stopped.
        return (ResumableDataLoader if split == "train" else DataLoader)(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=split == "train",
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        """Validation batches; from the test split when the dataset has no validation shapes."""
        return self._loader("val" if self.items("val") else "test")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    # ------------------------------------------------------------------ info / evaluation
    def info(self) -> dict[str, Any]:
        """JSON-serialisable facts about the data, for ``Representation.configure_from_data``.

        ``points_mean`` / ``points_std`` (points and mesh forms) are PointFlow's global
        normalisation statistics of the training clouds (per-axis mean, one scalar std).
        ``train_names`` / ``train_synsets``: each training shape's name and category in
        training-index order (the ``idx`` of its batches; per-category latent priors).
        """
        items = self._ensure()
        synsets = sorted({i.synset for split in items.values() for i in split})
        info: dict[str, Any] = {
            "form": self.form,
            "dataset": self.dataset_name,
            "categories": [name_of(s) for s in synsets],
            "synsets": synsets,
            "num_train_shapes": len(items["train"]),
            "num_val_shapes": len(items["val"]),
            "num_test_shapes": len(items["test"]),
            "train_names": [i.name for i in items["train"]],
            "train_synsets": [i.synset for i in items["train"]],  # by batch["idx"]
            "n_points": self.n_points,
            "eval_points": self.eval_points,
            "voxel_resolution": self.voxel_resolution,
            "sdf_samples": self.sdf_samples,
            "bbox_min": list(EVAL_BBOX[0]),
            "bbox_max": list(EVAL_BBOX[1]),
            "voxel_bbox_min": list(VOXEL_BBOX[0]),
            "voxel_bbox_max": list(VOXEL_BBOX[1]),
        }
        if self.form in ("points", "mesh"):
            train_pts = self._train_points().reshape(-1, 3)
            info["points_mean"] = [float(v) for v in train_pts.mean(axis=0)]
            info["points_std"] = float(train_pts.std())
        return info

    def _train_points(self) -> np.ndarray:
        """The training points of every training shape (N, K, 3): the leading part of each
        cloud that training batches draw from."""
        clouds = np.stack([pc15k.load_cloud(i.cloud, None) for i in self.items("train")])
        return clouds[:, : train_cut(clouds.shape[1])]

    def _eval_points(self, item: ShapeItem) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """A fixed subset of ``eval_points`` surface points (held-out part first), normals."""
        if item.cloud is None:
            return None, None
        cloud = pc15k.load_cloud(item.cloud, None)
        sel = PointsDataset([item], self.eval_points, train=False).select(len(cloud))
        normals = None
        if item.normals is not None and item.normals.is_file():
            normals = torch.from_numpy(pc15k.load_cloud(item.normals, len(cloud), "normals"))[sel]
        return torch.from_numpy(cloud)[sel], normals

    def eval_shapes(
        self,
        split: str = "test",
        limit: int | None = None,
        spread: bool = False,
        points_only: bool = False,
    ) -> list[ShapeTarget]:
        """Ground-truth targets of ``split`` (first ``limit`` shapes, in index order; with
        ``spread``, ``limit`` shapes evenly spaced over the index order instead, so that a
        split sorted by category shows every category).

        Each has ``points`` (``eval_points`` fixed surface points), ``normals`` and ``mesh``
        where known, ``voxels`` (R^3 bool) in the voxel form and ``sdf`` (all cached samples,
        pos then neg) in the sdf form; with ``points_only`` just the points and normals (e.g.
        the training shapes as the generation metrics' memorising baseline).
        """
        items = self.items(split)
        chosen = list(range(len(items)))[: None if limit is None else int(limit)]
        if spread and limit is not None and 0 < int(limit) < len(items):
            chosen = np.linspace(0, len(items) - 1, int(limit)).round().astype(int).tolist()
        targets = []
        for index in chosen:
            item = items[index]
            points, normals = self._eval_points(item)
            mesh = None
            if item.mesh is not None and not points_only:
                mesh = load_mesh(item.mesh)
                mesh = normalize_mesh(mesh) if item.normalize_mesh else mesh
            voxels = sdf = None
            if self.form == "voxels" and item.voxels is not None and not points_only:
                voxels = torch.from_numpy(cache_mod.load_voxels(item.voxels, self.voxel_resolution))
            if self.form == "sdf" and item.sdf is not None and not points_only:
                pos, neg = deepsdf.load_sdf_samples(item.sdf)
                sdf = torch.from_numpy(np.concatenate([pos, neg], axis=0))
            extra = {
                "synset": item.synset,
                "model_id": item.model_id,
                "category": name_of(item.synset),
                "split": split,
                "index": index,
            }
            targets.append(
                ShapeTarget(
                    name=item.name,
                    points=points,
                    normals=normals,
                    mesh=mesh,
                    voxels=voxels,
                    sdf=sdf,
                    extra=extra,
                )
            )
        return targets

    def eval_views(self, split: str = "test") -> None:
        """Shape datasets have no images (the multi-view datamodule returns cameras + images)."""
        return None

    def eval_scales(self, split: str = "test") -> None:
        """One scale (see :class:`zoo.data.protocol.EvalData`)."""
        return None

    def extra_references(
        self, per_category: int, have: dict[str, int], n_points: int
    ) -> dict[str, torch.Tensor]:
        """No more held-out shapes than the split's (synthshapes draws more)."""
        return {}

    def independent_draw(
        self, counts: dict[str, int], n_points: int
    ) -> dict[str, torch.Tensor] | None:
        """No second draw of held-out shapes (synthshapes has one): the evaluator's data row
        splits the references in halves."""
        return None
