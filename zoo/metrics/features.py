"""Metrics over a trained point classifier's features: FPD, P-FID, P-IS, intended-category rate.

**These use the zoo's own PointNet** (``model=pointnet``, trained on the zoo's data, e.g. the
``pointnet-synthshapes`` registry entry), not the papers' networks (TreeGAN's PointNet trained
on ShapeNet-part's 16 classes; Point-E's PointNet++ on ModelNet40), whose weights are not
available here. The values therefore measure the same kind of thing but are **not comparable
with the numbers in those papers**; compare models with each other through the same network.

- ``fpd``: Fréchet PointNet Distance (Shu et al., ICCV 2019, TreeGAN; the FID of Heusel et al.
  2017 on point clouds). The features are every stage of the classifier concatenated: the
  max-pooled global feature, each hidden head activation and the logits (TreeGAN's network
  gives 1024 + 512 + 256 + 16 = 1808 dimensions; the zoo's default network 256 + 128 + 64 + K).
- ``p_fid``: Point-E's P-FID (Nichol et al. 2022): the Fréchet distance of the penultimate
  layer's activations (the last hidden head layer).
- ``p_is``: Point-E's P-IS: ``exp(E_x KL(p(y|x) || p(y)))`` of the classifier's softmax, one
  split over all samples (Point-E splits every 5,000 samples; fewer here).
- ``classified_as``: the fraction of class-conditional samples that the classifier assigns to
  the category they were generated for (``deepsdf`` and ``mesh_gcn`` sample by category; it
  also scores a set generated for one category); ``predicted_classes`` gives each sample's
  predicted class.

The Fréchet distance between Gaussians fitted to two feature sets (means, unbiased covariances)
is ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, computed as in the FID reference
code (``scipy.linalg.sqrtm``, a small diagonal offset if the product is singular, real part).
With fewer feature vectors than dimensions (the benchmark's 16 samples) the covariances are
singular: the value is then biased upwards and noisy, like FID on few images; compare models at
equal set sizes only.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

from zoo.metrics.pairwise import check_cloud_set


def frechet_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to feature sets a (n, D) and b (m, D), n, m >= 2."""
    a = np.asarray(a.detach().cpu() if isinstance(a, Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach().cpu() if isinstance(b, Tensor) else b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"need feature sets (n, D), (m, D) with n, m >= 2, got {a.shape}, {b.shape}"
        )
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # singular products are expected for small sets
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(root).all():
        offset = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    root = root.real
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root)
    return float(max(value, 0.0))


def inception_score(probs: Tensor) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) of class probabilities (n, K), p(y) their mean."""
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"probs must be (n, K), got {tuple(probs.shape)}")
    p = probs.double().clamp_min(1e-12)
    marginal = p.mean(0, keepdim=True)
    kl = (p * (p.log() - marginal.log())).sum(1)
    return float(kl.mean().exp())


@torch.no_grad()
def classifier_features(model: torch.nn.Module, clouds: Tensor, batch: int = 32) -> list[Tensor]:
    """Every stage's activations (``model.features``) of clouds (K, N, 3), in eval mode."""
    clouds = check_cloud_set("clouds", clouds)
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = [
        model.features(clouds[i : i + batch].to(device)) for i in range(0, len(clouds), batch)
    ]
    model.train(was)
    return [torch.cat([c[s] for c in chunks]).cpu() for s in range(len(chunks[0]))]


def fpd(samples: Tensor, references: Tensor, model: torch.nn.Module) -> float:
    """Fréchet PointNet Distance (TreeGAN) over the zoo's classifier ``model``: all stages."""
    fa = torch.cat(classifier_features(model, samples), dim=1)
    fb = torch.cat(classifier_features(model, references), dim=1)
    return frechet_distance(fa, fb)


def p_fid(samples: Tensor, references: Tensor, model: torch.nn.Module) -> float:
    """Point-E's P-FID over the zoo's classifier ``model``: the penultimate layer."""
    return frechet_distance(
        classifier_features(model, samples)[-2], classifier_features(model, references)[-2]
    )


def p_is(samples: Tensor, model: torch.nn.Module) -> float:
    """Point-E's P-IS over the zoo's classifier ``model``: IS of its softmax."""
    return inception_score(classifier_features(model, samples)[-1].softmax(dim=1))


def predicted_classes(samples: Tensor, model: torch.nn.Module) -> Tensor:
    """(K,) index of the class the classifier ``model`` predicts for each of samples (K, N, 3)."""
    return classifier_features(model, samples)[-1].argmax(dim=1)


def classified_as(samples: Tensor, labels: Tensor | int, model: torch.nn.Module) -> float:
    """Fraction of samples (K, N, 3) whose predicted class is ``labels`` (K,) (or one int)."""
    pred = predicted_classes(samples, model)
    want = torch.as_tensor(labels).expand_as(pred)
    return float((pred == want).double().mean())
