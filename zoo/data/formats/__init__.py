"""Readers (and writers where a cache needs them) of public 3D data formats.

One module per format, each validating its input and raising :class:`zoo.data.io.DataError`
that names the file and the field:

- :mod:`.mesh`: any mesh trimesh reads (OBJ, OFF, PLY, STL, GLB; scenes merged), ShapeNet v2
  normalisation.
- :mod:`.shapenet`: ShapeNetCore v1/v2 folder layouts, synset ids, deterministic splits.
- :mod:`.pc15k`: PointFlow's ``ShapeNetCore.v2.PC15k`` point clouds.
- :mod:`.deepsdf`: DeepSDF's ``SdfSamples`` npz files and split JSON.
- :mod:`.binvox`: the binvox run-length voxel format (reader and writer).
- :mod:`.blender`, :mod:`.tinynerf`: multi-view image formats (NeRF data).
"""
