"""A toy radiance scene shared by the radiance-field tests: a box with six coloured faces seen
from two rings of cameras, an analytic sphere field, a views datamodule serving the scene, and a
few-step Lightning fit."""

from __future__ import annotations

import math

import torch
import trimesh
from torch import Tensor, nn

from tests.helpers.trainers import short_trainer
from zoo.metrics import mse_to_psnr
from zoo.ops.raycast import render_mesh
from zoo.structures.cameras import Cameras, look_at

RADIUS = 1.6  # camera distance of the toy scene
INFO = {
    "form": "views",
    "scene": "toy_box",
    "near": 1.05,
    "far": 2.15,
    "background": [1.0, 1.0, 1.0],
    "bbox_min": [-0.55] * 3,
    "bbox_max": [0.55] * 3,
    "image_size": [32, 32],
}


class SphereField(nn.Module):
    """Analytic field: uniform density ``sigma`` and one colour inside a ball, empty outside."""

    def __init__(self, radius: float = 0.3, sigma: float = 2.0, colour=(0.2, 0.6, 0.9)) -> None:
        super().__init__()
        self.radius, self.sigma = radius, sigma
        self.register_buffer("colour", torch.tensor(colour))
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the module a device / a graph

    def density(self, x: Tensor) -> Tensor:
        inside = x.norm(dim=-1) < self.radius
        return torch.where(inside, self.sigma, 0.0) + 0.0 * self.anchor

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        return self.density(x), self.colour.expand(len(x), 3) + 0.0 * self.anchor

    def set_bbox(self, lo, hi) -> None:  # the NGP model sets its field's box
        pass


def ring_cameras(n: int, res: int, elevation: float = 0.4, offset: float = 0.0) -> Cameras:
    phi = torch.arange(n) * (2 * math.pi / n) + offset
    eyes = RADIUS * torch.stack(
        [
            math.cos(elevation) * phi.cos(),
            math.cos(elevation) * phi.sin(),
            torch.full_like(phi, math.sin(elevation)),
        ],
        -1,
    )
    return Cameras.from_fov(look_at(eyes), res, res, 0.6911112070083618)


def toy_scene(res: int = 32) -> tuple[Cameras, Tensor, Cameras, Tensor]:
    """A box with six differently coloured faces, rendered (ray cast, white background) from
    24 training views on two rings and 4 held-out views in between."""
    box = trimesh.creation.box(extents=(0.6, 0.45, 0.5))
    palette = torch.tensor(
        [
            [230, 60, 40],
            [40, 160, 60],
            [50, 80, 220],
            [230, 200, 40],
            [160, 60, 200],
            [40, 200, 210],
        ],
        dtype=torch.uint8,
    )
    normals = torch.tensor(box.face_normals)
    side = (normals.abs().argmax(-1) * 2 + (normals.max(-1).values < 0.5).long()).numpy()
    box.visual.face_colors = torch.cat(
        [palette[side], torch.full((12, 1), 255, dtype=torch.uint8)], -1
    ).numpy()
    low, high = ring_cameras(12, res, 0.3), ring_cameras(12, res, 0.9, 0.26)
    train = Cameras(
        torch.cat([low.c2w, high.c2w]),
        torch.cat([low.fx, high.fx]),
        torch.cat([low.fy, high.fy]),
        torch.cat([low.cx, high.cx]),
        torch.cat([low.cy, high.cy]),
        res,
        res,
    )
    test = ring_cameras(4, res, 0.6, 0.4)
    return train, render_mesh(box, train)["rgb"], test, render_mesh(box, test)["rgb"]


def heldout_psnr(model, cameras: Cameras, images: Tensor) -> float:
    pred = model.render_maps(model, cameras)["rgb"].clamp(0, 1)
    return float(mse_to_psnr(((pred - images) ** 2).mean()))


def toy_views(res: int = 16, **kwargs):
    """A views datamodule serving :func:`toy_scene` (train / held-out) at ``res`` px."""
    from zoo.data.views import Scene, ViewsDataModule, ViewSplit

    train_cams, train_imgs, test_cams, test_imgs = toy_scene(res)

    class ToyViews(ViewsDataModule):
        dataset_name = "toy"

        def _load_scene(self) -> Scene:
            held = ViewSplit(test_imgs, test_cams)
            return Scene(
                name="toy_box",
                splits={"train": ViewSplit(train_imgs, train_cams), "val": held, "test": held},
                near=INFO["near"],
                far=INFO["far"],
                background=(1.0, 1.0, 1.0),
                bbox_min=tuple(INFO["bbox_min"]),
                bbox_max=tuple(INFO["bbox_max"]),
            )

    return ToyViews(**kwargs)


def toy_fit(model, steps: int = 4, ckpt: str | None = None, root=None, **views_kwargs):
    """``steps`` Lightning steps of ``model`` on the toy scene through a views datamodule
    (``toy_views(val_views=1, **views_kwargs)``), from checkpoint ``ckpt`` when given, logs and
    checkpoints under ``root``; the trainer."""
    dm = toy_views(val_views=1, **views_kwargs)
    dm.setup("fit")
    model.configure_from_data(dm.info())
    trainer = short_trainer(root, steps, steps, sanity_steps=0)
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt)
    return trainer


def lightning_fit(model, steps: int = 4, rays: int = 256):
    """A few Lightning steps on the toy scene's rays; the logged metrics."""
    return toy_fit(model, steps, rays_per_batch=rays).callback_metrics
