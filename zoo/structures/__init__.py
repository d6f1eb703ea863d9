"""Data structures shared by every model: cameras (and, later, batched clouds and meshes)."""

from zoo.structures.cameras import Cameras, look_at

__all__ = ["Cameras", "look_at"]
