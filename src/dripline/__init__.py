"""dripline for Python: a pure-Python, wire-compatible implementation of the dripline protocol.

Plugins add classes to the ``dripline.extensions`` namespace (or declare them as entry points of the
group ``dripline.extensions``); see `dripline.assembly.plugins`. They are found and imported *lazily*: the
first time something needs them (the first message this process builds, whose
``sender_info.versions`` lists every plugin; a class lookup by dl-serve; ``dl-plugin list``), not
at ``import dripline``, so that a command such as dl-agent does not pay for plugins at start-up
before it needs them. ``dripline.extensions.<plugin>`` is then available as in the reference;
accessing ``dripline.extensions`` through this package triggers the discovery at once.
"""
from __future__ import annotations

from typing import Any

# `__version__` / `version` are looked up on first access (module __getattr__ below):
# importlib.metadata alone costs ~15 ms of imports (email, zipfile, csv ...) at every command
# start-up, where a direct read of our own METADATA file costs a fraction of a millisecond.


def _read_version() -> str:
    """The installed distribution's version: what importlib.metadata.version('dripline') says.

    Walks sys.path in order for the first ``dripline-*.dist-info`` / ``dripline*.egg-info`` and
    reads its Version field; anything it cannot settle goes to importlib.metadata.
    """
    import os
    import sys
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except (OSError, TypeError):
            continue
        for name in names:
            lower = name.lower()
            if not lower.startswith("dripline") or not lower.endswith((".dist-info", ".egg-info")):
                continue
            stem = lower[:-len(".dist-info")]  # both suffixes are 10 characters long
            if stem.split("-", 1)[0] != "dripline":
                continue
            path = os.path.join(entry or ".", name)
            if os.path.isdir(path):
                path = os.path.join(path, "METADATA" if lower.endswith(".dist-info") else "PKG-INFO")
            try:
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        if not line.strip():
                            break  # end of the header block
                        if line.startswith("Version:"):
                            return line[len("Version:"):].strip()
            except OSError:
                pass
            return _metadata_version()
    return _metadata_version()


def _metadata_version() -> str:
    from importlib import metadata
    try:
        return metadata.version("dripline")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0"


# `dripline` spans every `dripline/` folder on sys.path, so that a plugin installed in another
# site-packages (a venv over a system install, a user site, an editable checkout) can still put its
# `dripline/extensions/<plugin>/` into the namespace.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)


def _collect_plugin_versions() -> None:
    from dripline import plugins
    plugins.discover()


def __getattr__(name: str) -> Any:
    if name in ("__version__", "version"):
        value = globals()["__version__"] = globals()["version"] = _read_version()
        return value
    # `import dripline; dripline.extensions.jitter` works as in the reference (discovery on demand)
    if name == "extensions":
        import importlib
        extensions = importlib.import_module("dripline.extensions")
        from dripline import plugins
        plugins.discover()
        return extensions
    if name in ("core", "implementations"):  # reference code uses them after `import dripline`
        import importlib
        return importlib.import_module(f"dripline.{name}")
    raise AttributeError(f"module 'dripline' has no attribute {name!r}")


from dripline.protocol.version import add_version_source as _add_version_source  # noqa: E402

_add_version_source(_collect_plugin_versions)
