"""The ModelNet10 / ModelNet40 datamodule (``data=modelnet``): the meshes of the Princeton
download (layout in :mod:`zoo.data.formats.modelnet`) in the same forms and caches as ShapeNet.

Categories are ModelNet class names (``airplane``, ``chair``...), which stand where ShapeNet has
synset ids (batches' ``"synset"``, ``info()["synsets"]``), so ``model=pointnet data=modelnet``
trains the classifier on ModelNet's classes (Qi et al. 2017 trained PointNet on ModelNet40).
Meshes are normalised like ShapeNet v2 (bounding box centred, diagonal 1) before sampling.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from zoo.data import cache as cache_mod
from zoo.data.formats.modelnet import (
    DEFAULT_VAL_FRACTION,
    list_class_models,
    list_classes,
    modelnet_split,
)
from zoo.data.formats.shapenet import SPLITS, check_root, limit_split
from zoo.data.io import DataError
from zoo.data.shapes import ShapeNetDataModule


class ModelNetDataModule(ShapeNetDataModule):
    """A ModelNet10/40 tree in any of the forms points, voxels, sdf, mesh.

    Args:
        root: the ModelNet folder (holding ``<class>/{train,test}/*.off``).
        categories: class names; None: every class under ``root``.
        val_fraction: share of each class's training shapes held out for validation (seeded).
        **kwargs: as :class:`~zoo.data.shapes.ShapeNetDataModule` (``normalize`` stays on:
            ModelNet's meshes are not normalised).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        categories: Sequence[str] | None = None,
        val_fraction: float = DEFAULT_VAL_FRACTION,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, categories=None, **kwargs)
        self.categories = None if categories is None else [str(c) for c in categories]
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.val_fraction = float(val_fraction)

    def entries(self) -> list[cache_mod.ShapeEntry]:
        """Every used shape with its split (official train/test, seeded validation)."""
        root = check_root(self.shapenet_root)
        classes = list_classes(root) if self.categories is None else self.categories
        if not classes:
            raise DataError(root, "root", "no class folders with train/ or test/ found")
        entries = []
        for cls in classes:
            models = list_class_models(root, cls)
            split = modelnet_split(models, self.seed, self.val_fraction)
            split = limit_split(split, self.max_shapes_per_category)
            paths = {**models["train"], **models["test"]}
            entries += [cache_mod.ShapeEntry(cls, i, s, paths[i]) for s in SPLITS for i in split[s]]
        return entries
