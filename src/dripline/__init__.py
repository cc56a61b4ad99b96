"""dripline for Python: a pure-Python, wire-compatible implementation of the dripline protocol."""
from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("dripline")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"
version = __version__
