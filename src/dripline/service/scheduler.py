"""Timed actions of a service (entity logging, user jobs), driven by the service's event loop.

Differences from the reference scheduler, on purpose: a late repeating event runs once and then
keeps its rhythm (no catch-up bursts); an exception in an action is logged and the event keeps its
schedule (the reference lets it kill the process); unscheduling an unknown id is a no-op returning
False; the default start of a repeating event is "now + interval", evaluated at call time.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from dripline.transport.bridge import block_on

__all__ = ["Scheduler", "MIN_INTERVAL_S"]

logger = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.1  # the reference's 2 x execution buffer
_ids = itertools.count()


def _seconds(value: Any) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"an interval must be a timedelta or a number of seconds, not {value!r}")


def _monotonic_at(when: datetime) -> float:
    """Translate a wall-clock datetime (naive = local time) into the monotonic clock."""
    if when.tzinfo is None:
        delay = (when - datetime.now()).total_seconds()
    else:
        delay = (when - datetime.now(timezone.utc)).total_seconds()
    return time.monotonic() + delay


class _Event:
    __slots__ = ("id", "action", "interval", "due", "handle")

    def __init__(self, id_: int, action: Callable[[], Any], interval: float | None, due: float):
        self.id, self.action, self.interval, self.due = id_, action, interval, due
        self.handle: asyncio.TimerHandle | None = None


class Scheduler:
    """Runs actions at times or intervals.

    `runner(action)` executes one action; a Service passes a function that runs it on its worker
    thread so that scheduled reads never overlap with request handling on the same instrument.
    Events can be added before the loop runs; they are armed by `start(loop)`.
    """

    def __init__(self, runner: Callable[[Callable[[], Any]], Any] | None = None) -> None:
        self._runner = runner
        self._events: dict[int, _Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    def schedule(self, action: Callable[[], Any], when: Any = None, start: datetime | None = None) -> int:
        """Schedule `action`.

        `when` a datetime: run once then. `when` a timedelta or number of seconds: repeat at that
        interval, first at `start` (default: one interval from now).
        """
        if isinstance(when, datetime):
            interval, due = None, _monotonic_at(when)
        else:
            interval = _seconds(when)
            if interval < MIN_INTERVAL_S:
                raise ValueError(f"cannot schedule an action every {interval} s: the minimum "
                                 f"interval is {MIN_INTERVAL_S} s")
            due = _monotonic_at(start) if start is not None else time.monotonic() + interval
        event = _Event(next(_ids), action, interval, due)
        self._events[event.id] = event
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._arm, event)
        return event.id

    def unschedule(self, event_id: int) -> bool:
        event = self._events.pop(event_id, None)
        if event is None:
            return False
        if event.handle is not None:
            handle = event.handle
            if self._loop is not None:
                self._loop.call_soon_threadsafe(handle.cancel)
        return True

    def jobs(self) -> dict[int, tuple[Callable[[], Any], float | None]]:
        """What is scheduled: {id: (action, interval in seconds, or None for a one-off)}."""
        return {i: (e.action, e.interval) for i, e in sorted(self._events.items())}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for event in list(self._events.values()):
            self._arm(event)

    def stop(self) -> None:
        for event in self._events.values():
            if event.handle is not None:
                event.handle.cancel()
                event.handle = None
        self._loop = None

    def _arm(self, event: _Event) -> None:
        if event.id not in self._events or self._loop is None:
            return
        delay = max(0.0, event.due - time.monotonic())
        event.handle = self._loop.call_later(delay, self._fire, event)

    def _fire(self, event: _Event) -> None:
        event.handle = None
        if event.id not in self._events:
            return
        if event.interval is None:
            del self._events[event.id]
        else:
            now = time.monotonic()
            event.due += event.interval
            if event.due <= now:  # we are late: skip the missed runs rather than burst
                missed = int((now - event.due) // event.interval) + 1
                event.due += missed * event.interval
            self._arm(event)
        self._run(event.action)

    def _run(self, action: Callable[[], Any]) -> None:
        loop = self._loop

        def guarded() -> None:
            try:
                result = action()
                if inspect.isawaitable(result):  # an async handler (e.g. an async on_get being logged)
                    if loop is None:
                        raise RuntimeError("the scheduler is not running")
                    try:
                        running = asyncio.get_running_loop()
                    except RuntimeError:
                        running = None
                    if running is loop:
                        asyncio.ensure_future(result, loop=loop)
                    else:
                        block_on(loop, result)  # the package's one loop<->thread bridge
            except Exception:
                logger.exception("scheduled action %r failed; it stays scheduled", action)
        if self._runner is None:
            guarded()
        else:
            # `__wrapped__` is the action: a service's runner picks the lane of the action's owner
            self._runner(functools.update_wrapper(guarded, action))
