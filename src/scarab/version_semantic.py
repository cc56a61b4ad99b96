"""VersionSemantic: a major.minor.patch version with package and commit, as plugins declare it.

A plugin typically writes::

    version = scarab.VersionSemantic()
    version.parse(importlib.metadata.version("my-plugin"))
    version.package = "me/my-plugin"
    version.commit = "na"

and dripline reports ``version``, ``package`` and ``commit`` in every message's sender_info.
"""
from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["VersionSemantic"]

# optional "v", three numbers, then an optional suffix such as "rc1", "-beta" or ".dev3+g1a2b"
# (kept in the version string, ignored by comparisons)
_VERSION_RE = re.compile(r"v?([0-9]+)\.([0-9]+)\.([0-9]+)([A-Za-z.+\-_~][0-9A-Za-z.+\-_~]*)?")
_UNKNOWN = ("", "unknown")


@functools.total_ordering
class VersionSemantic:
    """``VersionSemantic()`` is 0.0.0; ``VersionSemantic(1, 2, 3)`` is 1.2.3.

    Versions compare by (major, minor, patch) only; also against strings (``v >= "1.2.0"``).
    """

    def __init__(self, major: int = 0, minor: int = 0, patch: int = 0):
        for number in (major, minor, patch):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise ValueError(f"version numbers must be non-negative ints, not {number!r}")
        self._numbers = (major, minor, patch)
        self._version = f"{major}.{minor}.{patch}"
        self.package = ""
        self.commit = ""

    def parse(self, version: str) -> bool:
        """Read `version` (``"1.2.3"``, ``"v1.2.3"``, ``"5.2.0rc1"``); False (and no change) when it
        is not a version. ``""`` and ``"unknown"`` give 0.0.0. The given string is kept as
        :attr:`version`."""
        if not isinstance(version, str):
            return False
        if version in _UNKNOWN:
            self._numbers = (0, 0, 0)
        else:
            match = _VERSION_RE.fullmatch(version)
            if match is None:
                return False
            self._numbers = (int(match[1]), int(match[2]), int(match[3]))
        self._version = version
        return True

    @property
    def version(self) -> str:
        return self._version

    @property
    def major_version(self) -> int:
        return self._numbers[0]

    @property
    def minor_version(self) -> int:
        return self._numbers[1]

    @property
    def patch_version(self) -> int:
        return self._numbers[2]

    def _other_numbers(self, other: Any) -> tuple[int, int, int] | None:
        if isinstance(other, VersionSemantic):
            return other._numbers
        if isinstance(other, str):
            parsed = VersionSemantic()
            if parsed.parse(other):
                return parsed._numbers
        return None

    def __eq__(self, other: object) -> bool:
        numbers = self._other_numbers(other)
        return NotImplemented if numbers is None else self._numbers == numbers

    def __lt__(self, other: object) -> bool:
        numbers = self._other_numbers(other)
        return NotImplemented if numbers is None else self._numbers < numbers

    def __hash__(self) -> int:
        return hash(self._numbers)

    def __str__(self) -> str:
        return self._version

    def __repr__(self) -> str:
        return f"VersionSemantic({self._version!r})"
