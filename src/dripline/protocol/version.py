"""Registry of package versions that every outgoing message reports in sender_info.versions.

The reference keeps a global version store: 'dripline' (protocol), the implementation, and one
entry per plugin. We keep the same names so mixed meshes show the same picture in dl-mon.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["add_version", "get_version", "get_versions", "remove_version", "add_version_source",
           "PROTOCOL_VERSION"]

PROTOCOL_VERSION = "3.0.0"

_versions: dict[str, Any] = {}
_cached_table: dict[str, dict[str, str]] | None = None
_sources: list[Callable[[], None]] = []
_sources_lock = threading.RLock()
_sources_running = False


def add_version_source(source: Callable[[], None]) -> None:
    """Run `source` (which calls add_version) once, the first time versions are read.

    Plugin discovery registers itself here, so that `import dripline` does not import every
    plugin: their versions are collected when the first message is built or a version is asked.
    """
    global _cached_table
    _sources.append(source)
    _cached_table = None


def _run_sources() -> None:
    global _sources_running
    with _sources_lock:  # another thread waits until the versions are complete
        if _sources_running:  # called from inside a source (e.g. a plugin building a message)
            return
        _sources_running = True
        try:
            while _sources:
                source = _sources[0]
                try:
                    source()
                except Exception:  # a version source must never break sending a message
                    import logging
                    logging.getLogger(__name__).exception("collecting versions with %r failed",
                                                          source)
                finally:
                    _sources.remove(source)
        finally:
            _sources_running = False


def add_version(name: str, version: Any) -> None:
    """Register `version` (a scarab.VersionSemantic or anything with .version/.commit/.package,
    or a plain string) under `name`."""
    global _cached_table
    _versions[name] = version
    _cached_table = None


def remove_version(name: str) -> None:
    global _cached_table
    _versions.pop(name, None)
    _cached_table = None


def get_version(name: str) -> Any:
    if _sources:
        _run_sources()
    return _versions.get(name)


def _entry(v: Any) -> dict[str, str]:
    if isinstance(v, str):
        return {"version": v}
    if isinstance(v, dict):
        return {k: str(val) for k, val in v.items() if k in ("version", "commit", "package") and val}
    entry = {"version": str(getattr(v, "version", "") or "")}
    for key in ("commit", "package"):
        value = getattr(v, key, "")
        if value:
            entry[key] = str(value)
    return entry


def get_versions() -> dict[str, dict[str, str]]:
    """The sender_info.versions table: {name: {"version", ["commit"], ["package"]}}.

    Cached because it is built into every message header; add_version invalidates it.
    """
    global _cached_table
    if _cached_table is None:
        _ensure_builtin()
        if _sources:
            _run_sources()
        _cached_table = {name: _entry(v) for name, v in _versions.items()}
    return _cached_table


def _ensure_builtin() -> None:
    if "dripline" not in _versions:
        _versions["dripline"] = PROTOCOL_VERSION
    if "dripline-python" not in _versions:
        from dripline import __version__
        _versions["dripline-python"] = {"version": __version__, "commit": "na",
                                        "package": "driplineorg/dripline-python"}
