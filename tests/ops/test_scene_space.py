"""NeRF's NDC rays and mip-NeRF 360's contraction: their defining properties, checked against
the projection they stand for."""

from __future__ import annotations

import torch

from zoo.ops.scene_space import contract, inverse_contract, ndc_rays


def _ndc_project(x: torch.Tensor, w: int, h: int, f: float, near: float) -> torch.Tensor:
    """NeRF App. C's projection of camera-frame points (z < 0): a naive reference."""
    return torch.stack(
        [
            -(2 * f / w) * x[:, 0] / x[:, 2],
            -(2 * f / h) * x[:, 1] / x[:, 2],
            1 + 2 * near / x[:, 2],
        ],
        -1,
    )


def test_ndc_rays_follow_the_projected_world_rays():
    gen = torch.Generator().manual_seed(0)
    w, h, f, near = 40, 30, 35.0, 1.0
    o = torch.randn(50, 3, generator=gen, dtype=torch.float64) * 0.2
    d = torch.randn(50, 3, generator=gen, dtype=torch.float64) * 0.2
    d[:, 2] = -1.0  # forward-facing rays
    o_n, d_n = ndc_rays(o, d, w, h, f, near)
    # Origins land on the near plane (z' = -1); t' = 1 is infinity (z' = 1).
    assert torch.allclose(o_n[:, 2], torch.full((50,), -1.0, dtype=torch.float64))
    assert torch.allclose((o_n + d_n)[:, 2], torch.ones(50, dtype=torch.float64))
    # Every world point o + t d beyond the near plane projects onto the NDC ray at
    # t' = 1 - oz / (oz + t dz), with oz taken on the near plane.
    t0 = -(near + o[:, 2]) / d[:, 2]
    o_near = o + t0[:, None] * d
    for t in (0.5, 2.0, 10.0):
        x = o_near + t * d
        t_ndc = 1 - o_near[:, 2] / (o_near[:, 2] + t * d[:, 2])
        assert torch.allclose(
            o_n + t_ndc[:, None] * d_n, _ndc_project(x, w, h, f, near), atol=1e-10
        )


def test_contraction_properties():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1000, 3, generator=gen, dtype=torch.float64) * 5
    y = contract(x)
    inside = x.norm(dim=-1) <= 1
    assert torch.equal(y[inside], x[inside])  # identity in the unit ball
    assert (y.norm(dim=-1) < 2).all()  # everything within radius 2
    # Radial: directions kept, norms monotone (2 - 1/|x| outside).
    assert torch.allclose(
        torch.nn.functional.normalize(y, dim=-1), torch.nn.functional.normalize(x, dim=-1)
    )
    r = x.norm(dim=-1)
    assert torch.allclose(y.norm(dim=-1)[~inside], 2 - 1 / r[~inside])
    # Continuous at the boundary, invertible.
    unit = torch.nn.functional.normalize(x, dim=-1)
    assert torch.allclose(contract(unit * (1 + 1e-9)), unit, atol=1e-8)
    assert torch.allclose(inverse_contract(y), x, atol=1e-8)
    # nerfacto's L-infinity version fits the cube of half-size 2.
    assert (contract(x, order=float("inf")).abs().amax(-1) < 2).all()


class _SkyField(torch.nn.Module):
    """Density 50 where the (contracted) point lies beyond radius 1.96, i.e. a world shell
    starting at |x| = 1 / (2 - 1.96) = 25; white there."""

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return 50.0 * (x.norm(dim=-1) > 1.96).float()

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.density(x), torch.ones_like(x)


def test_nerf_with_contraction_reaches_far_geometry():
    """With data ray_space=contract, nerf's sampler
    (half uniform to 1, half linear in disparity to far = 1000) finds a shell at distance 25 (and
    nothing when far = 20); a
    model that cannot contract refuses the data."""
    import pytest

    from zoo.models.nerf import NeRF

    info = {"form": "views", "near": 0.05, "far": 1000.0, "background": [0.0, 0.0, 0.0],
            "bbox_min": [-2.0] * 3, "bbox_max": [2.0] * 3, "ray_space": "contract"}  # fmt: skip
    model = NeRF(_SkyField(), num_samples=128)
    model.configure_from_data(info)
    d = torch.nn.functional.normalize(
        torch.randn(16, 3, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    out = model.render_ray_batch(torch.zeros(16, 3), d)
    assert (out["opacity"] > 0.99).all()
    # The first sample inside the shell (coarse out there: 64 samples share [1, 1000]).
    assert ((out["depth"] > 25.0) & (out["depth"] < 60.0)).all()
    short = NeRF(_SkyField(), num_samples=128)  # the same sampler stopping short of it
    short.configure_from_data({**info, "far": 20.0})
    assert (short.render_ray_batch(torch.zeros(16, 3), d)["opacity"] < 1e-6).all()
    from zoo.ops.occupancy import OccupancyGrid

    with pytest.raises(ValueError, match="does not support scene contraction"):
        NeRF(_SkyField(), occupancy=OccupancyGrid(resolution=8)).configure_from_data(info)
