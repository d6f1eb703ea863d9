"""Base class for zoo models: a LightningModule that is also a Representation.

Optimisers and schedulers arrive from Hydra as partials (``_partial_: true``) and are finished
in ``configure_optimizers``, as in the lightning-hydra-template. Subclasses implement
``training_step`` (usually through one ``_shared_step``) and the Representation methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch

from zoo import __version__
from zoo.representation import Representation

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class ZooModel(pl.LightningModule, Representation):
    """Common plumbing: optimiser partials, data info kept in the checkpoint.

    Class attributes read by ``zoo.train``:
        ddp_find_unused_parameters: the model's steps leave some parameters without gradient
            (a GAN's G step never touches D): DDP then runs with Lightning's
            ``<strategy>_find_unused_parameters_true``.
        ddp_unsupported: why the model cannot train in several processes (None: it can);
            ``zoo.train`` refuses ``trainer.devices`` > 1 with this reason.
    """

    ddp_find_unused_parameters: ClassVar[bool] = False
    ddp_unsupported: ClassVar[str | None] = None

    def __init__(
        self,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "step",
    ) -> None:
        super().__init__()
        self._optimizer_factory = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
        self._scheduler_factory = scheduler
        self._scheduler_interval = scheduler_interval
        self.data_info: dict[str, Any] = {}
        # Plain-data description written into every checkpoint (see zoo.checkpoint).
        self.zoo_meta: dict[str, Any] = {}

    def configure_from_data(self, info: dict[str, Any]) -> None:
        """Store the datamodule's info; subclasses extend this to build data-dependent parts."""
        self.data_info = dict(info)

    def finalize_training(self) -> None:  # noqa: B027
        """State derived from the final weights once training ends (e.g. a latent prior fitted
        to the training codes). ``zoo.callbacks.FinalCheckpoint`` calls it before writing the
        final checkpoint, so that the checkpoint (and pretrained weights made from it) hold it."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["zoo"] = {
            **self.zoo_meta,
            "model_name": self.name,
            "data_info": self.data_info,
            "version": __version__,
        }

    def optimizer_param_groups(self) -> Any:
        """Parameters (or param groups) handed to the optimiser; override for per-group lr."""
        return self.parameters()

    def configure_optimizers(self) -> Any:
        opt = self._optimizer_factory(self.optimizer_param_groups())
        if self._scheduler_factory is None:
            return opt
        sched = self._scheduler_factory(opt)
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "interval": self._scheduler_interval},
        }
