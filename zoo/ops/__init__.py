"""Stateless geometry and rendering ops shared by every model (one implementation each)."""
