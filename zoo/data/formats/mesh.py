"""Loading and normalising triangle meshes of any format trimesh reads.

``load_mesh`` returns a single validated ``trimesh.Trimesh``: scenes (multi-object OBJ/GLB) are
merged into one mesh, and bad input (missing or empty file, unreadable file, a point cloud
without faces, NaN/infinite vertices, face indices out of range) raises
:class:`~zoo.data.io.DataError` naming the file and the field.

``normalize_mesh`` applies the ShapeNetCore v2 convention (Chang et al., "ShapeNet: An
Information-Rich 3D Model Repository", 2015, and the v2 release notes): the centre of the
axis-aligned bounding box goes to the origin and the box diagonal is scaled to length 1, so the
whole shape lies inside the sphere of radius 0.5.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from zoo.data.io import DataError

MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")


def _as_trimesh(loaded: object, path: Path) -> trimesh.Trimesh:
    """Merge a Scene into one mesh; reject point clouds and empty scenes."""
    if isinstance(loaded, trimesh.Scene):
        meshes = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
        if not meshes:
            raise DataError(path, "faces", "the file holds no triangle faces")
        return meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)
    if isinstance(loaded, trimesh.Trimesh):
        return loaded
    raise DataError(path, "faces", f"expected a triangle mesh, got a {type(loaded).__name__}")


def validate_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike[str] = "<mesh>") -> None:
    """Raise :class:`DataError` unless ``mesh`` has finite vertices and valid triangle faces."""
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise DataError(path, "vertices", f"expected (V, 3) with V > 0, got {vertices.shape}")
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices)).any(axis=1).sum())
        raise DataError(path, "vertices", f"{bad} of {len(vertices)} vertices are NaN or infinite")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise DataError(path, "faces", f"expected (F, 3) triangles with F > 0, got {faces.shape}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise DataError(
            path,
            "faces",
            f"indices must lie in [0, {len(vertices)}), got [{faces.min()}, {faces.max()}]",
        )


def load_mesh(path: str | os.PathLike[str], process: bool = True) -> trimesh.Trimesh:
    """Load any mesh file trimesh reads (OBJ, OFF, PLY, STL, GLB...) as one triangle mesh.

    Args:
        path: the file; the format comes from its suffix.
        process: merge duplicate vertices (e.g. split at UV seams) after validation, so that a
            closed surface stored with seams is watertight.
    Returns:
        A validated ``trimesh.Trimesh`` (vertex colours / textures kept when trimesh reads them).
    Raises:
        DataError: missing, empty or unreadable file, no faces, NaN vertices, bad indices.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "file does not exist")
    if path.stat().st_size == 0:
        raise DataError(path, "file", "empty file (0 bytes)")
    try:
        loaded = trimesh.load(path, process=False, skip_materials=False)
    except DataError:
        raise
    except Exception as e:  # trimesh raises many types for malformed files
        raise DataError(path, "file", f"cannot read as a mesh: {type(e).__name__}: {e}") from e
    mesh = _as_trimesh(loaded, path)
    validate_mesh(mesh, path)
    if process:
        mesh.merge_vertices(merge_tex=True, merge_norm=True)
        mesh.remove_unreferenced_vertices()
    return mesh


def normalization_params(mesh: trimesh.Trimesh) -> tuple[np.ndarray, float]:
    """Centre (3,) and scale of the ShapeNet v2 normalisation ``v' = (v - centre) * scale``."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if len(vertices) == 0:
        raise ValueError("cannot normalise a mesh without vertices")
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    diagonal = float(np.linalg.norm(hi - lo))
    if not diagonal > 0:
        raise ValueError(f"cannot normalise a mesh whose bounding box is a point ({lo})")
    return (lo + hi) / 2.0, 1.0 / diagonal


def normalize_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """A copy of ``mesh`` centred at its bounding-box centre with bounding-box diagonal 1."""
    centre, scale = normalization_params(mesh)
    out = mesh.copy()
    out.vertices = (np.asarray(mesh.vertices, dtype=np.float64) - centre) * scale
    return out
