"""The one interface every model implements, so evaluation, export and benchmarks never branch
on the model type.

A model is a ``LightningModule`` that also subclasses :class:`Representation`. Its native output
(a voxel grid, a point cloud, a mesh, a latent code for an SDF, a fitted radiance field) is an
opaque ``shape`` object; the interface converts it to the common forms (mesh, points, images).
Conversions that are not native to a model have defaults here that go through the shared ops
(``zoo.ops``): mesh -> points by area-weighted surface sampling, mesh -> images by ray casting.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import trimesh
from torch import Tensor

from zoo.ops.raycast import render_mesh
from zoo.ops.surface import sample_surface
from zoo.structures.cameras import Cameras

Kind = Literal["voxel", "points", "mesh", "sdf", "radiance"]
DataForm = Literal["points", "voxels", "sdf", "mesh", "views", "images"]


@dataclass
class ShapeTarget:
    """A ground-truth shape, in whichever forms the data provides (all in the data's units).

    Models read the fields they need in ``reconstruct`` and raise a clear error when one is
    missing; the evaluator reads ``points``/``normals``/``voxels``/``views``.
    """

    name: str
    points: Tensor | None = None  # (N, 3) surface samples
    normals: Tensor | None = None  # (N, 3) unit normals of `points`
    mesh: trimesh.Trimesh | None = None
    voxels: Tensor | None = None  # (R, R, R) bool occupancy
    sdf: Tensor | None = None  # (S, 4) x, y, z, signed distance (negative inside)
    image: Tensor | None = None  # (H, W, 3) a single view, for image-conditioned models
    cameras: Cameras | None = None  # cameras of `views`
    views: Tensor | None = None  # (B, H, W, 3) ground-truth images in [0, 1]
    extra: dict[str, Any] = field(default_factory=dict)

    def require(self, *names: str, model: str = "model") -> None:
        """Raise ``ValueError`` naming the missing fields if any of ``names`` is None."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise ValueError(
                f"{model}: target {self.name!r} has no {', '.join(missing)}; "
                f"this model reconstructs from {', '.join(names)}"
            )


class Representation(abc.ABC):
    """What every zoo model offers beyond being a ``LightningModule``.

    Class attributes:
        name: registry name, equal to the ``model=<name>`` config choice.
        kind: the model's native representation.
        data_form: the form of training batches it asks the datamodule for.
        generative: whether ``sample`` draws new shapes (scored with MMD/COV/1-NNA).
        per_scene: whether the model is one fitted scene; it is then scored on that scene's
            held-out views (PSNR/SSIM) and, where the data has one, its ground-truth mesh.
        classifier: whether the model labels shapes instead of making them (PointNet): it is
            scored by held-out accuracy; ``reconstruct`` returns its label and ``sample`` /
            ``to_mesh`` raise ``ValueError``.
        conditional: whether ``sample`` also takes ``category=`` (a category name such as
            ``"chair"`` or the data's synset id) and draws shapes of that training category
            only (a per-category latent prior, :mod:`zoo.nn.latent_prior`).
        interpolates: whether :meth:`interpolate` blends two latent codes into shapes (the
            viewer then offers latent interpolation; codes come from :meth:`sample_latents`).
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    data_form: ClassVar[DataForm]
    generative: ClassVar[bool] = True
    per_scene: ClassVar[bool] = False  # fitted to one scene (NeRF): sample(1) is that scene
    classifier: ClassVar[bool] = False  # labels shapes (PointNet): scored by accuracy
    conditional: ClassVar[bool] = False  # sample(n, seed, category=...) draws one category
    interpolates: ClassVar[bool] = False  # interpolate(a, b, steps) between latent codes

    def configure_from_data(self, info: dict[str, Any]) -> None:  # noqa: B027
        """Build the parts that depend on the data (number of training shapes, scene bounds,
        normalisation). Called with ``datamodule.info()`` before training and with the stored
        info when a checkpoint is loaded; ``info`` must be JSON-serialisable."""

    @abc.abstractmethod
    def sample(self, n: int, seed: int | None = None) -> list[Any]:
        """n shapes from the model (per-scene models return their fitted scene).

        Models with ``conditional = True`` take a third argument, ``category: str | None =
        None``: None draws from all training categories, a name (``"chair"``) or synset id
        (``"03001627"``) from that category only; an unknown or unfitted one raises
        ``ValueError`` naming the known ones. Others keep ``(n, seed)``, so callers check
        ``conditional`` (or the signature) before passing ``category``."""

    @abc.abstractmethod
    def reconstruct(self, target: ShapeTarget) -> Any:
        """Fit or encode a given shape; returns a native shape."""

    @abc.abstractmethod
    def to_mesh(self, shape: Any, resolution: int = 128) -> trimesh.Trimesh:
        """A triangle mesh of ``shape`` (marching cubes for implicit/volumetric models)."""

    def to_points(self, shape: Any, n: int = 2048, seed: int | None = 0) -> Tensor:
        """(n, 3) points on the surface of ``shape``; default: area-weighted mesh sampling."""
        points, _ = sample_surface(self.to_mesh(shape), n, seed=seed)
        return points

    def ceiling(
        self, target: ShapeTarget, n: int, resolution: int
    ) -> tuple[trimesh.Trimesh | None, Tensor] | None:
        """The representation ceiling: ``target``'s ground truth pushed through this model's own
        representation at the model's resolution and meshed the way the model meshes (a voxel
        grid at its grid size; the true SDF marching-cubed at ``resolution``; the template's
        vertex count and genus fitted to the surface; true surface points), as ``(mesh or None,
        (n, 3) points on it)``. The evaluator scores it like a reconstruction, so a user sees
        what is the representation's limit and what the training's. None (the default): the
        model declares no ceiling."""
        return None

    def sample_latents(self, n: int, seed: int | None = None) -> Any:
        """n latent codes (indexable, one per shape) that :meth:`interpolate` blends. Default:
        :meth:`sample`'s shapes, for models whose native shapes are their codes."""
        return self.sample(n, seed=seed)

    def interpolate(self, a: Any, b: Any, steps: int = 8) -> list[Any]:
        """``steps`` native shapes from code ``a`` to code ``b`` (both ends included); only
        for models with ``interpolates = True``."""
        raise NotImplementedError(f"{self.name}: no latent interpolation")

    def export_files(self, shape: Any, stem: Any) -> list[Any]:
        """The model's own files for ``shape`` beside the common exports of
        ``python -m zoo.sample`` (e.g. the splat PLY of Gaussians), written at ``stem`` plus a
        suffix; returns their paths. Default: none."""
        return []

    def render(self, shape: Any, cameras: Cameras) -> Tensor:
        """(B, H, W, 3) images in [0, 1] of ``shape`` seen by ``cameras``."""
        return self.render_maps(shape, cameras)["rgb"]

    def render_maps(self, shape: Any, cameras: Cameras) -> dict[str, Tensor]:
        """Images and auxiliary maps: at least ``rgb`` (B, H, W, 3); where known also ``depth``
        (B, H, W) z-depth and ``opacity``/``mask`` (B, H, W). Default: the shared CPU ray caster
        on ``to_mesh`` (white background); radiance models override it with volume rendering."""
        return render_mesh(self.to_mesh(shape), cameras)

    @property
    def device_(self) -> torch.device:
        """The device of the model's parameters (CPU for a parameterless model)."""
        params = list(self.parameters())  # type: ignore[attr-defined]
        return params[0].device if params else torch.device("cpu")
