"""Occupancy grids for empty-space skipping in radiance fields, and ray marching through one.

:class:`OccupancyGrid` is the grid of Instant-NGP (Müller et al., SIGGRAPH 2022, Sec. 5.4 /
App. E): a coarse voxel grid over the scene box remembering where the density is
non-negligible. NerfAcc (Li et al., "NerfAcc: Efficient Sampling Accelerates NeRFs", ICCV 2023;
``nerfacc.OccGridEstimator``) showed the same estimator accelerates any radiance field, the
original NeRF MLP included (``examples/train_mlp_nerf.py``: 1024 marching steps per box
diagonal, a 128^3 grid, opacity threshold 0.01), which is why it lives here and not in one
model: :func:`occupancy_march` is the sampler both ``model=ngp`` and ``model=nerf`` use, and
``model=mipnerf`` marches its coarse level with the same pieces (:func:`march_candidates`,
whose samples each stand for an interval ``t +- dt / 2`` of the ray, i.e. a conical frustum,
and :func:`march_packed`).

Update rule (every ``update_every`` training steps): every cell's stored density is decayed by
``decay`` (0.95), then ``M`` cells get ``max(stored, sigma(x))`` at a uniformly random point
``x`` of the cell. During the first ``warmup_steps`` (256) every cell is updated; afterwards
``M = update_fraction * R^3`` (paper: 1/2), half drawn uniformly and half among the currently
occupied cells. A cell is occupied when its density exceeds the paper's threshold
``0.01 / step`` (a marching step of that density has opacity ~0.01; ``0.01 * 1024 / sqrt(3)``
for the paper's step ``sqrt(3) / 1024``), capped, as in the reference implementation
(instant-ngp's ``min(NERF_MIN_OPTICAL_THICKNESS, mean density)``), by the mean stored density
so that a young field whose densities are all still below the threshold is not pruned away
entirely (``mean_cap=False`` uses the paper's threshold alone). Before the first update every
cell counts as occupied (nothing is known yet).

Marching (:func:`occupancy_march`, Instant-NGP App. E / NerfAcc's ``sampling``): each ray is
marched through the scene box with a constant metric step from a random offset in training;
samples in empty cells are skipped, and a ray stops once its transmittance falls below
``early_stop_eps`` (1e-4). In PyTorch the march is vectorised: candidate samples form a dense
(rays, steps) array; the occupied ones are gathered and the field is evaluated on them in
``segments`` consecutive slices of the steps, each only for rays still alive after the
previous slices (early termination without evaluating anything twice). The evaluated samples
are composited in packed form with :mod:`zoo.ops.volume_rendering`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from zoo.ops.sampling import ray_box_intersect, uniform_march
from zoo.ops.volume_rendering import composite_packed, render_weights_packed


class OccupancyGrid(nn.Module):
    """A (R, R, R) grid of densities over ``[bbox_min, bbox_max]`` and its occupancy bits.

    Cell ``(i, j, k)`` (i along x) covers ``bbox_min + [i, i + 1) * size / R`` etc.; flat index
    ``(i R + j) R + k``.

    Args:
        resolution: R (paper: 128).
        decay: per-update density decay (paper: 0.95).
        update_every: training steps between updates (paper: 16).
        warmup_steps: steps during which all cells are updated (paper: 256).
        update_fraction: fraction of the cells updated after warm-up (paper: 1/2).
        opacity_threshold: occupancy threshold as the opacity of one marching step (paper:
            0.01); the density threshold is ``opacity_threshold / step``.
        mean_cap: cap the threshold by the grid's mean density (reference implementation).
        chunk: points per density evaluation.
    """

    def __init__(
        self,
        resolution: int = 128,
        decay: float = 0.95,
        update_every: int = 16,
        warmup_steps: int = 256,
        update_fraction: float = 0.5,
        opacity_threshold: float = 0.01,
        mean_cap: bool = True,
        chunk: int = 65536,
    ) -> None:
        super().__init__()
        if not 1 <= resolution <= 256 or not 0.0 < decay <= 1.0 or update_every < 1:
            raise ValueError(
                f"need 1 <= resolution <= 256, 0 < decay <= 1, update_every >= 1; got "
                f"{resolution}, "
                f"{decay}, {update_every}"
            )
        if not 0.0 < update_fraction <= 1.0 or opacity_threshold <= 0.0:
            raise ValueError(
                f"need 0 < update_fraction <= 1 and opacity_threshold > 0, got "
                f"{update_fraction}, {opacity_threshold}"
            )
        self.resolution = int(resolution)
        self.decay = float(decay)
        self.update_every = int(update_every)
        self.warmup_steps = int(warmup_steps)
        self.update_fraction = float(update_fraction)
        self.opacity_threshold = float(opacity_threshold)
        self.mean_cap = bool(mean_cap)
        self.chunk = int(chunk)
        self.step_size = 1.0  # metric marching step; set by the model
        n = self.resolution**3
        self.register_buffer("density_grid", torch.zeros(n))
        self.register_buffer("occupied", torch.ones(n, dtype=torch.bool))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("bbox_min", -torch.ones(3), persistent=False)
        self.register_buffer("bbox_max", torch.ones(3), persistent=False)

    def set_bbox(self, bbox_min: Sequence[float], bbox_max: Sequence[float]) -> None:
        dev = self.density_grid.device
        self.bbox_min = torch.tensor(bbox_min, dtype=torch.float32, device=dev)
        self.bbox_max = torch.tensor(bbox_max, dtype=torch.float32, device=dev)

    def reset(self) -> None:
        """Forget everything: all cells occupied, no updates yet."""
        self.density_grid.zero_()
        self.occupied.fill_(True)
        self.num_updates.zero_()

    @property
    def density_threshold(self) -> float:
        """The paper's density threshold ``opacity_threshold / step`` (before any mean cap)."""
        return self.opacity_threshold / self.step_size

    def current_threshold(self) -> float:
        """The threshold in use: :attr:`density_threshold`, capped by the mean density."""
        thr = self.density_threshold
        if self.mean_cap:
            thr = min(thr, float(self.density_grid.mean()))
        return thr

    def cell_index(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Flat cell index (...,) of world points (..., 3) and whether they are in the box."""
        r = self.resolution
        scale = r / (self.bbox_max - self.bbox_min)  # (3,)
        ijk = ((points - self.bbox_min) * scale).floor()  # (..., 3)
        inside = (ijk >= 0).all(dim=-1) & (ijk < r).all(dim=-1)
        strides = torch.tensor([r * r, r, 1], dtype=ijk.dtype, device=ijk.device)
        # Exact in float32: flat indices stay below 2^24 for R <= 256.
        flat = (ijk.clamp(0, r - 1) * strides).sum(dim=-1).long()
        return flat, inside

    def query(self, points: Tensor) -> Tensor:
        """(...,) bool: the points lie in an occupied cell inside the box."""
        flat, inside = self.cell_index(points)
        return self.occupied[flat] & inside

    def cell_points(self, cells: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A uniformly random world point (M, 3) inside each cell of ``cells`` (M,)."""
        r = self.resolution
        ijk = torch.stack([cells // (r * r), (cells // r) % r, cells % r], dim=-1).float()
        u = torch.rand(len(cells), 3, generator=generator, device=cells.device)
        size = self.bbox_max - self.bbox_min
        return self.bbox_min + (ijk + u) / r * size

    def due(self, step: int) -> bool:
        """Whether training step ``step`` updates the grid."""
        return step % self.update_every == 0

    @torch.no_grad()
    def update(
        self,
        density_fn: Callable[[Tensor], Tensor],
        step: int,
        generator: torch.Generator | None = None,
    ) -> None:
        """One update (see the module docstring); ``density_fn``: world points (N, 3) -> (N,)."""
        n = self.resolution**3
        dev = self.density_grid.device
        if step < self.warmup_steps:
            cells = torch.arange(n, device=dev)
        else:
            m = max(1, int(self.update_fraction * n))
            uniform = torch.randint(0, n, (m // 2,), generator=generator, device=dev)
            occ = self.occupied.nonzero()[:, 0]
            if len(occ) > 0:
                pick = torch.randint(0, len(occ), (m - m // 2,), generator=generator, device=dev)
                cells = torch.cat([uniform, occ[pick]])
            else:
                cells = uniform
        new = torch.empty(len(cells), device=dev)
        for start in range(0, len(cells), self.chunk):
            pts = self.cell_points(cells[start : start + self.chunk], generator)
            new[start : start + len(pts)] = density_fn(pts).reshape(-1).float()
        grid = self.density_grid * self.decay
        grid = grid.scatter_reduce(0, cells, new, reduce="amax", include_self=True)
        self.density_grid.copy_(grid)
        self.occupied.copy_(grid > self.current_threshold())
        self.num_updates += 1

    def occupancy_fraction(self) -> float:
        return float(self.occupied.float().mean())


FieldFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
# (ray index (M,), step index (M,)) -> (sigma (M,), rgb (M, 3)) of those samples of the march.
SampleFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def march_candidates(
    grid: OccupancyGrid,
    origins: Tensor,
    directions: Tensor,
    near: float,
    far: float,
    step_size: float,
    n_steps: int,
    perturb: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """The dense march of :func:`occupancy_march` before any field evaluation.

    Sample ``k`` of ray ``r`` stands for the interval ``t[r, k] +- dt[r] / 2`` of the ray (metric
    length ``step_size``): consecutive samples tile the marched segment without gaps or
    overlaps, which is what cone tracing needs (Mip-NeRF's frustums are intervals, not points).

    Args:
        see :func:`occupancy_march`.
    Returns:
        ``t`` (R, S) interval centres (ray parameter), ``dt`` (R,) interval length in ``t``
        units (``step_size / |d|``), ``candidates`` (R, S) bool: inside the marched segment
        and in an occupied cell.
    """
    if origins.shape != directions.shape or origins.ndim != 2 or origins.shape[-1] != 3:
        raise ValueError(
            f"origins and directions must both be (R, 3), got {tuple(origins.shape)}, "
            f"{tuple(directions.shape)}"
        )
    if step_size <= 0.0 or n_steps < 1:
        raise ValueError(f"need step_size > 0 and n_steps >= 1; got {step_size}, {n_steps}")
    dt = step_size / directions.norm(dim=-1)  # (R,) step in t units
    t_in, t_out = ray_box_intersect(origins, directions, grid.bbox_min, grid.bbox_max)
    t, valid = uniform_march(t_in.clamp_min(near), t_out.clamp_max(far), dt, n_steps, perturb)
    points = origins[:, None, :] + t[..., None] * directions[:, None, :]  # (R, S, 3)
    return t, dt, valid & grid.query(points)


def march_packed(
    sample_fn: SampleFn,
    candidates: Tensor,
    step_size: float,
    early_stop_eps: float = 1e-4,
    segments: int = 4,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Evaluate and weight the candidate samples (R, S) of a march, with early termination.

    The steps are cut into ``segments`` slices; each slice evaluates ``sample_fn`` on its
    candidates of the rays whose optical depth so far is below ``-log(early_stop_eps)``
    (nothing is evaluated twice). Within a slice the samples are packed (ray-major); a slice's
    weights are its local compositing weights times the transmittance left by the previous
    slices, every sample having metric length ``step_size``.

    Returns:
        packed ``weights`` (M,), ``rgb`` (M, 3), ``ray_index`` (M,), ``step_index`` (M,) of the
        evaluated samples (differentiable in ``weights`` and ``rgb``).
    """
    if segments < 1:
        raise ValueError(f"need segments >= 1, got {segments}")
    r, n_steps = candidates.shape
    dev = candidates.device
    tau_max = -math.log(early_stop_eps) if early_stop_eps > 0 else math.inf
    tau = torch.zeros(r, device=dev)  # optical depth of the slices so far (differentiable)
    seg = int(math.ceil(n_steps / segments))
    parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    for s0 in range(0, n_steps, seg):
        alive = tau.detach() < tau_max  # (R,)
        ray_i, col = (candidates[:, s0 : s0 + seg] & alive[:, None]).nonzero(as_tuple=True)
        if len(ray_i) == 0:
            continue
        col = col + s0
        sigma, rgb = sample_fn(ray_i, col)  # (M,), (M, 3)
        w_local, _ = render_weights_packed(sigma, torch.full_like(sigma, step_size), ray_i, r)
        weights = w_local * torch.exp(-tau)[ray_i]
        tau = tau.index_add(0, ray_i, sigma * step_size)
        parts.append((weights, rgb, ray_i, col))
    if not parts:  # nothing to evaluate: keep a graph so that training can backpropagate
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        sigma, rgb = sample_fn(empty, empty)
        parts.append((sigma, rgb, empty, empty))
    weights, rgb, ray_index, step_index = (torch.cat(x) for x in zip(*parts, strict=True))
    return weights, rgb, ray_index, step_index


def occupancy_march(
    field: FieldFn,
    grid: OccupancyGrid,
    origins: Tensor,
    directions: Tensor,
    near: float,
    far: float,
    step_size: float,
    n_steps: int,
    background: Tensor,
    early_stop_eps: float = 1e-4,
    segments: int = 4,
    perturb: bool = False,
) -> dict[str, Tensor]:
    """Render rays by marching through the occupied cells of ``grid`` (see the module docstring).

    Args:
        field: ``(points (M, 3), unit directions (M, 3)) -> (sigma (M,), rgb (M, 3))``.
        grid: the occupancy grid; its box is the scene box marched through.
        origins, directions: (R, 3) rays (directions in ``t`` units, e.g. camera z = -1).
        near, far: the ray segment in ``t`` (clipped to the box).
        step_size: metric marching step (world units).
        n_steps: candidate steps per ray (cover the longest chord of the box).
        background: (3,) colour behind the scene.
        early_stop_eps: transmittance below which a ray stops (Instant-NGP: 1e-4; 0: never).
        segments: slices of the march between early-termination checks.
        perturb: random start offset per ray (training) instead of half a step.
    Returns:
        ``rgb`` (R, 3), ``depth`` (R,), ``opacity`` (R,) and ``samples`` (the number of field
        evaluations, a 0-d tensor).
    """
    if segments < 1:
        raise ValueError(f"need segments >= 1, got {segments}")
    t, _, candidates = march_candidates(
        grid, origins, directions, near, far, step_size, n_steps, perturb
    )
    unit_dirs = directions / directions.norm(dim=-1, keepdim=True)

    def at_samples(ray_i: Tensor, col: Tensor) -> tuple[Tensor, Tensor]:
        points = origins[ray_i] + t[ray_i, col][:, None] * directions[ray_i]  # (M, 3)
        return field(points, unit_dirs[ray_i])

    weights, rgb, ray_i, col = march_packed(
        at_samples, candidates, step_size, early_stop_eps, segments
    )
    out = composite_packed(weights, rgb, t[ray_i, col], ray_i, len(origins), background)
    out["samples"] = torch.tensor(len(ray_i), device=t.device)
    return out


__all__ = ["OccupancyGrid", "march_candidates", "march_packed", "occupancy_march"]
