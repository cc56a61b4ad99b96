"""The protocol's own version and the shape of one ``sender_info.versions`` entry.

Pure: no registry, no discovery, no import of the root package. Which packages a process reports
is the process's business (`dripline.client.identity` keeps that table and hands it to every
message it sends); this module only says how an entry is written on the wire.
"""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["PROTOCOL_VERSION", "version_entry", "versions_table"]

#: the dripline wire protocol this package speaks (reported as ``versions.dripline``)
PROTOCOL_VERSION = "3.0.0"


def version_entry(version: Any) -> dict[str, str]:
    """One ``versions`` entry: ``{"version"[, "commit"][, "package"]}``.

    `version` is a plain string, a mapping with those keys, or an object with ``.version``,
    ``.commit`` and ``.package`` (a scarab.VersionSemantic); empty commit/package are left out,
    as the reference writes them.
    """
    if isinstance(version, str):
        return {"version": version}
    if isinstance(version, Mapping):
        return {k: str(val) for k, val in version.items()
                if k in ("version", "commit", "package") and val}
    entry = {"version": str(getattr(version, "version", "") or "")}
    for key in ("commit", "package"):
        value = getattr(version, key, "")
        if value:
            entry[key] = str(value)
    return entry


def versions_table(versions: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The whole ``versions`` table from {name: version (any form `version_entry` takes)}."""
    return {name: version_entry(v) for name, v in versions.items()}
