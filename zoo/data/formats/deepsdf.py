"""DeepSDF's SDF samples and split files (Park et al., "DeepSDF", CVPR 2019).

Layout (facebookresearch/DeepSDF ``preprocess_data.py`` / ``deep_sdf/data.py``)::

    <data_source>/SdfSamples/<dataset>/<synset>/<model_id>.npz   arrays "pos" and "neg"
    <data_source>/SurfaceSamples/<dataset>/<synset>/<model_id>.ply   (evaluation points)
    split JSON: {"<dataset>": {"<synset>": ["<model_id>", ...]}}

``pos`` holds the samples with ``sdf > 0`` (outside) and ``neg`` the others, each ``(K, 4)``
rows of ``x, y, z, sdf``. DeepSDF drops rows containing NaN (``remove_nans``) and trains on
``S`` samples per shape, ``S / 2`` drawn uniformly with replacement from ``pos`` and ``S / 2``
from ``neg`` (``unpack_sdf_samples``).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from zoo.data.io import DataError, atomic_write_json, read_json

SDF_DIR = "SdfSamples"
SURFACE_DIR = "SurfaceSamples"


def sdf_samples_path(
    data_source: str | os.PathLike[str], dataset: str, synset: str, model_id: str
) -> Path:
    """``<data_source>/SdfSamples/<dataset>/<synset>/<model_id>.npz``."""
    return Path(data_source) / SDF_DIR / dataset / synset / f"{model_id}.npz"


def surface_samples_path(
    data_source: str | os.PathLike[str], dataset: str, synset: str, model_id: str
) -> Path:
    """``<data_source>/SurfaceSamples/<dataset>/<synset>/<model_id>.ply``."""
    return Path(data_source) / SURFACE_DIR / dataset / synset / f"{model_id}.ply"


def _check_samples(path: Path, name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind != "f" or arr.ndim != 2 or arr.shape[1] != 4:
        raise DataError(
            path, name, f"expected (N, 4) float array, got {arr.shape} of dtype {arr.dtype}"
        )
    arr = arr[np.isfinite(arr).all(axis=1)]  # DeepSDF's remove_nans
    if len(arr) == 0:
        raise DataError(path, name, "no finite samples")
    return np.ascontiguousarray(arr, dtype=np.float32)


def load_sdf_samples(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``pos`` (P, 4) and ``neg`` (Q, 4) float32 of one ``.npz`` (NaN rows dropped).

    Raises:
        DataError: missing, truncated or non-npz file; missing ``pos``/``neg``; wrong shapes;
            positive samples with ``sdf < 0`` or negative ones with ``sdf > 0``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "file does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # an .npy array under an .npz name
            raise DataError(path, "file", "expected an .npz archive with 'pos' and 'neg'")
        with loaded as npz:
            keys = list(npz.files)
            arrays = {k: npz[k] for k in ("pos", "neg") if k in keys}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(path, "file", f"not a readable .npz archive ({e})") from e
    for key in ("pos", "neg"):
        if key not in arrays:
            raise DataError(path, key, f"missing array (the archive has {keys})")
    pos = _check_samples(path, "pos", arrays["pos"])
    neg = _check_samples(path, "neg", arrays["neg"])
    if (pos[:, 3] < 0).any():
        raise DataError(path, "pos", f"{int((pos[:, 3] < 0).sum())} samples with sdf < 0")
    if (neg[:, 3] > 0).any():
        raise DataError(path, "neg", f"{int((neg[:, 3] > 0).sum())} samples with sdf > 0")
    return pos, neg


def split_pos_neg(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeepSDF's ``writeSDFToNPZ``: rows with ``sdf > 0`` go to pos, the rest to neg."""
    outside = samples[:, 3] > 0
    return samples[outside], samples[~outside]


def sample_sdf(pos: np.ndarray, neg: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` training samples (n/2 from pos, n/2 from neg, with replacement, as DeepSDF).

    Returns:
        (n, 4) float32; an odd ``n`` takes the extra sample from ``neg``.
    """
    half = n // 2
    ip = rng.integers(0, len(pos), half)
    ineg = rng.integers(0, len(neg), n - half)
    return np.concatenate([pos[ip], neg[ineg]], axis=0)


def read_split(path: str | os.PathLike[str]) -> list[tuple[str, str, str]]:
    """``(dataset, synset, model_id)`` for every entry of a DeepSDF split JSON, in file order."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise DataError(path, "file", 'expected {"<dataset>": {"<synset>": [ids]}}')
    out = []
    for dataset, classes in data.items():
        if not isinstance(classes, dict):
            raise DataError(path, dataset, f"expected an object of synsets, got {classes!r}")
        for synset, ids in classes.items():
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise DataError(path, f"{dataset}.{synset}", "expected a list of model ids")
            out.extend((dataset, synset, i) for i in ids)
    return out


def write_split(path: str | os.PathLike[str], dataset: str, ids: dict[str, list[str]]) -> Path:
    """Write ``{"<dataset>": {"<synset>": [ids]}}`` atomically."""
    return atomic_write_json(path, {dataset: {s: list(v) for s, v in ids.items()}})
