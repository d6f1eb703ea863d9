"""load_mesh on the real files of every supported format; bad input raises DataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from tests.helpers.shared_data import REAL as SHARED
from zoo.data.formats.mesh import load_mesh, normalization_params, normalize_mesh
from zoo.data.io import DataError

MESHES = SHARED / "meshes"
needs_real = pytest.mark.skipif(not MESHES.is_dir(), reason=f"shared real data absent: {MESHES}")

# Vertex / face counts after merging duplicate vertices (shared/data/real/SOURCES.md).
REAL = [
    ("teapot.obj", 1232, 2464, True),
    ("spot_cow/cow.obj", 2930, 5856, True),
    ("fandisk.obj", 2877, 5750, True),
    ("ballA.off", 1900, 3796, True),
    ("bunny.ply", 8146, 16301, False),
    ("featuretype.stl", 1722, 3476, True),
]


@needs_real
@pytest.mark.parametrize(("name", "n_vertices", "n_faces", "watertight"), REAL)
def test_real_meshes(name: str, n_vertices: int, n_faces: int, watertight: bool) -> None:
    mesh = load_mesh(MESHES / name)
    assert isinstance(mesh, trimesh.Trimesh)
    assert mesh.vertices.shape == (n_vertices, 3) and mesh.faces.shape == (n_faces, 3)
    assert mesh.is_watertight == watertight


@needs_real
def test_scene_with_materials_is_merged() -> None:
    """The armchair OBJ has 2 materials (a Scene in trimesh): one mesh of 18400 triangles."""
    mesh = load_mesh(MESHES / "armchair" / "armchair.obj")
    assert mesh.faces.shape == (18400, 3) and len(mesh.vertices) == 9204


@needs_real
def test_normalize_real_mesh() -> None:
    raw = load_mesh(MESHES / "featuretype.stl")
    centre, scale = normalization_params(raw)
    mesh = normalize_mesh(raw)
    lo, hi = mesh.bounds
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-9)
    assert np.linalg.norm(hi - lo) == pytest.approx(1.0)
    assert np.linalg.norm(mesh.vertices, axis=1).max() <= 0.5 + 1e-9
    np.testing.assert_allclose(mesh.vertices, (raw.vertices - centre) * scale)
    np.testing.assert_allclose(normalize_mesh(mesh).vertices, mesh.vertices, atol=1e-12)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("filename", "content", "field", "words"),
    [
        ("empty.obj", "", "file", "empty"),
        ("nan.obj", "v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n", "vertices", "NaN"),
        ("nofaces.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "faces", "expected a triangle mesh"),
        ("garbage.ply", "ply\nformat nonsense\nend_header\n\x00\x01", "file", "cannot read"),
        ("inf.off", "OFF\n3 1 0\n0 0 0\n1 0 inf\n0 1 0\n3 0 1 2\n", "vertices", "infinite"),
    ],
)
def test_bad_meshes_raise_data_error(tmp_path, filename, content, field, words) -> None:
    path = _write(tmp_path / filename, content)
    with pytest.raises(DataError) as info:
        load_mesh(path)
    assert info.value.field == field and words in str(info.value)
    assert str(path) in str(info.value)


def test_missing_mesh(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        load_mesh(tmp_path / "nope.obj")
    assert str(tmp_path / "nope.obj") in str(info.value)
