"""Set-level metrics of point-cloud generative models: MMD, COV, 1-NNA (PointFlow protocol).

Definitions follow Achlioptas et al. 2018 (MMD, COV) and Yang et al. 2019, PointFlow, Sec. 5
(1-NNA), as evaluated by PointFlow's ``metrics/evaluation_metrics.py``. With S generated samples
and R reference clouds and a distance D (Chamfer or EMD between two clouds):

- MMD (minimum matching distance) = 1/R sum_r min_s D(s, r): how well each reference is matched.
- COV (coverage) = |{ argmin_r D(s, r) : s }| / R: the fraction of references that are the
  nearest reference of at least one sample (low COV = mode collapse).
- 1-NNA = leave-one-out accuracy of the 1-nearest-neighbour classifier on the union of samples
  and references, labelled by origin. 0.5 is ideal (indistinguishable sets); 1.0 means fully
  separated; memorising the references (samples == references) gives 0.

Conventions:

- Chamfer is ``chamfer_distance(squared=True)`` (sum of the two directional means of squared
  distances). ``"emd"`` is the exact EMD (mean matched Euclidean distance). The numbers in the
  papers' tables were made with approximate EMDs, which ``"emd_pointflow"`` (PointFlow and the
  papers that reuse its evaluation code) and ``"emd_pvd"`` (PVD, LION: squared cost, ~10x
  larger) reproduce, including PointFlow's argument order of the asymmetric approximation
  (``zoo.metrics.pairwise``). Values are raw; PointFlow's tables print MMD-CD x 10^3 and
  MMD-EMD x 10^2.
- No normalisation here: the caller passes clouds in the units it wants. PointFlow normalises
  its ShapeNet data globally (one mean and one std for the whole dataset, not per shape) and
  compares samples and references in those units; pass clouds processed the same way.
- Ties in 1-NNA go to the lowest index in the order [samples, references] (``torch.argmin``);
  ties in COV to the lowest reference index.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.metrics.pairwise import (
    DISTANCES,
    Distance,
    PairBackend,
    check_cloud_set,
    pairwise_distances,
)


def generative_metrics(
    samples: Tensor,
    references: Tensor,
    distance: Distance = "chamfer",
    *,
    backend: PairBackend = "auto",
    matrices: tuple[Tensor, Tensor, Tensor] | None = None,
) -> dict[str, float]:
    """MMD, COV and 1-NNA of generated ``samples`` against ``references`` (module docstring).

    Args:
        samples: (S, N, 3) generated clouds. references: (R, M, 3) reference clouds (N == M
            for EMD). PointFlow uses S = R and 2048 points.
        distance: ``"chamfer"``, ``"emd"`` (exact: one assignment problem per pair, 0.4-1.3 s
            of CPU per 2048-point pair, hours for 100 x 100 on 2 cores: keep S, R small
            there), ``"emd_pointflow"`` or ``"emd_pvd"`` (the papers' approximations, ~40-70
            ms of CPU per 2048-point pair, 29,800 pairs for 100 x 100; Chamfer: ~30 s for
            100 x 100 x 2048 on 2 idle cores).
        backend: Chamfer matrix backend of ``zoo.metrics.pairwise.pairwise_distances``.
        matrices: the distance matrices ``(d_ss, d_sr, d_rr)`` when the caller has them already
            (e.g. to bootstrap them afterwards); ``distance`` and ``backend`` are then unused.
    Returns:
        ``{"mmd": float, "cov": float, "1nna": float}`` (COV and 1-NNA in [0, 1]).
    """
    samples = check_cloud_set("samples", samples)
    references = check_cloud_set("references", references)
    if samples.device != references.device:
        raise ValueError(f"samples on {samples.device} but references on {references.device}")
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    if matrices is not None:
        d_ss, d_sr, d_rr = matrices
    else:
        d_sr = pairwise_distances(samples, references, distance, backend=backend)  # (S, R)
        d_ss = pairwise_distances(samples, None, distance, backend=backend)  # (S, S)
        d_rr = pairwise_distances(references, None, distance, backend=backend)  # (R, R)
    mmd, cov = mmd_cov(d_sr)
    return {"mmd": mmd, "cov": cov, "1nna": one_nn_accuracy(d_ss, d_sr, d_rr)}


def mmd_cov(d_sr: Tensor) -> tuple[float, float]:
    """MMD and COV from the sample-to-reference distance matrix d_sr (S, R)."""
    if d_sr.ndim != 2 or 0 in d_sr.shape:
        raise ValueError(f"d_sr must be a non-empty (S, R) matrix, got {tuple(d_sr.shape)}")
    mmd = d_sr.min(dim=0).values.mean()  # each reference's closest sample
    nearest_ref = d_sr.argmin(dim=1)  # (S,)
    cov = nearest_ref.unique().numel() / d_sr.shape[1]
    return float(mmd), float(cov)


def one_nn_accuracy(d_ss: Tensor, d_sr: Tensor, d_rr: Tensor) -> float:
    """Leave-one-out 1-NN accuracy on samples (label 0) and references (label 1).

    Args:
        d_ss: (S, S) sample distances, d_sr: (S, R), d_rr: (R, R) (diagonals are ignored).
    """
    s, r = d_sr.shape
    if d_ss.shape != (s, s) or d_rr.shape != (r, r):
        raise ValueError(
            f"need d_ss (S, S), d_sr (S, R), d_rr (R, R); got {tuple(d_ss.shape)}, "
            f"{tuple(d_sr.shape)}, {tuple(d_rr.shape)}"
        )
    if s + r < 2:
        raise ValueError("1-NNA needs at least two clouds in total")
    full = torch.cat([torch.cat([d_ss, d_sr], dim=1), torch.cat([d_sr.T, d_rr], dim=1)], dim=0).to(
        torch.float64
    )  # (S+R, S+R)
    full.fill_diagonal_(float("inf"))  # leave one out
    labels = torch.cat(
        [
            torch.zeros(s, dtype=torch.long, device=full.device),
            torch.ones(r, dtype=torch.long, device=full.device),
        ]
    )
    predicted = labels[full.argmin(dim=1)]
    return float((predicted == labels).to(torch.float64).mean())
