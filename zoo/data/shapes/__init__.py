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
``eval_shapes(split, limit, spread)`` (ground-truth :class:`~zoo.representation.ShapeTarget`s) and
``eval_views(split)`` (None: shape datasets have no images).

Modules: :mod:`~zoo.data.shapes.base` (the datasets of each form and the common base class),
:mod:`~zoo.data.shapes.shapenet` (ShapeNet and synthshapes trees) and
:mod:`~zoo.data.shapes.sources` (PC15k and DeepSDF files); every name is importable from here.
"""

from zoo.data.shapes.base import (
    EVAL_BBOX,
    VOXEL_BBOX,
    PointsDataset,
    SdfDataset,
    ShapeDataModuleBase,
    ShapeItem,
    VoxelDataset,
    train_cut,
)
from zoo.data.shapes.shapenet import ShapeNetDataModule, SynthShapesDataModule
from zoo.data.shapes.sources import DeepSDFDataModule, PC15kDataModule

__all__ = [
    "EVAL_BBOX",
    "VOXEL_BBOX",
    "DeepSDFDataModule",
    "PC15kDataModule",
    "PointsDataset",
    "SdfDataset",
    "ShapeDataModuleBase",
    "ShapeItem",
    "ShapeNetDataModule",
    "SynthShapesDataModule",
    "VoxelDataset",
    "train_cut",
]
