"""LightningDataModules for shape datasets, in the forms the models train on.

Forms and their training batches (dicts; ``idx`` is the shape's index in its split):

- ``points``: ``{"points": (B, N, 3), "idx": (B,), "synset": the B category ids}``, a fresh
  random N-subset of the first 10,000 points of the shape's 15k surface cloud each time
  (PointFlow's PC15k protocol; the other 5,000 are the held-out points used for
  validation/test batches and evaluation).
- ``voxels``: ``{"voxels": (B, 1, R, R, R) float32 occupancy, "idx"}``.
- ``sdf``: ``{"sdf": (B, S, 4) x, y, z, sdf, "idx"}``, S/2 samples from ``pos`` and S/2 from
  ``neg`` drawn with replacement (DeepSDF's ``unpack_sdf_samples``).
- ``mesh``: ``{"points": (B, N, 3), "normals": (B, N, 3), "idx"}``, surface samples with normals.

Datamodules:

- :class:`ShapeNetDataModule`: any ShapeNetCore v1/v2 tree (real or generated); derived caches
  (:mod:`zoo.data.cache`) are built on first use under ``cache_dir``.
- :class:`SynthShapesDataModule`: generates :mod:`zoo.data.synthshapes` first, then as above.
- :class:`PC15kDataModule`: PointFlow's ``ShapeNetCore.v2.PC15k`` clouds (``points`` only).
- :class:`DeepSDFDataModule`: DeepSDF ``SdfSamples`` + split JSON files (``sdf`` only).

Every datamodule also offers ``info()`` (JSON-serialisable facts for ``configure_from_data``),
``eval_shapes(split, limit)`` (ground-truth :class:`~zoo.representation.ShapeTarget`s) and
``eval_views(split)`` (None: shape datasets have no images).
"""

from __future__ import annotations

import os
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
    SPLIT_FILE,
    SPLITS,
    check_root,
    limit_split,
    list_categories,
    list_models,
    name_of,
    read_split_file,
    split_ids,
    synset_of,
)
from zoo.data.io import DataError, read_manifest
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
        raise NotImplementedError

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
        raise NotImplementedError

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
        return DataLoader(
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
            clouds = np.stack([pc15k.load_cloud(i.cloud, None) for i in items["train"]])
            train_pts = clouds[:, : train_cut(clouds.shape[1])].reshape(-1, 3)
            info["points_mean"] = [float(v) for v in train_pts.mean(axis=0)]
            info["points_std"] = float(train_pts.std())
        return info

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

    def eval_shapes(self, split: str = "test", limit: int | None = None) -> list[ShapeTarget]:
        """Ground-truth targets of ``split`` (first ``limit`` shapes, in index order).

        Each has ``points`` (``eval_points`` fixed surface points), ``normals`` and ``mesh``
        where known, ``voxels`` (R^3 bool) in the voxel form and ``sdf`` (all cached samples,
        pos then neg) in the sdf form.
        """
        items = self.items(split)[: None if limit is None else int(limit)]
        targets = []
        for index, item in enumerate(items):
            points, normals = self._eval_points(item)
            mesh = None
            if item.mesh is not None:
                mesh = load_mesh(item.mesh)
                mesh = normalize_mesh(mesh) if item.normalize_mesh else mesh
            voxels = sdf = None
            if self.form == "voxels" and item.voxels is not None:
                voxels = torch.from_numpy(cache_mod.load_voxels(item.voxels, self.voxel_resolution))
            if self.form == "sdf" and item.sdf is not None:
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


# ------------------------------------------------------------------------------ ShapeNet
class ShapeNetDataModule(ShapeDataModuleBase):
    """A ShapeNetCore v1/v2 tree in any of the forms points, voxels, sdf, mesh.

    Args:
        root: the ShapeNetCore folder (holding ``<synset>/<model_id>/...``).
        categories: names or synset ids; None: every category under ``root``.
        form, batch_size, n_points, voxel_resolution, sdf_samples, num_workers: see the module
            docstring; ``voxel_resolution`` is the grid size R of the voxel form.
        max_shapes_per_category: use at most this many shapes per category, taken from each
            split in proportion (shapes keep their split, so caches stay valid).
        seed: seed of the split (when ``root`` has no ``split.json``) and of the caches.
        cache_dir: where derived caches go (default ``<root>/../zoo_cache``).
        eval_points: surface points per :meth:`eval_shapes` target.
        n_surface, sdf_cache_samples, sdf_uniform_fraction: cache settings
            (:class:`zoo.data.cache.ShapeCache`).
        normalize: normalise meshes like ShapeNet v2 (a no-op for v2 data).
        dataset_name: name of the DeepSDF dataset folder (default: the root's folder name).
        progress: show tqdm bars while caching.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        categories: Sequence[str] | None = None,
        form: str = "points",
        batch_size: int = 16,
        n_points: int = 2048,
        voxel_resolution: int = 32,
        sdf_samples: int = 16384,
        num_workers: int = 0,
        max_shapes_per_category: int | None = None,
        seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        eval_points: int = 2048,
        n_surface: int = cache_mod.DEFAULT_SURFACE_POINTS,
        sdf_cache_samples: int = cache_mod.DEFAULT_SDF_SAMPLES,
        sdf_uniform_fraction: float = cache_mod.DEFAULT_SDF_UNIFORM_FRACTION,
        normalize: bool = True,
        dataset_name: str | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__(
            form,
            batch_size,
            n_points,
            voxel_resolution,
            sdf_samples,
            num_workers,
            eval_points,
            seed,
        )
        self.root = Path(root)
        self.categories = None if categories is None else [str(c) for c in categories]
        if self.categories is not None:
            for c in self.categories:
                synset_of(c)  # fail early on unknown names
        self.max_shapes_per_category = max_shapes_per_category
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.n_surface = int(n_surface)
        self.sdf_cache_samples = int(sdf_cache_samples)
        self.sdf_uniform_fraction = float(sdf_uniform_fraction)
        self.normalize = bool(normalize)
        self._dataset_name = dataset_name
        self.progress = progress
        if self.n_surface < 3:
            raise ValueError(f"n_surface must be >= 3, got {n_surface}")

    @property
    def shapenet_root(self) -> Path:
        return self.root

    @property
    def dataset_root(self) -> Path:
        return self.shapenet_root

    @property
    def dataset_name(self) -> str:
        return self._dataset_name or self.shapenet_root.name

    def cache(self) -> cache_mod.ShapeCache:
        """The derived-cache manager of this dataset."""
        root = self.shapenet_root
        cache_dir = self.cache_dir if self.cache_dir is not None else root.parent / "zoo_cache"
        source = read_manifest(root) or {"root": str(root.resolve())}
        return cache_mod.ShapeCache(
            cache_dir,
            self.dataset_name,
            source,
            n_surface=self.n_surface,
            sdf_samples=self.sdf_cache_samples,
            sdf_uniform_fraction=self.sdf_uniform_fraction,
            seed=self.seed,
            normalize=self.normalize,
        )

    def entries(self) -> list[cache_mod.ShapeEntry]:
        """Every used shape with its split (split.json of the root, else a seeded split)."""
        root = check_root(self.shapenet_root)
        synsets = (
            list_categories(root)
            if self.categories is None
            else [synset_of(c) for c in self.categories]
        )
        if not synsets:
            raise DataError(root, "root", "no category folders (8-digit synset ids) found")
        split_file = root / SPLIT_FILE
        stored = read_split_file(split_file) if split_file.is_file() else {}
        entries = []
        for synset in synsets:
            models = {m.model_id: m for m in list_models(root, synset)}
            if synset in stored:
                split = stored[synset]
                missing = [i for s in SPLITS for i in split[s] if i not in models]
                if missing:
                    raise DataError(split_file, synset, f"ids without a mesh: {missing[:3]}")
            else:
                split = split_ids(list(models), seed=self.seed)
            split = limit_split(split, self.max_shapes_per_category)
            for s in SPLITS:
                entries += [cache_mod.ShapeEntry(synset, i, s, models[i].path) for i in split[s]]
        return entries

    def _cache_forms(self) -> tuple[list[str], list[int]]:
        forms = ["points"]  # evaluation always needs surface points
        if self.form == "sdf":
            forms.append("sdf")
        if self.form == "voxels":
            return forms + ["voxels"], [self.voxel_resolution]
        return forms, []

    def _build_items(self) -> dict[str, list[ShapeItem]]:
        entries = self.entries()
        cache = self.cache()
        forms, resolutions = self._cache_forms()
        cache.ensure(entries, forms, resolutions, progress=self.progress)
        out: dict[str, list[ShapeItem]] = {s: [] for s in SPLITS}
        for e in entries:
            out[e.split].append(
                ShapeItem(
                    name=e.name,
                    synset=e.synset,
                    model_id=e.model_id,
                    split=e.split,
                    cloud=cache.cloud_path(e),
                    normals=cache.normals_path(e),
                    sdf=cache.sdf_path(e) if "sdf" in forms else None,
                    surface=cache.surface_path(e) if "sdf" in forms else None,
                    voxels=cache.voxel_path(e, self.voxel_resolution) if resolutions else None,
                    mesh=e.mesh_path,
                    normalize_mesh=self.normalize,
                )
            )
        return out


class SynthShapesDataModule(ShapeNetDataModule):
    """The generated :mod:`zoo.data.synthshapes` dataset (created on first use).

    Layout: ``<root>/ShapeNetCore.v2`` (meshes), and the caches beside it in ``<root>`` (so
    ``<root>/ShapeNetCore.v2.PC15k`` is a valid PC15k root and ``<root>`` a DeepSDF data
    source with dataset ``synthshapes``), unless ``cache_dir`` says otherwise.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = "data/synthshapes",
        categories: Sequence[str] | None = None,
        shapes_per_category: int | None = None,
        seed: int = 0,
        form: str = "points",
        resolution: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        from zoo.data import synthshapes

        categories = list(categories or synthshapes.DEFAULT_CATEGORIES)
        self.synth_root = Path(root)
        self.shapes_per_category = int(
            shapes_per_category or synthshapes.DEFAULT_SHAPES_PER_CATEGORY
        )
        self.resolution = int(resolution or synthshapes.DEFAULT_RESOLUTION)
        kwargs.setdefault("dataset_name", "synthshapes")
        super().__init__(
            root=self.synth_root / synthshapes.SHAPENET_DIR,
            categories=categories,
            form=form,
            seed=seed,
            cache_dir=cache_dir if cache_dir is not None else self.synth_root,
            **kwargs,
        )

    def generate(self) -> Any:
        """Run :func:`zoo.data.synthshapes.ensure_synthshapes` (a no-op when up to date)."""
        from zoo.data.synthshapes import ensure_synthshapes

        return ensure_synthshapes(
            self.synth_root,
            self.categories or (),
            self.shapes_per_category,
            self.seed,
            self.resolution,
            progress=self.progress,
        )

    def _build_items(self) -> dict[str, list[ShapeItem]]:
        self.generate()
        return super()._build_items()

    def extra_references(
        self, per_category: int, have: dict[str, int], n_points: int
    ) -> torch.Tensor:
        """Held-out clouds (K, n_points, 3) that top each category up from ``have[synset]``
        split shapes to ``per_category`` generation references, drawn from the generator's
        reference stream (:mod:`zoo.data.synthshapes.references`; cached under the root),
        ordered by category."""
        from zoo.data.synthshapes import CATEGORIES
        from zoo.data.synthshapes.references import ensure_references

        clouds = []
        for name in self.categories or ():
            synset = CATEGORIES.get(name, name)
            need = per_category - have.get(synset, 0)
            if need > 0:
                pts = ensure_references(
                    self.synth_root,
                    synset,
                    need,
                    seed=self.seed,
                    resolution=self.resolution,
                    n_points=n_points,
                    progress=self.progress,
                )
                clouds.append(torch.from_numpy(pts))
        return torch.cat(clouds) if clouds else torch.zeros(0, n_points, 3)


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

    @property
    def dataset_root(self) -> Path:
        return self.root

    @property
    def dataset_name(self) -> str:
        return self.root.name

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
