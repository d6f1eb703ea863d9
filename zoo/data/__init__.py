"""Datasets: the generated ``synthshapes`` set, real-format loaders, caches and datamodules.

Submodules: :mod:`.io` (atomic writes, manifests, :class:`~zoo.data.io.DataError`),
:mod:`.formats` (file formats), :mod:`.synthshapes` (procedural ShapeNet-like shapes),
:mod:`.cache` (derived point/SDF/voxel caches), :mod:`.shapes` (shape datamodules),
:mod:`.views` (multi-view datamodules). The datamodules are importable from here lazily, so
``import zoo.data`` stays light.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "ShapeNetDataModule": "zoo.data.shapes",
    "SynthShapesDataModule": "zoo.data.shapes",
    "PC15kDataModule": "zoo.data.shapes",
    "DeepSDFDataModule": "zoo.data.shapes",
    "DataError": "zoo.data.io",
    "ensure_synthshapes": "zoo.data.synthshapes",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo.data' has no attribute {name!r}")
