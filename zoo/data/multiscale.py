"""Multiscale views (Mip-NeRF's multiscale Blender data) for every radiance model.

``data=multiscale data.root=<folder with metadata.json>`` reads the format of
:mod:`zoo.data.formats.multiscale_blender`; ``data=synthshapes_multiscale`` builds it from the
embedded renders (no download). Training draws random rays from the pixels of all scales
together (``google/mipnerf`` trains its multiscale scenes on all rays of all levels); each ray
carries its footprint (``radii``, larger at coarser scales) and its ``lossmult`` (the pixel's
area in full-resolution pixels, 4^j at level j), which weights its squared error so that every
scale counts in proportion to the area it covers (Mip-NeRF Sec. 5). For models that train on
whole views (``form="images"``: gaussians) each step is one view of one scale; their loss is
not weighted. Validation and test render every scale; :meth:`eval_scales` gives the evaluator
per-scale PSNR / SSIM (``view/psnr_d<j>``) and their mean.

Write the format from any Blender-format scene (2x2 box averages of straight RGBA, 4 levels):

    python -m zoo.data.multiscale <src> <dst> [--levels 4] [--base-downscale 1]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from zoo.cli_utils import fail
from zoo.data.formats.blender import parse_background
from zoo.data.formats.multiscale_blender import (
    METADATA,
    ScaleLevel,
    load_multiscale,
    write_multiscale,
)
from zoo.data.io import DataError, read_json, read_manifest
from zoo.data.render_cache import read_scene_info
from zoo.data.views import (
    LEGO_BBOX,
    ImageRays,
    RandomRays,
    RandomViews,
    Scene,
    SynthViewsDataModule,
    ViewsDataModule,
    ViewSplit,
    _seed,
)
from zoo.ops.rays import pixel_radii, rays_for_pixels
from zoo.structures.cameras import Cameras


class MultiscaleRandomRays(RandomRays):
    """:class:`RandomRays` over the pixels of all scales at once (one permutation of all of
    them per epoch); batches add ``lossmult`` (R,)."""

    def __init__(
        self,
        levels: list[ScaleLevel],
        rays_per_batch: int,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        super().__init__(ViewSplit(levels[0].images, levels[0].cameras), rays_per_batch, seed)
        self.levels = levels
        counts = torch.tensor([lv.images[..., 0].numel() for lv in levels])
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])  # (L + 1,)
        self.n_pixels = int(self.offsets[-1])
        self.batches_per_epoch = int(
            batches_per_epoch or max(1, self.n_pixels // self.rays_per_batch)
        )

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        idx = self.pixel_indices(k)  # (R,) into the concatenation of all levels
        level = torch.bucketize(idx, self.offsets[1:], right=True)  # (R,)
        out = {key: torch.empty(len(idx), 3) for key in ("origins", "directions", "rgb")}
        out["radii"] = torch.empty(len(idx))
        out["lossmult"] = torch.empty(len(idx))
        for j, lv in enumerate(self.levels):
            sel = (level == j).nonzero()[:, 0]
            if len(sel) == 0:
                continue
            rel = idx[sel] - self.offsets[j]
            h, w = lv.images.shape[1:3]
            cam, rem = rel // (h * w), rel % (h * w)
            py, px = rem // w, rem % w
            o, d = rays_for_pixels(lv.cameras, cam, px, py)
            out["origins"][sel], out["directions"][sel] = o.float(), d.float()
            out["rgb"][sel] = lv.images[cam, py, px].float()
            out["radii"][sel] = pixel_radii(lv.cameras, cam).float()
            out["lossmult"][sel] = lv.lossmult
        return out


class MultiscaleViews(Dataset):
    """One whole view of one scale per item (``form="images"``), all (scale, view) pairs in a
    fresh random order each epoch, as :class:`RandomViews`."""

    def __init__(self, levels: list[ScaleLevel], seed: int = 0) -> None:
        self.views = [RandomViews(ViewSplit(lv.images, lv.cameras), seed) for lv in levels]
        self.pairs = [(j, v) for j, lv in enumerate(levels) for v in range(len(lv.cameras))]
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict[str, Any]:
        epoch, i = divmod(int(k), len(self))
        gen = torch.Generator().manual_seed(_seed(self.seed, epoch, 2))
        j, v = self.pairs[int(torch.randperm(len(self), generator=gen)[i])]
        split = self.views[j].split
        cams = split.cameras
        return {
            "rgb": split.images[v].float(),  # (H, W, 3)
            "c2w": cams.c2w[v].float(),
            "intrinsics": torch.stack([cams.fx[v], cams.fy[v], cams.cx[v], cams.cy[v]]).float(),
            "view": v,
        }


class MultiscaleDataModule(ViewsDataModule):
    """A scene in Mip-NeRF's multiscale Blender format (see the module docstring).

    Args:
        root: folder with ``metadata.json``.
        background: composite colour (the reference's multiscale Blender: white).
        near, far: None takes them from the metadata (the smallest near, the largest far).
        bbox_min, bbox_max: scene box (NeRF's Blender scenes: [-1.5, 1.5]^3).
        **kwargs: see :class:`zoo.data.views.ViewsDataModule`.
    """

    dataset_name = "multiscale"

    def __init__(
        self,
        root: str | os.PathLike[str],
        background: Any = "white",
        near: float | None = None,
        far: float | None = None,
        bbox_min: tuple[float, float, float] = LEGO_BBOX[0],
        bbox_max: tuple[float, float, float] = LEGO_BBOX[1],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.background = parse_background(background)
        self.near, self.far = near, far
        self.bbox = (tuple(bbox_min), tuple(bbox_max))
        self.levels: dict[str, list[ScaleLevel]] = {}

    def scene_root(self) -> Path:
        return self.root

    def pose_source(self) -> tuple[str, str]:
        return str(self.scene_root() / METADATA), "train.cam2world"

    def _load_scene(self) -> Scene:
        root = self.scene_root()
        meta = read_splits(root)
        if "train" not in meta:
            raise DataError(root / METADATA, "train", "missing split")
        self.levels = {s: load_multiscale(root, s, self.background) for s in meta}
        self.levels.setdefault("val", self.levels.get("test", self.levels["train"]))
        self.levels.setdefault("test", self.levels["val"])
        train = self.levels["train"]
        near = min(lv.near for lv in train) if self.near is None else self.near
        far = max(lv.far for lv in train) if self.far is None else self.far
        if not 0 <= near < far:
            raise ValueError(f"need 0 <= near < far, got near={near}, far={far}")
        return Scene(
            name=root.name,
            splits={s: ViewSplit(lv[0].images, lv[0].cameras) for s, lv in self.levels.items()},
            near=float(near),
            far=float(far),
            background=self.background,
            bbox_min=tuple(float(c) for c in self.bbox[0]),
            bbox_max=tuple(float(c) for c in self.bbox[1]),
        )

    def split_levels(self, split: str) -> list[ScaleLevel]:
        _ = self.scene
        if split not in self.levels:
            raise ValueError(f"split must be one of {sorted(self.levels)}, got {split!r}")
        return self.levels[split]

    def train_dataset(self) -> Dataset:
        levels = self.split_levels("train")
        if self.form == "images":
            return MultiscaleViews(levels, self.seed)
        return MultiscaleRandomRays(levels, self.rays_per_batch, self.seed, self.batches_per_epoch)

    def _image_loader(self, split: str, n_views: int | None) -> DataLoader:
        parts = []
        for lv in self.split_levels(split):
            n = len(lv.cameras)
            views = (
                range(n)
                if n_views is None
                else np.unique(np.linspace(0, n - 1, min(n_views, n)).round().astype(int))
            )
            parts.append(
                ImageRays(
                    ViewSplit(lv.images, lv.cameras), [int(v) for v in views], self.form == "images"
                )
            )
        return self._loader(ConcatDataset(parts))

    def val_dataloader(self) -> DataLoader:
        return self._image_loader("val", self.val_views)  # the same views at every scale

    def test_dataloader(self) -> DataLoader:
        return self._image_loader("test", None)

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["scales"] = [lv.label for lv in self.split_levels("train")]
        return info

    def eval_scales(self, split: str = "test") -> list[tuple[str, Cameras, Tensor]]:
        """``(f"d{label}", cameras, images (B, H, W, 3))`` of every scale of ``split``."""
        return [(f"d{lv.label}", lv.cameras, lv.images) for lv in self.split_levels(split)]


def read_splits(root: Path) -> list[str]:
    """The splits present in ``<root>/metadata.json``."""
    data = read_json(root / METADATA)
    if not isinstance(data, dict):
        raise DataError(
            root / METADATA, "file", f"expected a JSON object, got {type(data).__name__}"
        )
    return [s for s in ("train", "val", "test") if s in data]


class SynthMultiscaleDataModule(MultiscaleDataModule):
    """The embedded synthshapes renders (:class:`SynthViewsDataModule`) as multiscale data:
    rendered once, converted once into ``<render folder>_multiscale`` (``levels`` scales), then
    read as :class:`MultiscaleDataModule` with the renders' near/far and box."""

    dataset_name = "synthshapes_multiscale"

    def __init__(self, levels: int = 4, **kwargs: Any) -> None:
        keys = (
            "root",
            "category",
            "index",
            "resolution",
            "n_train",
            "n_val",
            "n_test",
            "radius",
            "camera_angle_x",
            "render_seed",
            "shapes_per_category",
            "data_seed",
        )
        synth_kwargs = {k: kwargs.pop(k) for k in keys if k in kwargs}
        background = kwargs.pop("background", "white")
        self.synth = SynthViewsDataModule(background=background, **synth_kwargs)
        self.n_levels = int(levels)
        super().__init__(root=self.synth.root, background=background, **kwargs)

    def scene_root(self) -> Path:
        """Render (if needed), then convert (if needed) into a folder named after a hash of
        the render manifest and the number of levels, so a re-render at other settings gets
        a fresh conversion instead of a stale one."""
        import hashlib
        import json

        src = self.synth.scene_dir()
        stamp = json.dumps([read_manifest(src), self.n_levels], sort_keys=True, default=str)
        key = hashlib.sha1(stamp.encode()).hexdigest()[:10]
        dst = src.with_name(f"{src.name}_multiscale_{key}")
        info = read_scene_info(src)
        if not (dst / METADATA).is_file():
            write_multiscale(src, dst, levels=self.n_levels, near=info["near"], far=info["far"])
        self.bbox = (tuple(info["bbox_min"]), tuple(info["bbox_max"]))
        return dst

    def prepare_data(self) -> None:
        self.scene_root()


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.data.multiscale <src> <dst>``: write the multiscale format."""
    p = argparse.ArgumentParser(
        prog="python -m zoo.data.multiscale", description=__doc__.split("\n")[0]
    )
    p.add_argument("src", help="a Blender-format scene (transforms_<split>.json + RGBA PNGs)")
    p.add_argument("dst", help="output folder (metadata.json + images_<split>/)")
    p.add_argument("--levels", type=int, default=4, help="scales (the reference: 4)")
    p.add_argument(
        "--base-downscale", type=int, default=1, help="level 0 = source / this (power of 2)"
    )
    p.add_argument("--near", type=float, default=2.0)
    p.add_argument("--far", type=float, default=6.0)
    args = p.parse_args(argv)
    try:
        out = write_multiscale(
            args.src, args.dst, args.levels, args.base_downscale, args.near, args.far
        )
    except (DataError, ValueError) as e:
        fail(str(e))
    print(f"wrote {out / METADATA}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
