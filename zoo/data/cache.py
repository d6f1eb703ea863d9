"""Derived per-shape caches: surface point clouds, SDF samples and occupancy voxels.

Computed once from each mesh (normalised like ShapeNet v2 first, so any source matches the
convention), written atomically, and reused. Layout under ``cache_dir``::

    ShapeNetCore.v2.PC15k/<synset>/<split>/<id>.npy          (15000, 3) float32 surface points
    ShapeNetCore.v2.PC15k_normals/<synset>/<split>/<id>.npy  (15000, 3) float32 unit normals
    SdfSamples/<dataset>/<synset>/<id>.npz                   pos (P, 4), neg (Q, 4) float32
    SurfaceSamples/<dataset>/<synset>/<id>.ply               the same 15000 surface points
    voxels_<R>/<synset>/<id>.npy                             (R, R, R) bool occupancy
    splits/<dataset>_{train,val,test}.json                   DeepSDF split files (of the shapes
                                                             of the last SDF build)

Each of these folders has a ``manifest.json`` with the parameters it was built from (including
what determines the source meshes' content: for generated data the generator, its version and
resolution, not which subset of shapes a run asked for, so runs on different subsets of one
generated root share the caches). A folder whose manifest differs from the requested parameters
is deleted and rebuilt; entries are written with temp file + rename and
validated when loaded, so an interrupted or corrupted entry is detected and rebuilt, never used.

Point clouds follow PointFlow's PC15k data (15k area-uniform samples per shape). SDF samples
follow DeepSDF's preprocessing (Park et al., CVPR 2019; ``PreprocessMesh.cpp``): surface points
perturbed by Gaussian noise of two scales (variance 0.0025 and 0.00025 for shapes normalised to
the unit sphere, i.e. sigma 0.025 and 0.0079 for our radius-0.5 shapes) plus points uniform in
the bounding cube (here the evaluation box [-0.55, 0.55]^3), split into ``pos`` (sdf > 0) and
``neg``. DeepSDF used 250k-500k samples per shape; we default to 32768 (configurable).
Voxels follow 3D-GAN's occupancy grids (Wu et al., NeurIPS 2016): occupancy of the cell centres
of an R^3 grid over [-0.5, 0.5]^3 (:func:`zoo.ops.voxelize.voxelize`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from zoo.data.formats import deepsdf, pc15k
from zoo.data.formats.mesh import load_mesh, normalize_mesh
from zoo.data.formats.shapenet import SPLITS
from zoo.data.io import (
    DataError,
    atomic_save_npy,
    atomic_save_npz,
    atomic_write_bytes,
    manifest_matches,
    read_manifest,
    remove_stale_temps,
    write_manifest,
)
from zoo.ops.mesh_queries import signed_distance
from zoo.ops.surface import sample_surface
from zoo.ops.voxelize import voxelize

log = logging.getLogger(__name__)

CACHE_VERSION = 1
DEFAULT_SURFACE_POINTS = pc15k.NUM_POINTS
DEFAULT_SDF_SAMPLES = 32768
DEFAULT_SDF_UNIFORM_FRACTION = 0.2
DEFAULT_SDF_SIGMAS = (0.025, 0.0079)
SDF_BOX = 0.55  # uniform SDF samples in [-SDF_BOX, SDF_BOX]^3 (the shared evaluation box)
FORMS = ("points", "sdf", "voxels")


@dataclass(frozen=True)
class ShapeEntry:
    """One shape of a dataset: where its mesh is and which split it belongs to."""

    synset: str
    model_id: str
    split: str
    mesh_path: Path

    @property
    def name(self) -> str:
        return f"{self.synset}/{self.model_id}"


@dataclass
class CacheStats:
    """What :meth:`ShapeCache.ensure` did (per-entry files)."""

    built: int = 0  # entries computed this call
    reused: int = 0  # entries found valid
    invalid: int = 0  # entries found corrupt / of the wrong shape and rebuilt
    wiped: list[str] = field(default_factory=list)  # folders deleted for stale parameters


GENERATOR_IDENTITY_KEYS = ("generator", "version", "resolution")


def source_identity(source: Any) -> Any:
    """The part of a source description that determines the content of its meshes.

    A generator's manifest (a dict with a ``"generator"`` key, e.g. ``zoo.data.synthshapes``)
    also records the latest request (categories, counts, seed); each mesh's content depends
    only on the generator, its version and resolution (its path names the shape), so only
    those keys are kept. Any other source is kept whole.
    """
    if isinstance(source, dict) and "generator" in source:
        return {k: source.get(k) for k in GENERATOR_IDENTITY_KEYS}
    return source


def entry_seed(seed: int, name: str, salt: str) -> int:
    """A per-entry seed independent of build order and of which other shapes are cached."""
    digest = hashlib.sha256(f"{seed}/{name}/{salt}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def sample_sdf_points(
    mesh: trimesh.Trimesh,
    n: int,
    seed: int,
    uniform_fraction: float = DEFAULT_SDF_UNIFORM_FRACTION,
    sigmas: Sequence[float] = DEFAULT_SDF_SIGMAS,
    box: float = SDF_BOX,
) -> np.ndarray:
    """DeepSDF-style query points with their signed distances, (n, 4) float32 x, y, z, sdf.

    ``n * (1 - uniform_fraction)`` points are surface samples perturbed by N(0, sigma^2 I),
    equally many per sigma, the rest are uniform in ``[-box, box]^3``. The sign is negative
    inside (:func:`zoo.ops.mesh_queries.signed_distance`, ray-parity vote).
    """
    if not 0.0 <= uniform_fraction <= 1.0:
        raise ValueError(f"uniform_fraction must be in [0, 1], got {uniform_fraction}")
    rng = np.random.default_rng(seed)
    n_uniform = int(round(n * uniform_fraction))
    n_near = n - n_uniform
    counts = [n_near // len(sigmas) + (i < n_near % len(sigmas)) for i in range(len(sigmas))]
    surf, _ = sample_surface(mesh, n_near, seed=seed)  # (n_near, 3)
    surf = surf.numpy().astype(np.float64)
    near, start = [], 0
    for sigma, c in zip(sigmas, counts, strict=True):
        near.append(surf[start : start + c] + rng.normal(0.0, sigma, (c, 3)))
        start += c
    uniform = rng.uniform(-box, box, (n_uniform, 3))
    pts = np.concatenate(near + [uniform], axis=0).astype(np.float32)  # (n, 3)
    sdf = signed_distance(mesh, pts).numpy()  # (n,)
    return np.concatenate([pts, sdf[:, None]], axis=1).astype(np.float32)


def _ply_points_bytes(points: np.ndarray) -> bytes:
    """A binary little-endian PLY with vertices only (DeepSDF's SurfaceSamples format)."""
    pts = np.ascontiguousarray(points, dtype="<f4")
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(pts)}\nproperty float x\nproperty float y\nproperty float z\n"
        "end_header\n"
    ).encode("ascii")
    return header + pts.tobytes()


def load_surface_ply(path: str | os.PathLike[str], n_points: int | None = None) -> np.ndarray:
    """Vertices (N, 3) float32 of a SurfaceSamples PLY (validated)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "file does not exist")
    try:
        cloud = trimesh.load(path, file_type="ply", process=False)
        pts = np.asarray(cloud.vertices, dtype=np.float32)
    except Exception as e:  # trimesh raises many types for malformed files
        raise DataError(path, "file", f"cannot read as PLY: {type(e).__name__}: {e}") from e
    if pts.ndim != 2 or pts.shape[1] != 3 or (n_points is not None and len(pts) != n_points):
        raise DataError(path, "vertices", f"expected ({n_points or 'N'}, 3), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise DataError(path, "vertices", "contains NaN or infinite values")
    return pts


def load_voxels(path: str | os.PathLike[str], resolution: int) -> np.ndarray:
    """An (R, R, R) bool occupancy grid from ``.npy`` (validated)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "file does not exist")
    try:
        v = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(path, "file", f"not a readable .npy array ({e})") from e
    r = resolution
    if v.dtype != np.bool_ or v.shape != (r, r, r):
        raise DataError(path, "voxels", f"expected ({r}, {r}, {r}) bool, got {v.shape} {v.dtype}")
    return v


def load_normals(path: str | os.PathLike[str], n_points: int) -> np.ndarray:
    """(N, 3) float32 unit normals (validated: shape, finiteness, unit length)."""
    normals = pc15k.load_cloud(path, n_points, field="normals")
    lengths = np.linalg.norm(normals, axis=1)
    if np.abs(lengths - 1.0).max() > 1e-3:
        raise DataError(path, "normals", f"not unit length (min {lengths.min():.3g})")
    return normals


def warn_damaged(problem: DataError) -> None:
    """One ``warning:`` line (stderr, and the run's log) naming a damaged cache file that is
    about to be regenerated."""
    detail = str(problem).splitlines()[0]
    line = f"warning: damaged cache file regenerated: {detail}"
    print(line, file=sys.stderr, flush=True)
    log.info(line)


class ShapeCache:
    """The derived caches of one dataset under ``cache_dir`` (see the module docstring).

    Args:
        cache_dir: root of the cache folders.
        dataset: name used in ``SdfSamples/<dataset>`` and the split files.
        source: JSON-serialisable description of the meshes (their generator's manifest, or
            the dataset root); part of every manifest, so new source data rebuilds the caches.
        n_surface: points per surface cloud (PC15k: 15000).
        sdf_samples: SDF samples per shape (pos + neg).
        sdf_uniform_fraction, sdf_sigmas: see :func:`sample_sdf_points`.
        seed: base seed of all per-entry samplings.
        normalize: normalise meshes (bbox centre at 0, diagonal 1) before sampling.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        dataset: str,
        source: Any = None,
        n_surface: int = DEFAULT_SURFACE_POINTS,
        sdf_samples: int = DEFAULT_SDF_SAMPLES,
        sdf_uniform_fraction: float = DEFAULT_SDF_UNIFORM_FRACTION,
        sdf_sigmas: Sequence[float] = DEFAULT_SDF_SIGMAS,
        seed: int = 0,
        normalize: bool = True,
    ) -> None:
        if n_surface < 2 or sdf_samples < 2:
            raise ValueError(f"need n_surface, sdf_samples >= 2, got {n_surface}, {sdf_samples}")
        self.cache_dir = Path(cache_dir)
        self.dataset = dataset
        self.n_surface = int(n_surface)
        self.sdf_samples = int(sdf_samples)
        self.sdf_uniform_fraction = float(sdf_uniform_fraction)
        self.sdf_sigmas = tuple(float(s) for s in sdf_sigmas)
        self.seed = int(seed)
        self.normalize = bool(normalize)
        self.source = source

    # ------------------------------------------------------------------ paths
    @property
    def pc15k_root(self) -> Path:
        return self.cache_dir / pc15k.PC15K_DIR

    @property
    def normals_root(self) -> Path:
        return pc15k.normals_root(self.pc15k_root)

    @property
    def sdf_root(self) -> Path:
        return self.cache_dir / deepsdf.SDF_DIR / self.dataset

    @property
    def surface_root(self) -> Path:
        return self.cache_dir / deepsdf.SURFACE_DIR / self.dataset

    def voxel_root(self, resolution: int) -> Path:
        return self.cache_dir / f"voxels_{int(resolution)}"

    def cloud_path(self, e: ShapeEntry) -> Path:
        return pc15k.cloud_path(self.pc15k_root, e.synset, e.split, e.model_id)

    def normals_path(self, e: ShapeEntry) -> Path:
        return pc15k.cloud_path(self.normals_root, e.synset, e.split, e.model_id)

    def sdf_path(self, e: ShapeEntry) -> Path:
        return deepsdf.sdf_samples_path(self.cache_dir, self.dataset, e.synset, e.model_id)

    def surface_path(self, e: ShapeEntry) -> Path:
        return deepsdf.surface_samples_path(self.cache_dir, self.dataset, e.synset, e.model_id)

    def voxel_path(self, e: ShapeEntry, resolution: int) -> Path:
        return self.voxel_root(resolution) / e.synset / f"{e.model_id}.npy"

    def split_path(self, split: str) -> Path:
        return self.cache_dir / "splits" / f"{self.dataset}_{split}.json"

    # ------------------------------------------------------------------ manifests
    def _base_params(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "normalize": self.normalize,
            "seed": self.seed,
            "source": source_identity(self.source),
        }

    def points_params(self) -> dict[str, Any]:
        return {"kind": "surface_points", "n_points": self.n_surface, **self._base_params()}

    def sdf_params(self) -> dict[str, Any]:
        return {
            "kind": "sdf_samples",
            "n_samples": self.sdf_samples,
            "uniform_fraction": self.sdf_uniform_fraction,
            "sigmas": list(self.sdf_sigmas),
            "box": SDF_BOX,
            "n_surface": self.n_surface,
            **self._base_params(),
        }

    def voxel_params(self, resolution: int) -> dict[str, Any]:
        return {
            "kind": "voxels",
            "resolution": int(resolution),
            "bbox": [-0.5, 0.5],
            **self._base_params(),
        }

    @staticmethod
    def _prepare(directory: Path, params: dict[str, Any], stats: CacheStats) -> None:
        """Make ``directory`` hold a cache for ``params``.

        A folder built with other parameters is deleted. The manifest is written *before*
        entries are added, so entries found later under a matching manifest were built with
        these parameters (each is still validated when read). Entries of a folder without a
        manifest are used only if they validate, as they were written atomically by us.
        """
        if manifest_matches(directory, params):
            remove_stale_temps(directory)
            return
        if read_manifest(directory) is not None and directory.exists():
            shutil.rmtree(directory)
            stats.wiped.append(str(directory))
        write_manifest(directory, params)

    # ------------------------------------------------------------------ loading
    def load_cloud(self, e: ShapeEntry) -> np.ndarray:
        """(n_surface, 3) float32 surface points."""
        return pc15k.load_cloud(self.cloud_path(e), self.n_surface)

    def load_normals(self, e: ShapeEntry) -> np.ndarray:
        """(n_surface, 3) float32 unit normals of :meth:`load_cloud`'s points."""
        return load_normals(self.normals_path(e), self.n_surface)

    def load_sdf(self, e: ShapeEntry) -> tuple[np.ndarray, np.ndarray]:
        """``pos`` (P, 4), ``neg`` (Q, 4) float32."""
        return deepsdf.load_sdf_samples(self.sdf_path(e))

    def load_voxels(self, e: ShapeEntry, resolution: int) -> np.ndarray:
        """(R, R, R) bool occupancy."""
        return load_voxels(self.voxel_path(e, resolution), resolution)

    def load_mesh(self, e: ShapeEntry) -> trimesh.Trimesh:
        """The entry's mesh, normalised when the cache normalises."""
        mesh = load_mesh(e.mesh_path)
        return normalize_mesh(mesh) if self.normalize else mesh

    # ------------------------------------------------------------------ building
    def _points_problem(self, e: ShapeEntry) -> DataError | None:
        """Why the entry's surface cloud or normals cannot be used (None: they can)."""
        try:
            self.load_cloud(e)
            self.load_normals(e)
        except DataError as err:
            return err
        return None

    def _sdf_problem(self, e: ShapeEntry) -> DataError | None:
        try:
            pos, neg = self.load_sdf(e)
            load_surface_ply(self.surface_path(e), self.n_surface)
        except DataError as err:
            return err
        if len(pos) + len(neg) != self.sdf_samples:
            n = len(pos) + len(neg)
            want = self.sdf_samples
            return DataError(self.sdf_path(e), "pos/neg", f"{n} samples, expected {want}")
        return None

    def _voxels_problem(self, e: ShapeEntry, r: int) -> DataError | None:
        try:
            self.load_voxels(e, r)
        except DataError as err:
            return err
        return None

    def _surface(self, e: ShapeEntry, mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
        seed = entry_seed(self.seed, e.name, "surface")
        pts, normals = sample_surface(mesh, self.n_surface, seed=seed)
        return pts.numpy(), normals.numpy()

    def _build_points(self, e: ShapeEntry, mesh: trimesh.Trimesh) -> None:
        pts, normals = self._surface(e, mesh)
        for other in SPLITS:  # a shape lives in exactly one split folder
            if other != e.split:
                moved = ShapeEntry(e.synset, e.model_id, other, e.mesh_path)
                self.cloud_path(moved).unlink(missing_ok=True)
                self.normals_path(moved).unlink(missing_ok=True)
        atomic_save_npy(self.normals_path(e), normals.astype(np.float32))
        atomic_save_npy(self.cloud_path(e), pts.astype(np.float32))

    def _build_sdf(self, e: ShapeEntry, mesh: trimesh.Trimesh) -> None:
        samples = sample_sdf_points(
            mesh,
            self.sdf_samples,
            entry_seed(self.seed, e.name, "sdf"),
            self.sdf_uniform_fraction,
            self.sdf_sigmas,
        )
        pos, neg = deepsdf.split_pos_neg(samples)
        pts, _ = self._surface(e, mesh)
        atomic_write_bytes(self.surface_path(e), _ply_points_bytes(pts))
        atomic_save_npz(self.sdf_path(e), pos=pos, neg=neg)

    def _build_voxels(self, e: ShapeEntry, mesh: trimesh.Trimesh, r: int) -> None:
        atomic_save_npy(self.voxel_path(e, r), voxelize(mesh, r).numpy().astype(bool))

    def write_splits(self, entries: Sequence[ShapeEntry]) -> None:
        """DeepSDF split JSONs ``splits/<dataset>_<split>.json`` of the given entries."""
        for split in SPLITS:
            ids: dict[str, list[str]] = {}
            for e in entries:
                if e.split == split:
                    ids.setdefault(e.synset, []).append(e.model_id)
            deepsdf.write_split(self.split_path(split), self.dataset, ids)

    def ensure(
        self,
        entries: Sequence[ShapeEntry],
        forms: Iterable[str] = ("points",),
        voxel_resolutions: Iterable[int] = (),
        progress: bool = True,
    ) -> CacheStats:
        """Build whatever of ``forms`` is missing or invalid for ``entries``.

        Args:
            forms: any of ``"points"`` (surface cloud + normals), ``"sdf"`` (SDF samples,
                surface samples, split files), ``"voxels"`` (one grid per resolution).
            voxel_resolutions: the grids to build when ``"voxels"`` is requested.
        Returns:
            Counts of built / reused / invalid (rebuilt) entry files and wiped folders.
        """
        forms = set(forms)
        unknown = forms - set(FORMS)
        if unknown:
            raise ValueError(f"unknown cache forms {sorted(unknown)}; choose from {FORMS}")
        resolutions = sorted({int(r) for r in voxel_resolutions}) if "voxels" in forms else []
        if "voxels" in forms and not resolutions:
            raise ValueError("voxels requested without voxel_resolutions")
        stats = CacheStats()
        if "points" in forms:
            self._prepare(self.pc15k_root, self.points_params(), stats)
            self._prepare(self.normals_root, self.points_params(), stats)
        if "sdf" in forms:
            self._prepare(self.sdf_root, self.sdf_params(), stats)
            self._prepare(self.surface_root, self.points_params(), stats)
            self.write_splits(entries)
        for r in resolutions:
            self._prepare(self.voxel_root(r), self.voxel_params(r), stats)

        # Which (entry, job) pairs need work. A file that exists but fails validation (e.g.
        # truncated by a crash of an older writer, or by hand) is damaged: it is regenerated,
        # and a warning line names it.
        todo: list[tuple[ShapeEntry, list[tuple[str, int]]]] = []
        for e in entries:
            jobs: list[tuple[str, int]] = []
            checks: list[tuple[str, int, DataError | None]] = []
            if "points" in forms:
                checks.append(("points", 0, self._points_problem(e)))
            if "sdf" in forms:
                checks.append(("sdf", 0, self._sdf_problem(e)))
            for r in resolutions:
                checks.append(("voxels", r, self._voxels_problem(e, r)))
            for job, r, problem in checks:
                if problem is None:
                    stats.reused += 1
                    continue
                if Path(problem.path).exists():
                    stats.invalid += 1
                    warn_damaged(problem)
                jobs.append((job, r))
            if jobs:
                todo.append((e, jobs))

        from tqdm.auto import tqdm

        desc = f"caching {self.dataset} ({', '.join(sorted(forms))})"
        for e, jobs in tqdm(todo, desc=desc, unit="shape", disable=not progress or not todo):
            mesh = self.load_mesh(e)
            for job, r in jobs:
                if job == "points":
                    self._build_points(e, mesh)
                elif job == "sdf":
                    self._build_sdf(e, mesh)
                else:
                    self._build_voxels(e, mesh, r)
                stats.built += 1
        return stats
