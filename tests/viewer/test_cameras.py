"""Browser camera <-> zoo camera conversions, camera paths, and the render-on-demand state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo.ops.rays import generate_rays
from zoo.structures.cameras import Cameras, look_at
from zoo.viewer.cameras import (
    BrowserPose,
    cameras_to_poses,
    interpolate_path,
    matrix_to_quat,
    orbit_path,
    pose_to_cameras,
    quat_to_matrix,
)
from zoo.viewer.render import RenderState


def _random_rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.mark.parametrize("seed", range(6))
def test_quaternion_round_trip(seed):
    rot = _random_rotation(seed)
    q = matrix_to_quat(rot)
    assert abs(np.linalg.norm(q) - 1) < 1e-9
    np.testing.assert_allclose(quat_to_matrix(q), rot, atol=1e-9)


def _project(cam: Cameras, point: np.ndarray) -> tuple[float, float]:
    """Pixel (u, v) of a world point, OpenGL camera (looks along -z, +y up, v grows down)."""
    w2c = torch.linalg.inv(cam.c2w[0]).double().numpy()
    x, y, z = w2c[:3, :3] @ point + w2c[:3, 3]
    return float(cam.fx[0]) * x / -z + float(cam.cx[0]), -float(cam.fy[0]) * y / -z + float(
        cam.cy[0]
    )


def test_opencv_browser_pose_becomes_the_same_view():
    """A browser camera at (0, -3, 0) looking at the origin with +z up, written by hand in the
    OpenCV convention viser uses (+z forward, +y down): the origin lands on the image centre,
    a point above it in the upper half, a point to its right (+x) in the right half."""
    rot_cv = np.stack([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]], axis=1)  # columns x, y, z
    pose = BrowserPose(tuple(matrix_to_quat(rot_cv)), (0.0, -3.0, 0.0), math.radians(40), 1.5)
    cam = pose_to_cameras(pose, 60)
    assert (cam.width, cam.height) == (90, 60)
    u, v = _project(cam, np.zeros(3))
    assert abs(u - 45) < 1e-4 and abs(v - 30) < 1e-4
    assert _project(cam, np.array([0.0, 0.0, 0.5]))[1] < 30 - 5
    assert _project(cam, np.array([0.5, 0.0, 0.0]))[0] > 45 + 5
    # the vertical field of view: a point at the top edge of the frustum lands on row 0
    top = np.array([0.0, 0.0, 3 * math.tan(math.radians(20))])
    assert abs(_project(cam, top)[1]) < 1e-3
    # and the centre ray of the rendered image points at the origin
    origins, dirs = generate_rays(cam)
    d = dirs[0, 29:31, 44:46].mean(dim=(0, 1))
    assert torch.allclose(
        torch.nn.functional.normalize(d, dim=0), torch.tensor([0.0, 1, 0]), atol=2e-2
    )


def test_zoo_cameras_round_trip_through_browser_poses():
    c2w = look_at(torch.tensor([[1.0, -1.2, 0.7], [0.3, 1.4, 0.2]]))
    cams = Cameras.from_fov(c2w, 80, 50, math.radians(50))
    for i, pose in enumerate(cameras_to_poses(cams)):
        back = pose_to_cameras(pose, cams.height)
        torch.testing.assert_close(back.c2w[0], cams.c2w[i], atol=1e-5, rtol=0)
        assert back.width == cams.width
        assert abs(float(back.fy[0]) - float(cams.fy[i])) < 1e-3


def test_camera_paths_pass_through_keyframes_and_orbit_keeps_distance():
    rot_a, rot_b = _random_rotation(1), _random_rotation(2)
    a = BrowserPose(tuple(matrix_to_quat(rot_a)), (1.0, 0.0, 0.0), 0.8, 1.0)
    b = BrowserPose(tuple(matrix_to_quat(rot_b)), (0.0, 2.0, 0.0), 0.6, 1.0)
    path = interpolate_path([a, b], 5)
    assert len(path) == 5
    np.testing.assert_allclose(quat_to_matrix(np.array(path[0].wxyz)), rot_a, atol=1e-9)
    np.testing.assert_allclose(quat_to_matrix(np.array(path[-1].wxyz)), rot_b, atol=1e-9)
    np.testing.assert_allclose(path[2].position, (0.5, 1.0, 0.0))
    assert abs(path[2].fov - 0.7) < 1e-12
    orbit = orbit_path(a, np.zeros(3), np.array([0.0, 0.0, 1.0]), 8)
    dists = [np.linalg.norm(p.position) for p in orbit]
    np.testing.assert_allclose(dists, 1.0, atol=1e-9)
    np.testing.assert_allclose(orbit[2].position, (0.0, 1.0, 0.0), atol=1e-9)  # a quarter turn


def test_render_state_previews_while_moving_and_renders_full_when_still():
    st = RenderState(still_s=0.25)
    assert st.due(0.0) is None  # no camera yet
    st.camera_moved(BrowserPose((1, 0, 0, 0), (0, 0, 3), 1.0, 1.0), now=10.0)
    assert st.due(10.1) == "preview"
    st.rendered(st.version, "preview")
    assert st.due(10.1) is None  # this pose's preview is on screen, camera still moving
    assert st.due(10.3) == "full"  # stopped: the full frame
    st.rendered(st.version, "full")
    assert st.due(11.0) is None
    st.changed()  # e.g. the model learned: a still camera gets a full frame again
    assert st.due(11.0) == "full"
    version = st.version
    st.camera_moved(BrowserPose((1, 0, 0, 0), (0, 1, 3), 1.0, 1.0), now=11.0)
    st.rendered(version, "full")  # a frame of the previous pose finished after the move
    assert st.due(11.1) == "preview"


def test_render_state_during_training_stays_at_preview():
    st = RenderState(still_s=0.25, full_allowed=False)
    st.camera_moved(BrowserPose((1, 0, 0, 0), (0, 0, 3), 1.0, 1.0), now=0.0)
    assert st.due(5.0) == "preview"
    st.rendered(st.version, "preview")
    assert st.due(5.0) is None
    st.full_allowed = True  # paused
    assert st.due(5.0) == "full"
