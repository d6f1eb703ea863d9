"""The viewer in a real browser (headless Chromium): models are drawn, a radiance field renders
a new frame when the camera moves, and the benchmark report's 3D view works offline.

Chromium comes from the system (``.ci/run`` installs Debian's ``chromium``); if it cannot start
these tests fail with the reason. ``ZOO_VIEWER_SHOTS=<dir>`` keeps the screenshots.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.viewer.browser import (
    CHROMIUM_ARGS,
    ViewerProcess,
    canvas_pixels,
    centre,
    chromium_path,
    drawn_fraction,
)

pytestmark = pytest.mark.slow
VIEWPORT = {"width": 960, "height": 540}
SHOTS = Path(os.environ["ZOO_VIEWER_SHOTS"]) if os.environ.get("ZOO_VIEWER_SHOTS") else None
# The models, started together (their start-up overlaps): small pretrained weights.
VIEWERS = {
    "mesh": ["pretrained=mesh_gcn-synthshapes", "n_samples=2"],
    "points": ["pretrained=pointflow-synthshapes", "n_points=1024"],
    "ngp": ["pretrained=ngp-synthshapes-chair", "train_cameras=false", "preview_size=32",
            "full_size=96", "video_frames=8", "video_size=32"],
}  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(f"the browser tests need Playwright (pip install -e '.[test]'): {e}")
    exe = chromium_path()
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
    except Exception as e:  # noqa: BLE001  (report any launch failure as the reason)
        pw.stop()
        pytest.fail(f"Chromium at {exe} could not start: {e}")
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def viewers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("viewers")
    procs = {k: ViewerProcess(*args, log=tmp / k / "log.txt") for k, args in VIEWERS.items()}
    yield procs
    for p in procs.values():
        p.stop()


def _open(browser, url: str):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(url)
    page.wait_for_selector("canvas", timeout=30_000)
    return page


def _wait_drawn(page, name: str, timeout: float = 45.0) -> float:
    """Poll the canvas until something covers >= 2% of its centre; the covered fraction."""
    end, frac = time.monotonic() + timeout, 0.0
    while time.monotonic() < end:
        frac = drawn_fraction(centre(canvas_pixels(page)))
        if frac >= 0.02:
            time.sleep(1.0)  # let it settle, then keep the final picture
            shot = SHOTS / f"viewer_{name}.png" if SHOTS else None
            if shot:
                page.screenshot(path=str(shot))
            return drawn_fraction(centre(canvas_pixels(page)))
        time.sleep(0.5)
    return frac


@pytest.mark.parametrize("kind", ["mesh", "points"])
def test_shape_models_are_drawn(browser, viewers, kind):
    page = _open(browser, viewers[kind].wait_url())
    frac = _wait_drawn(page, kind)
    page.close()
    assert frac >= 0.02, f"{kind}: the canvas stayed blank ({frac:.4f} drawn)"


def _frames(page) -> tuple[int, str]:
    """(frames rendered, quality of the last) from the viewer's "frames" field."""
    text = page.evaluate(
        "() => Array.from(document.querySelectorAll('input')).map(i => i.value)"
        ".find(v => /^\\d+ \\((preview|full) /.test(v)) || '0 (none '"
    )
    n, quality = text.split(" (")[0], text.split(" (")[1].split(" ")[0]
    return int(n), quality


def _wait_full_frame(page, after: int, timeout: float = 45.0) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        n, quality = _frames(page)
        if n > after and quality == "full":
            return n
        time.sleep(0.2)
    raise AssertionError(f"no full frame after frame {after} in {timeout} s: {_frames(page)}")


def test_radiance_field_renders_a_new_frame_when_the_camera_moves(browser, viewers):
    page = _open(browser, viewers["ngp"].wait_url())
    first = _wait_full_frame(page, 0)
    time.sleep(0.5)
    before = centre(canvas_pixels(page))
    assert drawn_fraction(before) >= 0.02, "the radiance field's frame is blank"
    box = page.locator("canvas").first.bounding_box()
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 220, y + 40, steps=12)
    page.mouse.up()
    last = _wait_full_frame(page, first)
    time.sleep(0.5)
    after = centre(canvas_pixels(page, SHOTS / "viewer_ngp.png" if SHOTS else None))
    page.close()
    # A preview frame while the camera moved, then the full one once it stopped.
    assert last - first >= 2, (first, last)
    changed = (np.abs(after.astype(int) - before.astype(int)).max(-1) > 24).mean()
    assert drawn_fraction(after) >= 0.02
    assert changed >= 0.01, f"the frame did not change with the camera ({changed:.4f})"


def _wait_file(folder: Path, pattern: str, timeout: float = 60.0) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = sorted(folder.glob(pattern))
        if found:
            time.sleep(0.3)  # written atomically enough for a PNG / GIF of this size
            return found[0]
        time.sleep(0.3)
    raise AssertionError(f"no {pattern} in {folder} after {timeout} s")


def test_snapshot_and_camera_path_video_of_a_radiance_field(browser, viewers):
    import imageio.v3 as iio

    out = viewers["ngp"].log.parent
    page = _open(browser, viewers["ngp"].wait_url())
    _wait_full_frame(page, 0)
    page.get_by_role("button", name="snapshot (PNG)").click()
    shot = iio.imread(_wait_file(out, "ngp_snapshot_*.png"))
    assert shot.shape[0] == 96 and shot.shape[2] == 3
    assert drawn_fraction(shot) >= 0.02, "the snapshot is blank"
    page.get_by_role("button", name="camera-path video").click()
    video = iio.imread(_wait_file(out, "ngp_path_*"), index=None)
    page.close()
    assert video.shape[0] == 8 and video.shape[1] == 32  # 8 frames of an orbit
    assert np.abs(video[0].astype(int) - video[4].astype(int)).max() > 24  # it turns


def _tiny_report(out: Path) -> Path:
    """A benchmark report of one model whose showcase output is a box, the truth a sphere."""
    import imageio.v3 as iio
    import trimesh

    from zoo.benchmark.report import write_report

    (out / "thumbs").mkdir(parents=True)
    (out / "showcase").mkdir()
    iio.imwrite(out / "thumbs" / "00_box.png", np.full((32, 32, 3), 128, np.uint8))
    truth = trimesh.creation.icosphere(3, radius=0.45)
    truth.visual.vertex_colors = np.tile([200, 80, 60, 255], (len(truth.vertices), 1))
    truth.export(out / "showcase" / "00_ground_truth.ply")
    trimesh.creation.box(extents=(0.6, 0.6, 0.8)).export(out / "showcase" / "00_box.ply")
    result = {
        "model": "box",
        "kind": "mesh",
        "metrics": {"show/psnr": 20.0},
        "thumbnail": "thumbs/00_box.png",
        "showcase_files": {
            "prediction": "showcase/00_box.ply",
            "ground_truth": "showcase/00_ground_truth.ply",
        },
    }
    return write_report([result], out, "test")["html"]


def test_report_3d_view_opens_offline_from_files(browser, tmp_path):
    report = _tiny_report(tmp_path / "report")
    page = browser.new_page(viewport=VIEWPORT)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(report.as_uri())
    page.click("a.view3d")
    page.wait_for_selector("canvas", timeout=30_000)
    assert page.url.startswith("file://") and "/views/" in page.url, page.url
    frac = _wait_drawn(page, "report_3d")
    page.close()
    assert frac >= 0.04, f"the 3D view stayed blank ({frac:.4f} drawn)"
    network = [u for u in urls if not u.startswith(("file:", "data:", "blob:"))]
    assert not network, f"the offline report made network requests: {network}"
    assert any("/views/" in u for u in urls)
