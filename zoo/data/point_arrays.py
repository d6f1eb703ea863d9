"""Point clouds held as arrays (``data=point_arrays``): any folder of ``<category>_<split>.npz``
files (layout in :mod:`zoo.data.formats.point_arrays`), e.g. ModelNet10 sampled to 1024 points:

    python -m zoo.train model=pointflow data=point_arrays \\
        data.root=/path/modelnet10_pc1024 data.categories=[chair]

Categories are the file-name prefixes (``chair``...), standing where ShapeNet has synset ids
(batches' ``"synset"``, ``info()["synsets"]``, ``extra["synset"]``), as in
:mod:`zoo.data.modelnet`. Without a ``<category>_val.npz`` the validation shapes are a seeded
``val_fraction`` of the training file (ModelNet has no validation split).

Every cloud is first rotated so that its ``up_axis`` becomes +y (the zoo's ShapeNet frame),
then normalised by ``normalize`` (:mod:`zoo.ops.point_normalization`), which ``info()`` records
so samples and references are compared in the same units:

- ``bbox_diagonal`` (default): per shape, bounding box centred, diagonal 1 (ShapeNet v2 units,
  those of the embedded data and of the metric thresholds);
- ``unit_sphere``: per shape, centroid at 0, farthest point at 1 (PointNet's ModelNet40);
- ``unit_box``: per shape, bounding box centred, longest side 1 (fills the voxel box like a
  binvox ``-cb`` grid);
- ``global``: PointFlow's ShapeNet-15k statistics, one mean per axis and one scalar std per
  category over its training shapes, applied to every split; since raw ModelNet scales differ
  by 1e4 between shapes, each shape is first brought to ``bbox_diagonal`` units.

Points protocol: clouds this small (1024 points) are not split into training and held-out
points as PointFlow's 15k clouds are (:func:`zoo.data.shapes.train_cut`): training batches
draw a fresh random ``n_points`` subset of all points of a training shape; validation/test
batches and :meth:`eval_shapes` use the first ``n_points`` / ``eval_points`` points of the
shape (all of them by default), and the shapes of the test split are never trained on.

Form ``voxels`` (voxel_gan): training and validation batches come from ``voxels_file``
(N, R, R, R) grids of one category, rotated from ``voxels_up_axis`` into the zoo's [x, y, z]
y-up convention (:mod:`zoo.ops.voxelize`), the validation grids a seeded ``val_fraction`` of
them; :meth:`eval_shapes` of the test split still gives the test clouds, so the model is scored
in point space against them. A binvox ``-cb`` grid fills its cube: use ``normalize=unit_box``
so the clouds have the grids' units. Forms sdf, mesh and views need data that arrays of points
do not hold and are refused.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.data.formats.modelnet import DEFAULT_VAL_FRACTION, modelnet_split
from zoo.data.formats.point_arrays import (
    arrays_path,
    list_array_categories,
    load_point_arrays,
    load_voxel_arrays,
)
from zoo.data.formats.shapenet import SPLITS, check_root, limit_split
from zoo.data.io import DataError
from zoo.data.shapes import ShapeDataModuleBase, ShapeItem
from zoo.ops.point_normalization import (
    NORMALIZATIONS,
    PER_SHAPE,
    apply_global,
    bbox_diagonal,
    global_stats,
    up_to_y,
    voxels_up_to_y,
)
from zoo.representation import ShapeTarget


class ArrayPointsDataset(Dataset):
    """``n_points`` points of in-memory clouds: a fresh random subset of all the cloud's points
    when training (with replacement only when the cloud has fewer), else the first ones."""

    def __init__(
        self, clouds: np.ndarray, labels: Sequence[str], n_points: int, train: bool
    ) -> None:
        self.clouds = torch.from_numpy(clouds)  # (N, K, 3)
        self.labels, self.n_points, self.train = list(labels), int(n_points), train

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, i: int) -> dict[str, Any]:
        k, n = self.clouds.shape[1], self.n_points
        if not self.train:
            sel = torch.arange(n) % k
        elif n <= k:
            sel = torch.randperm(k)[:n]
        else:
            sel = torch.randint(0, k, (n,))
        return {"points": self.clouds[i, sel], "idx": i, "synset": self.labels[i]}


class ArrayVoxelDataset(Dataset):
    """(1, R, R, R) float32 occupancy of in-memory grids."""

    def __init__(self, grids: np.ndarray) -> None:
        self.grids = torch.from_numpy(grids)  # (N, R, R, R) bool

    def __len__(self) -> int:
        return len(self.grids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"voxels": self.grids[i].float()[None], "idx": i}


class PointArraysDataModule(ShapeDataModuleBase):
    """Arrays of point clouds (and optionally voxel grids) as a shape datamodule.

    Args:
        root: folder of ``<category>_<split>.npz`` files.
        categories: category names (file prefixes); None: every category with a train file.
        normalize: ``bbox_diagonal``, ``unit_sphere``, ``unit_box`` or ``global`` (module
            docstring).
        up_axis: the clouds' up axis (0, 1, 2; ModelNet: 2), rotated onto +y.
        val_fraction: share of each category's training shapes held out for validation
            (seeded; unused when a ``<category>_val.npz`` exists).
        n_points: points per shape in training batches.
        eval_points: points per :meth:`eval_shapes` target (None: the whole cloud).
        max_shapes_per_category: at most this many shapes per category (split proportions).
        voxels_file: (N, R, R, R) grids of the (single) category for form ``voxels``.
        voxels_up_axis: the grids' up axis (0, 1, 2), rotated onto the zoo's +y.
    """

    forms = ("points", "voxels")

    def __init__(
        self,
        root: str | os.PathLike[str],
        categories: Sequence[str] | None = None,
        form: str = "points",
        normalize: str = "bbox_diagonal",
        up_axis: int = 2,
        val_fraction: float = DEFAULT_VAL_FRACTION,
        batch_size: int = 16,
        n_points: int = 1024,
        eval_points: int | None = None,
        num_workers: int = 0,
        max_shapes_per_category: int | None = None,
        voxels_file: str | os.PathLike[str] | None = None,
        voxels_up_axis: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(form, batch_size, n_points, 32, 16384, num_workers, 1, seed)
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        for name, axis in (("up_axis", up_axis), ("voxels_up_axis", voxels_up_axis)):
            if axis not in (0, 1, 2):
                raise ValueError(f"{name} must be 0, 1 or 2, got {axis!r}")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if eval_points is not None and (int(eval_points) != eval_points or eval_points < 1):
            raise ValueError(f"eval_points must be a positive int or None, got {eval_points!r}")
        self.root = Path(root)
        self.categories = None if categories is None else [str(c) for c in categories]
        self.normalize, self.up_axis = normalize, int(up_axis)
        self.val_fraction = float(val_fraction)
        self.eval_points = None if eval_points is None else int(eval_points)
        self.max_shapes_per_category = max_shapes_per_category
        self.voxels_file = None if voxels_file is None else Path(voxels_file)
        self.voxels_up_axis = int(voxels_up_axis)
        self._clouds: dict[str, np.ndarray] = {}  # split -> (N, K, 3) normalised
        self._grids: dict[str, np.ndarray] = {}  # split -> (N, R, R, R), form voxels
        self._cloud_items: dict[str, list[ShapeItem]] = {}  # split -> its clouds' items
        self._rows: dict[tuple[str, str], int] = {}  # (split, name) -> row in _clouds
        self.stats: dict[str, dict[str, Any]] = {}  # category -> global mean/std
        self._check_voxels_file()

    @ShapeDataModuleBase.form.setter
    def form(self, value: str) -> None:
        if value not in self.forms:
            raise ValueError(
                f"{type(self).__name__} holds point clouds (and voxel grids from "
                f"data.voxels_file) only: form {value!r} is not available; it supports "
                f"{', '.join(repr(f) for f in self.forms)}"
            )
        self._form = value
        self._check_voxels_file()

    def _check_voxels_file(self) -> None:
        if self.form == "voxels" and getattr(self, "voxels_file", "") is None:
            raise ValueError(
                "form 'voxels' needs data.voxels_file=<an .npz holding voxels (N, R, R, R)>"
            )

    # ------------------------------------------------------------------ loading
    def _build_items(self) -> dict[str, list[ShapeItem]]:
        root = check_root(self.root)
        categories = self.categories or list_array_categories(root)
        if not categories:
            raise DataError(root, "root", "no <category>_train.npz files found")
        items: dict[str, list[ShapeItem]] = {s: [] for s in SPLITS}
        clouds: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
        self.stats = {}
        for category in categories:
            split_clouds = self._load_category(root, category)
            for s in SPLITS:
                ids, pts = split_clouds[s]
                items[s] += [ShapeItem(f"{category}/{i}", category, i, s) for i in ids]
                clouds[s].append(pts)
        self._clouds = {s: np.concatenate(clouds[s]) for s in SPLITS}
        self._rows = {(s, item.name): k for s in SPLITS for k, item in enumerate(items[s])}
        self._cloud_items = {s: list(items[s]) for s in SPLITS}
        self._grids = {}
        if self.form == "voxels":
            items.update(self._load_voxels(categories))
        return items

    def _load_category(self, root: Path, category: str) -> dict[str, tuple[list[str], np.ndarray]]:
        """``{split: (ids, normalised clouds (n, K, 3))}`` of one category."""
        train = arrays_path(root, category, "train")
        if not train.is_file():
            raise DataError(train, "categories", f"no training file for category {category!r}")
        files = {s: arrays_path(root, category, s) for s in SPLITS}
        loaded = {s: load_point_arrays(p) for s, p in files.items() if p.is_file()}
        rows = {s: dict(zip(ids, range(len(ids)), strict=True)) for s, (_, ids) in loaded.items()}
        source = {s: s for s in loaded}  # which file each split's ids are rows of
        if "val" in loaded:
            split = {s: sorted(rows.get(s, {})) for s in SPLITS}
        else:
            models = {"train": rows["train"], "test": rows.get("test", {})}
            split = modelnet_split(models, self.seed, self.val_fraction)  # type: ignore[arg-type]
            source["val"] = "train"
        split = limit_split(split, self.max_shapes_per_category)
        if not split["train"]:
            raise DataError(train, "points", "no training shapes left after val_fraction")
        shapes = {}
        for s in SPLITS:
            pts, _ = loaded[source[s] if split[s] else "train"]
            idx = [rows[source[s]][i] for i in split[s]]
            shapes[s] = up_to_y(pts[idx], self.up_axis)  # (n, K, 3), n may be 0
        per_shape = bbox_diagonal if self.normalize == "global" else PER_SHAPE[self.normalize]
        shapes = {s: per_shape(v) if len(v) else v for s, v in shapes.items()}
        if self.normalize == "global":
            mean, std = global_stats(shapes["train"])
            self.stats[category] = {"mean": [float(m) for m in mean], "std": std}
            shapes = {s: apply_global(v, mean, std) for s, v in shapes.items()}
        return {s: (split[s], shapes[s].astype(np.float32)) for s in SPLITS}

    def _load_voxels(self, categories: list[str]) -> dict[str, list[ShapeItem]]:
        """Train/val items of the grids of ``voxels_file`` (one category), rotated to y up."""
        path = self.voxels_file
        assert path is not None  # checked by the form setter
        if len(categories) != 1:
            raise DataError(
                path, "categories", f"holds one category's grids: name one, got {categories}"
            )
        grids = voxels_up_to_y(load_voxel_arrays(path), self.voxels_up_axis)  # (N, R, R, R)
        self.voxel_resolution = int(grids.shape[1])
        (category,) = categories
        ids = {f"voxels_{i:04d}": i for i in range(len(grids))}
        split = modelnet_split({"train": ids, "test": {}}, self.seed, self.val_fraction)  # type: ignore[arg-type]
        split = limit_split(split, self.max_shapes_per_category)
        out = {}
        for s in ("train", "val"):
            out[s] = [ShapeItem(f"{category}/{i}", category, i, s) for i in split[s]]
            self._grids[s] = grids[[ids[i] for i in split[s]]]
        return out

    # ------------------------------------------------------------------ loaders
    def dataset(self, split: str) -> Dataset:
        """The torch Dataset of ``split`` in the current form."""
        items, train = self.items(split), split == "train"
        if self.form == "voxels":
            if split not in self._grids:
                raise ValueError(f"form 'voxels': voxels_file has no {split!r} grids")
            return ArrayVoxelDataset(self._grids[split])
        labels = [i.synset for i in items]
        return ArrayPointsDataset(self._clouds[split], labels, self.n_points, train)

    def val_dataloader(self) -> Any:
        """Validation batches; in the voxel form always the held-out grids (test has none)."""
        return self._loader("val") if self.form == "voxels" else super().val_dataloader()

    # ------------------------------------------------------------------ info / evaluation
    def _train_points(self) -> np.ndarray:
        self._ensure()
        return self._clouds["train"]

    def info(self) -> dict[str, Any]:
        """As :meth:`ShapeDataModuleBase.info`, plus the normalisation applied (``normalize``,
        ``up_axis``, per-category ``normalize_stats`` for ``global``) and ``bbox_min`` /
        ``bbox_max`` enclosing every normalised cloud with a 10% margin."""
        info = super().info()
        half = 1.1 * float(max(np.abs(c).max() for c in self._clouds.values() if c.size))
        info.update(
            normalize=self.normalize,
            up_axis=self.up_axis,
            normalize_stats=self.stats,
            eval_points=self.eval_points,
            bbox_min=[-half] * 3,
            bbox_max=[half] * 3,
            voxels_file=None if self.voxels_file is None else str(self.voxels_file),
        )
        return info

    def _eval_points(self, item: ShapeItem) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The first ``eval_points`` points (all by default) of a shape's normalised cloud."""
        if item.split not in self._clouds or (self.form == "voxels" and item.split != "test"):
            return None, None
        self._ensure()
        cloud = torch.from_numpy(self._clouds[item.split][self._rows[item.split, item.name]])
        n = len(cloud) if self.eval_points is None else self.eval_points
        return cloud[torch.arange(n) % len(cloud)], None

    def _cloud_targets(self, split: str, limit: int | None) -> list[ShapeTarget]:
        """The split's shapes as their clouds (the first ``limit``): in the voxel form the
        train / val grids are the same shapes as the file's clouds, listed in another order,
        and the clouds are what the memorising baseline scores."""
        self._ensure()
        items = self._cloud_items[split][: None if limit is None else int(limit)]
        out = []
        for index, item in enumerate(items):
            cloud = torch.from_numpy(self._clouds[split][self._rows[split, item.name]])
            n = len(cloud) if self.eval_points is None else self.eval_points
            extra = {"synset": item.synset, "model_id": item.model_id, "split": split}
            extra["index"] = index
            out.append(ShapeTarget(item.name, cloud[torch.arange(n) % len(cloud)], extra=extra))
        return out

    def eval_shapes(
        self,
        split: str = "test",
        limit: int | None = None,
        spread: bool = False,
        points_only: bool = False,
    ) -> list[ShapeTarget]:
        """Targets with ``points`` (the normalised cloud); in the voxel form the train/val
        targets hold their grids (``voxels``; with ``points_only`` the split's clouds
        instead) and the test targets the test clouds."""
        if self.form == "voxels" and split in self._grids and points_only:
            return self._cloud_targets(split, limit)
        targets = super().eval_shapes(split, limit, spread, points_only)
        if self.form != "voxels" or split not in self._grids:
            return targets
        grids = self._grids[split]  # by the split's index, as ``extra["index"]``
        return [
            dataclasses.replace(t, voxels=torch.from_numpy(grids[t.extra["index"]]))
            for t in targets
        ]
