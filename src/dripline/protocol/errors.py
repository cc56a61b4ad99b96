"""The one exception family the whole package raises for dripline-level failures.

Decoders, clients and config loading raise only subclasses of :class:`DriplineError`, so callers
(and the 3 a.m. operator's script) can catch one type and still get the code, message and payload.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["DriplineError", "DecodeError", "ConfigError", "ConnectionError_", "TimeoutError_",
           "UnableToSendError", "throw_dripline_error", "throw_message"]


class DriplineError(RuntimeError):
    """A dripline failure; carries the dripline return code (and reply payload when there is one).

    Subclasses RuntimeError like the reference's ``_dripline.core.DriplineError``.
    """

    def __init__(self, message: str = "", return_code: int = 999, payload: Any = None):
        super().__init__(message)
        self.message = message
        self.return_code = int(return_code)
        self.payload = payload

    # reference-era name
    @property
    def retcode(self) -> int:
        return self.return_code


class DecodeError(DriplineError):
    """Bytes from the wire could not be turned into a message (code 301 or 302).

    The decoder fills in what it could read before failing, so that the receiver can still send an
    error reply (to `reply_to`, with `correlation_id`) or fail the waiting request.
    """

    routing_key: str | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    message_type: int | None = None

    def __init__(self, message: str, return_code: int = 302, payload: Any = None):
        super().__init__(message, return_code, payload)


class ConfigError(DriplineError):
    """A configuration or credentials problem found before anything touched the network."""

    def __init__(self, message: str, return_code: int = 400, payload: Any = None):
        super().__init__(message, return_code, payload)


class ConnectionError_(DriplineError, ConnectionError):
    """The broker could not be reached or the connection was lost (code 101).

    Also a built-in ConnectionError (an OSError), so code that handles network failures the
    standard way (``except ConnectionError``, ``except OSError``) handles this one too.
    """

    def __init__(self, message: str, return_code: int = 101, payload: Any = None):
        super().__init__(message, return_code, payload)


class UnableToSendError(DriplineError):
    """A request could not be delivered, e.g. nobody is bound to its routing key (code 403)."""

    def __init__(self, message: str, return_code: int = 403, payload: Any = None):
        super().__init__(message, return_code, payload)


class TimeoutError_(DriplineError, TimeoutError):
    """No reply arrived within the timeout (code 404).

    Also a built-in TimeoutError (so ``except TimeoutError`` and asyncio's timeout handling see
    it as one).
    """

    def __init__(self, message: str, return_code: int = 404, payload: Any = None):
        super().__init__(message, return_code, payload)


# The reference's compiled module exports two functions that raise from C++, so that its tests
# can check how those errors reach Python; code written against it may call them too.

def throw_dripline_error(message: str = "") -> None:
    """Raise DriplineError(`message`): how a dripline error thrown by the C++ core arrives."""
    raise DriplineError(message)


def throw_message(message: str = "") -> None:
    """Raise a plain RuntimeError, as the reference does when its core throws a message object."""
    raise RuntimeError(f"Thrown message:\n{message}" if message else "Thrown message")


# "did you mean"


def suggest(key: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """The valid names closest to a misspelt `key` (difflib), best first."""
    import difflib  # only when reporting an error: keeps command start-up short
    return difflib.get_close_matches(key, list(valid), n=n, cutoff=0.6)


def did_you_mean(key: str, valid: Iterable[str]) -> str:
    """A message tail for an unknown key: '; did you mean ...?' or the list of valid names."""
    valid = list(valid)
    close = suggest(key, valid)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "; valid keys are " + ", ".join(valid)
