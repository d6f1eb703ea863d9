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


def test_gaussians_offer_native_splats_with_their_covariances():
    """A Gaussian model's splats: covariance R S S^T R^T, DC colour, sigmoid opacity; the
    checkbox adds them to the scene and removes them again."""
    import math
    import types

    from zoo.viewer.session import splat_arrays

    half = math.sqrt(0.5)  # a quarter turn about z (w first)
    fake = types.SimpleNamespace(
        means=torch.zeros(1, 3),
        log_scales=torch.log(torch.tensor([[0.1, 0.2, 0.3]])),
        quats=torch.tensor([[half, 0.0, 0.0, half]]),
        opacity_logits=torch.zeros(1),
        sh_dc=torch.zeros(1, 1, 3),
    )
    a = splat_arrays(fake)
    # x and y swap under the quarter turn: diag(0.04, 0.01, 0.09)
    torch.testing.assert_close(
        torch.from_numpy(a["covariances"][0]), torch.diag(torch.tensor([0.04, 0.01, 0.09]))
    )
    assert a["rgbs"].tolist() == [[0.5, 0.5, 0.5]] and a["opacities"].tolist() == [[0.5]]
    assert splat_arrays(types.SimpleNamespace(means=torch.zeros(1, 3))) is None

    model = load_pretrained("gaussians-synthshapes-chair").eval()
    server = start_server("127.0.0.1", free_port(), quiet=True)
    try:
        session = ViewerSession(server, model, ViewOptions())
        assert session._splats is None
        session.show_splats.value = True
        session._toggle_splats()
        assert session._splats is not None
        session.show_splats.value = False
        session._toggle_splats()
        assert session._splats is None
    finally:
        stop_server(server)
