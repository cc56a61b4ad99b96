"""Rate-limited reports: what any mesh user can trigger must not be able to fill a disk.

A handler that raises on every request, a stream of undecodable messages or a flood of refused
chunks would otherwise write one warning (or one full traceback) per message. Here each *source*
(a key: the exception's site, or the call site and kind of a warning) is reported in full the first
time, then only counted; once per window a single summary line says how many were left out
("... 1,234 more like this in the last 60 s"). A source that stays quiet for a whole window is
forgotten, so its next occurrence is reported in full again.

Why in `dripline.transport`: counting needs a clock, which the sans-I/O `dripline.protocol` must
not read; `transport` is the lowest layer that may, and every layer that reports (client, service,
the command-line tools) may already import it, so no new layer has to be declared.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["RateLimiter", "LimitedLog", "exception_site", "reset_all", "DEFAULT_WINDOW_S"]

DEFAULT_WINDOW_S = 60.0
_MAX_KEYS = 512
_OVERFLOW = ("<other sources>",)
_SUMMARY_TEXT = 160


def exception_site(exc: BaseException) -> tuple[str, int, str]:
    """(file, line, exception type) of the innermost frame where `exc` was raised."""
    tb = exc.__traceback__
    if tb is None:
        return ("?", 0, type(exc).__qualname__)
    while tb.tb_next is not None:
        tb = tb.tb_next
    return (tb.tb_frame.f_code.co_filename, tb.tb_lineno, type(exc).__qualname__)


class _Source:
    __slots__ = ("started", "suppressed", "text")

    def __init__(self, started: float, text: str) -> None:
        self.started = started
        self.suppressed = 0
        self.text = text


_limiters: weakref.WeakSet[RateLimiter] = weakref.WeakSet()


def reset_all() -> None:
    """Forget every source of every limiter, without summaries (test isolation: a test that
    expects a traceback in its log must not depend on whether an earlier test logged it)."""
    for limiter in list(_limiters):
        with limiter._lock:
            limiter._sources.clear()


class RateLimiter:
    """Decides, per key, whether an occurrence is reported in full, and produces the summaries.

    `hit(key, text)` returns True when the occurrence should be reported in full. Summaries of
    what was left out are handed to `emit_summary(key, count, seconds, text)`; they are produced
    by later hits (of any key, checked at most once a second) and by `flush()`. Thread-safe.
    """

    def __init__(self, emit_summary: Callable[[Hashable, int, float, str], None],
                 window_s: float = DEFAULT_WINDOW_S, max_keys: int = _MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = float(window_s)
        self.max_keys = int(max_keys)
        self._emit_summary = emit_summary
        self._clock = clock
        self._sources: dict[Hashable, _Source] = {}
        self._next_sweep = 0.0
        self._lock = threading.Lock()
        #: occurrences reported in full / left out, since creation
        self.reported = 0
        self.suppressed = 0
        _limiters.add(self)

    def hit(self, key: Hashable, text: str = "") -> bool:
        now = self._clock()
        due: list[tuple[Hashable, int, float, str]] = []
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now, due)
            sources = self._sources
            source = sources.get(key)
            if source is None and len(sources) >= self.max_keys:
                key = _OVERFLOW
                source = sources.get(key)
            if source is None:
                sources[key] = _Source(now, text)
                self.reported += 1
                full = True
            else:
                source.suppressed += 1
                source.text = text
                self.suppressed += 1
                full = False
        for item in due:
            self._emit_summary(*item)
        return full

    def _sweep(self, now: float, due: list) -> None:
        """Summaries for windows that are over; forget sources quiet for a whole window."""
        self._next_sweep = now + min(1.0, self.window_s)
        for key, source in list(self._sources.items()):
            if now - source.started < self.window_s:
                continue
            if source.suppressed:
                due.append((key, source.suppressed, now - source.started, source.text))
                source.started, source.suppressed = now, 0
            else:
                del self._sources[key]

    def flush(self) -> None:
        """Emit the summaries of everything counted so far (e.g. when a service stops)."""
        now = self._clock()
        due = []
        with self._lock:
            for key, source in self._sources.items():
                if source.suppressed:
                    due.append((key, source.suppressed, now - source.started, source.text))
                    source.started, source.suppressed = now, 0
        for item in due:
            self._emit_summary(*item)


def _short(text: str) -> str:
    return text if len(text) <= _SUMMARY_TEXT else text[:_SUMMARY_TEXT] + "..."


class LimitedLog:
    """A logger's rate-limited face: ``warning(key, msg, *args)`` and ``exception(msg, *args)``.

    ``exception`` keys on the exception's site (file, line, type): the first occurrence is logged
    with its full traceback, later ones are counted; the summary line names the latest one.
    """

    def __init__(self, logger: logging.Logger, window_s: float = DEFAULT_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.limiter = RateLimiter(self._summary, window_s, clock=clock)
        self._levels: dict[Hashable, int] = {}

    def _summary(self, key: Hashable, count: int, seconds: float, text: str) -> None:
        level = self._levels.get(key, logging.WARNING)
        self.logger.log(level, "... %s more like this in the last %.0f s (latest: %s)",
                        f"{count:,}", seconds, _short(text))

    def log(self, level: int, key: Hashable, msg: str, *args: Any, exc_info: Any = None) -> bool:
        """Log `msg % args` in full the first time for `key`; count it afterwards."""
        if not self.logger.isEnabledFor(level):
            return False
        try:
            text = msg % args if args else msg
        except Exception:
            text = msg
        full = self.limiter.hit(key, text)
        if full:
            if len(self._levels) > 2 * self.limiter.max_keys:
                self._levels.clear()
            self._levels[key] = level
            self.logger.log(level, "%s", text, exc_info=exc_info)
        return full

    def warning(self, key: Hashable, msg: str, *args: Any) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def error(self, key: Hashable, msg: str, *args: Any) -> bool:
        return self.log(logging.ERROR, key, msg, *args)

    def exception(self, msg: str, *args: Any, exc: BaseException | None = None,
                  level: int = logging.ERROR) -> bool:
        """Log the current (or given) exception with its traceback once per exception site."""
        if exc is None:
            exc = _current_exception()
        if exc is None:
            return self.log(level, ("no exception", msg), msg, *args)
        site = exception_site(exc)
        try:
            text = msg % args if args else msg
        except Exception:
            text = msg
        return self.log(level, site, "%s: %s: %s", text, type(exc).__name__, _exc_text(exc),
                        exc_info=(type(exc), exc, exc.__traceback__))

    def flush(self) -> None:
        self.limiter.flush()


def _current_exception() -> BaseException | None:
    return sys.exc_info()[1]


def _exc_text(exc: BaseException) -> str:
    try:
        return _short(str(exc))
    except Exception:
        return "".join(traceback.format_exception_only(type(exc), None)).strip()
