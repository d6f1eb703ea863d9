"""``data=synthshapes``: the embedded default data, in whichever form the model trains on.

One config serves every model: shape models get :class:`SynthShapesDataModule` batches
(points, voxels, SDF samples, surface samples with normals); radiance models get the
multi-view renders of one of its shapes through :class:`SynthViewsDataModule`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoo.data.shapes import SynthShapesDataModule
from zoo.data.views import SynthViewsDataModule


def synthshapes(
    form: str = "points",
    root: str = "data/synthshapes",
    categories: Sequence[str] | None = None,
    shapes_per_category: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    n_points: int = 2048,
    voxel_resolution: int = 32,
    sdf_samples: int = 16384,
    num_workers: int = 0,
    scene_category: str = "chair",
    scene_index: int = 0,
    image_size: int = 100,
    rays_per_batch: int = 1024,
    background: Any = "white",
    val_views: int = 2,
) -> SynthShapesDataModule | SynthViewsDataModule:
    """The synthshapes datamodule for ``form`` (``views``: the scene
    ``scene_category``/``scene_index`` rendered at ``image_size``; other forms: the
    ``categories``, ``shapes_per_category`` shapes each)."""
    if form in ("views", "images"):
        return SynthViewsDataModule(
            form=form,
            root=root,
            category=scene_category,
            index=scene_index,
            resolution=image_size,
            background=background,
            shapes_per_category=shapes_per_category,
            data_seed=seed,
            rays_per_batch=rays_per_batch,
            val_views=val_views,
            num_workers=num_workers,
        )
    return SynthShapesDataModule(
        root=root,
        categories=categories,
        shapes_per_category=shapes_per_category,
        seed=seed,
        form=form,
        batch_size=batch_size,
        n_points=n_points,
        voxel_resolution=voxel_resolution,
        sdf_samples=sdf_samples,
        num_workers=num_workers,
    )
