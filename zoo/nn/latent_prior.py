"""Latent priors: what a latent-variable generator draws its codes from, per category.

An auto-decoder (DeepSDF) or an encoder-decoder (mesh_gcn) generates by decoding codes drawn
from a distribution fitted to its training codes. Fitted to the codes of every category at
once, a Gaussian puts most of its mass between the categories' clusters, so most draws are
blends of no category; one distribution per category keeps a draw inside one cluster
(class-conditional sampling).

:class:`LatentPrior` is the declared interface (``labels``, ``fit``, ``sample``), so that a
learned prior (a flow or a diffusion over latents) can replace the Gaussian one without the
models changing. :class:`GaussianLatentPrior` is one full-covariance Gaussian per category,
with the shrinkage ``S + shrinkage * tr(S)/D * I`` of :func:`fit_gaussian` (per category there
are often fewer codes than dimensions, so ``S`` alone is singular). Its parameters are buffers
(in state dicts, checkpoints and pretrained weights); their shapes depend on the number of
categories, so a model builds it in ``configure_from_data`` from the data's ``info``.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from zoo.nn.coupling_flow import CouplingFlow
from zoo.ops.random import randn


def fit_gaussian(codes: Tensor, shrinkage: float) -> tuple[Tensor, Tensor]:
    """Mean (D,) and Cholesky factor (D, D) of ``N(mean, S + shrinkage * tr(S)/D * I)``
    fitted to codes (N, D), in float64. ``S`` is the unbiased sample covariance (zero for a
    single code: the prior is then a point mass, up to the tiny ridge)."""
    if codes.ndim != 2 or len(codes) < 1:
        raise ValueError(f"codes must have shape (N >= 1, D), got {tuple(codes.shape)}")
    dim = codes.shape[1]
    codes = codes.double()
    mean = codes.mean(0)
    if len(codes) == 1:
        cov = torch.zeros(dim, dim, dtype=codes.dtype, device=codes.device)
    else:
        cov = torch.cov(codes.T).reshape(dim, dim)
    ridge = shrinkage * cov.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(dim, dtype=cov.dtype, device=cov.device)
    return mean, torch.linalg.cholesky(cov + ridge * eye)


def draw_gaussian(
    mean: Tensor, tril: Tensor, n: int, generator: torch.Generator | None = None
) -> Tensor:
    """(n, D) draws ``mean + L eps``, ``eps ~ N(0, I)`` from :func:`zoo.ops.random.randn` (the
    same on every CPU for a seeded CPU ``generator``)."""
    eps = randn(n, mean.shape[-1], generator=generator, device=mean.device)  # (n, D)
    return mean + eps @ tril.T


class LatentPrior(nn.Module, abc.ABC):
    """A distribution over latent codes, one per category label.

    ``dim`` is the code size; ``labels`` are the data's category ids (ShapeNet synsets) in a
    fixed order; ``names`` their readable names (``"chair"``); a category is given by either.
    """

    def __init__(self, dim: int, labels: Sequence[str], names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.dim = int(dim)
        self.labels = [str(x) for x in labels]
        self.names = [str(x) for x in names] if names is not None else list(self.labels)
        if len(self.names) != len(self.labels) or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"need distinct labels, one name each; got {labels}, {names}")

    def index_of(self, category: str) -> int:
        """The index of ``category`` (a label or a name, case-insensitive for names)."""
        c = str(category).strip()
        if c in self.labels:
            return self.labels.index(c)
        lowered = [n.lower() for n in self.names]
        if c.lower() in lowered:
            return lowered.index(c.lower())
        known = ", ".join(f"{n} ({lab})" for n, lab in zip(self.names, self.labels, strict=True))
        raise ValueError(f"unknown category {category!r}; known: {known or 'none'}")

    def rows_by_category(self, codes: Tensor, labels: Sequence[str]) -> list[list[int]]:
        """For each of the prior's categories, the rows of codes (N, D) labelled with it;
        ``ValueError`` for a shape mismatch or a label the prior does not know."""
        if codes.ndim != 2 or codes.shape[1] != self.dim or len(codes) != len(labels):
            raise ValueError(
                f"need codes (N, {self.dim}) and N labels, got {tuple(codes.shape)} and "
                f"{len(labels)} labels"
            )
        unknown = sorted(set(labels) - set(self.labels))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the prior's {self.labels}")
        return [[i for i, x in enumerate(labels) if x == label] for label in self.labels]

    @abc.abstractmethod
    def fit(self, codes: Tensor, labels: Sequence[str]) -> None:
        """Fit to codes (N, D), ``labels[i]`` the category label of ``codes[i]``."""

    @abc.abstractmethod
    def sample(self, n: int, category: str, generator: torch.Generator | None = None) -> Tensor:
        """(n, D) codes of ``category``; ``ValueError`` for an unknown or unfitted one."""


class GaussianLatentPrior(LatentPrior):
    """One Gaussian per category (:func:`fit_gaussian`).

    Buffers: ``mean`` (C, D), ``tril`` (C, D, D), ``ready`` (C,) bool (categories with no
    training code stay unfitted). A state dict from before the prior existed (no such keys)
    loads, leaving every category unfitted.

    Args:
        dim: code size D.
        labels, names: the categories (:class:`LatentPrior`).
        shrinkage: covariance shrinkage of :func:`fit_gaussian`.
    """

    def __init__(
        self,
        dim: int,
        labels: Sequence[str] = (),
        names: Sequence[str] | None = None,
        shrinkage: float = 1e-3,
    ) -> None:
        super().__init__(dim, labels, names)
        self.shrinkage = float(shrinkage)
        c = len(self.labels)
        self.register_buffer("mean", torch.zeros(c, self.dim))
        self.register_buffer("tril", torch.eye(self.dim).expand(c, -1, -1).clone())
        self.register_buffer("ready", torch.zeros(c, dtype=torch.bool))

    @torch.no_grad()
    def fit(self, codes: Tensor, labels: Sequence[str]) -> None:
        for k, rows in enumerate(self.rows_by_category(codes, labels)):
            if not rows:
                self.ready[k] = False
                continue
            mean, tril = fit_gaussian(codes[rows], self.shrinkage)
            self.mean[k].copy_(mean)
            self.tril[k].copy_(tril)
            self.ready[k] = True

    @torch.no_grad()
    def sample(self, n: int, category: str, generator: torch.Generator | None = None) -> Tensor:
        k = self.index_of(category)
        if not bool(self.ready[k]):
            raise ValueError(
                f"category {self.names[k]!r} has no fitted prior: no training code of it was "
                "seen (weights from before class-conditional sampling, or a category absent "
                "from the training split)"
            )
        return draw_gaussian(self.mean[k], self.tril[k], n, generator)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Weights saved before this prior existed have none of its keys: keep the unfitted
        # buffers (strict loading of the rest still applies).
        if not any(key.startswith(prefix) for key in state_dict):
            for name, buf in self._buffers.items():
                state_dict[prefix + name] = buf
        super()._load_from_state_dict(state_dict, prefix, *args)


class FlowLatentPrior(LatentPrior):
    """One affine coupling flow per category (:class:`zoo.nn.coupling_flow.CouplingFlow`),
    fitted by maximum likelihood to that category's codes after training.

    A learnt prior over a generator's latents in place of a fixed Gaussian: Luo & Hu (CVPR
    2021, Sec. 4.3) put a Real NVP flow (Dinh et al., ICLR 2017) over the shape latent; fitting
    a density to the codes of a trained auto-encoder in a second stage is the "latent GAN /
    GMM" recipe of Achlioptas et al. (ICML 2018). Codes are standardised per category (mean
    and per-dimension std, kept as buffers) before the flow, so its width does not depend on
    the codes' scale; draws are ``flow.inverse(t * w) * std + mean`` with ``w ~ N(0, I)`` from
    :func:`zoo.ops.random.randn` and temperature ``t`` (Glow's reduced-temperature sampling,
    Kingma & Dhariwal 2018; 1.0 samples the fitted density), evaluated in float64.

    Args:
        dim: code size D.
        labels, names: the categories (:class:`LatentPrior`).
        hidden, depth: each flow's coupling MLP width and number of layers; its layers use
            Real NVP's exponential scale (``CouplingFlow(scale="exp")``), since a flow fitted
            alone must be able to expand thin directions of the codes.
        fit_steps, lr, weight_decay: full-batch Adam steps of the fit, per category.
        temperature: scale of the Gaussian draws at sampling time.
        seed: initialisation and fitting seed (the fit is repeatable on one machine).
    """

    def __init__(
        self,
        dim: int,
        labels: Sequence[str] = (),
        names: Sequence[str] | None = None,
        hidden: int = 128,
        depth: int = 8,
        fit_steps: int = 1500,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(dim, labels, names)
        if fit_steps < 1 or temperature <= 0:
            raise ValueError(
                f"need fit_steps >= 1 and temperature > 0, got {fit_steps}, {temperature}"
            )
        self.fit_steps, self.lr, self.weight_decay = int(fit_steps), float(lr), float(weight_decay)
        self.temperature, self.seed = float(temperature), int(seed)
        c = len(self.labels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.flows = nn.ModuleList(
                CouplingFlow(self.dim, hidden, depth, scale="exp") for _ in range(c)
            )
        self.register_buffer("mean", torch.zeros(c, self.dim))
        self.register_buffer("std", torch.ones(c, self.dim))
        self.register_buffer("count", torch.zeros(c))  # training codes per category
        self.register_buffer("ready", torch.zeros(c, dtype=torch.bool))
        self.last_nll: dict[str, float] = {}  # per category: mean NLL per dim at the fit's end

    def fit(self, codes: Tensor, labels: Sequence[str]) -> None:
        per_category = self.rows_by_category(codes, labels)
        codes = codes.detach().float()
        for k, (label, rows) in enumerate(zip(self.labels, per_category, strict=True)):
            self.count[k] = len(rows)
            if not rows:
                self.ready[k] = False
                continue
            x = codes[rows].to(self.mean.device)  # (Nk, D)
            mean = x.mean(0)
            std = x.std(0, unbiased=False).clamp_min(1e-6) if len(x) > 1 else torch.ones_like(mean)
            self.mean[k].copy_(mean)
            self.std[k].copy_(std)
            self.last_nll[label] = self._fit_flow(self.flows[k], (x - mean) / std)
            self.ready[k] = True

    def _fit_flow(self, flow: CouplingFlow, x: Tensor) -> float:
        """Full-batch maximum likelihood of standardised codes x (N, D); the final NLL / D."""
        with torch.enable_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            flow.train()
            opt = torch.optim.Adam(flow.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            for _ in range(self.fit_steps):
                opt.zero_grad(set_to_none=True)
                nll = -flow.log_prob(x).mean() / self.dim
                nll.backward()
                opt.step()
        flow.eval()
        return float(nll.detach())

    @torch.no_grad()
    def sample(self, n: int, category: str, generator: torch.Generator | None = None) -> Tensor:
        k = self.index_of(category)
        if not bool(self.ready[k]):
            raise ValueError(
                f"category {self.names[k]!r} has no fitted prior: no training code of it was seen"
            )
        flow = copy.deepcopy(self.flows[k]).to(dtype=torch.float64, device="cpu").eval()
        w = randn(n, self.dim, generator=generator, dtype=torch.float64) * self.temperature
        z = flow.inverse(w) * self.std[k].double().cpu() + self.mean[k].double().cpu()  # (n, D)
        return z.to(dtype=self.mean.dtype, device=self.mean.device)

    @torch.no_grad()
    def sample_mixture(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, D) codes of the mixture of the categories' flows, each draw's category chosen
        with its share of the training codes."""
        if not bool(self.ready.any()):
            raise ValueError("the flow prior has not been fitted to any category")
        which = torch.multinomial(
            self.count.double().cpu(), n, replacement=True, generator=generator
        )
        out = self.mean.new_empty(n, self.dim)
        for k in range(len(self.labels)):
            rows = (which == k).nonzero().flatten()
            if len(rows):
                out[rows.to(out.device)] = self.sample(len(rows), self.labels[k], generator)
        return out


LATENT_PRIORS = {"gaussian": GaussianLatentPrior, "flow": FlowLatentPrior}


def build_latent_prior(
    kind: str,
    dim: int,
    labels: Sequence[str] = (),
    names: Sequence[str] | None = None,
    shrinkage: float = 1e-3,
    flow: dict[str, Any] | None = None,
) -> LatentPrior:
    """The prior a model's ``latent_prior`` option names: ``gaussian`` (with ``shrinkage``) or
    ``flow`` (with the :class:`FlowLatentPrior` options in ``flow``)."""
    if kind == "gaussian":
        return GaussianLatentPrior(dim, labels, names, shrinkage=shrinkage)
    if kind == "flow":
        return FlowLatentPrior(dim, labels, names, **(flow or {}))
    raise ValueError(f"latent_prior must be one of {sorted(LATENT_PRIORS)}, got {kind!r}")


def train_labels(info: dict[str, Any]) -> list[str] | None:
    """The category label (synset) of each training shape, in training-index order, from a
    datamodule's ``info``: ``train_synsets``, or for data info stored before that field the
    ``<synset>/<model_id>`` prefixes of ``train_names``; None when neither is there."""
    labels = info.get("train_synsets")
    if labels is None and info.get("train_names") and info.get("synsets"):
        known = set(info["synsets"])
        labels = [str(name).split("/", 1)[0] for name in info["train_names"]]
        if not set(labels) <= known:
            return None
    return None if labels is None else [str(x) for x in labels]
