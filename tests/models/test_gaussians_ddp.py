"""model=gaussians on several processes: densification decided on the statistics of every
rank and applied identically everywhere, gradients averaged by the model (DDP's reducer cannot
follow the replaced tensors). Two CPU processes (gloo), a few seconds."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.models.test_gaussians import small_model
from tests.viewer.browser import free_port
from zoo.models.gaussians import DensityControl
from zoo.models.gaussians.strategy import average_gradients

STRATEGY = dict(refine_start=0, grad_threshold=1e-3)


def _stats(model, rank: int) -> None:
    """Rank 0 saw Gaussians 0-3 move, rank 1 Gaussians 4-7; sizes make half of each clone and
    half split."""
    with torch.no_grad():
        model.log_scales[0:8:2] = torch.log(torch.tensor(0.001))  # small: cloned
        model.log_scales[1:8:2] = torch.log(torch.tensor(0.2))  # large: split
    seen = slice(4 * rank, 4 * rank + 4)
    model.grad_accum[seen] = 1.0
    model.grad_count[seen] = 1.0
    model.max_radii[seen] = 3.0 + rank


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = small_model(strategy=DensityControl(**STRATEGY))
        opt = model.configure_optimizers()
        # Gradients differ by rank; averaged, every rank holds their mean.
        for p in model.parameters():
            p.grad = torch.full_like(p, float(rank))
        average_gradients(model)
        grads_ok = all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
        opt.step()
        _stats(model, rank)
        torch.manual_seed(rank)  # the split's random samples would differ between ranks
        done = model.strategy.densify_and_prune(model, opt, step=100)
        state = {n: getattr(model, n).detach().clone() for n in model.GAUSSIAN_PARAMS}
        torch.save({"done": done, "state": state, "grads_ok": grads_ok}, f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_densify_identically_on_the_statistics_of_both(tmp_path: Path):
    # fork: the children need no fresh import of zoo (seconds each on a busy machine)
    mp.start_processes(
        _worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )
    r0, r1 = (torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["grads_ok"] and r1["grads_ok"]
    # Both ranks took the decisions of all 8 Gaussians' statistics (4 clones, 4 splits), as
    # one process that saw every view does; and hold the very same Gaussians afterwards.
    one = small_model(strategy=DensityControl(**STRATEGY))
    opt = one.configure_optimizers()
    for p in one.parameters():
        p.grad = torch.full_like(p, 0.5)
    opt.step()
    _stats(one, 0)
    _stats(one, 1)
    one.max_radii[:4] = 4.0  # the maximum over the ranks
    want = one.strategy.densify_and_prune(one, opt, step=100)
    assert r0["done"] == r1["done"] == want, (r0["done"], r1["done"], want)
    assert want["cloned"] == 4 and want["split"] == 4
    for name, t in r0["state"].items():
        assert torch.equal(t, r1["state"][name]), name
        assert t.shape == getattr(one, name).shape, name
