"""Import open3d on a fresh machine.

open3d's wheels link against ``libusb-1.0.so.0``, which a bare Debian image lacks; the pip
package ``libusb-package`` ships that library, so we load it globally before importing open3d.
"""

from __future__ import annotations

import ctypes
import functools
from types import ModuleType


@functools.cache
def import_open3d() -> ModuleType:
    """Return the ``open3d`` module, preloading libusb from ``libusb-package`` if needed."""
    try:
        import open3d
    except ImportError as first:
        if "libusb" not in str(first):
            raise
        import libusb_package

        path = libusb_package.get_library_path()
        if path is None:
            raise ImportError(
                "open3d needs libusb-1.0.so.0: `pip install libusb-package` or "
                "`apt-get install libusb-1.0-0`"
            ) from first
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        import open3d
    return open3d
