"""LightningDataModules of posed images for per-scene radiance fields (NeRF, Instant-NGP).

Training follows NeRF's batching (Mildenhall et al., ECCV 2020, Sec. 5.3 uses 4096 rays per
batch; the authors' Blender configs use ``N_rand = 1024``, our default): every step is ``R``
rays drawn from the pixels of all training images. An epoch is one pass over a fresh random
permutation of all ``P`` training pixels (``P // R`` batches of exactly ``R`` rays, at least
one), so every pixel is seen once per epoch. Batch ``k`` of epoch ``e`` is a pure function of
``(seed, e, k)``: the permutation comes from a ``torch.Generator`` seeded with ``(seed, e)``,
and the epoch reaches the dataset through the sampler, which Lightning's fit loop
``set_epoch``-s at every epoch start (so resumed runs and multi-worker loading draw the same
rays).

Rays are built per batch from pixel indices with :func:`zoo.ops.rays.rays_for_pixels` (the
same numbers as precomputing all rays, without holding ``P x 6`` more floats: 1.5 GB for the
full 100-view 800x800 lego). Directions have camera-frame ``z = -1``: a ray parameter ``t`` is
a z-depth, and ``near``/``far`` in :meth:`ViewsDataModule.info` are z-depths (NeRF's Blender
setting: 2 and 6).

Batches (all float32, CPU; Lightning moves them):

- train: ``{"origins": (R, 3), "directions": (R, 3), "radii": (R,), "rgb": (R, 3)}``; ``radii``
  is each ray's pixel footprint, the cone radius at ray parameter 1
  (:func:`zoo.ops.rays.pixel_radii`, Mip-NeRF's ``2 / sqrt(12)`` of the pixel width), which
  cone-traced models (``mipnerf``) need and the others ignore;
- train, ``form="images"`` (splatting models, which render whole images): one training view
  per step, ``{"rgb": (H, W, 3), "c2w": (4, 4), "intrinsics": (4,) fx fy cx cy, "view": int}``;
  an epoch is one pass over a fresh permutation of the views (:class:`RandomViews`).
- val / test: one image per batch, ``{"origins": (H*W, 3), "directions": (H*W, 3),
  "radii": (H*W,), "rgb": (H*W, 3), "view": int}`` (pixels in row-major order; ``view``
  indexes the split).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
import trimesh
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from zoo.data.formats.blender import available_splits, load_blender, parse_background
from zoo.data.formats.tinynerf import load_tinynerf
from zoo.data.render_cache import (
    DEFAULT_RADIUS,
    DEFAULT_RESOLUTION,
    DEFAULT_VIEWS,
    LEGO_CAMERA_ANGLE_X,
    MESH_NAME,
    ensure_synth_scene,
    read_scene_info,
)
from zoo.data.resumable import ResumableDataLoader
from zoo.ops.rays import generate_radii, generate_rays, pixel_radii, rays_for_pixels
from zoo.ops.surface import sample_surface
from zoo.representation import ShapeTarget
from zoo.structures.cameras import Cameras

LEGO_BBOX = ((-1.5, -1.5, -1.5), (1.5, 1.5, 1.5))  # bounds of NeRF's Blender scenes


def _seed(*values: int) -> int:
    """A 63-bit seed mixing several integers (numpy's SeedSequence hash)."""
    return int(
        np.random.SeedSequence([int(v) for v in values]).generate_state(2, np.uint64)[0] >> 1
    )


@dataclass
class ViewSplit:
    """Posed images of one split: images (B, H, W, 3) in [0, 1] and their B cameras."""

    images: Tensor
    cameras: Cameras

    def __post_init__(self) -> None:
        b, h, w, c = self.images.shape
        if c != 3 or b != len(self.cameras) or (w, h) != (self.cameras.width, self.cameras.height):
            raise ValueError(
                f"images {tuple(self.images.shape)} do not match {len(self.cameras)} cameras "
                f"of size {self.cameras.width}x{self.cameras.height}"
            )


@dataclass
class Scene:
    """A loaded scene: its splits and the bounds a radiance field needs."""

    name: str
    splits: dict[str, ViewSplit]  # "train", "val", "test"
    near: float
    far: float
    background: tuple[float, float, float]
    bbox_min: tuple[float, float, float]
    bbox_max: tuple[float, float, float]
    mesh_path: Path | None = None  # ground-truth mesh, when the scene has one


class EpochSampler(Sampler[int]):
    """Yields global batch numbers ``epoch * n + i`` for ``i < n``.

    Lightning calls :meth:`set_epoch` before each training epoch; used on its own, the epoch
    advances by one per pass. ``skip``: the next pass leaves out its first ``skip`` numbers
    (a run resumed mid-epoch, :class:`zoo.data.resumable.ResumableDataLoader`).
    """

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        # A generator: the body (and the increment) runs only when the pass starts, so an
        # iterator that a DataLoader creates and drops (it calls iter() twice with workers)
        # does not skip an epoch.
        epoch, skip = self.epoch, self.skip
        self.epoch, self.skip = epoch + 1, 0
        yield from range(epoch * self.n + skip, (epoch + 1) * self.n)


class RandomRays(Dataset):
    """Batches of ``rays_per_batch`` random rays from all pixels of the training images.

    Item ``k`` (a global batch number from :class:`EpochSampler`) is batch ``k % n`` of epoch
    ``k // n``: the slice ``[i R, (i + 1) R)`` (modulo ``P``) of that epoch's permutation of the
    ``P = B H W`` pixels.
    """

    def __init__(
        self,
        split: ViewSplit,
        rays_per_batch: int,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        self.images = split.images  # (B, H, W, 3)
        self.cameras = split.cameras
        self.rays_per_batch = int(rays_per_batch)
        self.seed = int(seed)
        b, h, w = self.images.shape[:3]
        self.n_pixels = b * h * w
        self.batches_per_epoch = int(
            batches_per_epoch or max(1, self.n_pixels // self.rays_per_batch)
        )
        self._perm_epoch: int | None = None
        self._perm: Tensor | None = None

    def __len__(self) -> int:
        return self.batches_per_epoch

    def permutation(self, epoch: int) -> Tensor:
        """(P,) the pixel order of ``epoch`` (cached for the current epoch)."""
        if self._perm_epoch != epoch:
            gen = torch.Generator().manual_seed(_seed(self.seed, epoch))
            self._perm = torch.randperm(self.n_pixels, generator=gen)
            self._perm_epoch = epoch
        return self._perm

    def pixel_indices(self, k: int) -> Tensor:
        """(R,) flat pixel indices (into ``images.reshape(-1, 3)``) of global batch ``k``."""
        epoch, i = divmod(int(k), self.batches_per_epoch)
        r = self.rays_per_batch
        pos = torch.arange(i * r, (i + 1) * r) % self.n_pixels  # (R,)
        return self.permutation(epoch)[pos]

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        idx = self.pixel_indices(k)  # (R,)
        h, w = self.images.shape[1:3]
        cam, rem = idx // (h * w), idx % (h * w)
        py, px = rem // w, rem % w
        origins, directions = rays_for_pixels(self.cameras, cam, px, py)  # (R, 3) each
        return {
            "origins": origins.float(),
            "directions": directions.float(),
            "radii": pixel_radii(self.cameras, cam).float(),  # (R,)
            "rgb": self.images[cam, py, px].float(),  # (R, 3)
        }


class RandomViews(Dataset):
    """One whole training view per item, in a fresh random order each epoch (the reference
    3DGS trainer pops random views from a reshuffled stack). Item ``k`` (a global batch number
    from :class:`EpochSampler`) is view ``perm(epoch)[k % B]``, a pure function of
    ``(seed, epoch, k)`` as for :class:`RandomRays`."""

    def __init__(self, split: ViewSplit, seed: int = 0) -> None:
        self.split = split
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.split.cameras)

    def __getitem__(self, k: int) -> dict[str, Any]:
        epoch, i = divmod(int(k), len(self))
        gen = torch.Generator().manual_seed(_seed(self.seed, epoch, 1))
        v = int(torch.randperm(len(self), generator=gen)[i])
        cams = self.split.cameras
        return {
            "rgb": self.split.images[v].float(),  # (H, W, 3)
            "c2w": cams.c2w[v].float(),  # (4, 4)
            "intrinsics": torch.stack([cams.fx[v], cams.fy[v], cams.cx[v], cams.cy[v]]).float(),
            "view": v,
        }


class ImageRays(Dataset):
    """All rays of one image per item (for validation / test renders)."""

    def __init__(self, split: ViewSplit, views: list[int], with_camera: bool = False) -> None:
        self.split = split
        self.views = list(views)
        self.with_camera = with_camera  # add c2w, intrinsics and size (splatting models)

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, i: int) -> dict[str, Any]:
        v = self.views[i]
        cams = self.split.cameras
        origins, directions = generate_rays(cams[v])  # (1, H, W, 3) each
        item = {
            "origins": origins.reshape(-1, 3).float(),
            "directions": directions.reshape(-1, 3).float(),
            "radii": generate_radii(cams[v]).reshape(-1).float(),  # (H*W,)
            "rgb": self.split.images[v].reshape(-1, 3).float(),  # (H*W, 3)
            "view": v,
        }
        if self.with_camera:
            item["c2w"] = cams.c2w[v].float()  # (4, 4)
            item["intrinsics"] = torch.stack([cams.fx[v], cams.fy[v], cams.cx[v], cams.cy[v]])
            item["size"] = torch.tensor([cams.width, cams.height])
        return item


def camera_extent(cameras: Cameras) -> float:
    """The radius of the camera centres around their mean, times 1.1 (3DGS ``getNerfppNorm``:
    its ``cameras_extent``, which scales position learning rates and densification sizes)."""
    centers = cameras.centers.double()
    return float(1.1 * (centers - centers.mean(0)).norm(dim=-1).max())


class ViewsDataModule(pl.LightningDataModule, abc.ABC):
    """Common base: loads a :class:`Scene` once (lazily) and serves rays from it.

    Args:
        rays_per_batch: rays per training step (NeRF's code: 1024).
        form: the data form the model asks for: ``"views"`` (random rays per step) or
            ``"images"`` (one whole training view per step).
        val_views: number of validation images (evenly spaced over the val split; validation
            renders whole images, so keep it small on a CPU).
        batches_per_epoch: override the epoch length (default: all pixels / rays_per_batch).
        num_workers: DataLoader workers.
        seed: seed of the training-ray permutations.
    """

    dataset_name: ClassVar[str]

    def __init__(
        self,
        rays_per_batch: int = 1024,
        form: str = "views",
        val_views: int = 2,
        batches_per_epoch: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if form not in ("views", "images"):
            raise ValueError(f"this datamodule provides views; model needs {form}")
        if int(rays_per_batch) != rays_per_batch or rays_per_batch < 1:
            raise ValueError(f"rays_per_batch must be a positive integer, got {rays_per_batch!r}")
        if val_views < 1:
            raise ValueError(f"val_views must be >= 1, got {val_views}")
        if batches_per_epoch is not None and batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1, got {batches_per_epoch}")
        self.form = form
        self.rays_per_batch = int(rays_per_batch)
        self.val_views = int(val_views)
        self.batches_per_epoch = batches_per_epoch
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self._scene: Scene | None = None

    # ---- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def _load_scene(self) -> Scene:
        """Read (and if needed create) the scene."""

    # ---- loading ------------------------------------------------------------------------
    @property
    def scene(self) -> Scene:
        """The scene, loaded on first use (``info()`` may come before ``setup()``)."""
        if self._scene is None:
            self._scene = self._load_scene()
        return self._scene

    def setup(self, stage: str | None = None) -> None:
        _ = self.scene

    # ---- dataloaders --------------------------------------------------------------------
    def _loader(
        self, dataset: Dataset, sampler: Sampler | None = None, resumable: bool = False
    ) -> DataLoader:
        """Batches of ``dataset``; ``resumable`` (training): a run resumed mid-epoch continues
        the epoch where it stopped."""
        return (ResumableDataLoader if resumable else DataLoader)(
            dataset,
            batch_size=None,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataset(self) -> RandomRays | RandomViews:
        if self.form == "images":
            return RandomViews(self.scene.splits["train"], self.seed)
        return RandomRays(
            self.scene.splits["train"], self.rays_per_batch, self.seed, self.batches_per_epoch
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.train_dataset()
        return self._loader(dataset, EpochSampler(len(dataset)), resumable=True)

    def val_dataloader(self) -> DataLoader:
        split = self.scene.splits["val"]
        n = len(split.cameras)
        views = np.unique(np.linspace(0, n - 1, min(self.val_views, n)).round().astype(int))
        return self._loader(ImageRays(split, views.tolist(), self.form == "images"))

    def test_dataloader(self) -> DataLoader:
        split = self.scene.splits["test"]
        views = list(range(len(split.cameras)))
        return self._loader(ImageRays(split, views, self.form == "images"))

    # ---- evaluation ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """JSON-serialisable description for ``Representation.configure_from_data``."""
        s = self.scene
        train = s.splits["train"]
        return {
            "form": "views",
            "dataset": self.dataset_name,
            "scene": s.name,
            "near": float(s.near),
            "far": float(s.far),
            "background": [float(c) for c in s.background],
            "bbox_min": [float(c) for c in s.bbox_min],
            "bbox_max": [float(c) for c in s.bbox_max],
            "image_size": [train.cameras.width, train.cameras.height],
            "focal": float(train.cameras.fx[0]),
            "n_train_views": len(train.cameras),
            "rays_per_batch": self.rays_per_batch,
            "camera_extent": camera_extent(train.cameras),
        }

    def pose_source(self) -> tuple[str, str]:
        """The file and field the training camera poses come from (for error messages)."""
        return self.scene.name, "c2w"

    def eval_views(self, split: str = "test") -> tuple[Cameras, Tensor]:
        """Cameras and ground-truth images (B, H, W, 3) of ``split``."""
        if split not in self.scene.splits:
            raise ValueError(f"split must be one of {sorted(self.scene.splits)}, got {split!r}")
        s = self.scene.splits[split]
        return s.cameras, s.images

    def eval_scales(self, split: str = "test") -> list[tuple[str, Cameras, Tensor]] | None:
        """One scale (the multiscale datamodules give every scale; see
        :class:`zoo.data.protocol.EvalData`)."""
        return None

    def extra_references(
        self, per_category: int, have: dict[str, int], n_points: int
    ) -> dict[str, Tensor]:
        """No generation references beyond the scene."""
        return {}

    def independent_draw(self, counts: dict[str, int], n_points: int) -> dict[str, Tensor] | None:
        """No second draw of held-out shapes."""
        return None

    def eval_shapes(
        self,
        split: str = "test",
        limit: int | None = None,
        n_points: int = 10000,
        seed: int = 0,
        spread: bool = False,
    ) -> list[ShapeTarget]:
        """The scene's ground-truth shape (mesh, ``n_points`` area-uniform surface samples with
        normals, and the ``split`` views) when it has a mesh, else ``[]``. A scene is one shape,
        so ``limit`` (the evaluator's cap on shapes) only matters when it is 0 and ``spread``
        (the shape datamodules' choice of which shapes) changes nothing."""
        path = self.scene.mesh_path
        if path is None or (limit is not None and limit < 1):
            return []
        mesh = trimesh.load(path, force="mesh", process=False)
        points, normals = sample_surface(mesh, n_points, seed=seed)
        cameras, images = self.eval_views(split)
        return [
            ShapeTarget(
                name=self.scene.name,
                mesh=mesh,
                points=points,
                normals=normals,
                cameras=cameras,
                views=images,
            )
        ]


def _blender_scene(
    root: Path,
    name: str,
    background: Any,
    downscale: int,
    near: float,
    far: float,
    bbox_min: Any,
    bbox_max: Any,
) -> Scene:
    """A Blender-format folder as a Scene; a missing val (test) split falls back to test (val),
    and to train when the folder has neither."""
    splits = available_splits(root)
    if "train" not in splits:
        raise FileNotFoundError(f"{root}: no transforms_train.json")
    bg = parse_background(background)
    loaded = {s: load_blender(root, s, bg, downscale) for s in splits}
    views = {s: ViewSplit(images, cameras) for s, (images, cameras, _) in loaded.items()}
    views.setdefault("val", views.get("test", views["train"]))
    views.setdefault("test", views["val"])
    mesh = root / MESH_NAME
    return Scene(
        name=name,
        splits=views,
        near=float(near),
        far=float(far),
        background=bg,
        bbox_min=tuple(float(c) for c in bbox_min),
        bbox_max=tuple(float(c) for c in bbox_max),
        mesh_path=mesh if mesh.is_file() else None,
    )


class BlenderDataModule(ViewsDataModule):
    """A scene in the Blender / NeRF-synthetic format (``zoo.data.formats.blender``).

    Defaults are NeRF's for its synthetic scenes: white background, near 2, far 6, and the
    objects inside [-1.5, 1.5]^3. A folder without a test (val) split uses its val (test)
    split for both. A ``mesh.ply`` next to the transforms is taken as ground-truth geometry.
    """

    dataset_name = "blender"

    def __init__(
        self,
        root: str | os.PathLike[str],
        background: Any = "white",
        downscale: int = 1,
        near: float = 2.0,
        far: float = 6.0,
        bbox_min: tuple[float, float, float] = LEGO_BBOX[0],
        bbox_max: tuple[float, float, float] = LEGO_BBOX[1],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= near < far:
            raise ValueError(f"need 0 <= near < far, got near={near}, far={far}")
        self.root = Path(root)
        self.background = parse_background(background)
        self.downscale = int(downscale)
        self.near, self.far = float(near), float(far)
        self.bbox = (tuple(bbox_min), tuple(bbox_max))

    def pose_source(self) -> tuple[str, str]:
        return str(self.root / "transforms_train.json"), "transform_matrix"

    def _load_scene(self) -> Scene:
        return _blender_scene(
            self.root,
            self.root.name,
            self.background,
            self.downscale,
            self.near,
            self.far,
            *self.bbox,
        )


class SynthViewsDataModule(ViewsDataModule):
    """Multi-view renders of one procedural shape (``zoo.data.synthshapes``).

    The scene is rendered on first use by :func:`zoo.data.render_cache.ensure_synth_scene`
    (cached under ``<root>/renders``); near/far and the bounding box follow from the camera
    radius and the radius-0.5 object (see ``zoo.data.render_cache``). The ground-truth mesh is
    available to :meth:`eval_shapes`.
    """

    dataset_name = "synthshapes"

    def __init__(
        self,
        root: str | os.PathLike[str] = "data/synthshapes",
        category: str = "chair",
        index: int = 0,
        resolution: int = DEFAULT_RESOLUTION,
        n_train: int = DEFAULT_VIEWS["train"],
        n_val: int = DEFAULT_VIEWS["val"],
        n_test: int = DEFAULT_VIEWS["test"],
        radius: float = DEFAULT_RADIUS,
        camera_angle_x: float = LEGO_CAMERA_ANGLE_X,
        background: Any = "white",
        render_seed: int = 0,
        shapes_per_category: int | None = None,
        data_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.category = category
        self.index = int(index)
        self.shapes_per_category = shapes_per_category
        self.data_seed = int(data_seed)
        self.background = parse_background(background)
        self.render_kwargs = {
            "resolution": int(resolution),
            "n_train": int(n_train),
            "n_val": int(n_val),
            "n_test": int(n_test),
            "radius": float(radius),
            "camera_angle_x": float(camera_angle_x),
            "seed": int(render_seed),
        }

    def scene_dir(self) -> Path:
        """Render the scene if needed; its folder."""
        return ensure_synth_scene(
            self.root,
            self.category,
            self.index,
            self.shapes_per_category,
            data_seed=self.data_seed,
            **self.render_kwargs,
        )

    def prepare_data(self) -> None:
        self.scene_dir()

    def pose_source(self) -> tuple[str, str]:
        return str(self.scene_dir() / "transforms_train.json"), "transform_matrix"

    def _load_scene(self) -> Scene:
        folder = self.scene_dir()
        info = read_scene_info(folder)
        if info is None:
            raise FileNotFoundError(f"{folder}: no render manifest")
        name = f"{self.category}/{folder.name}"
        return _blender_scene(
            folder,
            name,
            self.background,
            1,
            info["near"],
            info["far"],
            info["bbox_min"],
            info["bbox_max"],
        )


class TinyNerfDataModule(ViewsDataModule):
    """The tiny-NeRF ``.npz`` (``zoo.data.formats.tinynerf``): the first ``N - holdout`` views
    train, the last ``holdout`` views are both val and test (the notebook's benchmark: views
    0-89 train, 90-99 held out). Images are composited on black; near 2, far 6 (the notebook's
    bounds), lego box [-1.5, 1.5]^3."""

    dataset_name = "tinynerf"

    def __init__(
        self,
        path: str | os.PathLike[str],
        holdout: int = 10,
        near: float = 2.0,
        far: float = 6.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= near < far:
            raise ValueError(f"need 0 <= near < far, got near={near}, far={far}")
        self.path = Path(path)
        self.holdout = int(holdout)
        self.near, self.far = float(near), float(far)

    def pose_source(self) -> tuple[str, str]:
        return str(self.path), "poses"

    def _load_scene(self) -> Scene:
        images, cameras = load_tinynerf(self.path)
        n = len(cameras)
        if not 1 <= self.holdout < n:
            raise ValueError(f"holdout must be in [1, {n - 1}] for {n} views, got {self.holdout}")
        cut = n - self.holdout
        train = ViewSplit(images[:cut], cameras[:cut])
        held = ViewSplit(images[cut:], cameras[cut:])
        return Scene(
            name=self.path.stem,
            splits={"train": train, "val": held, "test": held},
            near=self.near,
            far=self.far,
            background=(0.0, 0.0, 0.0),
            bbox_min=LEGO_BBOX[0],
            bbox_max=LEGO_BBOX[1],
        )
