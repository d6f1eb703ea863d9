"""Points as shaded discs (zoo.ops.point_render) against the mesh ray caster."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from zoo.ops.point_render import estimate_normals, render_points
from zoo.ops.raycast import render_mesh
from zoo.ops.surface import sample_surface
from zoo.structures.cameras import Cameras, look_at


def _camera(eye) -> Cameras:
    return Cameras.from_fov(look_at(torch.tensor(eye)), 96, 96, math.radians(40))


def test_pca_normals_of_a_sphere_are_radial():
    pts, _ = sample_surface(trimesh.creation.icosphere(4, radius=0.4), 3000, seed=0)
    normals, spacing = estimate_normals(pts)
    cos = (normals * torch.nn.functional.normalize(pts, dim=-1)).sum(-1).abs()
    assert float(cos.mean()) > 0.98 and float(spacing.mean()) < 0.02


@pytest.mark.parametrize("eye", [(0.0, -1.6, 0.4), (1.2, 0.8, 0.9)])
def test_true_surface_points_look_like_the_mesh(eye):
    mesh = trimesh.creation.box(extents=(0.6, 0.3, 0.45))
    cams = _camera(eye)
    pts, _ = sample_surface(mesh, 4000, seed=0)
    got, want = render_points(pts, cams), render_mesh(mesh, cams)
    inter = (got["mask"] & want["mask"]).sum().item()
    union = (got["mask"] | want["mask"]).sum().item()
    assert inter / union > 0.85
    both = got["mask"] & want["mask"]
    # Same headlight shading: flat faces get (nearly) the ray caster's grey.
    err = (got["rgb"][both] - want["rgb"][both]).abs().mean().item()
    assert err < 0.06, err
    empty = got["opacity"] < 0.01
    assert bool((got["rgb"][empty] > 0.98).all()) and empty.sum() > 0.5 * empty.numel()


def test_rejects_a_non_cloud():
    with pytest.raises(ValueError, match="points must be"):
        render_points(torch.zeros(2, 3), _camera((0.0, 0.0, 2.0)))
