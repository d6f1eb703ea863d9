"""``model=pointnerf``: a radiance field carried by neural points (Xu, Xu, Philip, Bi, Shu,
Sunkavalli, Neumann, "Point-NeRF: Point-based Neural Radiance Fields", CVPR 2022;
Xharlie/pointnerf), in plain PyTorch on the shared ray-marching ops.

A scene is a set of neural points: positions (fixed, as in the paper's per-scene
optimisation), a feature vector (32 in the paper) and a confidence ``gamma = sigmoid(logit)``.
A shading location is shaded from its ``k`` (paper: 8) nearest points within ``radius``
(:mod:`zoo.ops.point_neighbors`, a voxel hash like the paper's CUDA kernel) by
:class:`~zoo.models.pointnerf.field.PointAggregator`; a location with no point within the
radius is empty space and is never shaded. Rays are marched with a constant step through an
:class:`~zoo.ops.occupancy.OccupancyGrid` whose occupied cells are those within ``radius`` of
a point (recomputed whenever the points change, never from densities), and composited by the
shared :func:`~zoo.ops.occupancy.occupancy_march` (packed samples, early termination).

The points come from, in this order: ``init_ply`` (any point PLY), the capture's sparse
points (``info()["init_points"]`` of the colmap / nerfstudio / scannet loaders, which
``python -m zoo.process`` writes as ``sparse_points.ply``; the paper's "Point-NeRF col"
variant starts from COLMAP points), or ``num_init`` random points in the scene box. At most
``max_points`` slots exist (the reference's ``max_o``); slots are switched on and off, so the
parameter shapes never change (plain Adam, plain checkpoints).

Point growing and pruning (Sec. 3.3): every ``grow_every`` steps, training samples whose
opacity ``1 - exp(-sigma delta)`` exceeded ``grow_opacity`` (reference ``prob_thresh`` 0.7)
and whose nearest point is farther than ``grow_distance`` x radius become new points (one per
cell of that size; the paper takes the most opaque sample of each ray), started with the
inverse-distance mean of their neighbours' features; every ``prune_every`` steps points with
confidence below ``prune_confidence`` (reference ``prune_thresh`` 0.1) are switched off. The
confidence is pushed towards 0 or 1 by the paper's loss ``sum log gamma + log(1 - gamma)``
(weight ``conf_loss_weight``, reference 1e-4).

Optimisation (reference lego setting): Adam, MLP lr 5e-4, point features and confidences lr
``lr_points`` (reference ``plr`` 2e-3), both decayed x0.1 over 1M steps (experiment preset).
Differences from the paper: no MVS depth network (initialisation from points instead, which
the paper evaluates as Point-NeRF col); positions are not jittered by the reference's
``shpnt_jitter``; growing takes every sample above the opacity threshold (not one per ray).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.data.formats.points import read_scene_points
from zoo.data.io import DataError
from zoo.models.nerf.radiance import RadianceFieldModel
from zoo.models.pointnerf.field import PointAggregator
from zoo.models.pointnerf.ply import read_init_points, write_neural_points_ply
from zoo.models.registry import register_model
from zoo.ops.occupancy import OccupancyGrid
from zoo.ops.point_neighbors import PointGrid, radius_knn
from zoo.structures.cameras import Cameras


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@register_model("pointnerf")
class PointNeRF(RadianceFieldModel):
    """Neural points + aggregation networks (see the module docstring for every setting).

    Args:
        aggregator: the :class:`PointAggregator` (its ``feature_dim`` is the points').
        k: neighbours per shading location (paper: 8).
        radius: query radius in scene units; None: ``radius_scale`` x the median distance
            from a starting point to its nearest other (set once, when the points are made).
        radius_scale: see ``radius``.
        num_init: random points in the scene box when the data has none.
        max_points: point slots (the reference's ``max_o``); more starting points are
            subsampled (seeded).
        init_ply: a point PLY to start from (checked when the model is built).
        init_seed: seed of the random points, subsets, features and growth.
        init_confidence: starting gamma of every point.
        grid_resolution: cells per axis of the empty-space grid.
        steps_per_diagonal: marching steps per scene-box diagonal.
        early_stop_eps, march_segments: see :func:`zoo.ops.occupancy.occupancy_march`.
        grow_every, grow_until, grow_opacity, grow_distance, grow_max: growing (0: never).
        prune_every, prune_until, prune_confidence: pruning (0: never).
        conf_loss_weight: weight of the confidence loss.
        lr_points: learning rate of the point features and confidences.
        carve_fraction: random starting points that fall on the background in more than this
            fraction of the training views that see them are dropped before the first step
            (0: never; see :meth:`carve`).
        **kwargs: see :class:`zoo.models.nerf.radiance.RadianceFieldModel`.
    """

    # Growing and pruning edit each rank's point set from its own batch; DDP would keep the
    # rank-0 buffers (positions, active slots) beside other ranks' features.
    ddp_unsupported: ClassVar[str] = (
        "point growing and pruning edit each process's point set from its own rays"
    )

    def __init__(
        self,
        aggregator: PointAggregator,
        k: int = 8,
        radius: float | None = None,
        radius_scale: float = 2.0,
        num_init: int = 20_000,
        max_points: int = 50_000,
        init_ply: str | None = None,
        init_seed: int = 0,
        init_confidence: float = 0.5,
        grid_resolution: int = 64,
        steps_per_diagonal: int = 256,
        early_stop_eps: float = 1e-4,
        march_segments: int = 4,
        grow_every: int = 0,
        grow_until: int = 1_000_000,
        grow_opacity: float = 0.7,
        grow_distance: float = 0.5,
        grow_max: int = 2000,
        prune_every: int = 0,
        prune_until: int = 1_000_000,
        prune_confidence: float = 0.1,
        conf_loss_weight: float = 1e-4,
        lr_points: float = 2e-3,
        carve_fraction: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if k < 1 or num_init < 1 or max_points < 1 or steps_per_diagonal < 2:
            raise ValueError(
                f"need k, num_init, max_points >= 1 and steps_per_diagonal >= 2; got {k}, "
                f"{num_init}, {max_points}, {steps_per_diagonal}"
            )
        if radius is not None and not radius > 0.0:
            raise ValueError(f"radius must be positive (or null), got {radius}")
        if not 0.0 < init_confidence < 1.0 or not radius_scale > 0.0:
            raise ValueError(
                f"need 0 < init_confidence < 1 and radius_scale > 0, got {init_confidence}, "
                f"{radius_scale}"
            )
        self.aggregator = aggregator
        self.k, self.radius_setting, self.radius_scale = int(k), radius, float(radius_scale)
        self.num_init, self.max_points = int(num_init), int(max_points)
        self.init_ply, self.init_seed = init_ply, int(init_seed)
        self.init_confidence = float(init_confidence)
        self.steps_per_diagonal = int(steps_per_diagonal)
        self.early_stop_eps, self.march_segments = float(early_stop_eps), int(march_segments)
        self.grow_every, self.grow_until = int(grow_every), int(grow_until)
        self.grow_opacity, self.grow_distance = float(grow_opacity), float(grow_distance)
        self.grow_max = int(grow_max)
        self.prune_every, self.prune_until = int(prune_every), int(prune_until)
        self.prune_confidence = float(prune_confidence)
        self.conf_loss_weight, self.lr_points = float(conf_loss_weight), float(lr_points)
        self.carve_fraction = float(carve_fraction)
        self._random_start = False  # the points are num_init random ones (carving applies)
        c, n = aggregator.feature_dim, self.max_points
        self.features = nn.Parameter(torch.zeros(n, c))
        self.conf_logits = nn.Parameter(torch.zeros(n))
        self.register_buffer("positions", torch.zeros(n, 3))
        self.register_buffer("active", torch.zeros(n, dtype=torch.bool))
        self.register_buffer("radius", torch.tensor(1.0))
        self.occupancy = OccupancyGrid(resolution=grid_resolution)
        self._grid: PointGrid | None = None  # neighbour search over the active points
        self._slots: Tensor | None = None  # (A,) slot of each active point
        self._grow_pool: list[Tensor] = []
        self._initial: np.ndarray | None = None
        if init_ply is not None:
            self._initial = read_init_points(init_ply)  # DataError now, not mid-training
        self.on_scene_configured()

    # ---- the points ---------------------------------------------------------------------
    @property
    def num_points(self) -> int:
        return int(self.active.sum())

    def configure_from_data(self, info: dict[str, Any]) -> None:
        """Scene bounds from the data (see the base), then the starting points."""
        super().configure_from_data(info)
        self.set_points(self._starting_points(info))

    def _starting_points(self, info: dict[str, Any]) -> Tensor:
        """``init_ply``, else the capture's sparse points (none: random; non-finite ones: a
        :class:`~zoo.data.io.DataError` naming the file), else ``num_init`` random points in
        the scene box; at most ``max_points`` (a seeded subset)."""
        gen = np.random.default_rng(self.init_seed)
        points = self._initial
        source = info.get("init_points")
        if points is None and source and Path(source["path"]).exists():
            scene, _ = read_scene_points(source)
            if not np.isfinite(scene).all():
                raise DataError(source["path"], "init_points", "NaN or infinite point positions")
            points = scene if len(scene) >= 1 else None  # no points: start at random
        self._random_start = points is None
        if points is None:
            lo, hi = np.asarray(self.bbox_min), np.asarray(self.bbox_max)
            points = lo + gen.random((self.num_init, 3)) * (hi - lo)
        if len(points) > self.max_points:
            points = points[gen.choice(len(points), self.max_points, replace=False)]
        return torch.from_numpy(np.asarray(points, dtype=np.float32))

    @torch.no_grad()
    def set_points(self, points: Tensor) -> None:
        """Replace every point by ``points`` (N, 3) (N <= max_points): random features
        (N(0, 0.1^2), the reference's ``feature_init_method=rand``), confidence
        ``init_confidence``, and the query radius when it is derived from the points."""
        n = len(points)
        if not 1 <= n <= self.max_points:
            raise ValueError(f"need 1..{self.max_points} points, got {n}")
        gen = torch.Generator().manual_seed(self.init_seed)
        dev = self.positions.device
        self.positions.zero_()
        self.positions[:n] = points.to(dev)
        self.active.zero_()
        self.active[:n] = True
        feats = torch.randn(self.max_points, self.features.shape[1], generator=gen) * 0.1
        self.features.copy_(feats.to(dev))
        self.conf_logits.fill_(_logit(self.init_confidence))
        if self.radius_setting is not None:
            self.radius.fill_(float(self.radius_setting))
        else:
            self.radius.fill_(self.radius_scale * _median_spacing(points, self.bbox_min))
        self.points_changed()

    def points_changed(self) -> None:
        """Rebuild the neighbour search and the empty-space grid from the active points."""
        self._slots = self.active.nonzero()[:, 0]
        self._grid = PointGrid(self.positions[self._slots], float(self.radius))
        grid = self.occupancy
        r = grid.resolution
        cells, inside = grid.cell_index(self.positions[self._slots])
        vol = torch.zeros(r**3, device=cells.device)
        vol[cells[inside]] = 1.0
        cell = min((hi - lo) / r for lo, hi in zip(self.bbox_min, self.bbox_max, strict=True))
        reach = int(math.ceil(float(self.radius) / cell))  # cells a query radius spans
        vol = vol.reshape(1, 1, r, r, r)
        for axis in range(3):  # a box dilation is three 1-D ones (cheap for any reach)
            size = [1, 1, 1]
            size[axis] = 2 * reach + 1
            pad = [0, 0, 0]
            pad[axis] = reach
            vol = F.max_pool3d(vol, tuple(size), stride=1, padding=tuple(pad))
        grid.occupied.copy_(vol.reshape(-1) > 0)
        grid.num_updates.fill_(1)

    def on_scene_configured(self) -> None:
        super().on_scene_configured()
        if getattr(self, "_slots", None) is not None:
            self.points_changed()

    def reset_scene_state(self) -> None:
        """A fresh copy for another scene starts from fresh points (same rules)."""
        self.set_points(self._starting_points(self.data_info))

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        out = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.points_changed()
        return out

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        out = super()._apply(fn, *args, **kwargs)
        if getattr(self, "_slots", None) is not None:  # the search lives on the points' device
            self.points_changed()
        return out

    def neighbours(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Slots (M, k) of the ``k`` nearest active points within the radius of x (M, 3) (-1:
        none) and their squared distances (M, k) (``inf`` where none)."""
        if self._grid is None or self._slots is None:
            self.points_changed()
        idx, d2 = radius_knn(x, self._grid, self.k)
        return torch.where(idx >= 0, self._slots[idx.clamp_min(0)], -1), d2

    # ---- the field ----------------------------------------------------------------------
    def shade(self, x: Tensor, d: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor]:
        """Density (M,), colour (M, 3) (None when ``d`` is None) and the distance to the
        nearest point (M,) (``inf``: none within the radius, density 0, colour 0) at x."""
        slots, d2 = self.neighbours(x)  # (M, K)
        sigma = x.new_zeros(len(x))
        rgb = x.new_zeros(len(x), 3) if d is not None else None
        nearest = d2[:, 0].sqrt()
        hit = (slots[:, 0] >= 0).nonzero()[:, 0]  # locations with a neighbour
        if len(hit) == 0:  # keep a graph through the parameters for training
            zero = 0.0 * (self.features[:1].sum() + self.conf_logits[:1].sum())
            return sigma + zero, None if rgb is None else rgb + zero, nearest
        s = slots[hit]  # (H, K)
        valid = s >= 0
        s = s.clamp_min(0)
        rel = (x[hit, None, :] - self.positions[s]) / self.radius  # (H, K, 3)
        inv = torch.where(valid, 1.0 / d2[hit].sqrt().clamp_min(1e-6 * float(self.radius)), 0.0)
        w = inv / inv.sum(-1, keepdim=True)  # (H, K) inverse-distance weights
        w = w * torch.sigmoid(self.conf_logits[s])  # times the confidence gamma_i
        sig, col = self.aggregator(self.features[s], rel, w, None if d is None else d[hit])
        sigma = sigma.index_put((hit,), sig)
        if rgb is not None and col is not None:
            rgb = rgb.index_put((hit,), col)
        return sigma, rgb, nearest

    def density(self, points: Tensor) -> Tensor:
        return self.shade(points, None)[0]

    def _field(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        sigma, rgb, nearest = self.shade(x, d)
        if self.training and torch.is_grad_enabled() and self.grow_every > 0:
            alpha = -torch.expm1(-sigma.detach() * self.step_size)
            far = nearest > self.grow_distance * float(self.radius)
            self._grow_pool.append(x[(alpha > self.grow_opacity) & far].detach())
        return sigma, rgb if rgb is not None else sigma.new_zeros(len(x), 3)

    # ---- rendering ----------------------------------------------------------------------
    def render_rays(
        self, origins: Tensor, directions: Tensor, perturb: bool = False
    ) -> dict[str, Tensor]:
        """March rays (R, 3) + (R, 3) through the cells near points: ``rgb`` (R, 3),
        ``depth`` (R,), ``opacity`` (R,), ``samples`` (shading locations evaluated)."""
        return self.march_occupancy(self._field, origins, directions, perturb)

    # ---- training -----------------------------------------------------------------------
    def optimizer_param_groups(self) -> Any:
        points = [self.features, self.conf_logits]
        nets = [p for n, p in self.named_parameters() if n not in ("features", "conf_logits")]
        return [{"params": nets}, {"params": points, "lr": self.lr_points}]

    def photometric_loss(
        self, out: dict[str, Tensor], target: Tensor, weight: Tensor | None = None
    ) -> Tensor:
        """The base MSE plus the paper's confidence loss ``mean log g + log(1 - g)`` over the
        active points (lowest at g in {0, 1})."""
        loss = super().photometric_loss(out, target, weight)
        if self.conf_loss_weight > 0.0:
            g = torch.sigmoid(self.conf_logits[self.active]).clamp(1e-6, 1 - 1e-6)
            loss = loss + self.conf_loss_weight * (g.log() + (1 - g).log()).mean()
        return loss

    def before_train_step(self, step: int) -> None:
        """Growing and pruning on their schedules (never at step 0); no density updates of the
        grid (it follows the points). At step 0 of a Lightning run, random starting points are
        carved by the training views (:meth:`carve`)."""
        if step == 0 and self._random_start and self.carve_fraction > 0.0:
            dm = getattr(self._trainer, "datamodule", None) if self._trainer else None
            if dm is not None and hasattr(dm, "eval_views"):
                self.carve(*dm.eval_views("train"))
        if step > 0 and self.grow_every > 0 and step % self.grow_every == 0:
            if step <= self.grow_until:
                self.grow()
            self._grow_pool.clear()
        if step > 0 and self.prune_every > 0 and step % self.prune_every == 0:
            if step <= self.prune_until:
                self.prune()

    @property
    def random_start(self) -> bool:
        """Whether the points are the ``num_init`` random ones (then :meth:`carve` applies)."""
        return self._random_start

    @torch.no_grad()
    def carve(self, cameras: Cameras, images: Tensor, rounds: int = 8) -> int:
        """Replace the random starting points by as many random points inside the visual hull
        of the training views (B, H, W, 3) (Laurentini, TPAMI 1994): a point is outside when
        it projects onto background pixels (every channel within 2/255 of the data's
        background) in more than ``carve_fraction`` of the views that see it. Fresh random
        points in the box are drawn and tested (at most ``rounds`` batches) until as many as
        before are inside. A cheap start for object-centred scenes on a plain background,
        where random points would fill the whole box; ours, not the paper's (which starts
        from MVS depth). Skipped when less than 5 % of the pixels are background (a real
        photograph) or nothing is inside; returns how many points are inside the hull."""
        dev = self.positions.device
        images = images.to(dev)
        is_bg = ((images - self.background_tensor(images)).abs() <= 2.0 / 255.0).all(-1)
        if float(is_bg.float().mean()) < 0.05:
            return 0
        cameras = cameras.to(dev)
        target = self.num_points
        kept = [
            self.positions[self.active][self._in_hull(self.positions[self.active], cameras, is_bg)]
        ]
        gen = torch.Generator().manual_seed(self.init_seed + 1)
        lo, hi = torch.tensor(self.bbox_min), torch.tensor(self.bbox_max)
        for _ in range(rounds):
            if sum(len(k) for k in kept) >= target:
                break
            fresh = (lo + torch.rand(2 * target, 3, generator=gen) * (hi - lo)).to(dev)
            kept.append(fresh[self._in_hull(fresh, cameras, is_bg)])
        inside = torch.cat(kept)[:target]
        if len(inside) == 0:
            return 0
        self.set_points(inside)
        return len(inside)

    def _in_hull(self, pos: Tensor, cameras: Cameras, is_bg: Tensor) -> Tensor:
        """(N,) bool: points (N, 3) on the background in at most ``carve_fraction`` of the
        views that see them (:meth:`carve`)."""
        seen = torch.zeros(len(pos), device=pos.device)
        on_bg = torch.zeros(len(pos), device=pos.device)
        h, w = is_bg.shape[1:]
        for i in range(len(cameras)):
            c2w = cameras.c2w[i]
            local = (pos - c2w[:3, 3]) @ c2w[:3, :3]  # (N, 3) camera frame, looking down -z
            depth = -local[:, 2]
            z = depth.clamp_min(1e-6)
            u = cameras.cx[i] + cameras.fx[i] * local[:, 0] / z  # pixels (zoo.ops.rays)
            v = cameras.cy[i] - cameras.fy[i] * local[:, 1] / z
            inside = (depth > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
            ui, vi = u.long().clamp(0, w - 1), v.long().clamp(0, h - 1)
            seen += inside.float()
            on_bg += (inside & is_bg[i, vi, ui]).float()
        return on_bg <= self.carve_fraction * seen

    @torch.no_grad()
    def grow(self) -> int:
        """Add the pooled candidates (see the module docstring); returns how many."""
        if not self._grow_pool:
            return 0
        cand = torch.cat(self._grow_pool)
        self._grow_pool.clear()
        free = (~self.active).nonzero()[:, 0]
        if len(cand) == 0 or len(free) == 0:
            return 0
        cell = self.grow_distance * float(self.radius)
        _, first = _unique_rows(torch.floor(cand / cell).long())
        cand = cand[first]
        slots, d2 = self.neighbours(cand)
        keep = d2[:, 0].sqrt() > cell  # still far from every point
        cand, slots, d2 = cand[keep], slots[keep], d2[keep]
        gen = torch.Generator().manual_seed(self.init_seed + int(self.num_points))
        order = torch.randperm(len(cand), generator=gen)[: min(self.grow_max, len(free))]
        order = order.to(cand.device)
        cand, slots, d2 = cand[order], slots[order], d2[order]
        if len(cand) == 0:
            return 0
        inv = torch.where(slots >= 0, 1.0 / d2.sqrt().clamp_min(1e-6), 0.0)
        w = inv / inv.sum(-1, keepdim=True).clamp_min(1e-12)  # (G, K)
        new = free[: len(cand)]
        self.features[new] = (w[..., None] * self.features[slots.clamp_min(0)]).sum(1)
        self.conf_logits[new] = _logit(self.init_confidence)
        self.positions[new] = cand
        self.active[new] = True
        self.points_changed()
        return len(new)

    def fit_views(
        self, cameras: Cameras, images: Tensor, steps: int, rays_per_batch: int, seed: int = 0
    ) -> list[float]:
        """The base loop, after carving random starting points by these views."""
        if self._random_start and self.carve_fraction > 0.0:
            self.carve(cameras, images)
        return super().fit_views(cameras, images, steps, rays_per_batch, seed)

    @torch.no_grad()
    def prune(self) -> int:
        """Switch off points with confidence below ``prune_confidence`` (never the last one);
        returns how many."""
        low = self.active & (torch.sigmoid(self.conf_logits) < self.prune_confidence)
        n = int(low.sum())
        if n == 0 or n >= self.num_points:
            return 0
        self.active &= ~low
        self.points_changed()
        return n

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = super().training_step(batch, batch_idx)
        self.log("train/points", float(self.num_points), prog_bar=True, batch_size=1)
        return loss

    # ---- outputs ------------------------------------------------------------------------
    @torch.no_grad()
    def point_colors(self, chunk: int = 16384) -> Tensor:
        """(A, 3) colour of the field at each active point, averaged over the six axis
        directions (the PLY's ``red green blue``)."""
        pos = self.positions[self.active]
        dirs = torch.cat([torch.eye(3), -torch.eye(3)]).to(pos)  # (6, 3)
        out = torch.zeros(len(pos), 3, device=pos.device)
        for start in range(0, len(pos), chunk):
            p = pos[start : start + chunk]
            for d in dirs:
                rgb = self.shade(p, d.expand(len(p), 3))[1]
                out[start : start + len(p)] += rgb / len(dirs)
        return out

    def save_ply(self, path: str) -> Path:
        """The active neural points as a PLY (:mod:`zoo.models.pointnerf.ply`)."""

        def a(t: Tensor) -> np.ndarray:
            return t.detach().float().cpu().numpy()

        was_training = self.training
        self.eval()
        try:
            colors = a(self.point_colors())
        finally:
            self.train(was_training)
        return write_neural_points_ply(
            path,
            a(self.positions[self.active]),
            colors,
            a(torch.sigmoid(self.conf_logits[self.active])),
            a(self.features[self.active]),
        )

    def export_files(self, shape: Any, stem: Any) -> list[Any]:
        """Extra files ``python -m zoo.sample`` writes for this model: the neural points."""
        model = self if shape is None else shape
        return [model.save_ply(str(stem) + "_neural_points.ply")]


def _median_spacing(points: Tensor, bbox_min: Any) -> float:
    """Median distance from a point to its nearest other (scipy's k-d tree); 1 % of the
    points' extent for fewer than two points."""
    if len(points) < 2:
        return 0.01 * max(1.0, float(np.abs(np.asarray(bbox_min)).max()))
    from scipy.spatial import cKDTree

    pts = points.detach().cpu().numpy()
    dist, _ = cKDTree(pts).query(pts, k=2)
    spacing = float(np.median(dist[:, 1]))
    if spacing <= 0.0:  # duplicated points: fall back on the mean over distinct ones
        spacing = float(dist[:, 1][dist[:, 1] > 0].mean()) if (dist[:, 1] > 0).any() else 0.01
    return spacing


def _unique_rows(keys: Tensor) -> tuple[Tensor, Tensor]:
    """Unique rows of (M, 3) integer keys and the index of each one's first occurrence."""
    uniq, inverse = torch.unique(keys, dim=0, return_inverse=True)
    first = torch.full((len(uniq),), len(keys), dtype=torch.long, device=keys.device)
    first = first.scatter_reduce(0, inverse, torch.arange(len(keys), device=keys.device), "amin")
    return uniq, first


__all__ = ["PointNeRF"]
