"""Adaptive density control of 3D Gaussians (Kerbl et al. 2023, Sec. 5.2), kept apart from the
model as a strategy object, as gsplat's ``strategy/default.py`` does: the model is a set of
parameters plus a renderer; this decides when to clone, split, prune and reset opacities, and
edits the parameters and the Adam moments in place.

Reference settings (graphdeco-inria/gaussian-splatting ``arguments/__init__.py`` and
``GaussianModel.densify_and_prune``), counting optimisation steps from 1:

- statistics: the norm of the view-space positional gradient (of the projected means, in
  normalised device coordinates: pixel gradients times W/2, H/2) accumulated over the views in
  which a Gaussian is visible, and its largest screen radius;
- every ``refine_every`` (100) steps after ``refine_start`` (500) and before ``refine_stop``
  (15000): Gaussians with mean gradient >= ``grad_threshold`` (0.0002) are **cloned** if their
  largest scale is <= ``percent_dense`` (0.01) x the scene extent, else **split** into
  ``split_n`` (2) samples drawn from the Gaussian itself with scales divided by 0.8 ``split_n``;
  then Gaussians with opacity < ``prune_opacity`` (0.005) are **pruned**, and after the first
  opacity reset also those with a screen radius > ``prune_screen_size`` (20 px) or a world
  scale > ``prune_world_size`` (0.1) x extent; the statistics restart;
- every ``reset_every`` (3000) steps (before ``refine_stop``) opacities are **reset** to at most
  0.01 (their Adam moments zeroed).

Several processes (DDP): every rank keeps a full copy of the Gaussians and renders its own
views. Before each densification the statistics are summed (maximum for the screen radii) over
the ranks (:func:`reduce_stats`), so every rank decides the same clones, splits and prunes, and
rank 0's result is then broadcast (:func:`broadcast_gaussians`: the splits' random samples
agree too). DDP's gradient reducer, built over the parameter tensors that existed when it
wrapped the model, cannot follow the tensors that densification puts in their place: the model
switches it off and averages its gradients itself (:func:`average_gradients`).

``max_gaussians`` (not in the paper) caps the count: when densification would exceed it, only
the candidates with the largest gradients are cloned / split. The step is taken after the
optimiser step (gsplat's order; the reference densifies just before it, so its new Gaussians
skip one update).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from zoo.ops.splatting import Projected, quaternion_to_matrix


def _torch_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimiser behind a Lightning wrapper (or the optimiser itself)."""
    return getattr(optimizer, "optimizer", optimizer)


def edit_gaussians(
    model: nn.Module, optimizer: Any, edit: Callable[[str, Tensor, bool], Tensor]
) -> None:
    """Replace every per-Gaussian parameter ``p`` by ``edit(name, p, False)`` and its Adam
    moments ``m`` by ``edit(name, m, True)`` (a new ``nn.Parameter`` registered in place of the
    old one, in the model and in the optimiser's param group); per-Gaussian buffers follow
    with ``edit(name, b, True)``."""
    opt = _torch_optimizer(optimizer) if optimizer is not None else None
    for name in model.GAUSSIAN_PARAMS:
        old = getattr(model, name)
        new = nn.Parameter(edit(name, old.detach(), False).contiguous())
        if opt is not None:
            for group in opt.param_groups:
                for i, p in enumerate(group["params"]):
                    if p is old:
                        group["params"][i] = new
                        state = opt.state.pop(old, None)
                        if state:
                            opt.state[new] = {
                                k: (edit(name, v, True).contiguous() if k != "step" else v)
                                for k, v in state.items()
                            }
        setattr(model, name, new)
    for name in model.GAUSSIAN_BUFFERS:
        setattr(model, name, edit(name, getattr(model, name), True).contiguous())


class DensityControl:
    """Clone / split / prune / opacity reset (see the module docstring for every setting)."""

    def __init__(
        self,
        refine_start: int = 500,
        refine_stop: int = 15000,
        refine_every: int = 100,
        reset_every: int = 3000,
        grad_threshold: float = 0.0002,
        percent_dense: float = 0.01,
        split_n: int = 2,
        prune_opacity: float = 0.005,
        prune_screen_size: float = 20.0,
        prune_world_size: float = 0.1,
        max_gaussians: int | None = None,
    ) -> None:
        if refine_every < 1 or reset_every < 1 or split_n < 2 or grad_threshold <= 0:
            raise ValueError(
                f"need refine_every, reset_every >= 1, split_n >= 2, grad_threshold > 0; got "
                f"{refine_every}, {reset_every}, {split_n}, {grad_threshold}"
            )
        self.refine_start, self.refine_stop = int(refine_start), int(refine_stop)
        self.refine_every, self.reset_every = int(refine_every), int(reset_every)
        self.grad_threshold = float(grad_threshold)
        self.percent_dense = float(percent_dense)
        self.split_n = int(split_n)
        self.prune_opacity = float(prune_opacity)
        self.prune_screen_size = float(prune_screen_size)
        self.prune_world_size = float(prune_world_size)
        self.max_gaussians = None if max_gaussians is None else int(max_gaussians)

    # ---- statistics ---------------------------------------------------------------------
    @torch.no_grad()
    def update_stats(self, model: nn.Module, proj: Projected, width: int, height: int) -> None:
        """Accumulate the NDC positional gradient norm and the largest screen radius of the
        Gaussians visible in this view (call after ``backward``)."""
        grad = proj.means2d.grad
        if grad is None:
            return
        ndc = grad * torch.tensor([width / 2.0, height / 2.0], device=grad.device)
        vis = proj.radii > 0
        model.grad_accum[vis] += ndc[vis].norm(dim=-1)
        model.grad_count[vis] += 1
        model.max_radii[vis] = torch.maximum(model.max_radii[vis], proj.radii[vis].float())

    # ---- the schedule -------------------------------------------------------------------
    @torch.no_grad()
    def step(self, model: nn.Module, optimizer: Any, step: int) -> dict[str, int]:
        """Run what is due after optimisation step ``step`` (counted from 1). Returns the
        number of Gaussians cloned, split and pruned, and whether opacities were reset."""
        done = {"cloned": 0, "split": 0, "pruned": 0, "reset": 0}
        if step >= self.refine_stop:
            return done
        if step > self.refine_start and step % self.refine_every == 0:
            done.update(self.densify_and_prune(model, optimizer, step))
        if step % self.reset_every == 0:
            self.reset_opacity(model, optimizer)
            done["reset"] = 1
        return done

    def densify_and_prune(self, model: nn.Module, optimizer: Any, step: int) -> dict[str, int]:
        reduce_stats(model)  # every rank decides on the statistics of all ranks' views
        done = self._densify_and_prune(model, optimizer, step)
        broadcast_gaussians(model)
        return done

    def _densify_and_prune(self, model: nn.Module, optimizer: Any, step: int) -> dict[str, int]:
        extent = float(model.scene_extent)
        grads = model.grad_accum / model.grad_count.clamp_min(1)  # (N,)
        big = model.log_scales.exp().amax(-1) > self.percent_dense * extent  # (N,)
        cand = grads >= self.grad_threshold
        clone, split = cand & ~big, cand & big
        if self.max_gaussians is not None:
            room = max(0, self.max_gaussians - len(grads))
            need = int(clone.sum()) + (self.split_n - 1) * int(split.sum())
            if need > room:  # keep the largest gradients that fit
                order = torch.argsort(torch.where(cand, grads, -1.0), descending=True)
                cost = torch.where(split, self.split_n - 1, 1)[order]
                fits = torch.zeros_like(cand)
                fits[order] = (torch.cumsum(cost, 0) <= room) & cand[order]
                clone, split = clone & fits, split & fits
        n_clone, n_split = int(clone.sum()), int(split.sum())
        new = self._clone_rows(model, clone)
        for k, v in self._split_rows(model, split).items():
            new[k] = torch.cat([new[k], v])
        n_new = len(new["means"])
        edit_gaussians(
            model,
            optimizer,
            lambda name, t, zeros: torch.cat(
                [t, torch.zeros_like(t[:1]).expand(n_new, *t.shape[1:]) if zeros else new[name]]
            ),
        )
        # Prune: the split originals, transparent ones and (after a reset) oversized ones.
        prune = torch.cat([split, torch.zeros(n_new, dtype=torch.bool, device=split.device)])
        prune |= torch.sigmoid(model.opacity_logits) < self.prune_opacity
        if step > self.reset_every:
            prune |= model.max_radii > self.prune_screen_size
            prune |= model.log_scales.exp().amax(-1) > self.prune_world_size * extent
        if bool(prune.all()):  # never remove every Gaussian
            prune[torch.argmax(model.opacity_logits)] = False
        keep = ~prune
        edit_gaussians(model, optimizer, lambda name, t, zeros: t[keep])
        for name in model.GAUSSIAN_BUFFERS:
            getattr(model, name).zero_()
        return {"cloned": n_clone, "split": n_split, "pruned": int(prune.sum())}

    @staticmethod
    def _clone_rows(model: nn.Module, mask: Tensor) -> dict[str, Tensor]:
        return {name: getattr(model, name).detach()[mask] for name in model.GAUSSIAN_PARAMS}

    def _split_rows(self, model: nn.Module, mask: Tensor) -> dict[str, Tensor]:
        """``split_n`` samples of each masked Gaussian: means drawn from the Gaussian, scales
        divided by 0.8 ``split_n`` (reference ``densify_and_split``), the rest copied."""
        n = self.split_n
        rows = {
            name: getattr(model, name).detach()[mask].repeat_interleave(n, 0)
            for name in model.GAUSSIAN_PARAMS
        }
        scales = rows["log_scales"].exp()  # (K n, 3)
        local = torch.randn_like(scales) * scales
        rot = quaternion_to_matrix(rows["quats"])  # (K n, 3, 3)
        rows["means"] = rows["means"] + (rot @ local[..., None])[..., 0]
        rows["log_scales"] = torch.log(scales / (0.8 * n))
        return rows

    def reset_opacity(self, model: nn.Module, optimizer: Any) -> None:
        """Opacities to ``min(o, 0.01)`` with zeroed Adam moments (reference
        ``reset_opacity``)."""
        cap = math.log(0.01 / 0.99)  # logit(0.01)

        def edit(name: str, t: Tensor, moment: bool) -> Tensor:
            if name != "opacity_logits":
                return t
            return torch.zeros_like(t) if moment else t.clamp_max(cap)

        edit_gaussians(model, optimizer, edit)
        # Buffers are per-Gaussian statistics, not moments: keep them.


# ---- several processes ---------------------------------------------------------------------
def world_size() -> int:
    """Processes of the default ``torch.distributed`` group (1 when there is none)."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def reduce_stats(model: nn.Module) -> None:
    """Densification statistics of all ranks on every rank: gradient norms and counts summed,
    screen radii maximised (as one process would have accumulated them over all the views)."""
    if world_size() == 1:
        return
    dist = torch.distributed
    dist.all_reduce(model.grad_accum, op=dist.ReduceOp.SUM)
    dist.all_reduce(model.grad_count, op=dist.ReduceOp.SUM)
    dist.all_reduce(model.max_radii, op=dist.ReduceOp.MAX)


@torch.no_grad()
def broadcast_gaussians(model: nn.Module) -> None:
    """Rank 0's Gaussians on every rank (same count on all ranks: the decisions agree)."""
    if world_size() == 1:
        return
    for name in model.GAUSSIAN_PARAMS:
        torch.distributed.broadcast(getattr(model, name).data, src=0)


@torch.no_grad()
def average_gradients(model: nn.Module) -> None:
    """The Gaussians' gradients averaged over the ranks, in one all-reduce of the flattened
    gradients (parameters without a gradient, e.g. unused SH bands, keep none)."""
    world = world_size()
    if world == 1:
        return
    params = [p for p in (getattr(model, n) for n in model.GAUSSIAN_PARAMS) if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in params])  # (sum of numels,)
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    flat /= world
    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
        p.grad = g.view_as(p)


__all__ = [
    "DensityControl",
    "average_gradients",
    "broadcast_gaussians",
    "edit_gaussians",
    "reduce_stats",
    "world_size",
]
