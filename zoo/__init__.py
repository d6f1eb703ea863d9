"""zoo: train, evaluate and compare 3D generative models across representations."""

__version__ = "0.1.0"
