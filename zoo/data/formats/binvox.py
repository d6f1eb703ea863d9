"""The binvox voxel format (Min, https://www.patrickmin.com/binvox/binvox.html): reader and writer.

File layout::

    #binvox 1
    dim D H W            (voxels per axis; binvox writes equal sizes)
    translate tx ty tz   (world position of the grid's corner)
    scale s              (world size of the whole grid, i.e. D voxels)
    data
    <run-length bytes>   (value, count) pairs, value in {0, 1}, count in 1..255

The voxels are stored with the **y index running fastest, then z, then x** (linear index
``x * W * H + z * W + y``), the "xzy" order. We always hand out and accept grids indexed
``[x, y, z]`` and do the reordering here. Voxel ``[i, j, k]`` covers the world cell whose centre
is ``translate + (ijk + 0.5) / dim * scale`` (the convention of binvox's ``-e``/normalisation
and of the common Python readers).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data.io import DataError, atomic_write_bytes


@dataclass
class Binvox:
    """A binvox grid: occupancy indexed [x, y, z] and its placement in the world."""

    voxels: np.ndarray  # (X, Y, Z) bool
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0

    def voxel_centers(self) -> np.ndarray:
        """(X, Y, Z, 3) world coordinates of the voxel centres."""
        dims = np.asarray(self.voxels.shape, dtype=np.float64)
        idx = np.stack(np.meshgrid(*[np.arange(d) for d in self.voxels.shape], indexing="ij"), -1)
        return np.asarray(self.translate) + (idx + 0.5) / dims * self.scale


def _header_line(f: io.BufferedIOBase, path: Path, field: str) -> list[str]:
    line = f.readline()
    if not line:
        raise DataError(path, field, "file ends inside the header")
    try:
        return line.decode("ascii").strip().split()
    except UnicodeDecodeError as e:
        raise DataError(path, field, f"header line is not ASCII: {line[:40]!r}") from e


def read_binvox(path: str | os.PathLike[str]) -> Binvox:
    """Read a ``.binvox`` file.

    Raises:
        DataError: missing file, bad magic, malformed ``dim``/``translate``/``scale`` line,
            run lengths that do not add up to the grid size, values other than 0/1.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "file does not exist")
    with open(path, "rb") as f:
        magic = _header_line(f, path, "magic")
        if magic[:1] != ["#binvox"]:
            raise DataError(path, "magic", f"expected '#binvox 1', got {' '.join(magic)!r}")
        dims: list[int] | None = None
        translate, scale = (0.0, 0.0, 0.0), 1.0
        while True:
            words = _header_line(f, path, "header")
            if not words:
                continue
            key = words[0]
            try:
                if key == "dim":
                    dims = [int(w) for w in words[1:]]
                    if len(dims) != 3 or min(dims) < 1:
                        raise ValueError
                elif key == "translate":
                    t = [float(w) for w in words[1:]]
                    if len(t) != 3:
                        raise ValueError
                    translate = (t[0], t[1], t[2])
                elif key == "scale":
                    scale = float(words[1])
                elif key == "data":
                    break
            except (ValueError, IndexError) as e:
                raise DataError(path, key, f"malformed header line {' '.join(words)!r}") from e
        if dims is None:
            raise DataError(path, "dim", "missing 'dim' line before 'data'")
        raw = np.frombuffer(f.read(), dtype=np.uint8)
    if len(raw) % 2:
        raise DataError(path, "data", f"odd number of run-length bytes ({len(raw)})")
    values, counts = raw[0::2], raw[1::2]
    n = int(np.prod(dims))
    total = int(counts.sum(dtype=np.int64))
    if total != n:
        raise DataError(path, "data", f"runs cover {total} voxels, expected {n} for dim {dims}")
    if values.size and values.max() > 1:
        raise DataError(path, "data", f"voxel values must be 0 or 1, got {int(values.max())}")
    flat = np.repeat(values.astype(bool), counts)  # linear order: x slowest, then z, then y
    x, y, z = dims[0], dims[1], dims[2]
    voxels = flat.reshape(x, z, y).transpose(0, 2, 1)  # (X, Y, Z)
    return Binvox(np.ascontiguousarray(voxels), translate, scale)


def encode_binvox(
    voxels: np.ndarray,
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0),
    scale: float = 1.0,
) -> bytes:
    """The bytes of a binvox file holding ``voxels`` (indexed [x, y, z], any truthy dtype)."""
    v = np.asarray(voxels)
    if v.ndim != 3:
        raise ValueError(f"voxels must have shape (X, Y, Z), got {v.shape}")
    flat = v.astype(bool).transpose(0, 2, 1).reshape(-1).astype(np.uint8)  # x, z, y order
    header = (
        "#binvox 1\n"
        f"dim {v.shape[0]} {v.shape[1]} {v.shape[2]}\n"
        f"translate {translate[0]!r} {translate[1]!r} {translate[2]!r}\n"
        f"scale {float(scale)!r}\n"
        "data\n"
    ).encode("ascii")
    if flat.size == 0:
        return header
    # Runs of equal values, split into chunks of at most 255.
    change = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [flat.size]]))
    run_values = flat[starts]
    reps = (lengths + 254) // 255  # chunks per run
    out_values = np.repeat(run_values, reps)
    out_counts = np.full(int(reps.sum()), 255, dtype=np.int64)
    last = np.cumsum(reps) - 1
    out_counts[last] = lengths - 255 * (reps - 1)
    pairs = np.stack([out_values, out_counts.astype(np.uint8)], axis=1).reshape(-1)
    return header + pairs.astype(np.uint8).tobytes()


def write_binvox(
    path: str | os.PathLike[str],
    voxels: np.ndarray,
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0),
    scale: float = 1.0,
) -> Path:
    """Write ``voxels`` ([x, y, z]) as a binvox file, atomically."""
    return atomic_write_bytes(path, encode_binvox(voxels, translate, scale))
