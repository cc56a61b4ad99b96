"""jitter: an example dripline plugin adding `JitterEntity` to the dripline.extensions namespace.

The package's ``__init__`` does three things, as the plugin guide asks: import the classes of the
plugin, list what it exports in ``__all__``, and define ``version`` (a scarab.VersionSemantic),
which dripline sends in every message as ``sender_info.versions["dripline.extensions.jitter"]``.
"""
from importlib import metadata as _metadata

import scarab

__all__ = []

version = scarab.VersionSemantic()
try:
    version.parse(_metadata.version("jitter_plugin"))
except _metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    pass
version.package = "dripline-python/examples/jitter-plugin"
version.commit = "na"
__all__.append("version")

from .jitter_endpoint import *  # noqa: E402,F401,F403
from .jitter_endpoint import __all__ as _jitter_endpoint_all  # noqa: E402

__all__ += _jitter_endpoint_all
