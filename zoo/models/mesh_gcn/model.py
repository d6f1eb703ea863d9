"""``model=mesh_gcn``: template-deformation mesh generation with graph convolutions.

After Pixel2Mesh (Wang, Zhang, Li, Fu, Liu, Jiang, "Pixel2Mesh: Generating 3D Mesh Models from
Single RGB Images", ECCV 2018; settings of noahcao/Pixel2Mesh ``options.py``: hidden 192, 6
residual blocks per stage, 3 stages, loss weights normal 1.6e-4, edge 0.3, Laplacian 0.5, move
0.1, Chamfer 1 per stage). An ico-sphere (or ellipsoid) template is deformed by stacked graph
convolutions over its vertex adjacency, with edge-midpoint unpooling between stages (see
``networks.py``, ``template.py``), conditioned on one shape latent z from

- ``encoder: points``: a PointNet (:class:`zoo.nn.pointnet.PointNetEncoder`) of the surface
  points (point-cloud -> mesh reconstruction), or
- ``encoder: image``: a small CNN of one rendered view (single-view reconstruction, Pixel2Mesh's
  task; the view is rendered from the shape's mesh with the shared ray caster and cached per
  shape in memory).

Generative: after training, a full-covariance Gaussian is fitted to the encoder's codes of the
training shapes (``prior_mean``, ``prior_tril`` buffers, saved in checkpoints); ``sample`` decodes
draws from it; ``sample(n, category="chair")`` draws from one Gaussian per training category
(:class:`zoo.nn.latent_prior.GaussianLatentPrior`, fitted to the same codes with the batches'
``synset`` labels). Losses: ``losses.py``. Native shape: :class:`MeshGCNShape` (vertices + faces of
the last stage: a deformed subdivided ico-sphere, closed by construction).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import trimesh
from torch import Tensor

from zoo.data.formats.mesh import load_mesh, normalize_mesh
from zoo.models.base import ZooModel
from zoo.models.mesh_gcn.ceiling import FIT_POINTS, fit_template
from zoo.models.mesh_gcn.losses import LossWeights, mesh_losses
from zoo.models.mesh_gcn.networks import (
    ImageEncoder,
    MeshDeformer,
    PointPooling,
    render_input_view,
)
from zoo.models.mesh_gcn.template import TemplateHierarchy
from zoo.models.registry import register_model
from zoo.nn.graph_conv import NORMALIZATIONS
from zoo.nn.latent_prior import (
    FlowLatentPrior,
    LatentPrior,
    build_latent_prior,
    draw_gaussian,
    fit_gaussian,
)
from zoo.nn.pointnet import PointNetEncoder
from zoo.ops.surface import sample_surface
from zoo.representation import ShapeTarget

log = logging.getLogger(__name__)
ENCODERS = ("points", "image")


@dataclass
class MeshGCNShape:
    """A native mesh_gcn shape: the final stage's vertices (V, 3), faces (F, 3) and its latent."""

    vertices: Tensor
    faces: Tensor
    z: Tensor


@register_model("mesh_gcn")
class MeshGCN(ZooModel):
    """Pixel2Mesh-style graph-convolution mesh deformation conditioned on a shape latent.

    Args:
        encoder: ``"points"`` or ``"image"`` (see the module docstring).
        zdim: latent size.
        hidden: graph-conv width (Pixel2Mesh: 192).
        blocks: residual graph blocks per stage (Pixel2Mesh: 6).
        stages: deformation stages = mesh levels (Pixel2Mesh: 3).
        ico_subdivisions: ico-sphere subdivisions of the first level (2: 162 -> 642 -> 2562
            vertices, close to Pixel2Mesh's 156 -> 618 -> 2466 ellipsoid).
        template_axes: semi-axes of the template (a sphere when equal).
        normalization: adjacency normalisation of the graph convolutions.
        w_chamfer, w_normal, w_edge, w_laplace, w_move, stage_laplace: loss weights
            (:class:`~zoo.models.mesh_gcn.losses.LossWeights`).
        encoder_hidden, encoder_head: PointNet widths; encoder_batch_norm: batch norm in the
            PointNet (off by default: with the small batches of CPU training, and with a batch
            of one identical shape, batch statistics make training and evaluation disagree).
        image_channels: CNN widths.
        input_points: points fed to the point encoder (a random subset while training, a fixed
            one in ``reconstruct``).
        image_size: side of the rendered input view; views: orbit cameras (of ``n_orbit``) a
            training step picks from at random (``reconstruct`` uses the first).
        prior_shrinkage: the fitted covariance is ``S + shrinkage * tr(S)/zdim * I`` (all
            categories, and each category's).
        latent_prior: ``gaussian`` or ``flow``: the per-category prior
            (:func:`zoo.nn.latent_prior.build_latent_prior`); with ``flow`` an unconditional
            ``sample`` draws from the mixture of the categories' flows.
        prior_flow: options of :class:`zoo.nn.latent_prior.FlowLatentPrior`.
        pool_k: with ``encoder=points``, every vertex also reads the offsets to its ``pool_k``
            nearest input points at every stage (:class:`PointPooling`, the point-cloud
            analogue of Pixel2Mesh's perceptual feature pooling); 0: the global code only.
            Not used with ``encoder=image``.
        pool_dim: width of the pooled per-vertex features.
        pool_dropout: fraction of the training shapes decoded without pooled features (zeros,
            as ``sample`` decodes prior codes, which have no input points), so that the
            code-only path stays a generator.
    """

    kind = "mesh"
    data_form = "mesh"
    generative = True
    conditional = True

    def __init__(
        self,
        encoder: str = "points",
        zdim: int = 128,
        hidden: int = 192,
        blocks: int = 6,
        stages: int = 3,
        ico_subdivisions: int = 2,
        template_axes: Sequence[float] = (0.3, 0.3, 0.3),
        normalization: str = "mean",
        w_chamfer: Sequence[float] = (1.0, 1.0, 1.0),
        w_normal: float = 1.6e-4,
        w_edge: float = 0.3,
        w_laplace: float = 0.5,
        w_move: float = 0.1,
        stage_laplace: Sequence[float] = (0.2, 1.0, 1.0),
        encoder_hidden: Sequence[int] = (64, 128, 256, 512),
        encoder_head: Sequence[int] = (256,),
        encoder_batch_norm: bool = False,
        image_channels: Sequence[int] = (32, 64, 128, 256),
        input_points: int = 2048,
        image_size: int = 64,
        views: Sequence[int] = (1,),
        n_orbit: int = 8,
        prior_shrinkage: float = 1e-3,
        latent_prior: str = "gaussian",
        prior_flow: dict[str, Any] | None = None,
        pool_k: int = 0,
        pool_dim: int = 32,
        pool_dropout: float = 0.25,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        if not views or any(not 0 <= v < n_orbit for v in views):
            raise ValueError(f"views must be non-empty indices in [0, {n_orbit}), got {views}")
        self.encoder_kind, self.zdim = encoder, int(zdim)
        self.input_points, self.image_size = int(input_points), int(image_size)
        self.views, self.n_orbit = [int(v) for v in views], int(n_orbit)
        self.prior_shrinkage = float(prior_shrinkage)
        self.latent_prior, self.prior_flow = str(latent_prior), dict(prior_flow or {})
        self.weights = LossWeights(
            chamfer=tuple(w_chamfer), normal=w_normal, edge=w_edge, laplace=w_laplace,
            move=w_move, stage_laplace=tuple(stage_laplace),
        )  # fmt: skip
        if encoder == "points":
            self.encoder = PointNetEncoder(
                3, tuple(encoder_hidden), self.zdim, tuple(encoder_head),
                batch_norm=encoder_batch_norm,
            )  # fmt: skip
        else:
            self.encoder = ImageEncoder(self.zdim, tuple(image_channels))
        if pool_k < 0 or not 0.0 <= pool_dropout < 1.0:
            raise ValueError(
                f"need pool_k >= 0, 0 <= pool_dropout < 1; got {pool_k}, {pool_dropout}"
            )
        pool = PointPooling(pool_k, pool_dim) if pool_k > 0 and encoder == "points" else None
        self.pool_dropout = float(pool_dropout)
        self.template = TemplateHierarchy(ico_subdivisions, stages, tuple(template_axes))
        self.deformer = MeshDeformer(
            self.template, self.zdim, hidden, blocks, normalization, pool=pool
        )
        self.register_buffer("prior_mean", torch.zeros(self.zdim))
        self.register_buffer("prior_tril", torch.eye(self.zdim))
        self.register_buffer("prior_ready", torch.zeros((), dtype=torch.bool))
        # One prior per training category; rebuilt for the data's categories.
        self.category_prior = self._build_prior([], None)
        self._prior_step = -1  # global step at which the prior was last fitted
        self._image_cache: dict[tuple[str, int, int], Tensor] = {}  # (split, idx, view)
        self._mesh_source: Any = None

    def configure_from_data(self, info: dict[str, Any]) -> None:
        """One prior per category of ``info["synsets"]`` (names ``info["categories"]``)."""
        super().configure_from_data(info)
        self.category_prior = self._build_prior(
            info.get("synsets") or [], info.get("categories")
        ).to(self.prior_mean.device)

    def _build_prior(self, labels: Sequence[str], names: Sequence[str] | None) -> LatentPrior:
        return build_latent_prior(
            self.latent_prior,
            self.zdim,
            labels,
            names,
            shrinkage=self.prior_shrinkage,
            flow=self.prior_flow,
        )

    # ----------------------------------------------------------------- encode / decode
    def encode(self, inputs: Tensor) -> Tensor:
        """Codes (B, zdim) of points (B, N, 3) or images (B, H, W, 3) (by ``encoder``)."""
        return self.encoder(inputs)

    def decode(
        self, z: Tensor, points: Tensor | None = None, keep: Tensor | None = None
    ) -> dict[str, list[Tensor]]:
        """Per-stage vertices ``coords`` and stage inputs ``before`` for codes z (B, zdim);
        with point pooling, the input ``points`` (B, N, 3) the vertices read from and
        ``keep`` (B,) bool (see :class:`MeshDeformer`)."""
        return self.deformer(z, points, keep)

    def _shape(self, z: Tensor, points: Tensor | None = None) -> MeshGCNShape:
        pts = points[None] if points is not None else None
        verts = self.decode(z[None], pts)["coords"][-1][0]  # (V, 3)
        return MeshGCNShape(verts, self.template.faces(self.template.n_levels - 1), z)

    # ----------------------------------------------------------------- encoder inputs
    def _subsample(self, points: Tensor, random: bool) -> Tensor:
        """(B, N, 3) -> (B, min(N, input_points), 3): a random (training) or fixed subset."""
        n = points.shape[1]
        if n <= self.input_points:
            return points
        g = None if random else torch.Generator().manual_seed(0)
        return points[:, torch.randperm(n, generator=g)[: self.input_points].to(points.device)]

    def set_mesh_source(self, datamodule: Any) -> None:
        """Where ``encoder=image`` finds the meshes to render outside ``trainer.fit`` (a shape
        datamodule with ``items(split)``); inside, it is the trainer's datamodule."""
        self._mesh_source = datamodule
        self._image_cache.clear()

    def on_fit_start(self) -> None:
        self._image_cache.clear()  # renders are keyed by (split, index) of this fit's data

    def _datamodule(self) -> Any:
        dm = self._mesh_source
        if dm is None and self._trainer is not None:
            dm = self._trainer.datamodule
        if dm is None or not hasattr(dm, "items"):
            raise ValueError(
                "mesh_gcn encoder=image renders its inputs from the data's meshes: train with a "
                "shape datamodule (items(split) with mesh files) or batches with an 'image' key"
            )
        return dm

    def _split_of(self, stage: str) -> str:
        if stage == "train":
            return "train"
        return "val" if stage == "val" and self._datamodule().items("val") else "test"

    def _view_image(self, split: str, idx: int, view: int) -> Tensor:
        """The cached input view of shape ``idx`` of the datamodule's ``split``."""
        key = (split, idx, view)
        if key not in self._image_cache:
            item = self._datamodule().items(split)[idx]
            if item.mesh is None:
                raise ValueError(f"mesh_gcn encoder=image: shape {item.name!r} has no mesh")
            mesh = load_mesh(item.mesh)
            mesh = normalize_mesh(mesh) if item.normalize_mesh else mesh
            self._image_cache[key] = render_input_view(mesh, view, self.image_size, self.n_orbit)
        return self._image_cache[key]

    def batch_inputs(
        self, batch: dict[str, Tensor], stage: str, split: str | None = None
    ) -> Tensor:
        """The encoder input of a batch: a subset of its points (random while training), or its
        ``image`` (B, H, W, 3) when the data provides views, else cached renders of its shapes
        (index ``idx`` of ``split``, by default the split of ``stage``) from a random one of
        ``views`` while training and from the first otherwise."""
        if self.encoder_kind == "points":
            return self._subsample(batch["points"], random=stage == "train")
        if "image" in batch:
            return batch["image"]
        split = split or self._split_of(stage)
        idx = [int(i) for i in batch["idx"]]
        if stage == "train":
            views = [self.views[p] for p in torch.randint(len(self.views), (len(idx),)).tolist()]
        else:
            views = [self.views[0]] * len(idx)
        imgs = [self._view_image(split, i, v) for i, v in zip(idx, views, strict=True)]
        return torch.stack(imgs).to(batch["points"].device)  # (B, H, W, 3)

    # ----------------------------------------------------------------- Lightning
    def loss_terms(self, batch: dict[str, Tensor], stage: str = "train") -> dict[str, Tensor]:
        """The Pixel2Mesh loss and its parts (``losses.mesh_losses``) on a mesh-form batch."""
        points, normals = batch["points"], batch.get("normals")  # (B, N, 3) each
        inputs = self.batch_inputs(batch, stage)
        pooled = self.deformer.pool is not None
        keep = None
        if pooled and stage == "train" and self.pool_dropout > 0:
            keep = torch.rand(len(inputs), device=inputs.device) >= self.pool_dropout
        out = self.decode(self.encode(inputs), inputs if pooled else None, keep)
        graphs = [self.template.adjacency(s, "mean") for s in range(self.template.n_levels)]
        return mesh_losses(out["coords"], out["before"], graphs, points, normals, self.weights)

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        terms = self.loss_terms(batch, stage)
        bs = len(batch["points"])
        self.log(f"{stage}/loss", terms["loss"], prog_bar=stage == "train", batch_size=bs)
        self.log(f"{stage}/chamfer", terms["chamfer_final"], prog_bar=stage == "val", batch_size=bs)
        for k in ("normal", "edge", "laplace", "move"):
            self.log(f"{stage}/{k}", terms[k], batch_size=bs)
        return terms["loss"]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def finalize_training(self) -> None:
        """Fit the latent prior to the codes of all training shapes (called by
        ``zoo.callbacks.FinalCheckpoint`` before the final checkpoint is written, so that the
        checkpoint holds the fitted prior)."""
        if self._prior_step == self.global_step:
            return
        dm = self.trainer.datamodule
        loader = dm.train_dataloader() if dm is not None else self.trainer.train_dataloader
        labels: list[str] = []
        self.fit_prior(self.encode_batches(loader, labels), labels or None)
        self._prior_step = self.global_step

    def on_train_end(self) -> None:
        self.finalize_training()  # a no-op when the final-checkpoint callback already ran it

    # ----------------------------------------------------------------- prior
    @torch.no_grad()
    def encode_batches(
        self, batches: Iterable[dict[str, Any]], synsets: list[str] | None = None
    ) -> Tensor:
        """Codes (S, zdim) of training batches, encoder in eval mode (fixed input subsets, the
        first view). With a list ``synsets``, the batches' ``synset`` labels (one per code) are
        appended to it where every batch has them."""
        was_training = self.encoder.training
        self.encoder.eval()
        codes, labels = [], []
        for batch in batches:
            batch = {
                k: v.to(self.device_) if isinstance(v, Tensor) else v for k, v in batch.items()
            }
            codes.append(self.encode(self.batch_inputs(batch, "prior", split="train")))
            labels.append(batch.get("synset"))
        self.encoder.train(was_training)
        if synsets is not None and all(b is not None for b in labels):
            synsets.extend(str(s) for b in labels for s in b)
        return torch.cat(codes)

    @torch.no_grad()
    def fit_prior(self, codes: Tensor, synsets: list[str] | None = None) -> None:
        """Fit N(mean, S + shrinkage tr(S)/zdim I) to codes (S, zdim) (S >= 2)
        (:func:`zoo.nn.latent_prior.fit_gaussian`); with one ``synsets`` label per code, also
        the per-category prior (for the data's categories; codes of others are left out)."""
        if codes.dim() != 2 or codes.shape[1] != self.zdim or len(codes) < 2:
            raise ValueError(f"codes must be (S >= 2, {self.zdim}), got {tuple(codes.shape)}")
        mean, tril = fit_gaussian(codes, self.prior_shrinkage)
        self.prior_mean.copy_(mean.float())
        self.prior_tril.copy_(tril.float())
        self.prior_ready.fill_(True)
        if synsets is not None:
            if len(synsets) != len(codes):
                raise ValueError(f"need one synset per code, got {len(synsets)} for {len(codes)}")
            known = [i for i, s in enumerate(synsets) if s in self.category_prior.labels]
            self.category_prior.fit(codes[known], [synsets[i] for i in known])

    # ----------------------------------------------------------------- Representation
    @torch.no_grad()
    def prior_codes(self, n: int, seed: int | None = None) -> Tensor:
        """(n, zdim) codes ``mean + L eps`` from the fitted Gaussian prior (N(0, I) before any
        fit, with a warning)."""
        if not bool(self.prior_ready):
            log.warning("mesh_gcn: prior not fitted yet (no training); sampling from N(0, I)")
        g = None if seed is None else torch.Generator().manual_seed(int(seed))
        return draw_gaussian(self.prior_mean, self.prior_tril, n, g)

    @torch.no_grad()
    def sample(
        self, n: int, seed: int | None = None, category: str | None = None
    ) -> list[MeshGCNShape]:
        """n meshes decoded from codes drawn from the fitted Gaussian prior (with
        ``latent_prior=flow``: the mixture of the per-category flows), or with ``category`` (a
        name or synset id) from that category's prior."""
        prior = self.category_prior
        if category is None and isinstance(prior, FlowLatentPrior) and bool(prior.ready.any()):
            g = None if seed is None else torch.Generator().manual_seed(int(seed))
            z = prior.sample_mixture(n, generator=g)  # (n, zdim)
        elif category is None:
            z = self.prior_codes(n, seed)  # (n, zdim)
        else:
            g = None if seed is None else torch.Generator().manual_seed(int(seed))
            z = self.category_prior.sample(n, category, generator=g)  # (n, zdim)
        was_training = self.training
        self.eval()
        shapes = [self._shape(zi) for zi in z]
        self.train(was_training)
        return shapes

    @torch.no_grad()
    def reconstruct(self, target: ShapeTarget) -> MeshGCNShape:
        """Encode ``target.points`` (encoder=points) or ``target.image`` (encoder=image; when
        absent, the input view is rendered from ``target.mesh``) and decode the mesh."""
        if self.encoder_kind == "points":
            target.require("points", model=self.name)
            pts = target.points.float()
            if pts.dim() != 2 or pts.shape[1] != 3:
                raise ValueError(
                    f"target {target.name!r}: points must be (N, 3), got {tuple(pts.shape)}"
                )
            inputs = self._subsample(pts[None].to(self.device_), random=False)
        else:
            if target.image is None:
                target.require("mesh", model=self.name)
                image = render_input_view(target.mesh, self.views[0], self.image_size, self.n_orbit)
            else:
                image = target.image.float()
                if image.dim() != 3 or image.shape[-1] != 3:
                    raise ValueError(
                        f"target {target.name!r}: image must be (H, W, 3), got {tuple(image.shape)}"
                    )
                if image.shape[:2] != (self.image_size, self.image_size):
                    image = F.interpolate(
                        image.permute(2, 0, 1)[None], size=(self.image_size,) * 2,
                        mode="bilinear", align_corners=False, antialias=True,
                    )[0].permute(1, 2, 0)  # fmt: skip
            inputs = image[None].to(self.device_)
        was_training = self.training
        self.eval()  # batch norm with running statistics: one shape is a batch of 1
        pooled = self.deformer.pool is not None
        shape = self._shape(self.encode(inputs)[0], inputs[0] if pooled else None)
        self.train(was_training)
        return shape

    def ceiling(
        self, target: ShapeTarget, n: int, resolution: int
    ) -> tuple[trimesh.Trimesh, Tensor]:
        """This model's template fitted directly to the target's surface with its own loss
        (:mod:`zoo.models.mesh_gcn.ceiling`); ``resolution`` is unused (the mesh is native)."""
        if target.mesh is not None:
            pts, normals = sample_surface(target.mesh, FIT_POINTS, seed=3)
        else:
            target.require("points", model=self.name)
            pts, normals = target.points.float().cpu(), target.normals
        dev = self.template.vertices.device
        nrm = normals.to(dev) if normals is not None else None
        with torch.enable_grad():
            mesh = fit_template(self.template, pts.to(dev), nrm, self.weights)
        return mesh, sample_surface(mesh, n, seed=0)[0]

    def to_mesh(self, shape: MeshGCNShape, resolution: int = 128) -> trimesh.Trimesh:
        """The deformed template itself (``resolution`` is unused: the mesh is native)."""
        return trimesh.Trimesh(
            shape.vertices.detach().cpu().double().numpy(),
            shape.faces.detach().cpu().numpy(),
            process=False,
        )
