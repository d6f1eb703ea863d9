"""Looking at models in 3D in a web browser, built on viser (``pip install -e ".[view]"``).

- :mod:`zoo.viewer.session`: one model's live scene and controls (``python -m zoo.view``);
- :mod:`zoo.viewer.callback`: the same during training (``python -m zoo.train viewer=true``);
- :mod:`zoo.viewer.static`: offline HTML pages (the benchmark report's 3D views).

Nothing here imports viser at module level, so the rest of the zoo works without the extra;
:func:`require_viser` turns its absence into one clear line.
"""

from __future__ import annotations

from types import ModuleType

VISER_EXTRA = 'pip install -e ".[view]"'


class ViewerUnavailable(RuntimeError):
    """The optional viewer dependency is missing; the message says how to install it."""


def require_viser() -> ModuleType:
    """The ``viser`` module, or :class:`ViewerUnavailable` naming the extra to install."""
    try:
        import viser
    except ImportError as e:
        raise ViewerUnavailable(
            f"the 3D viewer needs the optional extra 'view' (viser), which is not installed "
            f"({e.msg}); install it with: {VISER_EXTRA}"
        ) from None
    return viser


__all__ = ["VISER_EXTRA", "ViewerUnavailable", "require_viser"]
