"""A ResumableDataLoader stopped anywhere and restored from its state_dict (through a
checkpoint file read with weights_only=True) hands out the batches, and leaves the random
numbers, of one never stopped."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from zoo.data.resumable import ResumableDataLoader
from zoo.data.views import EpochSampler


class _Noisy(Dataset):
    """Item i: (i, a draw of the global generator), like a dataset subsampling points."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i), torch.rand(()).item()])


def _shuffled() -> ResumableDataLoader:  # the shape datamodules' form: 4 batches an epoch
    return ResumableDataLoader(_Noisy(), batch_size=3, shuffle=True)


def _epoch_sampler() -> ResumableDataLoader:  # the view datamodules' form: 10 an epoch
    return ResumableDataLoader(_Noisy(), batch_size=None, sampler=EpochSampler(10))


def _stream(loader: ResumableDataLoader, epoch: int = 0) -> Iterator[Any]:
    """Batches over epochs as Lightning's fit loop asks for them (set_epoch, then a pass)."""
    for e in itertools.count(epoch):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(e)
        yield from loader


def _through_a_file(state: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("make", [_shuffled, _epoch_sampler])
@pytest.mark.parametrize("stop", [3, 4, 10, 13])
def test_a_restored_loader_continues_the_sequence_of_one_never_stopped(
    make: Callable[[], ResumableDataLoader], stop: int
):
    total = 16
    torch.manual_seed(0)
    whole = list(itertools.islice(_stream(make()), total))
    after_whole = torch.rand(3)

    torch.manual_seed(0)
    loader = make()
    first = list(itertools.islice(_stream(loader), stop))
    state = _through_a_file(loader.state_dict())
    torch.manual_seed(123)  # a new process: other random numbers until the first batch
    resumed = make()
    resumed.load_state_dict(state)
    epoch = stop // len(loader)  # Lightning restores the epoch number
    rest = list(itertools.islice(_stream(resumed, epoch), total - stop))
    assert len(first + rest) == total
    for a, b in zip(whole, first + rest, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(after_whole, torch.rand(3))


def test_lightning_sees_the_loader_as_resumable():
    """Lightning stores the state of (and stops warning about resuming mid-epoch with) the
    loaders that have state_dict / load_state_dict."""
    from lightning_fabric.utilities.types import _Stateful

    assert isinstance(_shuffled(), _Stateful) and isinstance(_epoch_sampler(), _Stateful)
