"""synthshapes: primitive SDFs with known values, mesh properties, determinism, disk layout."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import trimesh

from zoo.data import synthshapes as S
from zoo.data.formats.shapenet import read_split_file

LOW_RES = 48  # fast; thin parts may lose a sliver below ~40, never at >= 64 (see test below)


def _coords(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    return p[:, 0].copy(), p[:, 1].copy(), p[:, 2].copy()


# ------------------------------------------------------------------------ primitives
def test_box_distances_known() -> None:
    p = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [2.0, 2.0, 0.0], [0.5, 0.0, 0.0]])
    d = S.sd_box(_coords(p), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(d, [-1.0, 1.0, np.sqrt(2.0), -0.5], atol=1e-12)


def test_capsule_torus_cylinder_known() -> None:
    p = np.array([[0.0, 2.0, 0.0], [3.0, 0.5, 0.0], [0.0, -3.0, 0.0]])
    d = S.sd_capsule(_coords(p), (0, 0, 0), (0, 1, 0), 0.25)
    np.testing.assert_allclose(d, [0.75, 3.0 - 0.25, 3.0 - 0.25], atol=1e-12)
    # Torus (R=2, r=0.5) around y: the ring passes through (2, 0, 0).
    p = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    np.testing.assert_allclose(S.sd_torus(_coords(p), 2.0, 0.5), [-0.5, 1.5, 0.5, 0.5])
    # Cylinder radius 1, half height 1 along y: side, cap, rim corner.
    p = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(S.sd_cylinder(_coords(p), 1.0, 1.0), [1, 2, np.sqrt(2), -1])


def test_cone_with_equal_radii_is_cylinder_and_sphere_ellipsoid() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(-2, 2, (500, 3))
    np.testing.assert_allclose(
        S.sd_capped_cone(_coords(p), 0.7, 0.4, 0.4), S.sd_cylinder(_coords(p), 0.7, 0.4), atol=1e-9
    )
    sphere = np.linalg.norm(p, axis=1) - 0.8
    np.testing.assert_allclose(S.sd_ellipsoid(_coords(p), (0.8, 0.8, 0.8)), sphere, atol=1e-9)
    # A true cone: apex radius 0 at the top, on its axis above the apex -> distance y - h.
    q = np.array([[0.0, 1.5, 0.0]])
    np.testing.assert_allclose(S.sd_capped_cone(_coords(q), 1.0, 0.5, 0.0), [0.5], atol=1e-12)


def test_smooth_min_bounds() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=1000), rng.normal(size=1000)
    k = 0.1
    s = S.smooth_min(a, b, k)
    assert np.all(s <= np.minimum(a, b) + 1e-12)
    assert np.all(s >= np.minimum(a, b) - k / 4 - 1e-12)
    far = np.abs(a - b) >= k
    np.testing.assert_allclose(s[far], np.minimum(a, b)[far])


# ------------------------------------------------------------------------ generated meshes
@pytest.fixture(scope="module")
def default_shapes() -> dict[str, S.SynthShape]:
    """One shape per category at the default resolution (what the dataset holds)."""
    return {c: S.generate_shape(c, S.shape_seed(0, c, 0)) for c in S.CATEGORIES}


@pytest.mark.parametrize("category", list(S.CATEGORIES))
def test_mesh_is_clean_normalised_solid(default_shapes, category: str) -> None:
    shape = default_shapes[category]
    mesh = shape.mesh
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert len(trimesh.graph.connected_components(mesh.face_adjacency, min_len=1)) == 1
    assert shape.info["components_dropped"] == 0
    assert mesh.volume > 0  # outward normals
    lo, hi = mesh.bounds
    assert np.linalg.norm(hi - lo) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-9)
    assert np.linalg.norm(mesh.vertices, axis=1).max() <= 0.5 + 1e-9
    colours = np.unique(mesh.visual.vertex_colors[:, :3], axis=0)
    assert len(colours) >= 2  # parts are coloured differently


def test_mug_has_a_handle_hole_and_table_shelf_holes(default_shapes) -> None:
    mug = default_shapes["mug"].mesh
    assert (2 - mug.euler_number) // 2 == 1  # genus 1: the handle


def test_analytic_sdf_matches_mesh(default_shapes) -> None:
    """The SDF's sign equals mesh inside/outside away from the surface; ~0 on the mesh."""
    from zoo.ops.mesh_queries import occupancy

    for category in ("chair", "airplane", "mug"):
        shape = default_shapes[category]
        p = np.random.default_rng(2).uniform(-0.55, 0.55, (4000, 3)).astype(np.float32)
        d = shape.sdf(p)
        inside = occupancy(shape.mesh, p).numpy()
        far = np.abs(d) > 0.01  # > one grid cell (~1/96 of the longest side)
        assert far.sum() > 3000
        assert np.array_equal(d[far] < 0, inside[far]), category
        on_surface = shape.sdf(shape.mesh.vertices[::50].astype(np.float32))
        assert np.abs(on_surface).max() < 0.005, category


def test_sdf_accepts_tensors(default_shapes) -> None:
    import torch

    shape = default_shapes["car"]
    p = torch.zeros(5, 3)
    out = shape.sdf(p)
    assert isinstance(out, torch.Tensor) and out.shape == (5,)
    assert callable(S.shape_sdf("car", 3, resolution=LOW_RES))


def test_same_seed_identical_different_seed_differs() -> None:
    a = S.generate_shape("chair", 7, LOW_RES).mesh
    b = S.generate_shape("chair", 7, LOW_RES).mesh
    c = S.generate_shape("chair", 8, LOW_RES).mesh
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)
    assert a.vertices.shape != c.vertices.shape or not np.allclose(a.vertices, c.vertices)
    assert S.model_id("chair", 7) == S.model_id("03001627", 7) != S.model_id("chair", 8)
    assert len(S.model_id("chair", 7)) == 32 and int(S.model_id("chair", 7), 16) >= 0


def test_unknown_category() -> None:
    with pytest.raises(ValueError, match="sofa"):
        S.generate_shape("sofa", 0)


# ------------------------------------------------------------------------ dataset on disk
def _mtimes(root) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*.obj")}


def test_ensure_layout_manifest_split_and_reuse(tmp_path) -> None:
    res = S.ensure_synthshapes(tmp_path, ["chair", "mug"], 2, seed=3, resolution=32, progress=False)
    assert res.generated == 4 and res.reused == 0
    root = tmp_path / "ShapeNetCore.v2"
    objs = sorted(root.rglob("model_normalized.obj"))
    assert len(objs) == 4
    for p in objs:
        synset, mid = p.parts[-4], p.parts[-3]
        assert synset in ("03001627", "03797390") and p.parent.name == "models"
        assert len(mid) == 32
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest == {
        "generator": "synthshapes",
        "version": S.VERSION,
        "seed": 3,
        "categories": ["chair", "mug"],
        "shapes_per_category": 2,
        "resolution": 32,
        "split_fractions": [0.7, 0.1, 0.2],
    }
    split = read_split_file(root / "split.json")
    for synset, parts in split.items():
        ids = sum(parts.values(), [])
        assert sorted(ids) == sorted(d.name for d in (root / synset).iterdir())
    # Colours survive the OBJ round trip.
    loaded = trimesh.load(objs[0], process=False)
    assert len(np.unique(loaded.visual.vertex_colors[:, :3], axis=0)) >= 2

    before = _mtimes(root)
    again = S.ensure_synthshapes(
        tmp_path, ["chair", "mug"], 2, seed=3, resolution=32, progress=False
    )
    assert again.generated == 0 and _mtimes(root) == before

    # Growing the dataset keeps the existing shapes and generates only the new ones.
    grown = S.ensure_synthshapes(
        tmp_path, ["chair", "mug"], 3, seed=3, resolution=32, progress=False
    )
    assert grown.generated == 2 and grown.reused == 4
    after = _mtimes(root)
    assert all(after[k] == v for k, v in before.items())

    # A new seed generates its own shapes; the old seed's stay (generation never deletes).
    reseeded = S.ensure_synthshapes(
        tmp_path, ["chair", "mug"], 3, seed=4, resolution=32, progress=False
    )
    assert reseeded.generated == 6 and reseeded.removed == 0
    assert set(after) < set(_mtimes(root)) and len(_mtimes(root)) == 12


def test_interrupted_generation_is_resumed(tmp_path) -> None:
    S.ensure_synthshapes(tmp_path, ["lamp"], 3, seed=0, resolution=32, progress=False)
    root = tmp_path / "ShapeNetCore.v2"
    objs = sorted(root.rglob("*.obj"))
    # Simulate a crash mid-run: manifest still "incomplete", one mesh missing, a temp file left.
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    objs[0].unlink()
    stray = objs[1].parent / ".tmp-model_normalized.obj.abc"
    stray.write_bytes(b"half")
    res = S.ensure_synthshapes(tmp_path, ["lamp"], 3, seed=0, resolution=32, progress=False)
    assert res.generated == 1 and res.reused == 2
    assert objs[0].is_file() and not stray.exists()
    assert "complete" not in json.loads((root / "manifest.json").read_text())
    assert not any(p.name.startswith(".tmp-") for p in root.rglob("*"))
    assert os.path.getsize(objs[0]) > 1000
