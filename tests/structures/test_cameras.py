"""Cameras container and look_at (OpenGL / Blender convention)."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.structures.cameras import Cameras, look_at


def test_from_fov_focal_is_blender_formula():
    angle = 0.6911112070083618  # camera_angle_x of NeRF's synthetic scenes
    cams = Cameras.from_fov(torch.eye(4), 800, 600, angle)
    focal = 0.5 * 800 / math.tan(0.5 * angle)
    torch.testing.assert_close(cams.fx, torch.tensor([focal]))
    torch.testing.assert_close(cams.fy, torch.tensor([focal]))
    assert cams.cx.item() == 400.0 and cams.cy.item() == 300.0
    assert (cams.width, cams.height, len(cams)) == (800, 600, 1)


def test_look_at_is_a_proper_rotation_pointing_at_the_target():
    g = torch.Generator().manual_seed(0)
    eye = torch.randn(16, 3, generator=g) * 3
    target = torch.randn(16, 3, generator=g) * 0.2
    c2w = look_at(eye, target)
    rot = c2w[:, :3, :3]
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, torch.eye(3).expand(16, 3, 3))
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(16))
    torch.testing.assert_close(c2w[:, :3, 3], eye)
    torch.testing.assert_close(c2w[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(16, 4))
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    torch.testing.assert_close(-rot[:, :, 2], forward)  # camera looks along -z
    assert (rot[:, 2, 1] >= 0).all()  # camera up has a non-negative world-z component
    assert rot[:, 2, 0].abs().max() < 1e-6  # camera x is horizontal (up = +z)


def test_look_at_straight_down_the_up_axis_is_still_valid():
    c2w = look_at(torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, -2.0]]))
    rot = c2w[:, :3, :3]
    assert torch.isfinite(rot).all()
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(2))
    torch.testing.assert_close(-rot[:, :, 2], torch.tensor([[0.0, 0, -1], [0, 0, 1]]))


def test_indexing_resizing_and_3x4():
    c2w = look_at(torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0]]))
    cams = Cameras(c2w[:, :3, :], torch.tensor([10.0, 20, 30]), 15.0, 8.0, 6.0, 16, 12)
    assert cams.c2w.shape == (3, 4, 4)
    torch.testing.assert_close(cams.c2w, c2w)
    assert cams.fy.tolist() == [15.0] * 3
    last = cams[-1]
    assert len(last) == 1 and last.fx.item() == 30.0
    assert len(cams[1]) == 1 and cams[1].fx.item() == 20.0
    with pytest.raises(IndexError):
        cams[3]
    assert cams[0:2].fx.tolist() == [10.0, 20.0]
    assert cams[torch.tensor([2, 0])].fx.tolist() == [30.0, 10.0]
    small = cams.resized(8, 6)
    assert (small.width, small.height) == (8, 6)
    torch.testing.assert_close(small.fx, cams.fx / 2)
    torch.testing.assert_close(small.cx, cams.cx / 2)
    torch.testing.assert_close(cams.centers, c2w[:, :3, 3])
    assert cams.to("cpu").c2w.device.type == "cpu"
    with pytest.raises(ValueError, match="c2w"):
        Cameras(torch.zeros(2, 3, 3), 1.0, 1.0, 0.0, 0.0, 4, 4)
