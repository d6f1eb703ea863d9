"""Multi-view renders in the Blender format: cameras, round trip through the loader,
re-projection of depth onto the mesh, cache reuse / rebuild and the synthshapes scene."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import trimesh

import zoo.data.render_cache as render_cache
import zoo.ops.raycast as raycast
from zoo.data import synthshapes
from zoo.data.formats.blender import load_blender
from zoo.data.formats.shapenet import v2_model_path
from zoo.data.io import read_manifest
from zoo.data.render_cache import (
    Y_UP_TO_Z_UP,
    ensure_synth_scene,
    read_scene_info,
    render_scene,
    scene_cameras,
)
from zoo.ops.rays import generate_rays, rays_for_pixels

RES = 33  # odd: pixel 16's centre (16.5) is the principal point
SMALL = {"n_train": 6, "n_val": 2, "n_test": 4, "resolution": RES, "seed": 3}


CENTRE, HALF = (0.05, -0.03, 0.02), (0.25, 0.15, 0.2)


def _mesh() -> trimesh.Trimesh:
    """An off-centre, vertex-coloured box inside the sphere of radius 0.5."""
    box = trimesh.creation.box(extents=[2 * h for h in HALF])
    box = box.subdivide().subdivide()
    box.apply_translation(CENTRE)
    rng = np.random.default_rng(0)
    box.visual.vertex_colors = rng.integers(30, 256, (len(box.vertices), 4), dtype=np.uint8)
    return box


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    mesh = _mesh()
    return mesh, render_scene(mesh, tmp_path_factory.mktemp("scene"), **SMALL)


def test_cameras_on_sphere_looking_at_origin():
    cams = scene_cameras(40, 5, 8, 16, 0.7, radius=1.7, seed=0, test_elevation=30.0)
    for c in cams.values():
        eye = c.centers
        assert torch.allclose(eye.norm(dim=-1), torch.full((len(c),), 1.7), atol=1e-5)
        assert (eye[:, 2] >= 0).all()  # upper hemisphere
        # Camera +z (backwards) points from the origin to the eye: the view axis hits 0.
        assert torch.allclose(c.c2w[:, :3, 2], eye / 1.7, atol=1e-5)
        # World up +z: no roll, the camera's x axis is horizontal.
        assert c.c2w[:, 2, 0].abs().max() < 1e-6
        rot = c.c2w[:, :3, :3]
        assert torch.allclose(rot.transpose(1, 2) @ rot, torch.eye(3).expand_as(rot), atol=1e-5)
    ring = cams["test"].centers
    assert torch.allclose(ring[:, 2], torch.full((8,), 1.7 * math.sin(math.radians(30))))
    azimuth = torch.atan2(ring[:, 1], ring[:, 0])
    steps = torch.remainder(azimuth.diff(), 2 * math.pi)
    assert torch.allclose(steps, torch.full((7,), 2 * math.pi / 8), atol=1e-5)
    # Train and val are distinct random draws; same seed, same cameras.
    again = scene_cameras(40, 5, 8, 16, 0.7, radius=1.7, seed=0)
    assert torch.equal(again["train"].c2w, cams["train"].c2w)
    assert not torch.allclose(cams["train"].c2w[:5], cams["val"].c2w)
    # Hemisphere sampling is area-uniform: z ~ U(0, 1) (mean 1/2, var 1/12) on many draws.
    z = scene_cameras(4000, 1, 1, 4, 0.7, 1.0, seed=1)["train"].centers[:, 2]
    assert abs(z.mean().item() - 0.5) < 0.02 and abs(z.var().item() - 1 / 12) < 0.01


def test_files_and_transforms(scene):
    _, root = scene
    for split, n in (("train", 6), ("val", 2), ("test", 4)):
        data = json.loads((root / f"transforms_{split}.json").read_text())
        assert data["camera_angle_x"] == pytest.approx(0.6911112070083618)
        assert [f["file_path"] for f in data["frames"]] == [f"./{split}/r_{i}" for i in range(n)]
        assert all(np.asarray(f["transform_matrix"]).shape == (4, 4) for f in data["frames"])
        assert all(("depth_file_path" in f) == (split == "test") for f in data["frames"])
        assert all((root / split / f"r_{i}.png").is_file() for i in range(n))
    assert (root / "mesh.ply").is_file()
    gt = trimesh.load(root / "mesh.ply", process=False)
    assert np.allclose(gt.vertices, _mesh().vertices, atol=1e-6)
    info = read_scene_info(root)
    assert info["near"] == pytest.approx(1.6 - 0.55) and info["far"] == pytest.approx(1.6 + 0.55)


def test_reload_matches_cameras_and_render(scene):
    mesh, root = scene
    expected = scene_cameras(6, 2, 4, RES, 0.6911112070083618, 1.6, seed=3)
    for split in ("train", "val", "test"):
        images, cams, meta = load_blender(root, split)  # white background
        assert torch.equal(cams.c2w, expected[split].c2w)
        assert torch.allclose(cams.fx, expected[split].fx)
        direct = raycast.render_mesh(mesh, expected[split])  # on white
        assert (images - direct["rgb"]).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit quantisation
        assert torch.equal(meta["alpha"] > 0.5, direct["mask"])
        # Mask covers the object: every projected vertex lands on or next to a mask pixel.
        mask = direct["mask"]
        grown = torch.nn.functional.max_pool2d(mask[:, None].float(), 3, 1, 1)[:, 0] > 0
        v = torch.as_tensor(mesh.vertices, dtype=torch.float32)
        w2c = torch.linalg.inv(cams.c2w)  # (B, 4, 4)
        pc = (w2c[:, None, :3, :3] @ v[None, :, :, None])[..., 0] + w2c[:, None, :3, 3]
        u = cams.fx[:, None] * pc[..., 0] / -pc[..., 2] + cams.cx[:, None]
        vv = -cams.fy[:, None] * pc[..., 1] / -pc[..., 2] + cams.cy[:, None]
        assert ((u > 0) & (u < RES) & (vv > 0) & (vv < RES)).all()  # object fully in view
        b = torch.arange(len(cams))[:, None].expand_as(u)
        assert grown[b, vv.long(), u.long()].all()
        corners = meta["alpha"][:, [0, 0, -1, -1], [0, -1, 0, -1]]
        assert corners.max() == 0.0 and (images[:, 0, 0] == 1.0).all()
        assert 0.02 < mask.float().mean() < 0.8


def test_centre_ray_passes_through_origin(scene):
    _, root = scene
    _, cams, _ = load_blender(root, "train")
    n = len(cams)
    centre = torch.full((n,), RES // 2)
    o, d = rays_for_pixels(cams, torch.arange(n), centre, centre)
    # Distance from the origin to the line o + t d: |o x d| / |d|.
    dist = torch.linalg.cross(o, d).norm(dim=-1) / d.norm(dim=-1)
    assert dist.max() < 1e-5


def test_depth_reprojects_onto_mesh(scene):
    mesh, root = scene
    _, cams, meta = load_blender(root, "test")
    depth = meta["depth"]  # (B, H, W) z-depth, 0 on background
    hit = meta["alpha"] > 0.5
    assert torch.equal(depth > 0, hit)
    o, d = generate_rays(cams)  # camera z = -1: t is the z-depth
    points = (o + depth[..., None] * d)[hit]  # (K, 3)
    # Known answer: the exact distance to the box's surface (|SDF| of an axis-aligned box).
    q = (points.double() - torch.tensor(CENTRE)).abs() - torch.tensor(HALF)  # (K, 3)
    dist = (q.clamp_min(0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0)).abs()
    assert len(points) > 100 and dist.max() < 1e-4
    info = read_scene_info(root)
    assert info["near"] < depth[hit].min() and depth[hit].max() < info["far"]


def test_cache_reuse_and_rebuild(tmp_path, monkeypatch):
    calls = []
    real = render_cache.render_mesh
    counted = lambda *a, **k: calls.append(1) or real(*a, **k)  # noqa: E731
    monkeypatch.setattr(render_cache, "render_mesh", counted)
    mesh, kw = _mesh(), {**SMALL, "resolution": 12}
    splits = 3  # one ray-casting call per split (train, val, test) and build
    root = render_scene(mesh, tmp_path / "s", **kw)
    png = root / "train" / "r_2.png"
    good = png.read_bytes()
    assert len(calls) == 1 * splits
    render_scene(mesh, root, **kw)
    assert len(calls) == 1 * splits  # reused
    # A half-written (truncated) file makes the cache stale.
    png.write_bytes(good[: len(good) // 2])
    render_scene(mesh, root, **kw)
    assert len(calls) == 2 * splits and png.read_bytes() == good
    # So does a missing manifest (an interrupted build), stray temp files are removed.
    (root / "manifest.json").unlink()
    (root / "train" / ".tmp-r_0.png.xyz").write_bytes(b"partial")
    render_scene(mesh, root, **kw)
    assert len(calls) == 3 * splits and not list(root.rglob(".tmp-*"))
    # New parameters or another mesh rebuild; files of the old build are removed.
    render_scene(mesh, root, **{**kw, "n_train": 3})
    assert len(calls) == 4 * splits and not (root / "train" / "r_3.png").exists()
    assert read_manifest(root)["params"]["n_train"] == 3
    other = mesh.copy()
    other.apply_translation((0.01, 0, 0))
    render_scene(other, root, **{**kw, "n_train": 3})
    assert len(calls) == 5 * splits


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="radius"):
        render_scene(_mesh(), tmp_path, radius=1.0)
    with pytest.raises(ValueError, match="n_val"):
        render_scene(_mesh(), tmp_path, n_val=0)
    with pytest.raises(ValueError, match="depth_splits"):
        render_scene(_mesh(), tmp_path, depth_splits=("depth",))
    with pytest.raises(ValueError, match="ShapeNet-normalised"):
        render_scene(_mesh().apply_scale(2.0), tmp_path)


def test_ensure_synth_scene_grows_but_never_shrinks(tmp_path):
    root = tmp_path / "synth"
    synthshapes.ensure_synthshapes(root, ["mug"], 1, seed=0, progress=False)
    mug = v2_model_path(
        root / "ShapeNetCore.v2",
        "03797390",
        synthshapes.model_id("mug", synthshapes.shape_seed(0, "mug", 0)),
    )
    assert mug.is_file()
    folder = ensure_synth_scene(root, "chair", 0, resolution=16, n_train=3, n_val=1, n_test=1)
    chair_id = synthshapes.model_id("chair", synthshapes.shape_seed(0, "chair", 0))
    assert folder == root / "renders" / "03001627" / chair_id
    assert mug.is_file()  # the other category is kept
    stored = read_manifest(root / "ShapeNetCore.v2")
    assert stored["categories"] == ["mug", "chair"] and stored["shapes_per_category"] == 1
    # The scene mesh is the dataset's OBJ turned from +Y up to +Z up.
    obj = trimesh.load(
        v2_model_path(root / "ShapeNetCore.v2", "03001627", chair_id), force="mesh", process=False
    )
    gt = trimesh.load(folder / "mesh.ply", process=False)
    assert np.allclose(gt.vertices, obj.vertices @ Y_UP_TO_Z_UP.T, atol=1e-6)
    assert np.allclose(obj.vertices[:, 1], gt.vertices[:, 2])  # height is now z
    assert np.linalg.norm(gt.bounds[1] - gt.bounds[0]) == pytest.approx(1.0, abs=1e-4)
    images, cams, _ = load_blender(folder, "train")
    assert images.shape == (3, 16, 16, 3)
    assert (
        ensure_synth_scene(root, "chair", 0, resolution=16, n_train=3, n_val=1, n_test=1) == folder
    )


def test_ensure_synth_scene_says_once_where_the_data_goes(tmp_path, capsys):
    root = tmp_path / "synth"
    kwargs = {"resolution": 16, "n_train": 3, "n_val": 1, "n_test": 1}
    folder = ensure_synth_scene(root, "chair", 0, **kwargs)
    out = capsys.readouterr()
    lines = [ln for ln in out.out.splitlines() if ln.startswith("embedded data:")]
    assert len(lines) == 1 and str(folder) in lines[0] and "once" in lines[0], out.out
    # Progress bars (tqdm, on stderr): the shape generated, then the 5 views rendered.
    assert "synthshapes" in out.err and "rendering views" in out.err and "5/5" in out.err
    # A second run reuses the scene and says nothing.
    assert ensure_synth_scene(root, "chair", 0, **kwargs) == folder
    again = capsys.readouterr()
    assert "embedded data" not in again.out and "rendering views" not in again.err
    # progress=False (library use): silent even when building.
    other = ensure_synth_scene(root, "chair", 1, progress=False, **kwargs)
    quiet = capsys.readouterr()
    assert other != folder and quiet.out == "" and "rendering views" not in quiet.err
