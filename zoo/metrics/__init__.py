"""The shared metric suite."""
