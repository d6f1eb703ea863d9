"""Explicit model registry: ``model=<name>`` names map to classes; duplicates are rejected."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)

_MODELS: dict[str, type] = {}


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator adding a model under ``name`` (also set as the class's ``name``)."""

    def wrap(cls: T) -> T:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} already registered by {_MODELS[name]!r}")
        _MODELS[name] = cls
        cls.name = name
        return cls

    return wrap


def registered_models() -> dict[str, type]:
    """A copy of the registry (imports the model packages first)."""
    import zoo.models  # noqa: F401  (package __init__ imports every model)

    return dict(_MODELS)
