"""Datamodules of real captures: ``data=nerfstudio``, ``data=colmap``, ``data=llff``,
``data=dtu``, ``data=scannet``. Each reads its format (``zoo.data.formats.*``) into a
:class:`~zoo.data.formats.capture.Capture` and serves it like every views datamodule
(:class:`zoo.data.views.ViewsDataModule`: rays for ``nerf`` / ``ngp``, whole views for
``gaussians``).

What they share (:class:`CaptureDataModule`):

- Frame: captures without a normalised frame (nerfstudio, COLMAP, ScanNet) are normalised as
  nerfstudio's dataparsers do (:func:`zoo.ops.camera_math.orient_and_scale`: centred cameras,
  mean up vector -> +z, largest camera coordinate 1); the transform is in ``info()``
  (``normalization``) so results can be mapped back. LLFF and DTU keep their own frames.
- Splits: the format's test views (LLFF: every 8th), else every ``holdout_every``-th view
  (LLFF's and mip-NeRF 360's convention, 8) is held out; val = test.
- Bounds: ``bbox_min`` / ``bbox_max`` / ``near`` / ``far`` when given; else the box of the
  sparse points (2nd-98th percentiles, padded by ``bbox_padding``), the box of the camera
  frusta between the format's near / far bounds (LLFF for splatting), or the unit box
  [-1, 1]^3 of the normalised frame, ``near = 0.05`` and ``far`` the farthest box corner.
- LLFF with ``ndc=true`` (NeRF's setting for forward-facing scenes): rays are mapped to NDC by
  the radiance models (``info()["ray_space"] == "ndc"``, :func:`zoo.ops.scene_space.ndc_rays`);
  the box is [-1, 1]^3 and near / far are 0 / 1 in NDC ray units.
- Unbounded captures with ``contract=true``: mip-NeRF 360's contraction
  (:func:`zoo.ops.scene_space.contract`), samples linear in disparity out to ``far``
  (``model=nerf model.occupancy=null``; the other models refuse it with one error).
- Sparse points from a file (COLMAP ``points3D``, a transforms.json's ``ply_file_path``) are
  named in ``info()["init_points"]``; the Gaussian model starts from them.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.formats.blender import parse_background
from zoo.data.formats.capture import Capture
from zoo.data.formats.colmap import load_colmap
from zoo.data.formats.dtu import load_dtu
from zoo.data.formats.llff import load_llff
from zoo.data.formats.nerfstudio import load_nerfstudio
from zoo.data.formats.points import points_source
from zoo.data.formats.scannet import load_scannet
from zoo.data.io import read_json
from zoo.data.views import Scene, ViewsDataModule, ViewSplit
from zoo.ops.camera_math import orient_and_scale, transform_points


class CaptureDataModule(ViewsDataModule, abc.ABC):
    """Common base of the capture datamodules (see the module docstring).

    Args:
        background: compositing colour for images with alpha / masks.
        downscale: integer area-downscale of the images.
        holdout_every: hold out every n-th view when the format prescribes none (0: none; the
            training views then also serve as val / test).
        normalize: re-orient and re-scale the poses (formats without their own frame).
        near, far, bbox_min, bbox_max: override the automatic bounds.
        bbox_padding: relative padding of the box around the sparse points.
        contract: an unbounded scene: models sample rays to ``far`` (default 1000) and see
            space through mip-NeRF 360's contraction (``info()["ray_space"] == "contract"``;
            the box is the contracted ball's [-2, 2]^3; ``model=nerf model.occupancy=null``).
        **kwargs: see :class:`~zoo.data.views.ViewsDataModule`.
    """

    def __init__(
        self,
        background: Any = "white",
        downscale: int = 1,
        holdout_every: int = 8,
        normalize: bool = True,
        near: float | None = None,
        far: float | None = None,
        bbox_min: Any = None,
        bbox_max: Any = None,
        bbox_padding: float = 0.1,
        contract: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(downscale) != downscale or downscale < 1:
            raise ValueError(f"downscale must be a positive integer, got {downscale!r}")
        if holdout_every < 0 or holdout_every == 1:
            raise ValueError(f"holdout_every must be 0 or >= 2, got {holdout_every}")
        self.background = parse_background(background)
        self.downscale = int(downscale)
        self.holdout_every = int(holdout_every)
        self.normalize = bool(normalize)
        self.near_override = near
        self.far_override = far
        self.bbox_override = (bbox_min, bbox_max)
        self.bbox_padding = float(bbox_padding)
        self.contract = bool(contract)
        self.capture: Capture | None = None
        self.transform = np.eye(4)[:3]
        self.scale = 1.0
        self.points: np.ndarray | None = None  # sparse points in the normalised frame
        self.points_file: Path | None = None

    @abc.abstractmethod
    def _load_capture(self) -> Capture:
        """Read the capture."""

    @property
    @abc.abstractmethod
    def root(self) -> Path:
        """The capture's folder / file."""

    # ---- scene --------------------------------------------------------------------------
    def _load_scene(self) -> Scene:
        cap = self._load_capture()
        self.capture = cap
        cams = cap.cameras
        if self.normalize and not cap.normalized:
            c2w, self.transform, self.scale = orient_and_scale(cams.c2w.double().numpy())
            cams.c2w = torch.tensor(c2w, dtype=cams.c2w.dtype)
        if cap.points is not None and len(cap.points):
            self.points = transform_points(cap.points, self.transform, self.scale)
        n = len(cams)
        test = cap.test_indices
        if test is None:
            test = list(range(0, n, self.holdout_every)) if self.holdout_every and n > 1 else []
        train = [i for i in range(n) if i not in set(test)]
        if not train:
            raise ValueError(f"{self.root}: no training views left after holding out {test}")

        def split(idx: list[int]) -> ViewSplit:
            t = torch.tensor(idx, dtype=torch.long)
            return ViewSplit(cap.images[t], cams[t])

        held = split(test) if test else split(train)
        lo, hi, near, far = self._bounds(cap, cams)
        return Scene(
            name=self.root.name,
            splits={"train": split(train), "val": held, "test": held},
            near=near,
            far=far,
            background=self.background,
            bbox_min=lo,
            bbox_max=hi,
        )

    def _bounds(self, cap: Capture, cams: Any) -> tuple[tuple, tuple, float, float]:
        """(bbox_min, bbox_max, near, far) from the overrides, the capture or the defaults."""
        if self.ndc:
            return (-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), 0.0, 1.0
        if self.contract:  # all of space, contracted into the radius-2 ball
            near = self.near_override if self.near_override is not None else 0.05
            far = self.far_override if self.far_override is not None else 1000.0
            return (-2.0, -2.0, -2.0), (2.0, 2.0, 2.0), float(near), float(far)
        lo_o, hi_o = self.bbox_override
        if lo_o is not None and hi_o is not None:
            lo, hi = np.asarray(lo_o, dtype=float), np.asarray(hi_o, dtype=float)
        elif self.points is not None and len(self.points) >= 8:
            lo, hi = np.percentile(self.points, [2, 98], axis=0)
            pad = self.bbox_padding * (hi - lo).max()
            lo, hi = lo - pad, hi + pad
        elif cap.forward_facing and cap.near is not None and cap.far is not None:  # frusta box
            lo, hi = _frusta_box(cams, cap.near, cap.far)
        else:
            lo, hi = -np.ones(3), np.ones(3)
        centres = cams.centers.double().numpy()
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        far_auto = float(np.linalg.norm(centres[:, None] - corners[None], axis=-1).max())
        near = self.near_override if self.near_override is not None else (cap.near or 0.05)
        far = self.far_override if self.far_override is not None else (cap.far or far_auto)
        return tuple(float(v) for v in lo), tuple(float(v) for v in hi), float(near), float(far)

    @property
    def ndc(self) -> bool:
        return False

    # ---- info ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        out = super().info()
        cap = self.capture
        out["normalization"] = {
            "transform": np.asarray(self.transform).tolist(),
            "scale": self.scale,
        }
        out["source"] = str(self.root)
        if self.contract:
            out["ray_space"] = "contract"
        if self.ndc:
            train = self.scene.splits["train"].cameras
            out["ray_space"] = "ndc"
            out["ndc"] = {
                "width": train.width,
                "height": train.height,
                "focal": float(train.fx[0]),
                "near": 1.0,
            }
        if self.points_file is not None:
            out["init_points"] = points_source(self.points_file, self.transform, self.scale)
        if cap is not None and cap.depth is not None:
            out["has_depth"] = True
        return out

    def pose_source(self) -> tuple[str, str]:
        _ = self.scene
        return self.capture.pose_source if self.capture else (str(self.root), "poses")


def _frusta_box(cams: Any, near: float, far: float) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box of every camera's view frustum between z-depths ``near`` and ``far``."""
    w, h = cams.width, cams.height
    corners = []
    for u, v in ((0, 0), (w, 0), (0, h), (w, h)):
        x = (u - cams.cx) / cams.fx
        y = -(v - cams.cy) / cams.fy
        d = torch.stack([x, y, -torch.ones_like(x)], -1).double()  # (B, 3) camera frame
        d = (cams.c2w[:, :3, :3].double() @ d[..., None])[..., 0]
        for z in (near, far):
            corners.append(cams.c2w[:, :3, 3].double() + z * d)
    pts = torch.cat(corners).numpy()
    return pts.min(0), pts.max(0)


class NerfstudioDataModule(CaptureDataModule):
    """``data=nerfstudio``: a nerfstudio ``transforms.json`` (``zoo.data.formats.nerfstudio``),
    e.g. the output of ``python -m zoo.process``."""

    dataset_name = "nerfstudio"

    def __init__(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)

    @property
    def root(self) -> Path:
        return self.path.parent if self.path.suffix == ".json" else self.path

    def _load_capture(self) -> Capture:
        cap = load_nerfstudio(self.path, self.background, self.downscale)
        json_path = self.path / "transforms.json" if self.path.is_dir() else self.path
        ply = read_json(json_path).get("ply_file_path")
        if isinstance(ply, str):
            self.points_file = json_path.parent / ply
        return cap


class ColmapDataModule(CaptureDataModule):
    """``data=colmap``: a COLMAP scene folder (``sparse/0`` + ``images/``, as 3DGS reads it)."""

    dataset_name = "colmap"

    def __init__(self, path: str | os.PathLike[str], images: str = "images", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self.images = images

    @property
    def root(self) -> Path:
        return self.path

    def _load_capture(self) -> Capture:
        cap = load_colmap(self.path, self.images, self.background, self.downscale)
        model = Path(cap.meta["model"])
        for suffix in (".bin", ".txt"):
            if (model / f"points3D{suffix}").is_file():
                self.points_file = model / f"points3D{suffix}"
                break
        return cap


class LLFFDataModule(CaptureDataModule):
    """``data=llff``: an LLFF forward-facing capture (``zoo.data.formats.llff``), NeRF's
    setting: ``images_<factor>``, every 8th view held out, NDC rays (``ndc=true``)."""

    dataset_name = "llff"

    def __init__(
        self, path: str | os.PathLike[str], factor: int = 8, ndc: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self.factor = int(factor)
        self.use_ndc = bool(ndc)

    @property
    def root(self) -> Path:
        return self.path

    @property
    def ndc(self) -> bool:
        """NDC rays for ray-marching models; splatting models (``form="images"``) render in
        world space (their box is then the camera frusta's between the LLFF bounds)."""
        return self.use_ndc and self.form == "views"

    def _load_capture(self) -> Capture:
        return load_llff(self.path, self.factor, background=self.background)


class DTUDataModule(CaptureDataModule):
    """``data=dtu``: a DTU scan in the IDR / NeuS layout (``zoo.data.formats.dtu``); the
    object lies in the unit sphere, so the box is [-1, 1]^3."""

    dataset_name = "dtu"

    def __init__(self, path: str | os.PathLike[str], use_mask: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self.use_mask = bool(use_mask)

    @property
    def root(self) -> Path:
        return self.path

    def _load_capture(self) -> Capture:
        return load_dtu(self.path, self.background, self.downscale, self.use_mask)


class ScanNetDataModule(CaptureDataModule):
    """``data=scannet``: a ScanNet ``SensReader`` export (``zoo.data.formats.scannet``); the
    depth maps give the sparse points (in :attr:`points`; ``info()["init_points"]`` names the
    export so the Gaussian model starts from them) and per-pixel depth."""

    dataset_name = "scannet"

    def __init__(
        self,
        path: str | os.PathLike[str],
        frame_step: int = 1,
        point_stride: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self.frame_step = int(frame_step)
        self.point_stride = int(point_stride)

    @property
    def root(self) -> Path:
        return self.path

    def _load_capture(self) -> Capture:
        return load_scannet(self.path, self.frame_step, self.downscale, self.point_stride)

    def info(self) -> dict[str, Any]:
        out = super().info()
        if self.capture is not None and self.capture.points is not None:
            out["init_points"] = points_source(
                self.path,
                self.transform,
                self.scale,
                format="scannet_depth",
                frame_step=self.frame_step,
                point_stride=self.point_stride,
            )
        return out


__all__ = [
    "CaptureDataModule",
    "ColmapDataModule",
    "DTUDataModule",
    "LLFFDataModule",
    "NerfstudioDataModule",
    "ScanNetDataModule",
]
