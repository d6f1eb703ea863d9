"""Extra held-out synthshapes for the generation metrics' reference sets.

PointFlow's protocol (Yang et al. 2019, Sec. 6.1) scores MMD / COV / 1-NNA against the whole
test split of a category, hundreds of shapes. The embedded dataset's test split has 4 shapes a
category, where 1-NNA moves by 1/(2 x 24) with each shape; the generator can draw as many more
as wanted from the same distribution. :func:`ensure_references` draws them from a seed stream
of their own (:func:`reference_seed`), which no dataset request of any size ever uses for its
own shapes (so no model has trained on them), meshes them exactly like the dataset's shapes
(:func:`~zoo.data.synthshapes.generate_shape`, same resolution) and keeps only what the metrics
read: ``n_points`` surface points a shape, uniform by area (as the PC15k clouds of the split).

A second stream (:data:`DATA_STREAM`) draws the *data baseline* of the generation metrics
(``zoo.evaluation.generation_baselines``): more held-out shapes of the same distribution,
never among the references nor the dataset's shapes, scored as if they were a generator's
samples (what a perfect generator scores).

On disk, one file per category and stream (grown, never regenerated, when more shapes are
asked for)::

    <root>/references/<category>_seed<seed>_res<resolution>_n<n_points>_v<VERSION>.npy   (K, n, 3)
    <root>/references/<category>_stream2_seed<seed>_res<resolution>_n<n_points>_v<VERSION>.npy
"""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from zoo.data.io import atomic_save_npy
from zoo.data.synthshapes import VERSION, generate_shape
from zoo.data.synthshapes.recipes import _category_name
from zoo.ops.surface import sample_surface

REFERENCE_STREAM = 1  # appended to the SeedSequence entropy: disjoint from the dataset's seeds
DATA_STREAM = 2  # the data baseline's shapes: disjoint from the dataset's and the references'
FOLDER = "references"


def reference_seed(seed: int, category: str, index: int, stream: int = REFERENCE_STREAM) -> int:
    """Seed of reference shape ``index`` of ``category`` for a dataset generated with ``seed``.

    The dataset's own shapes use ``SeedSequence([seed, crc32(name), index])``
    (:func:`~zoo.data.synthshapes.shape_seed`); the extra entropy word ``stream`` makes these
    a different stream, so a reference shape is never one of the dataset's shapes, whatever
    its size, and the :data:`DATA_STREAM` shapes never one of the references."""
    if stream < 1:
        raise ValueError(f"stream must be >= 1 (0 words is the dataset's own), got {stream}")
    name = _category_name(category)
    words = [int(seed), zlib.crc32(name.encode()), int(index), int(stream)]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint32)[0])


def _one(job: tuple[str, int, int, int]) -> np.ndarray:
    """Surface points (n, 3) float32 of one reference shape (a worker process's task)."""
    import torch

    torch.set_num_threads(1)
    category, shape_seed, resolution, n_points = job
    mesh = generate_shape(category, shape_seed, resolution).mesh
    points, _ = sample_surface(mesh, n_points, seed=shape_seed)
    return points.numpy().astype(np.float32)


def reference_file(
    root: str | os.PathLike[str],
    category: str,
    seed: int,
    resolution: int,
    n_points: int,
    stream: int = REFERENCE_STREAM,
) -> Path:

    tag = "" if stream == REFERENCE_STREAM else f"_stream{stream}"
    name = f"{_category_name(category)}{tag}_seed{seed}_res{resolution}_n{n_points}_v{VERSION}.npy"
    return Path(root) / FOLDER / name


def ensure_references(
    root: str | os.PathLike[str],
    category: str,
    count: int,
    seed: int = 0,
    resolution: int = 96,
    n_points: int = 2048,
    workers: int | None = None,
    progress: bool = True,
    stream: int = REFERENCE_STREAM,
) -> np.ndarray:
    """``count`` reference clouds (count, n_points, 3) of ``category`` from seed ``stream``:
    read from the cache, the missing ones generated (in ``workers`` processes, default one per
    CPU) and appended (the file is replaced atomically)."""
    path = reference_file(root, category, seed, resolution, n_points, stream)
    have = np.zeros((0, n_points, 3), np.float32)
    try:
        cached = np.load(path, allow_pickle=False)
        if cached.ndim == 3 and cached.shape[1:] == (n_points, 3):
            have = cached
    except (OSError, ValueError):  # none yet, or unreadable (e.g. truncated by a kill)
        pass
    if len(have) >= count:
        return have[:count]
    jobs = [
        (category, reference_seed(seed, category, i, stream), resolution, n_points)
        for i in range(len(have), count)
    ]
    from tqdm.auto import tqdm

    workers = workers or min(len(jobs), os.cpu_count() or 1)
    desc = (
        f"{'references' if stream == REFERENCE_STREAM else 'data draw'} {_category_name(category)}"
    )
    if workers <= 1:
        new = [_one(j) for j in tqdm(jobs, desc=desc, unit="shape", disable=not progress)]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            it = pool.map(_one, jobs, chunksize=4)
            new = list(tqdm(it, total=len(jobs), desc=desc, unit="shape", disable=not progress))
    out = np.concatenate([have, np.stack(new)], axis=0)
    atomic_save_npy(path, out)
    return out[:count]
