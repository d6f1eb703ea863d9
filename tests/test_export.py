"""The pictures of point clouds (``points_grid_image``) and their captions / layout helpers."""

from __future__ import annotations

import torch

from zoo.export import caption_image, points_grid_image, side_by_side


def _sphere(n: int = 2048, radius: float = 0.4, center: tuple[float, ...] = (0, 0, 0)):
    g = torch.Generator().manual_seed(0)
    pts = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    return pts * radius + torch.tensor(center)  # (N, 3)


def _drawn(cell: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: pixels that differ from the white background."""
    return (cell < 0.99).any(dim=-1)


def test_grid_tiles_cells_with_one_camera_and_scale():
    size = 64
    big, small = _sphere(radius=0.4), _sphere(radius=0.2)
    high = _sphere(radius=0.2, center=(0.0, 0.25, 0.0))  # moved up (+y, the world up)
    grid = points_grid_image([big, small, high], cols=2, size=size, up_axis="y")
    assert grid.shape == (2 * size, 2 * size, 3)
    cells = [grid[:size, :size], grid[:size, size:], grid[size:, :size]]
    areas = [int(_drawn(c).sum()) for c in cells]
    # Same camera, no per-cell rescaling: half the radius covers about a quarter of the area.
    assert 0.15 < areas[1] / areas[0] < 0.4, areas
    rows = [torch.nonzero(_drawn(c))[:, 0].float().mean() for c in cells[1:]]
    assert rows[1] < rows[0] - 5  # the raised sphere is drawn higher, not re-centred
    assert bool((grid[size:, size:] == 1).all())  # the unused fourth cell stays white


def test_missing_or_degenerate_clouds_are_blank_cells():
    nan = torch.full((100, 3), float("nan"))
    grid = points_grid_image([None, torch.zeros(2, 3), nan, _sphere()], cols=4, size=32)
    assert grid.shape == (32, 128, 3)
    assert bool((grid[:, :96] == 1).all())
    assert _drawn(grid[:, 96:]).any()


def test_caption_and_side_by_side():
    left = torch.ones(40, 100, 3) * 0.5
    right = torch.zeros(60, 30, 3)
    captioned = caption_image(left, "samples: a rather long model name that must fit")
    strip = captioned.shape[0] - 40
    assert 14 <= strip <= 32 and captioned.shape[1] == 100
    assert (captioned[:strip] < 0.5).any()  # some text was drawn
    assert torch.equal(captioned[strip:], left)
    both = side_by_side([left, right], gap=4)
    assert both.shape == (60, 134, 3)
    assert torch.equal(both[:40, :100], left) and bool((both[40:, :100] == 1).all())
    assert torch.equal(both[:, 104:], right) and bool((both[:, 100:104] == 1).all())
