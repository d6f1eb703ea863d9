"""A training DataLoader that a run resumed mid-epoch continues exactly where it stopped.

Lightning stores ``state_dict()`` of every training loader that has one in each checkpoint
(``loops.fit_loop.state_dict.combined_loader``) and hands it back to ``load_state_dict`` when a
run resumes (without one it warns that the loader "is not resumable" and restarts the epoch
with a fresh order). :class:`ResumableDataLoader` saves

- the state its own ``torch.Generator`` had when the epoch began (the shuffle order and the
  workers' base seed are drawn from it, never from the global generator),
- how many batches of the epoch it has handed out, and
- the process's random-number states (torch, CUDA, NumPy, ``random``) at the save.

On resume it replays the epoch's order, leaves out the batches already trained on (their
indices are drawn, their data is not loaded) and restores the random-number states right
before the next batch is fetched. A run stopped at any step and resumed then sees the same
batches and draws the same random numbers as one never stopped (with the default
``num_workers=0``; with worker processes the order is restored, but a dataset's own random
draws in the workers, seeded per epoch, are not). Random numbers drawn between
the save and the next batch in an uninterrupted run (by a validation at that step, for
instance) are not replayed: ``zoo.callbacks.ValidationKeepsRng`` keeps validation out of the
training's stream.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

log = logging.getLogger(__name__)


class SkippingBatchSampler(BatchSampler):
    """A ``BatchSampler`` whose next pass leaves out its first ``skip`` batches (drawn from
    the sampler, so its random order is the same, but never yielded)."""

    def __init__(self, sampler: Sampler[int] | Sized, batch_size: int, drop_last: bool) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.skip = 0

    def __iter__(self) -> Iterator[list[int]]:
        # A generator: ``skip`` is consumed when the pass starts, not when iter() is called.
        skip, self.skip = self.skip, 0
        for i, batch in enumerate(super().__iter__()):
            if i >= skip:
                yield batch


def rng_states() -> dict[str, Any]:
    """The process's random-number states, as tensors and plain values (a checkpoint read with
    ``weights_only=True`` holds them)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` with ``state_dict`` / ``load_state_dict`` (see the module docstring).

    Takes the arguments of ``DataLoader``. With ``batch_size`` set and no ``batch_sampler``,
    the batches come from a :class:`SkippingBatchSampler` over the given sampler (else a
    ``RandomSampler`` on the loader's generator when ``shuffle``, a ``SequentialSampler``
    otherwise). With ``batch_size=None`` the ``sampler`` itself must be able to skip (an
    integer attribute ``skip``, like :class:`zoo.data.views.EpochSampler`). ``generator``
    defaults to one seeded from the global generator (so ``seed=`` fixes it).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Sampler | None = None,
        batch_sampler: Sampler | None = None,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> None:
        if generator is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
            generator = torch.Generator().manual_seed(seed)
        if batch_sampler is None and batch_size is not None:
            if sampler is None:
                sampler = (
                    RandomSampler(dataset, generator=generator)
                    if shuffle
                    else SequentialSampler(dataset)
                )
            batch_sampler = SkippingBatchSampler(sampler, batch_size, drop_last)
            sampler, batch_size, drop_last = None, 1, False  # DataLoader's batch_sampler rule
        elif shuffle and batch_size is None and sampler is None:
            sampler = RandomSampler(dataset, generator=generator)
        super().__init__(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            batch_sampler=batch_sampler,
            drop_last=drop_last,
            generator=generator,
            **kwargs,
        )
        self._epoch_start = generator.get_state()
        self._batches = 0
        self._resume: dict[str, Any] | None = None

    def _skipper(self) -> Any:
        """The sampler whose ``skip`` leaves out batches (the batch sampler, else the sampler)."""
        target = self.batch_sampler if self.batch_sampler is not None else self.sampler
        return target if isinstance(getattr(target, "skip", None), int) else None

    def state_dict(self) -> dict[str, Any]:
        """Where the epoch is: the generator at its start and now, the batches handed out, and
        the random-number states."""
        assert self.generator is not None
        return {
            "epoch_start": self._epoch_start,
            "current": self.generator.get_state(),
            "batches": self._batches,
            "length": len(self),
            "rng": rng_states(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue, at the next ``iter()``, from ``state`` (:meth:`state_dict`)."""
        self._resume = state

    def __iter__(self) -> Iterator[Any]:
        assert self.generator is not None
        skip, rng = 0, None
        if self._resume is not None:
            state, self._resume = self._resume, None
            rng = state["rng"]
            mid_epoch = 0 < state["batches"] < state["length"]
            if mid_epoch and state["length"] != len(self):
                log.warning(
                    "resume: the epoch had %d batches, it has %d now (other data or batch "
                    "size?): starting a new epoch instead of continuing that one",
                    state["length"],
                    len(self),
                )
                mid_epoch = False
            if mid_epoch and self._skipper() is None:
                log.warning("resume: this loader's sampler cannot skip: the epoch restarts")
                mid_epoch = False
            if mid_epoch:
                self.generator.set_state(state["epoch_start"])
                skip = int(state["batches"])
                self._skipper().skip = skip
            else:
                self.generator.set_state(state["current"])
        self._epoch_start = self.generator.get_state()
        self._batches = skip
        return self._counted(super().__iter__(), rng)

    def _counted(self, batches: Iterator[Any], rng: dict[str, Any] | None) -> Iterator[Any]:
        # The states are restored when the first batch is asked for, i.e. right before it is
        # fetched, as they were right after the save in the run that was stopped.
        if rng is not None:
            set_rng_states(rng)
        for batch in batches:
            self._batches += 1
            yield batch
