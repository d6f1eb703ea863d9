"""DeepSDF as a zoo model: an auto-decoder with one learned code per training shape.

Park et al., "DeepSDF: Learning Continuous Signed Distance Functions for Shape Representation",
CVPR 2019. Training (Eq. 9) jointly optimises the decoder f_theta and the codes {z_i}:

    L = mean_{i, j} |clamp(f(z_i, x_j), delta) - clamp(s_j, delta)|  +  lambda * mean_i ||z_i||

with ``delta = 0.1`` and ``lambda = 1e-4`` ramped up over the first 100 epochs, as in the
reference ``train_deep_sdf.py`` (which penalises the code *norm*, the paper writes the squared
norm as a Gaussian prior). Codes live in an ``nn.Embedding`` initialised from N(0, 1/L) with
``max_norm = CodeBound = 1``; the decoder and the codes have their own learning rates
(5e-4 / 1e-3, halved every 500 epochs in ``examples/chairs/specs.json``).

The native shape of this model is a latent code, a (L,) tensor: ``reconstruct`` infers one for
an unseen shape (decoder frozen), ``sample`` draws them from a Gaussian fitted to the training
codes, ``to_mesh`` extracts the zero level set by marching cubes.

Training from surface points alone (``model.loss=igr``, :mod:`zoo.models.deepsdf.igr`): the
clamped L1 on SDF samples is replaced by IGR's loss (Gropp et al., ICML 2020), mean |f| on the
points plus 0.1 times the eikonal term, with the same code penalty; the model then asks the
data for form ``points`` (``data_form`` is set per instance), so it trains on point clouds
without normals (``data=point_arrays``). The decoder decodes unbounded (no ``tanh``) with a
Softplus activation and starts as a sphere's SDF (geometric initialisation), and an unseen
shape's code is fitted with the same IGR loss on its points.

Class-conditional sampling (``sample(n, category="chair")``): one Gaussian per training category
(:class:`zoo.nn.latent_prior.GaussianLatentPrior`), fitted to the codes of that category's
training shapes (labels: the data's ``info["train_synsets"]``, by training index) when training
ends, or on first use for weights saved before it existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import trimesh
from torch import Tensor, nn

from zoo.export import export_mesh
from zoo.models.base import ZooModel
from zoo.models.deepsdf.decoder import DeepSDFDecoder
from zoo.models.deepsdf.fitting import (
    check_sdf_samples,
    clamped_l1,
    fit_latents,
    gaussian_latents,
    target_sdf_samples,
)
from zoo.models.deepsdf.igr import IGRConfig, fit_latents_igr, igr_terms, kth_neighbour_distance
from zoo.models.registry import register_model
from zoo.nn.latent_prior import FlowLatentPrior, LatentPrior, build_latent_prior, train_labels
from zoo.ops.marching_cubes import (
    DEFAULT_BBOX_MAX,
    DEFAULT_BBOX_MIN,
    evaluate_grid,
    grid_points,
    marching_cubes,
)
from zoo.ops.mesh_queries import signed_distance
from zoo.ops.surface import sample_surface
from zoo.representation import ShapeTarget


@register_model("deepsdf")
class DeepSDF(ZooModel):
    """Auto-decoder SDF model (``model=deepsdf``).

    Args:
        decoder: the network f(z, x) (its ``latent_size`` is the code size).
        lr_decoder, lr_codes: per-group learning rates (paper 5e-4 / 1e-3); they override the
            ``lr`` of the optimiser partial.
        clamp: delta of the clamped L1 loss (paper 0.1).
        code_reg_lambda: weight of the code-norm penalty (paper 1e-4; 0 disables it).
        code_reg_warmup_epochs: the penalty is scaled by ``min(1, epoch / warmup)`` (ref. 100).
        code_bound: ``max_norm`` of the code embedding (ref. 1.0; null for none).
        code_init_std: codes start from N(0, (code_init_std / sqrt(L))^2) (ref. 1.0).
        train_samples: if set, each step uses a random subset of this many of the batch's S
            samples per shape (a CPU budget knob; null uses all S, as the paper's 16384).
        recon_iterations, recon_samples, recon_lr, recon_init_std, recon_l2: inference of an
            unseen shape's code (ref. 800, 8000, 5e-3, 0.01, 1e-4).
        recon_target_samples: SDF samples drawn from a target's mesh / points when it has none.
        val_iterations, val_samples: code fitting per validation batch (held-out SDF L1).
        latent_covariance: ``full`` or ``diag`` Gaussian fitted to all the codes for ``sample``
            (without a category).
        prior_shrinkage: shrinkage of the per-category full-covariance Gaussians (a category
            has fewer codes than dimensions; :func:`zoo.nn.latent_prior.fit_gaussian`).
        latent_prior: ``gaussian`` (one Gaussian per category; without a category ``sample``
            draws from the Gaussian of all codes, ``latent_covariance``) or ``flow`` (one
            coupling flow per category, :class:`zoo.nn.latent_prior.FlowLatentPrior`; without
            a category ``sample`` draws each sample's category with its training frequency).
        prior_flow: options of :class:`zoo.nn.latent_prior.FlowLatentPrior`.
        points_resolution: marching-cubes grid used by ``to_points``.
        bbox_min, bbox_max: the box of the marching-cubes grid.
        chunk: points per decoder call when evaluating a grid.
        loss: ``sdf`` (DeepSDF's clamped L1 on SDF samples, data form ``sdf``) or ``igr``
            (IGR from surface points, data form ``points``; module docstring).
        igr: options of ``loss=igr``: the :class:`zoo.models.deepsdf.igr.IGRConfig` fields
            ``eikonal_lambda`` (0.1), ``normals_lambda`` (1.0, used when batches carry
            ``normals``), ``neighbours`` (50), ``uniform_fraction`` (1/8), and the decoder's
            ``softplus_beta`` (default 300), ``geometric_init`` (true) with ``init_radius``
            (0.3). IGR's Softplus has beta 100 for shapes about 1 across (D-FAUST, metres) in a
            +-1.8 box; the zoo's shapes are about 3 times smaller (bounding-box diagonal 1), so
            the same smoothness relative to the shape is beta 300, and a sphere of radius 0.3
            sits inside the shapes' +-0.5 extent as IGR's radius 1 does in theirs. Under
            ``igr`` the decoder never applies ``tanh`` (an SDF with |grad f| = 1 is unbounded).
    """

    kind = "sdf"
    data_form = "sdf"
    generative = True
    conditional = True
    interpolates = True

    def __init__(
        self,
        decoder: DeepSDFDecoder | None = None,
        lr_decoder: float = 5e-4,
        lr_codes: float = 1e-3,
        clamp: float = 0.1,
        code_reg_lambda: float = 1e-4,
        code_reg_warmup_epochs: int = 100,
        code_bound: float | None = 1.0,
        code_init_std: float = 1.0,
        train_samples: int | None = None,
        recon_iterations: int = 800,
        recon_samples: int = 8000,
        recon_lr: float = 5e-3,
        recon_init_std: float = 0.01,
        recon_l2: float = 1e-4,
        recon_target_samples: int = 30000,
        val_iterations: int = 50,
        val_samples: int = 2048,
        latent_covariance: str = "full",
        prior_shrinkage: float = 1e-3,
        latent_prior: str = "gaussian",
        prior_flow: dict[str, Any] | None = None,
        points_resolution: int = 64,
        bbox_min: Sequence[float] = DEFAULT_BBOX_MIN,
        bbox_max: Sequence[float] = DEFAULT_BBOX_MAX,
        chunk: int = 65536,
        loss: str = "sdf",
        igr: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if clamp <= 0:
            raise ValueError(f"clamp must be > 0, got {clamp}")
        if latent_covariance not in ("full", "diag"):
            raise ValueError(
                f"latent_covariance must be 'full' or 'diag', got {latent_covariance!r}"
            )
        self.decoder = decoder if decoder is not None else DeepSDFDecoder()
        self.latent_size = self.decoder.latent_size
        self.lr_decoder, self.lr_codes = float(lr_decoder), float(lr_codes)
        self.clamp = float(clamp)
        self.code_reg_lambda = float(code_reg_lambda)
        self.code_reg_warmup_epochs = int(code_reg_warmup_epochs)
        self.code_bound = None if code_bound is None else float(code_bound)
        self.code_init_std = float(code_init_std)
        self.train_samples = None if train_samples is None else int(train_samples)
        self.recon = {
            "iterations": int(recon_iterations),
            "samples": int(recon_samples),
            "lr": float(recon_lr),
            "init_std": float(recon_init_std),
            "l2_reg": float(recon_l2),
        }
        self.recon_target_samples = int(recon_target_samples)
        self.val_iterations = int(val_iterations)
        self.val_samples = int(val_samples)
        self.latent_covariance = latent_covariance
        self.points_resolution = int(points_resolution)
        self.bbox_min, self.bbox_max = tuple(bbox_min), tuple(bbox_max)
        self.chunk = int(chunk)
        self.prior_shrinkage = float(prior_shrinkage)
        self.latent_prior = str(latent_prior)
        self.prior_flow = dict(prior_flow or {})
        if loss not in ("sdf", "igr"):
            raise ValueError(f"loss must be 'sdf' or 'igr', got {loss!r}")
        self.loss_type = loss
        # The batches this instance trains on follow the loss (the class default is "sdf").
        self.data_form = "points" if loss == "igr" else "sdf"
        self.igr_cfg: IGRConfig | None = self._setup_igr(dict(igr or {})) if loss == "igr" else None
        self.register_module("codes", None)  # built in configure_from_data
        # One prior per training category; rebuilt for the data's categories.
        self.category_prior = self._build_prior([], None)
        self._train_labels: list[str] | None = None
        self._mesh_cache: tuple[Tensor, tuple, trimesh.Trimesh] | None = None

    def _setup_igr(self, opts: dict[str, Any]) -> IGRConfig:
        """IGR's loss settings from ``opts``; sets the decoder up for IGR (module docstring)."""
        beta = float(opts.pop("softplus_beta", 300.0))
        geometric = bool(opts.pop("geometric_init", True))
        radius = float(opts.pop("init_radius", 0.3))
        try:
            cfg = IGRConfig(**opts, bbox_min=self.bbox_min, bbox_max=self.bbox_max)
        except TypeError as e:
            raise ValueError(f"deepsdf: unknown model.igr option ({e})") from None
        if beta < 0:
            raise ValueError(f"igr.softplus_beta must be >= 0 (0: ReLU), got {beta}")
        self.decoder.output_tanh = False
        self.decoder.softplus_beta = beta
        if geometric:
            self.decoder.geometric_init_(radius)
        return cfg

    # ----------------------------------------------------------------- data-dependent parts
    def configure_from_data(self, info: dict[str, Any]) -> None:
        """One code per training shape: ``info["num_train_shapes"]`` rows of size L; one
        Gaussian per category of ``info["synsets"]`` (names ``info["categories"]``)."""
        super().configure_from_data(info)
        n = info.get("num_train_shapes")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"deepsdf: info['num_train_shapes'] must be an int >= 1, got {n!r}")
        codes = nn.Embedding(n, self.latent_size, max_norm=self.code_bound)
        nn.init.normal_(codes.weight, 0.0, self.code_init_std / self.latent_size**0.5)
        self.codes = codes.to(self.device_)
        labels = train_labels(info)
        self._train_labels = labels if labels is not None and len(labels) == n else None
        self.category_prior = self._build_prior(
            info.get("synsets") or [], info.get("categories")
        ).to(self.device_)

    def _build_prior(self, labels: Sequence[str], names: Sequence[str] | None) -> LatentPrior:
        return build_latent_prior(
            self.latent_prior,
            self.latent_size,
            labels,
            names,
            shrinkage=self.prior_shrinkage,
            flow=self.prior_flow,
        )

    def _require_codes(self) -> nn.Embedding:
        if self.codes is None:
            raise RuntimeError("deepsdf: call configure_from_data(info) before using the codes")
        return self.codes

    def optimizer_param_groups(self) -> Any:
        codes = self._require_codes()
        return [
            {"params": list(self.decoder.parameters()), "lr": self.lr_decoder},
            {"params": list(codes.parameters()), "lr": self.lr_codes},
        ]

    # ----------------------------------------------------------------------------- training
    def forward(self, latent: Tensor, xyz: Tensor) -> Tensor:
        """SDF at ``xyz`` (..., 3) for codes ``latent`` (..., L) (broadcast)."""
        return self.decoder(latent, xyz)

    def train_latent(self, index: int | Tensor) -> Tensor:
        """The learned code(s) of training shape(s) ``index`` ((L,) or (K, L)), detached."""
        codes = self._require_codes()
        idx = torch.as_tensor(index, device=codes.weight.device, dtype=torch.long)
        with torch.no_grad():
            return codes(idx).detach().clone()  # lookup applies max_norm like training

    def _batch_codes(self, batch: dict[str, Tensor], n_shapes: int) -> Tensor:
        """The (B, L) codes of the training shapes ``batch["idx"]`` (B,), checked."""
        codes = self._require_codes()
        idx = batch["idx"].long().reshape(-1)
        if len(idx) != n_shapes:
            raise ValueError(f"batch['idx'] has {len(idx)} entries for {n_shapes} shapes")
        if idx.min() < 0 or idx.max() >= codes.num_embeddings:
            raise ValueError(
                f"batch['idx'] out of range [0, {codes.num_embeddings}): {idx.tolist()}"
            )
        return codes(idx)

    def _code_reg(self, z: Tensor) -> Tensor:
        """``lambda * mean_i |z_i|``, lambda ramped up over ``code_reg_warmup_epochs``."""
        warm = 1.0
        if self.code_reg_warmup_epochs > 0:
            warm = min(1.0, (self.current_epoch + 1) / self.code_reg_warmup_epochs)
        return self.code_reg_lambda * warm * z.norm(dim=-1).mean()

    def sdf_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Clamped L1 and code penalty of a training batch ``{"sdf": (B,S,4), "idx": (B,)}``."""
        sdf = check_sdf_samples(batch["sdf"], "batch['sdf']")
        if sdf.ndim != 3:
            raise ValueError(f"batch['sdf'] must have shape (B, S, 4), got {tuple(sdf.shape)}")
        z = self._batch_codes(batch, len(sdf))  # (B, L)
        if self.train_samples is not None and self.train_samples < sdf.shape[1]:
            keep = torch.randperm(sdf.shape[1], device=sdf.device)[: self.train_samples]
            sdf = sdf[:, keep]  # (B, S', 4); batches are half pos / half neg, so is the subset
        pred = self.decoder(z[:, None, :], sdf[..., :3])  # (B, S)
        l1 = clamped_l1(pred, sdf[..., 3], self.clamp).mean()
        reg = self._code_reg(z)
        return {"loss": l1 + reg, "l1": l1, "code_reg": reg}

    def igr_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """IGR loss and code penalty of a batch ``{"points": (B, N, 3), "idx": (B,)}`` (plus
        ``"normals"`` (B, N, 3) if the data has them): ``loss``, ``surface``, ``eikonal``,
        ``normals`` (batch means) and ``code_reg``."""
        cfg = self._require_igr()
        pts = batch["points"]
        if pts.ndim != 3 or pts.shape[-1] != 3 or not torch.isfinite(pts).all():
            raise ValueError(
                f"batch['points'] must be finite with shape (B, N, 3), got {tuple(pts.shape)}"
            )
        pts = pts.float()
        z = self._batch_codes(batch, len(pts))  # (B, L)
        sigma = kth_neighbour_distance(pts, cfg.neighbours)  # (B, N)
        normals = batch.get("normals")
        terms = igr_terms(self.decoder, z, pts, sigma, cfg, normals)
        reg = self._code_reg(z)
        out = {k: v.mean() for k, v in terms.items()}
        out["code_reg"] = reg
        out["loss"] = out["loss"] + reg
        return out

    def _require_igr(self) -> IGRConfig:
        if self.igr_cfg is None:
            raise RuntimeError("deepsdf: the IGR loss needs model.loss=igr")
        return self.igr_cfg

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        if self.loss_type == "igr":
            return self._igr_step(batch, stage)
        if stage == "train":
            out = self.sdf_loss(batch)
            self.log("train/loss", out["loss"], prog_bar=True, batch_size=len(batch["sdf"]))
            self.log("train/sdf_l1", out["l1"], batch_size=len(batch["sdf"]))
            return out["loss"]
        # Held-out shapes have no trained code: fit one (decoder frozen) and report the
        # clamped L1 it reaches, the quantity inference minimises.
        _, err = fit_latents(
            self.decoder,
            batch["sdf"],
            iterations=self.val_iterations,
            samples=min(self.val_samples, batch["sdf"].shape[1]),
            lr=self.recon["lr"],
            clamp=self.clamp,
            init_std=self.recon["init_std"],
            l2_reg=self.recon["l2_reg"],
        )
        self.log(f"{stage}/sdf_l1", err.mean(), prog_bar=True, batch_size=len(err))
        return err.mean()

    def _igr_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        b = len(batch["points"])
        if stage == "train":
            out = self.igr_loss(batch)
            self.log("train/loss", out["loss"], prog_bar=True, batch_size=b)
            self.log("train/igr_surface", out["surface"], batch_size=b)
            self.log("train/igr_eikonal", out["eikonal"], batch_size=b)
            return out["loss"]
        # Held-out shapes: fit a code to their points (decoder frozen); report mean |f| there.
        pts = batch["points"]
        _, surface = fit_latents_igr(
            self.decoder,
            pts,
            self._require_igr(),
            normals=batch.get("normals"),
            iterations=self.val_iterations,
            samples=min(self.val_samples, pts.shape[1]),
            lr=self.recon["lr"],
            init_std=self.recon["init_std"],
            l2_reg=self.recon["l2_reg"],
        )
        self.log(f"{stage}/igr_surface", surface.mean(), prog_bar=True, batch_size=b)
        return surface.mean()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    # ----------------------------------------------------------------------- Representation
    def reconstruct(self, target: ShapeTarget, seed: int = 0) -> Tensor:
        """Infer the code of an unseen shape from its SDF samples (or mesh / points); under
        ``loss=igr`` from its surface points (or points sampled on its mesh) with the IGR loss,
        or from its SDF samples when it has nothing else."""
        if self.igr_cfg is not None and (target.points is not None or target.mesh is not None):
            return self._reconstruct_igr(target, seed)
        sdf = target_sdf_samples(target, self.recon_target_samples, seed=seed)  # (S, 4)
        z, _ = fit_latents(
            self.decoder,
            sdf[None].to(self.device_),
            clamp=self.clamp,
            seed=seed,
            dtype=torch.float64,  # the same code on every CPU (see fit_latents)
            **self.recon,
        )
        return z[0]

    def _reconstruct_igr(self, target: ShapeTarget, seed: int) -> Tensor:
        """The code fitted with the IGR loss to the target's points (+ normals), else to
        ``recon_target_samples`` points sampled on its mesh (with their face normals)."""
        points, normals = target.points, target.normals
        if points is None:
            assert target.mesh is not None
            points, normals = sample_surface(target.mesh, self.recon_target_samples, seed=seed)
        z, _ = fit_latents_igr(
            self.decoder,
            points[None].to(self.device_),
            self._require_igr(),
            normals=None if normals is None else normals[None].to(self.device_),
            seed=seed,
            dtype=torch.float64,  # the same code on every CPU (see fit_latents)
            **self.recon,
        )
        return z[0]

    def sample(self, n: int, seed: int | None = None, category: str | None = None) -> list[Tensor]:
        """n codes from the Gaussian fitted to all training codes (``latent_prior=flow``: from
        the per-category flows, each sample's category drawn with its training frequency), or
        with ``category`` (a name or synset id) from that category's prior."""
        if category is None and isinstance(self.category_prior, FlowLatentPrior):
            return self._sample_mixture(self.category_prior, n, seed)
        if category is None:
            codes = self.train_latent(torch.arange(self._require_codes().num_embeddings))
            z = gaussian_latents(codes, n, self.latent_covariance, seed=seed)
            return [zi for zi in z]
        k = self.category_prior.index_of(category)
        if not bool(self.category_prior.ready[k]) and self._train_labels is not None:
            self.fit_category_prior()  # weights saved before the per-category prior
        g = None if seed is None else torch.Generator().manual_seed(int(seed))
        return [zi for zi in self.category_prior.sample(n, category, generator=g)]

    def _sample_mixture(self, prior: FlowLatentPrior, n: int, seed: int | None) -> list[Tensor]:
        """n codes of the per-category flows, each sample's category drawn with its share of
        the training codes."""
        if not bool(prior.ready.any()):
            self.fit_category_prior()
        g = None if seed is None else torch.Generator().manual_seed(int(seed))
        return [zi for zi in prior.sample_mixture(n, generator=g)]

    def fit_category_prior(self) -> None:
        """Fit the per-category priors to the training codes and their categories."""
        if self._train_labels is None:
            raise ValueError("deepsdf: the data info names no category per training shape")
        codes = self.train_latent(torch.arange(self._require_codes().num_embeddings))
        self.category_prior.fit(codes, self._train_labels)

    def finalize_training(self) -> None:
        """Fit the per-category prior to the final codes (before the final checkpoint)."""
        if self._train_labels is not None:
            self.fit_category_prior()

    def on_train_end(self) -> None:
        self.finalize_training()  # also without the final-checkpoint callback

    def sdf_grid(self, latent: Tensor, resolution: int) -> Tensor:
        """(R, R, R) SDF of ``latent`` on the grid of ``zoo.ops.marching_cubes.grid_points``."""
        z = self._check_latent(latent)
        was_training = self.decoder.training
        self.decoder.eval()
        try:
            return evaluate_grid(
                lambda p: self.decoder(z[None], p),
                resolution,
                self.bbox_min,
                self.bbox_max,
                chunk=self.chunk,
                device=z.device,
            )
        finally:
            self.decoder.train(was_training)

    def to_mesh(self, shape: Tensor, resolution: int = 128) -> trimesh.Trimesh:
        """Zero level set of the decoded SDF (empty mesh if the SDF has no sign change)."""
        z = self._check_latent(shape)
        # One-entry cache: the evaluator asks for the same mesh twice (to_mesh, to_points). The
        # key includes the parameters' in-place version counters, so training invalidates it.
        key = (int(resolution), tuple(p._version for p in self.decoder.parameters()))
        cache = self._mesh_cache
        if cache is not None and cache[1] == key and torch.equal(cache[0], z.cpu()):
            return cache[2]
        grid = self.sdf_grid(z, resolution)
        mesh = marching_cubes(grid, 0.0, self.bbox_min, self.bbox_max, inside="below")
        self._mesh_cache = (z.cpu().clone(), key, mesh)
        return mesh

    def to_points(self, shape: Tensor, n: int = 2048, seed: int | None = 0) -> Tensor:
        """Surface samples of ``to_mesh(shape, points_resolution)``; if the decoded SDF has no
        zero crossing, the n grid points of smallest |sdf| (a finite, honest stand-in)."""
        mesh = self.to_mesh(shape, self.points_resolution)
        if len(mesh.faces) > 0:
            return sample_surface(mesh, n, seed=seed)[0]
        grid = self.sdf_grid(self._check_latent(shape), self.points_resolution).reshape(-1)
        pts = grid_points(self.points_resolution, self.bbox_min, self.bbox_max)
        order = grid.abs().cpu().argsort()
        return pts[order[: min(n, len(order))]][torch.arange(n) % min(n, len(order))]

    def ceiling(
        self, target: ShapeTarget, n: int, resolution: int
    ) -> tuple[trimesh.Trimesh, Tensor]:
        """The true SDF of ``target.mesh`` on this model's marching-cubes grids, extracted like a
        decoded one: ``to_mesh`` at ``resolution`` and the points of ``to_points`` on the
        ``points_resolution`` mesh (the limit of any decoder read out at these grids)."""
        target.require("mesh", model=self.name)

        def level_set(r: int) -> trimesh.Trimesh:
            pts = grid_points(r, self.bbox_min, self.bbox_max)  # (r^3, 3)
            grid = signed_distance(target.mesh, pts).reshape(r, r, r)
            return marching_cubes(grid, 0.0, self.bbox_min, self.bbox_max, inside="below")

        mesh = level_set(int(resolution))
        surface = (
            mesh if self.points_resolution == resolution else level_set(self.points_resolution)
        )
        return mesh, sample_surface(surface, n, seed=0)[0]

    def _check_latent(self, latent: Tensor) -> Tensor:
        z = torch.as_tensor(latent, dtype=torch.float32)
        if z.ndim == 2 and z.shape[0] == 1:
            z = z[0]
        if z.shape != (self.latent_size,):
            raise ValueError(f"latent must have shape ({self.latent_size},), got {tuple(z.shape)}")
        return z.to(self.device_)

    # ------------------------------------------------------------------------ interpolation
    def _as_latent(self, shape: Tensor | int | ShapeTarget) -> Tensor:
        if isinstance(shape, ShapeTarget):
            return self.reconstruct(shape)
        if isinstance(shape, int):
            return self.train_latent(shape)
        return self._check_latent(shape)

    def interpolate(
        self, a: Tensor | int | ShapeTarget, b: Tensor | int | ShapeTarget, steps: int = 8
    ) -> list[Tensor]:
        """``steps`` codes on the segment from ``a`` to ``b`` (both ends included). Each end is
        a code, the index of a training shape, or a target to reconstruct first."""
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        za, zb = self._as_latent(a), self._as_latent(b)
        t = torch.linspace(0.0, 1.0, steps, device=za.device)
        return [(1 - ti) * za + ti * zb for ti in t]

    def export_interpolation(
        self,
        latent_a: Tensor | int | ShapeTarget,
        latent_b: Tensor | int | ShapeTarget,
        steps: int,
        out_dir: str | Path,
        resolution: int = 64,
        file_type: str = "obj",
    ) -> list[Path]:
        """Meshes of ``interpolate(latent_a, latent_b, steps)`` written as
        ``out_dir/interp_000.<obj|ply>``...; returns the paths."""
        if file_type not in ("obj", "ply"):
            raise ValueError(f"file_type must be 'obj' or 'ply', got {file_type!r}")
        out = Path(out_dir)
        paths = []
        for i, z in enumerate(self.interpolate(latent_a, latent_b, steps)):
            mesh = self.to_mesh(z, resolution)
            paths.append(export_mesh(mesh, out / f"interp_{i:03d}.{file_type}"))
        return paths
