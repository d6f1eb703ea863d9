"""Mesh ray casting against an analytic sphere and a vertex-coloured triangle."""

from __future__ import annotations

import math

import numpy as np
import torch
import trimesh

from zoo.ops.raycast import render_mesh
from zoo.ops.rays import generate_rays
from zoo.structures.cameras import Cameras, look_at

R, D, SIZE = 0.5, 3.0, 101  # sphere radius, camera distance, image size (odd: centre pixel)


def sphere_mesh() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=R)


def sphere_cameras() -> Cameras:
    eye = torch.tensor([[0.0, -D, 0.0], [D, 0.0, 0.0], [0.0, 0.0, D]])
    return Cameras.from_fov(look_at(eye), SIZE, SIZE, math.radians(30))


def test_sphere_depth_mask_normals():
    mesh = sphere_mesh()
    gap = R - np.abs(np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles[:, 0])).min()
    cams = sphere_cameras()
    out = render_mesh(mesh, cams)
    assert out["rgb"].shape == (3, SIZE, SIZE, 3) and out["mask"].dtype == torch.bool
    c = SIZE // 2
    # Centre pixel: the ray is the optical axis and hits the sphere at depth d - r.
    assert (out["depth"][:, c, c] - (D - R)).abs().max() < gap + 1e-5
    # Its normal faces the camera (the mesh is outward oriented).
    to_cam = torch.nn.functional.normalize(cams.centers, dim=-1)
    assert ((out["normal"][:, c, c] * to_cam).sum(-1) > 0.99).all()
    # Silhouette: a disc of radius f * tan(asin(r / d)) pixels.
    r_px = cams.fx[0].item() * math.tan(math.asin(R / D))
    area = out["mask"].sum(dim=(1, 2)).float()
    assert ((area / (math.pi * r_px**2) - 1).abs() < 0.02).all()
    # Depth is the z-depth: o + depth * d (camera z = -1) lies on the sphere.
    o, d = generate_rays(cams)
    hit = o + out["depth"][..., None] * d
    m = out["mask"]
    assert (hit[m].norm(dim=-1) - R).abs().max() < gap + 1e-4
    assert (out["depth"][~m] == 0).all()
    torch.testing.assert_close(out["normal"][m].norm(dim=-1), torch.ones(int(m.sum())))
    assert (out["normal"][~m] == 0).all()


def test_headlight_shading_and_background():
    mesh = sphere_mesh()
    cams = sphere_cameras()[0]
    out = render_mesh(mesh, cams, background=(0.1, 0.2, 0.3), ambient=0.25)
    m = out["mask"][0]
    torch.testing.assert_close(
        out["rgb"][0][~m], torch.tensor([0.1, 0.2, 0.3]).expand(int((~m).sum()), 3)
    )
    _, d = generate_rays(cams, normalize=True)
    cos = (out["normal"][0] * d[0]).sum(-1).abs()
    expected = 0.8 * (0.25 + 0.75 * cos)  # grey albedo 0.8
    torch.testing.assert_close(out["rgb"][0][m], expected[m][:, None].expand(-1, 3))
    c = SIZE // 2
    assert abs(out["rgb"][0, c, c, 0].item() - 0.8) < 1e-3  # facing the light


def test_vertex_colours_are_interpolated_barycentrically():
    """A triangle facing the camera with red, green, blue corners: the colour at each hit,
    divided by the shading, equals the hit's barycentric coordinates."""
    v = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    mesh = trimesh.Trimesh(v, [[0, 1, 2]], process=False)
    mesh.visual.vertex_colors = np.array(
        [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]], dtype=np.uint8
    )
    cams = Cameras.from_fov(
        look_at(torch.tensor([0.0, 0.0, 2.0]), up=(0.0, 1.0, 0.0)), 32, 32, math.radians(90)
    )
    out = render_mesh(mesh, cams, ambient=1.0)  # ambient 1: no shading, rgb = albedo
    m = out["mask"][0]
    assert m.sum() > 100
    o, d = generate_rays(cams)
    hit = (o + out["depth"][..., None] * d)[0][m].double().numpy()  # (K, 3), z = 0
    # Barycentric coordinates of the hits by solving the 2D linear system.
    a = np.array([[v[0, 0], v[1, 0], v[2, 0]], [v[0, 1], v[1, 1], v[2, 1]], [1.0, 1.0, 1.0]])
    rhs = np.stack([hit[:, 0], hit[:, 1], np.ones(len(hit))])
    bary = np.linalg.solve(a, rhs).T  # (K, 3)
    np.testing.assert_allclose(out["rgb"][0][m].numpy(), bary, atol=2e-3)
    assert np.abs(hit[:, 2]).max() < 1e-5
    # Face colours are used as they are.
    mesh2 = trimesh.Trimesh(v, [[0, 1, 2]], process=False)
    mesh2.visual.face_colors = np.array([[0, 255, 0, 255]], dtype=np.uint8)
    rgb = render_mesh(mesh2, cams, ambient=1.0)["rgb"][0][m]
    torch.testing.assert_close(rgb, torch.tensor([0.0, 1.0, 0.0]).expand(len(rgb), 3))


def test_empty_mesh_renders_background():
    cams = sphere_cameras().resized(16, 16)
    out = render_mesh(trimesh.Trimesh(), cams, background=(0.0, 0.0, 0.0))
    assert out["rgb"].shape == (3, 16, 16, 3)
    assert not out["mask"].any()
    assert (out["rgb"] == 0).all() and (out["depth"] == 0).all() and (out["normal"] == 0).all()


def test_chunking_gives_the_same_images():
    cams = sphere_cameras().resized(24, 24)
    a = render_mesh(sphere_mesh(), cams)
    b = render_mesh(sphere_mesh(), cams, chunk=100)
    for k in a:
        assert torch.equal(a[k], b[k])
