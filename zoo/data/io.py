"""Safe file writing and cache manifests shared by every data module.

Every cache file is written atomically: the bytes go to a temporary file in the same folder,
which is flushed, ``fsync``-ed and then moved over the final name with ``os.replace`` (atomic on
POSIX and Windows within one file system). An interrupted run therefore leaves either the old
file, the complete new file, or a stray ``.tmp-*`` file that no reader ever opens, never a
half-written entry under the final name.

A cache folder holds a ``manifest.json`` with the parameters it was built from; a cache is up to
date only when the stored parameters equal the requested ones (see :func:`manifest_matches`).
The manifest is written last, so a folder whose build was interrupted has no (or an old)
manifest and is rebuilt.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST_NAME = "manifest.json"
TMP_PREFIX = ".tmp-"


class DataError(ValueError):
    """A data file is missing, unreadable or holds a field with the wrong shape/type/value.

    The message always names the file and the field, e.g.
    ``"/d/a.npz: field 'pos': expected (N, 4) float array, got (10, 3)"``.

    Args:
        path: the offending file or folder.
        field: the field inside it (an array key, ``"vertices"``, ``"file"`` for the file as a
            whole, ``"root"`` for a missing dataset root...).
        problem: what is wrong, ideally "expected ..., got ...".
    """

    def __init__(self, path: str | os.PathLike[str], field: str, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        super().__init__(f"{self.path}: field {field!r}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across DataLoader workers
        return (type(self), (self.path, self.field, self.problem))


def atomic_write(path: str | os.PathLike[str], write: Any) -> Path:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync, then ``os.replace``; on
    any failure (a full disk included) the temp file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """``np.save`` to exactly ``path`` (no ``.npy`` appended), atomically."""
    return atomic_write(path, lambda f: np.save(f, np.asarray(array), allow_pickle=False))


def atomic_save_npz(path: str | os.PathLike[str], compress: bool = False, **arrays: Any) -> Path:
    """``np.savez`` (or ``savez_compressed``) of ``arrays`` to exactly ``path``, atomically."""
    saver = np.savez_compressed if compress else np.savez
    return atomic_write(path, lambda f: saver(f, **{k: np.asarray(v) for k, v in arrays.items()}))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (keys sorted, trailing newline) atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=True) + "\n"
    return atomic_write_text(path, text)


def atomic_export_mesh(
    path: str | os.PathLike[str], mesh: Any, file_type: str | None = None, **export_kwargs: Any
) -> Path:
    """Export a ``trimesh.Trimesh`` to ``path`` atomically; the format comes from the suffix.

    For OBJ, vertex colours (if any) are written with the common ``v x y z r g b`` extension,
    which trimesh reads back as ``mesh.visual.vertex_colors``. ``export_kwargs`` go to
    ``mesh.export`` (e.g. ``digits=6`` for OBJ).
    """
    path = Path(path)
    file_type = file_type or path.suffix.lstrip(".").lower()
    buf = io.BytesIO()
    mesh.export(buf, file_type=file_type, **export_kwargs)
    return atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | os.PathLike[str], field: str = "file") -> Any:
    """Load a JSON file; a missing or malformed file raises :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, field, "file does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, field, f"not valid JSON ({e})") from e


def _normalise(params: Mapping[str, Any]) -> Any:
    """JSON round trip so tuples/lists and int/float keys compare as they will be stored."""
    return json.loads(json.dumps(dict(params), sort_keys=True))


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The parameters stored in ``<directory>/manifest.json``, or None when absent/unreadable."""
    path = Path(directory) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_manifest(directory: str | os.PathLike[str], params: Mapping[str, Any]) -> Path:
    """Atomically store ``params`` (JSON-serialisable) as ``<directory>/manifest.json``."""
    return atomic_write_json(Path(directory) / MANIFEST_NAME, _normalise(params))


def manifest_matches(directory: str | os.PathLike[str], params: Mapping[str, Any]) -> bool:
    """Whether the cache in ``directory`` was built from exactly ``params`` (up to date)."""
    stored = read_manifest(directory)
    return stored is not None and stored == _normalise(params)


def remove_stale_temps(directory: str | os.PathLike[str]) -> int:
    """Delete leftover ``.tmp-*`` files of interrupted writes under ``directory``; returns count."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    n = 0
    for p in directory.rglob(TMP_PREFIX + "*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n
