"""Where the real public test data lives: ``../shared/data/real`` beside the repository, or
``$ZOO_SHARED_DATA`` (the folder holding ``meshes/``, ``nerf/``, ``pointclouds/``, or one of its
parents ``real/`` / ``data/``). It is read by path and never copied into the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def real_data_dir() -> Path:
    env = os.environ.get("ZOO_SHARED_DATA")
    base = Path(env) if env else REPO.parent / "shared" / "data" / "real"
    for cand in (base, base / "real", base / "data" / "real"):
        if (cand / "meshes").is_dir() or (cand / "nerf").is_dir():
            return cand
    return base


REAL = real_data_dir()


def needs(path: Path) -> pytest.MarkDecorator:
    """Skip only when the shared real data is absent from this machine (CI has it)."""
    return pytest.mark.skipif(not path.exists(), reason=f"shared real data absent: {path}")
