"""``zoo.process``: six neighbouring real lego views (400 px) register, their recovered poses
match the true ones up to a similarity, the output loads as ``data=nerfstudio`` and
``data=colmap``; bad input fails with one ``error:`` line, exit 2 and nothing written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.helpers.shared_data import REAL
from zoo.data.io import DataError
from zoo.ops.camera_math import apply_transform, similarity_align

pycolmap = pytest.importorskip("pycolmap")

LEGO = REAL / "nerf" / "lego_800_100views"
VIEWS = [0, 41, 42, 64, 67, 75]  # view 0 and its five nearest cameras (0.6-0.9 apart, radius 4)
REPO = Path(__file__).resolve().parents[2]


def _zoo_process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo.process", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _rot_err_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (np.einsum("nij,nij->n", a, b) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.mark.skipif(not LEGO.is_dir(), reason=f"shared real data absent: {LEGO}")
def test_process_registers_lego_views_and_writes_a_loadable_scene(tmp_path):
    from zoo.data.captures import ColmapDataModule, NerfstudioDataModule
    from zoo.sfm import process

    src = tmp_path / "photos"
    src.mkdir()
    frames = json.loads((LEGO / "transforms_train.json").read_text())["frames"]
    true = {}
    for i in VIEWS:
        shutil.copy(LEGO / "train" / f"r_{i}.png", src / f"r_{i}.png")
        true[f"r_{i}.png"] = np.array(frames[i]["transform_matrix"])
    out = tmp_path / "scene"
    result = process(src, out, camera_model="SIMPLE_PINHOLE", downscale=2, progress=False)
    assert result.unregistered == [] and len(result.registered) == len(VIEWS)
    assert result.summary["matcher"] == "exhaustive" and result.num_points > 100
    assert result.summary["mapper"] == "global"  # the default
    record = json.loads((out / "process.json").read_text())
    assert record["registered"] == len(VIEWS) and record["refine"] is True
    # Six close views: none dropped; a view tied to the others by only one pair of >= 30
    # matches (r_67 has 111 with r_0, about 30 with r_41) is re-posed against them, one line.
    info = result.summary
    assert record["dropped"] == [] == info["dropped"]
    assert sorted(info["kept"] + info["reposed"]) == sorted(result.registered)
    assert record["kept"] >= 4 and len(info["notes"]) == len(info["reposed"])
    assert set(record["times_s"]) >= {"features_s", "mapping_s", "refine_s", "total_s"}

    meta = json.loads((out / "transforms.json").read_text())
    est = np.stack([np.array(f["transform_matrix"]) for f in meta["frames"]])
    names = [Path(f["file_path"]).name for f in meta["frames"]]
    gt = np.stack([true[n] for n in names])
    # The stored normalisation: the written cameras are centred and inside the unit box.
    assert np.allclose(est[:, :3, 3].mean(0), 0, atol=1e-9)
    assert np.isclose(np.abs(est[:, :3, 3]).max(), 1.0)
    # Up to a similarity the poses are the true ones (generous bounds for 6 views at 400 px).
    s, r, t = similarity_align(est[:, :3, 3], gt[:, :3, 3])
    aligned = apply_transform(est, np.concatenate([r, t[:, None] / s], 1), s)
    assert _rot_err_deg(aligned[:, :3, :3], gt[:, :3, :3]).max() < 2.0
    err = np.linalg.norm(aligned[:, :3, 3] - gt[:, :3, 3], axis=1) / 4.0  # camera distance 4
    assert err.max() < 0.03
    # The focal length found is near the true one (1111.1 px at 800 px -> 555.6 at 400 px; six
    # close views constrain it weakly: 522.7 here, while the initial guess 1.2 W is 480).
    assert meta["frames"][0]["fl_x"] == pytest.approx(555.56, rel=0.1)

    _one_turned_view_is_named(out)

    ns = NerfstudioDataModule(out, holdout_every=0)
    cm = ColmapDataModule(out, holdout_every=0)
    n_ns, n_cm = len(ns.scene.splits["train"].cameras), len(cm.scene.splits["train"].cameras)
    assert n_ns == n_cm == len(VIEWS)
    assert ns.info()["init_points"]["path"].endswith("sparse_points.ply")
    assert np.allclose(ns.points, cm.points, atol=1e-4)  # same normalisation both ways

    # Run again into the same folder: refused without overwrite=true, nothing touched.
    before = (out / "transforms.json").read_bytes()
    with pytest.raises(DataError, match="transforms.json: field 'out': exists"):
        process(src, out, progress=False)
    assert (out / "transforms.json").read_bytes() == before


def _one_turned_view_is_named(out: Path) -> None:
    """zoo.sfm.check on the written reconstruction: its poses agree with nearly all verified
    matches; one view turned by 3 degrees about its own y axis (same centre) disagrees with
    all of its matches and is named (a neighbour that shares most of its matches with it may
    be named too: with six views each has only five partners)."""
    from zoo.sfm.check import contradicted_views, match_agreement

    rec = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    db = out / "colmap" / "database.db"
    for agree, disagree in match_agreement(rec, db).values():
        assert disagree < 0.1 * (agree + disagree)
    image = next(im for im in rec.images.values() if im.name == "r_0.png")
    frame = rec.frames[image.frame_id]
    half = np.radians(3.0) / 2
    turn = pycolmap.Rigid3d(
        pycolmap.Rotation3d(np.array([0, np.sin(half), 0, np.cos(half)])), np.zeros(3)
    )
    frame.rig_from_world = turn * frame.rig_from_world
    counts = match_agreement(rec, db)
    assert counts[image.image_id][0] == 0  # 3 degrees is ~29 px at f = 555 px: none agree
    assert "r_0.png" in contradicted_views(rec, db)
    assert all(agree > 0 for k, (agree, _) in counts.items() if k != image.image_id)


@pytest.mark.parametrize("case", ["empty", "sizes", "unreadable", "mapper", "pair_matches"])
def test_process_bad_input_names_file_and_field_writes_nothing(tmp_path, case):
    from zoo.sfm import process

    src = tmp_path / "photos"
    src.mkdir()
    img = np.full((20, 24, 3), 128, np.uint8)
    if case != "empty":
        for i in range(4):
            iio.imwrite(src / f"{i}.png", img)
    if case == "sizes":
        iio.imwrite(src / "2.png", img[:10])
    if case == "unreadable":
        (src / "3.png").write_bytes(b"not an image")
    words = {
        "empty": f"{src}: field 'images': no images",
        "sizes": "2.png: field 'images': image is 24x10 but 0.png is 24x20",
        "unreadable": "3.png: field 'images': not a readable image",
        "mapper": f"{src}: field 'mapper': must be 'global' or 'incremental', got 'glomap'",
        "pair_matches": f"{src}: field 'min_pair_matches': must be a positive integer, got 0",
    }[case]
    out = tmp_path / "out"
    with pytest.raises(DataError, match=re.escape(words)):
        process(
            src,
            out,
            mapper="glomap" if case == "mapper" else "global",
            min_pair_matches=0 if case == "pair_matches" else 30,
            progress=False,
        )
    assert not out.exists()
    if case == "sizes":  # the command line: one error line, exit 2, no traceback
        proc = _zoo_process(f"images={src}", f"out={out}")
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {src / '2.png'}: field 'images'")
        assert words in lines[0] and "Traceback" not in proc.stderr and not out.exists()


@pytest.mark.skipif(not LEGO.is_dir(), reason=f"shared real data absent: {LEGO}")
def test_process_video_uses_sequential_matching(tmp_path):
    """A video (the six views as H.264 frames at 400 px) is split into frames, matched
    sequentially and registered; here by the incremental mapper (the lego test above runs the
    default global one), without the final refinement."""
    pytest.importorskip("imageio_ffmpeg")
    from zoo.data.formats.blender import read_image
    from zoo.sfm import process

    frames = []
    for i in VIEWS:
        x = read_image(LEGO / "train" / f"r_{i}.png")
        rgb = (x[..., :3] * x[..., 3:] + 1 - x[..., 3:]).reshape(400, 2, 400, 2, 3).mean((1, 3))
        frames.append((rgb * 255).round().astype(np.uint8))
    video = tmp_path / "walk.mp4"
    iio.imwrite(video, np.stack(frames), fps=2)
    result = process(
        video,
        tmp_path / "scene",
        camera_model="SIMPLE_PINHOLE",
        mapper="incremental",
        refine=False,
        progress=False,
    )
    assert result.summary["matcher"] == "sequential"
    assert result.summary["mapper"] == "incremental" and "refine_s" not in result.times
    assert result.registered == [f"frame_{i:05d}.png" for i in range(1, 7)]
