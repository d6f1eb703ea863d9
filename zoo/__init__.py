"""zoo: train, evaluate and compare 3D generative models across representations."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {"list_pretrained": "zoo.pretrained", "load_pretrained": "zoo.pretrained"}


def __getattr__(name: str) -> Any:
    """``zoo.list_pretrained`` / ``zoo.load_pretrained``, imported on first use (keeps
    ``import zoo`` free of torch)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


__all__ = ["__version__", "list_pretrained", "load_pretrained"]
