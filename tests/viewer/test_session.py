"""A viewer session without a browser: what the controls draw (seeds, interpolation, cubes)."""

from __future__ import annotations

import pytest
import torch

from tests.viewer.browser import free_port
from zoo.pretrained import load_pretrained
from zoo.viewer.server import start_server, stop_server
from zoo.viewer.session import ViewerSession, ViewOptions


@pytest.fixture(scope="module")
def voxel_session():
    model = load_pretrained("voxel_gan-synthshapes").eval()
    server = start_server("127.0.0.1", free_port(), quiet=True)
    session = ViewerSession(server, model, ViewOptions(seed=3, n_samples=2))
    yield session
    stop_server(server)


def test_seeded_samples_are_the_models_samples(voxel_session):
    s = voxel_session
    shapes = s._shapes()
    expected = s.model.sample(2, seed=3)
    assert len(shapes) == 2
    for a, b in zip(shapes, expected, strict=True):
        torch.testing.assert_close(a, b)
    s.seed.value = 4
    assert not torch.equal(s._shapes()[0], expected[0])  # a new seed, a new shape
    s.seed.value = 3


def test_interpolation_runs_from_one_seed_to_the_other(voxel_session):
    s = voxel_session
    s.interp_on.value, s.seed_b.value = True, 9
    try:
        s.interp_t.value = 0.0
        (start,) = s._shapes()
        s.interp_t.value = 1.0
        (end,) = s._shapes()
        s.interp_t.value = 0.5
        (mid,) = s._shapes()
    finally:
        s.interp_on.value = False
    torch.testing.assert_close(start, s.model.sample(1, seed=3)[0])
    torch.testing.assert_close(end, s.model.sample(1, seed=9)[0])
    assert not torch.equal(mid, start) and not torch.equal(mid, end)


def test_voxels_drawn_as_cubes_or_surface(voxel_session):
    s = voxel_session
    s.display.value = "cubes"
    s._draw_shapes()
    assert len(s._sample_handles) == 2 and "faces" in s.status.content
    cubes = int(s.status.content.split(", ")[1].split(" ")[0])
    s.display.value = "surface"
    s._draw_shapes()
    surface = int(s.status.content.split(", ")[1].split(" ")[0])
    assert cubes > 0 and surface > 0 and cubes != surface
    assert cubes % 12 == 0  # whole cubes
