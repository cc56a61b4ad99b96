"""s2py_verbosity: scarab verbosity names (as used by ``-v``/``-q`` and configs) to logging levels."""
from __future__ import annotations

import logging
from typing import Any

__all__ = ["s2py_verbosity", "TRACE", "PROG"]

#: Below DEBUG, for scarab's "trace" (logging has no such level).
TRACE = 5
#: Between INFO and WARNING, for scarab's "prog" (progress messages).
PROG = 25

_LEVELS = {
    "trace": TRACE, "debug": logging.DEBUG, "info": logging.INFO, "prog": PROG,
    "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR,
    "fatal": logging.CRITICAL, "critical": logging.CRITICAL,
}


def s2py_verbosity(level: Any) -> int:
    """The logging level for a scarab verbosity: a name ('trace', 'debug', 'info', 'prog', 'warn',
    'error', 'fatal'; any case), an enum member with such a ``.name``, or an int (returned as is,
    scarab's numbers already match logging's except trace)."""
    if isinstance(level, bool):
        raise ValueError(f"not a verbosity: {level!r}")
    if isinstance(level, int):
        return level if level > 0 else TRACE
    name = level if isinstance(level, str) else getattr(level, "name", None)
    if isinstance(name, str) and name.lower() in _LEVELS:
        return _LEVELS[name.lower()]
    raise ValueError(f"unknown verbosity {level!r}; use one of {', '.join(_LEVELS)}")
