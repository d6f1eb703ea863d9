"""What the shared evaluator (:func:`zoo.evaluation.evaluate`) reads from a datamodule.

Every zoo datamodule implements it: the shape datamodules through
:class:`zoo.data.shapes.base.ShapeDataModuleBase`, the view datamodules through
:class:`zoo.data.views.ViewsDataModule`, each with the defaults below where it has nothing to
give; a datamodule of your own passes the evaluator anything with these five methods.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from zoo.representation import ShapeTarget
from zoo.structures.cameras import Cameras


class EvalData(Protocol):
    """The held-out data of one evaluation."""

    def eval_shapes(
        self, split: str = "test", limit: int | None = None, points_only: bool = False
    ) -> list[ShapeTarget]:
        """Ground-truth shapes of ``split`` (the first ``limit``); with ``points_only`` just
        their points and normals."""
        ...

    def eval_views(self, split: str = "test") -> tuple[Cameras, Tensor] | None:
        """Cameras and (B, H, W, 3) images of ``split``; None for shape data."""
        ...

    def eval_scales(self, split: str = "test") -> list[tuple[str, Cameras, Tensor]] | None:
        """Multiscale data: ``(name, cameras, images)`` per scale, each scored on its own and
        averaged (Mip-NeRF's protocol); None: one scale (:meth:`eval_views`)."""
        ...

    def extra_references(
        self, per_category: int, have: dict[str, int], n_points: int
    ) -> dict[str, Tensor]:
        """More held-out clouds (K_c, n_points, 3) by synset that top each category up from
        ``have[synset]`` to ``per_category`` generation references; empty where the data
        cannot draw more."""
        ...

    def independent_draw(self, counts: dict[str, int], n_points: int) -> dict[str, Tensor] | None:
        """``counts[synset]`` held-out clouds of each category from a stream of their own (the
        generation metrics' "data" row); None where no second draw exists (the row then
        splits the references in halves)."""
        ...
