"""dripline for Python: a pure-Python, wire-compatible implementation of the dripline protocol.

Plugins add classes to the ``dripline.extensions`` namespace (or declare them as entry points of the
group ``dripline.extensions``); see `dripline.assembly.plugins`. They are found and imported only
when something asks for them (a class lookup by dl-serve, ``dl-plugin list``, an explicit
`dripline.assembly.plugins.discover()`), never at ``import dripline`` and never by building or
sending a message, so a command such as dl-agent does not pay for plugins. Discovery registers each
plugin's version, so a service built by dl-serve reports them in ``sender_info.versions``.
``dripline.extensions.<plugin>`` is then available as in the reference; accessing
``dripline.extensions`` through this package triggers the discovery at once.

Importing this package registers nothing and imports nothing of its own.
"""
from __future__ import annotations

from typing import Any

# `__version__` / `version` are looked up on first access (module __getattr__ below), from the
# distribution's metadata file (dripline._metadata), not through importlib.metadata.


def _read_version() -> str:
    """The installed distribution's version: what importlib.metadata.version('dripline') says."""
    from dripline._metadata import distribution_version
    return distribution_version()


# `dripline` spans every `dripline/` folder on sys.path, so that a plugin installed in another
# site-packages (a venv over a system install, a user site, an editable checkout) can still put its
# `dripline/extensions/<plugin>/` into the namespace.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)


def __getattr__(name: str) -> Any:
    if name in ("__version__", "version"):
        value = globals()["__version__"] = globals()["version"] = _read_version()
        return value
    # `import dripline; dripline.extensions.jitter` works as in the reference (discovery on demand).
    # Imported by name: every layer imports this root package (for __version__), and only this
    # reference-era attribute needs the assembly layer, so `import dripline` must not depend on it.
    if name == "extensions":
        import importlib
        extensions = importlib.import_module("dripline.extensions")
        importlib.import_module("dripline.assembly.plugins").discover()
        return extensions
    if name in ("core", "implementations"):  # reference code uses them after `import dripline`
        import importlib
        return importlib.import_module(f"dripline.{name}")
    raise AttributeError(f"module 'dripline' has no attribute {name!r}")
