"""This distribution's version, read without importlib.metadata (dl-agent's start-up budget).

A module of its own, below every layer, so that the client's identity and `dripline.__version__`
can both read it without importing the root package's lazy attributes (plugin discovery).
"""
from __future__ import annotations

import os
import sys

__all__ = ["distribution_version"]


def distribution_version() -> str:
    """The installed distribution's version: what importlib.metadata.version('dripline') says.

    Walks sys.path in order for the first ``dripline-*.dist-info`` / ``dripline*.egg-info`` and
    reads its Version field; anything it cannot settle goes to importlib.metadata (whose imports
    alone cost ~15 ms: email, zipfile, csv ...).
    """
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
