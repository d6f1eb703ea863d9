"""Shape datamodules over the papers' own preprocessed files: PointFlow's PC15k clouds and
DeepSDF's SdfSamples. See :mod:`zoo.data.shapes`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from zoo.data import cache as cache_mod
from zoo.data.formats import deepsdf, pc15k
from zoo.data.formats.shapenet import (
    SPLITS,
    check_root,
    limit_split,
    list_categories,
    name_of,
    synset_of,
)
from zoo.data.io import DataError
from zoo.data.shapes.base import (
    ShapeDataModuleBase,
    ShapeItem,
    train_cut,
)


# ------------------------------------------------------------------------------ PC15k
class PC15kDataModule(ShapeDataModuleBase):
    """PointFlow's ``ShapeNetCore.v2.PC15k`` point clouds (form ``points`` only).

    Args:
        root: the PC15k folder (``<synset>/{train,val,test}/<id>.npy``).
        categories: names or synset ids; None: every category under ``root``.
        n_cloud_points: points every cloud must have (PointFlow: 15000; None: any).
        max_shapes_per_category: at most this many shapes per category (split proportions).
    """

    forms = ("points",)

    def __init__(
        self,
        root: str | os.PathLike[str],
        categories: Sequence[str] | None = None,
        form: str = "points",
        batch_size: int = 16,
        n_points: int = 2048,
        num_workers: int = 0,
        max_shapes_per_category: int | None = None,
        eval_points: int = 2048,
        n_cloud_points: int | None = pc15k.NUM_POINTS,
        seed: int = 0,
    ) -> None:
        super().__init__(form, batch_size, n_points, 32, 16384, num_workers, eval_points, seed)
        self.root = Path(root)
        self.categories = None if categories is None else [synset_of(c) for c in categories]
        self.max_shapes_per_category = max_shapes_per_category
        self.n_cloud_points = n_cloud_points

    def _build_items(self) -> dict[str, list[ShapeItem]]:
        root = check_root(self.root)
        synsets = self.categories if self.categories is not None else list_categories(root)
        if not synsets:
            raise DataError(root, "root", "no category folders (8-digit synset ids) found")
        normals = pc15k.normals_root(root)
        out: dict[str, list[ShapeItem]] = {s: [] for s in SPLITS}
        for synset in synsets:
            found = {s: dict(pc15k.list_clouds(root, synset, s)) for s in SPLITS}
            if not found["train"]:
                raise DataError(
                    root / synset / "train",
                    "category",
                    f"no clouds for {name_of(synset)!r} ({synset})",
                )
            split = limit_split(
                {s: sorted(v) for s, v in found.items()}, self.max_shapes_per_category
            )
            for s in SPLITS:
                for model_id in split[s]:
                    path = found[s][model_id]
                    pc15k.load_cloud(path, self.n_cloud_points)  # validate early
                    npath = pc15k.cloud_path(normals, synset, s, model_id)
                    out[s].append(
                        ShapeItem(
                            f"{synset}/{model_id}",
                            synset,
                            model_id,
                            s,
                            cloud=path,
                            normals=npath if npath.is_file() else None,
                        )
                    )
        return out


# ------------------------------------------------------------------------------ DeepSDF
class DeepSDFDataModule(ShapeDataModuleBase):
    """DeepSDF ``SdfSamples`` listed by split JSON files (form ``sdf`` only).

    Args:
        data_source: the folder holding ``SdfSamples/`` (and optionally ``SurfaceSamples/``).
        train_split, test_split: DeepSDF split JSONs ``{"<dataset>": {"<synset>": [ids]}}``.
        val_split: optional; without it validation batches come from the test split (DeepSDF
            has no validation set).
        sdf_samples: samples per shape per batch item (DeepSDF: 16384).
        eval_points: surface points of the targets, from ``SurfaceSamples/<dataset>/...ply``
            when present, else the ``eval_points`` samples with the smallest ``|sdf|``.
    """

    forms = ("sdf",)

    def __init__(
        self,
        data_source: str | os.PathLike[str],
        train_split: str | os.PathLike[str],
        test_split: str | os.PathLike[str],
        val_split: str | os.PathLike[str] | None = None,
        form: str = "sdf",
        batch_size: int = 16,
        sdf_samples: int = 16384,
        num_workers: int = 0,
        eval_points: int = 2048,
        seed: int = 0,
    ) -> None:
        super().__init__(form, batch_size, 2048, 32, sdf_samples, num_workers, eval_points, seed)
        self.data_source = Path(data_source)
        self.split_files = {"train": Path(train_split), "val": val_split, "test": Path(test_split)}

    @property
    def dataset_root(self) -> Path:
        return self.data_source

    @property
    def dataset_name(self) -> str:
        datasets = sorted({d for d, _, _ in deepsdf.read_split(self.split_files["train"])})
        return "+".join(datasets)

    def _build_items(self) -> dict[str, list[ShapeItem]]:
        check_root(self.data_source)
        out: dict[str, list[ShapeItem]] = {s: [] for s in SPLITS}
        for s in SPLITS:
            if self.split_files[s] is None:
                continue
            for dataset, synset, model_id in deepsdf.read_split(self.split_files[s]):
                path = deepsdf.sdf_samples_path(self.data_source, dataset, synset, model_id)
                deepsdf.load_sdf_samples(path)  # validate early, naming the file
                surface = deepsdf.surface_samples_path(self.data_source, dataset, synset, model_id)
                out[s].append(
                    ShapeItem(
                        f"{synset}/{model_id}",
                        synset,
                        model_id,
                        s,
                        sdf=path,
                        surface=surface if surface.is_file() else None,
                    )
                )
        return out

    def _eval_points(self, item: ShapeItem) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if item.surface is not None:
            pts = cache_mod.load_surface_ply(item.surface)
            cut = train_cut(len(pts))
            n = self.eval_points
            sel = np.arange(cut, cut + n) if n <= len(pts) - cut else np.arange(n) % len(pts)
            return torch.from_numpy(pts[sel]), None
        pos, neg = deepsdf.load_sdf_samples(item.sdf)
        samples = np.concatenate([pos, neg], axis=0)
        nearest = np.argsort(np.abs(samples[:, 3]), kind="stable")[: self.eval_points]
        return torch.from_numpy(samples[nearest, :3].copy()), None
