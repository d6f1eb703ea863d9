"""ModelNet10 / ModelNet40 folder layout (Wu et al., "3D ShapeNets: A Deep Representation for
Volumetric Shapes", CVPR 2015; the Princeton download that PointNet, Qi et al. 2017, trains on):

    <root>/<class>/train/<class>_<NNNN>.off
    <root>/<class>/test/<class>_<NNNN>.off

The official train/test split is kept; the validation split is a seeded fraction of each class's
training shapes (ModelNet has none). Meshes are not normalised in the download (e.g. the
airplane_0001 mesh is ~358 units wide): the shape datamodules normalise them like ShapeNet v2.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from zoo.data.formats.shapenet import check_root
from zoo.data.io import DataError

MODELNET_SPLITS = ("train", "test")
DEFAULT_VAL_FRACTION = 0.1


def list_classes(root: str | os.PathLike[str]) -> list[str]:
    """Class folders under a ModelNet root (those holding a ``train`` or ``test`` folder)."""
    root = check_root(root)
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and any((p / s).is_dir() for s in MODELNET_SPLITS)
    )


def list_class_models(root: str | os.PathLike[str], cls: str) -> dict[str, dict[str, Path]]:
    """``{"train": {model_id: path}, "test": {...}}`` of one class (model id = file stem).

    Raises:
        DataError: the class folder is missing or holds no ``.off`` file.
    """
    root = check_root(root)
    cls_dir = root / cls
    if not cls_dir.is_dir():
        raise DataError(cls_dir, "categories", f"class {cls!r} has no folder under {root}")
    out = {
        s: {p.stem: p for p in sorted((cls_dir / s).glob("*.off"))}
        if (cls_dir / s).is_dir()
        else {}
        for s in MODELNET_SPLITS
    }
    if not any(out.values()):
        raise DataError(cls_dir, "categories", "no .off meshes in train/ or test/")
    return out


def modelnet_split(
    models: dict[str, dict[str, Path]], seed: int, val_fraction: float = DEFAULT_VAL_FRACTION
) -> dict[str, list[str]]:
    """train / val / test ids: the official test set, and ``val_fraction`` of the training
    ids (at least one when there are two or more) drawn with ``seed``."""
    train = sorted(models["train"])
    n_val = int(round(val_fraction * len(train)))
    if val_fraction > 0 and len(train) >= 2:
        n_val = max(1, n_val)
    val = set(random.Random(seed).sample(train, n_val)) if n_val else set()
    return {
        "train": [i for i in train if i not in val],
        "val": sorted(val),
        "test": sorted(models["test"]),
    }
