"""Atomic writes, manifests and the derived caches (points, SDF samples, voxels)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from zoo.data import io as zio
from zoo.data import synthshapes as S
from zoo.data.cache import ShapeCache, ShapeEntry, entry_seed, load_surface_ply
from zoo.data.formats import deepsdf, pc15k
from zoo.data.io import DataError

RES = 64
N_SURFACE = 3000
N_SDF = 6000


# ------------------------------------------------------------------------ io
def test_data_error_names_file_and_field() -> None:
    e = DataError("/d/a.npz", "pos", "expected (N, 4) float array, got (10, 3)")
    assert str(e) == "/d/a.npz: field 'pos': expected (N, 4) float array, got (10, 3)"
    assert isinstance(e, ValueError)
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e) and back.field == "pos"


def test_atomic_writes_roundtrip_and_leave_no_temp(tmp_path) -> None:
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    zio.atomic_save_npy(tmp_path / "x" / "a.npy", a)
    zio.atomic_save_npz(tmp_path / "b.npz", pos=a, neg=-a)
    zio.atomic_write_json(tmp_path / "c.json", {"k": (1, 2)})
    zio.atomic_write_bytes(tmp_path / "d.bin", b"abc")
    assert np.array_equal(np.load(tmp_path / "x" / "a.npy"), a)
    with np.load(tmp_path / "b.npz") as z:
        assert np.array_equal(z["neg"], -a)
    assert json.loads((tmp_path / "c.json").read_text()) == {"k": [1, 2]}
    assert (tmp_path / "d.bin").read_bytes() == b"abc"
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]


def test_failed_write_keeps_old_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "a.npy"
    zio.atomic_save_npy(path, np.zeros(3))

    def broken_save(f, arr, allow_pickle=False):
        f.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        zio.atomic_save_npy(path, np.ones(3))
    monkeypatch.undo()
    assert np.array_equal(np.load(path), np.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_path_writer_gets_the_suffix_and_a_failure_keeps_the_old_file(tmp_path) -> None:
    path = tmp_path / "out" / "m.ply"
    seen = []

    def write(tmp) -> None:
        seen.append(tmp)
        tmp.write_bytes(b"new")

    zio.atomic_write_via_path(path, write)
    assert path.read_bytes() == b"new" and seen[0].suffix == ".ply" and seen[0] != path
    assert path.stat().st_mode & 0o777 == 0o644

    def broken(tmp) -> None:
        tmp.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        zio.atomic_write_via_path(path, broken)
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.ply"]


def test_manifest_match(tmp_path) -> None:
    assert zio.read_manifest(tmp_path) is None
    assert not zio.manifest_matches(tmp_path, {"a": 1})
    zio.write_manifest(tmp_path, {"a": 1, "b": (1, 2)})
    assert zio.read_manifest(tmp_path) == {"a": 1, "b": [1, 2]}
    assert zio.manifest_matches(tmp_path, {"b": [1, 2], "a": 1})
    assert not zio.manifest_matches(tmp_path, {"a": 2, "b": [1, 2]})
    (tmp_path / "manifest.json").write_text("{trunc")
    assert zio.read_manifest(tmp_path) is None


# ------------------------------------------------------------------------ caches
@pytest.fixture(scope="module")
def shape_and_mesh_file(tmp_path_factory):
    """One generated chair written as a v2 model file, with its analytic SDF."""
    root = tmp_path_factory.mktemp("cache_src")
    shape = S.generate_shape("chair", 11, RES)
    path = root / "03001627" / "abc" / "models" / "model_normalized.obj"
    zio.atomic_export_mesh(path, shape.mesh, digits=8)
    return shape, path


def _cache(tmp_path, **kw) -> ShapeCache:
    args = dict(n_surface=N_SURFACE, sdf_samples=N_SDF, seed=0, source={"test": 1})
    args.update(kw)
    return ShapeCache(tmp_path, "toy", **args)


@pytest.fixture(scope="module")
def built(tmp_path_factory, shape_and_mesh_file):
    shape, path = shape_and_mesh_file
    cache_dir = tmp_path_factory.mktemp("cache")
    cache = _cache(cache_dir)
    entry = ShapeEntry("03001627", "abc", "train", path)
    stats = cache.ensure([entry], ("points", "sdf", "voxels"), (16, 32), progress=False)
    return shape, cache, entry, stats


def test_layout_and_stats(built) -> None:
    _, cache, e, stats = built
    assert stats.built == 4 and stats.reused == 0 and stats.invalid == 0
    d = cache.cache_dir
    for rel in [
        "ShapeNetCore.v2.PC15k/03001627/train/abc.npy",
        "ShapeNetCore.v2.PC15k_normals/03001627/train/abc.npy",
        "SdfSamples/toy/03001627/abc.npz",
        "SurfaceSamples/toy/03001627/abc.ply",
        "voxels_16/03001627/abc.npy",
        "voxels_32/03001627/abc.npy",
        "splits/toy_train.json",
        "ShapeNetCore.v2.PC15k/manifest.json",
        "SdfSamples/toy/manifest.json",
        "voxels_32/manifest.json",
    ]:
        assert (d / rel).is_file(), rel
    assert deepsdf.read_split(d / "splits/toy_train.json") == [("toy", "03001627", "abc")]
    assert deepsdf.read_split(d / "splits/toy_test.json") == []


def test_surface_points_lie_on_surface_with_outward_normals(built) -> None:
    shape, cache, e, _ = built
    pts, normals = cache.load_cloud(e), cache.load_normals(e)
    assert pts.shape == (N_SURFACE, 3) and pts.dtype == np.float32
    assert np.abs(shape.sdf(pts)).max() < 0.01  # within a grid cell of the analytic surface
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-4)
    step = 0.01
    outward = shape.sdf(pts + step * normals) > shape.sdf(pts - step * normals)
    assert outward.mean() > 0.97
    np.testing.assert_allclose(load_surface_ply(cache.surface_path(e), N_SURFACE), pts)


def test_sdf_samples_signs_and_distribution(built) -> None:
    shape, cache, e, _ = built
    pos, neg = cache.load_sdf(e)
    assert len(pos) + len(neg) == N_SDF and (pos[:, 3] > 0).all() and (neg[:, 3] <= 0).all()
    samples = np.concatenate([pos, neg])
    exact = shape.sdf(samples[:, :3])
    far = np.abs(samples[:, 3]) > 0.01
    assert far.sum() > 1000
    assert np.mean(np.sign(exact[far]) == np.sign(samples[far, 3])) > 0.999
    # |sdf| is the exact mesh distance, the analytic one a close bound near simple parts.
    close = np.abs(samples[:, 3]) < 0.03
    assert np.median(np.abs(exact[close] - samples[close, 3])) < 0.005
    # 80% near-surface samples (sigma 0.025 / 0.0079), 20% uniform in the box.
    assert np.mean(np.abs(samples[:, 3]) < 0.06) > 0.75
    assert np.abs(samples[:, :3]).max() <= 0.55 + 0.1


def test_voxels_match_inside_test_at_centres(built) -> None:
    shape, cache, e, _ = built
    for r in (16, 32):
        vox = cache.load_voxels(e, r)
        assert vox.shape == (r, r, r) and vox.dtype == bool and vox.any()
        c = (np.stack(np.meshgrid(*[np.arange(r)] * 3, indexing="ij"), -1) + 0.5) / r - 0.5
        d = shape.sdf(c.reshape(-1, 3).astype(np.float32)).reshape(r, r, r)
        sure = np.abs(d) > 0.01
        assert np.array_equal(vox[sure], d[sure] < 0)


def test_second_ensure_reuses_and_corrupt_entry_is_rebuilt(
    tmp_path, shape_and_mesh_file, capsys
) -> None:
    _, path = shape_and_mesh_file
    cache = _cache(tmp_path)
    e = ShapeEntry("03001627", "abc", "train", path)
    cache.ensure([e], ("points", "sdf"), progress=False)
    good_cloud = cache.load_cloud(e)
    mtime = cache.sdf_path(e).stat().st_mtime_ns
    again = cache.ensure([e], ("points", "sdf"), progress=False)
    assert again.built == 0 and again.reused == 2
    assert cache.sdf_path(e).stat().st_mtime_ns == mtime

    # Half-written files (as left by a crashed non-atomic writer) are detected and rebuilt.
    cloud_file = cache.cloud_path(e)
    cloud_file.write_bytes(cloud_file.read_bytes()[:500])
    sdf_file = cache.sdf_path(e)
    sdf_file.write_bytes(sdf_file.read_bytes()[:1000])
    with pytest.raises(DataError, match="abc.npy"):
        cache.load_cloud(e)
    capsys.readouterr()
    fixed = cache.ensure([e], ("points", "sdf"), progress=False)
    assert fixed.invalid == 2 and fixed.built == 2
    # Said, one warning line per damaged file, naming it; nothing for files only missing.
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    for line, damaged in zip(sorted(lines), sorted([str(cloud_file), str(sdf_file)]), strict=True):
        assert line.startswith(f"warning: damaged cache file regenerated: {damaged}: "), line
    np.testing.assert_array_equal(cache.load_cloud(e), good_cloud)  # deterministic rebuild
    cache.load_sdf(e)


def test_changed_parameters_rebuild_only_that_cache(tmp_path, shape_and_mesh_file) -> None:
    _, path = shape_and_mesh_file
    e = ShapeEntry("03001627", "abc", "train", path)
    first = _cache(tmp_path)
    first.ensure([e], ("points", "sdf"), progress=False)
    cloud_mtime = first.cloud_path(e).stat().st_mtime_ns
    stray = first.sdf_root / "03001627" / "old.npz"
    stray.write_bytes(b"x")

    second = _cache(tmp_path, sdf_samples=N_SDF // 2)
    stats = second.ensure([e], ("points", "sdf"), progress=False)
    assert stats.wiped == [str(second.sdf_root)] and stats.built == 1 and stats.reused == 1
    assert not stray.exists()
    pos, neg = second.load_sdf(e)
    assert len(pos) + len(neg) == N_SDF // 2
    assert second.cloud_path(e).stat().st_mtime_ns == cloud_mtime


def test_split_change_moves_cloud(tmp_path, shape_and_mesh_file) -> None:
    _, path = shape_and_mesh_file
    cache = _cache(tmp_path)
    train = ShapeEntry("03001627", "abc", "train", path)
    cache.ensure([train], ("points",), progress=False)
    test = ShapeEntry("03001627", "abc", "test", path)
    cache.ensure([test], ("points",), progress=False)
    assert cache.cloud_path(test).is_file() and not cache.cloud_path(train).exists()
    assert pc15k.list_clouds(cache.pc15k_root, "chair", "test")[0][0] == "abc"


def test_entry_seed_is_stable() -> None:
    assert entry_seed(0, "a/b", "sdf") == entry_seed(0, "a/b", "sdf")
    assert (
        len(
            {
                entry_seed(0, "a/b", "sdf"),
                entry_seed(1, "a/b", "sdf"),
                entry_seed(0, "a/c", "sdf"),
                entry_seed(0, "a/b", "surface"),
            }
        )
        == 4
    )


def test_bad_forms(tmp_path) -> None:
    cache = _cache(tmp_path)
    with pytest.raises(ValueError, match="unknown cache forms"):
        cache.ensure([], ("views",))
    with pytest.raises(ValueError, match="voxel_resolutions"):
        cache.ensure([], ("voxels",))
