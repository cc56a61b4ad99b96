"""Worker lanes: the threads that run a service's synchronous handlers, and which runs which.

Handlers run off the event loop so that a handler may block (an instrument's answer, a database,
``self.service.get(...)`` waiting for a reply) without stopping the broker connection. A lane is
one thread that runs its work one item at a time, in arrival order.

``worker_lanes: single`` (the default, the reference's behaviour): the service and every endpoint
attached with ``add_child`` share one lane, so a service's requests are handled one at a time, in
order, and instruments on one bus are never hit concurrently. An endpoint attached with
``add_async_child`` has a lane (and a queue) of its own, as in the reference.

``worker_lanes: per_endpoint``: every endpoint has a lane (and a queue) of its own, so a backlog
on one endpoint does not delay the others; requests to one endpoint are still handled one at a
time, in order. Endpoints that share a device must then serialise their own access to it (as
EthernetSCPIService does with its I/O lock). Scheduled actions of an endpoint (an entity's
periodic logging) run on that endpoint's lane; alerts, replies and other scheduled actions on
the service's.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import weakref
from concurrent.futures import Executor, Future
from typing import Any, Callable

from dripline.transport.bridge import call_in_thread
from dripline.transport.ratelimit import LimitedLog

__all__ = ["LANE_POLICIES", "Lanes", "Worker"]

logger = logging.getLogger(__name__)
_log = LimitedLog(logger)

#: the values of a service's `worker_lanes` keyword
LANE_POLICIES = ("single", "per_endpoint")


class Worker(Executor):
    """A single thread that runs work items one at a time, in arrival order.

    Every request crosses from the event loop to this thread and its reply back, so the hand-off
    is on the latency path: a SimpleQueue plus ``loop.call_soon_threadsafe`` takes about half the
    time of ``loop.run_in_executor`` on a ThreadPoolExecutor (chained concurrent and asyncio
    futures, a semaphore per task), measured with bench/request_reply.py. Otherwise it behaves as
    the one-thread ThreadPoolExecutor it replaces: `submit` (so ``loop.run_in_executor(worker,
    ...)`` works), queued work still runs at interpreter exit, and `shutdown` drops what has not
    started yet and lets the running item finish.
    """

    def __init__(self, name: str) -> None:
        self.thread_ident: int | None = None
        self._queue: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self._shutdown = False
        self._thread = threading.Thread(target=self._run, name=f"{name}_0", daemon=True)
        self._thread.start()
        _live_workers.add(self)

    @property
    def executor(self) -> "Worker":
        return self

    def _run(self) -> None:
        self.thread_ident = threading.get_ident()
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            try:
                item()
            except BaseException:  # items report their own errors; never lose the thread
                _log.exception("error in a worker task (the worker keeps running)")
            del item

    def post(self, fn: Callable[[], Any]) -> None:
        """Run fn() on the worker thread (fn must not raise)."""
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        self._queue.put(fn)

    def call(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], args: tuple,
             done: Callable[[Any, BaseException | None], None]) -> None:
        """Run fn(*args) on the worker, then done(result, error) on `loop` (the package's one
        loop<->thread bridge, its loop-to-thread direction)."""
        call_in_thread(self.post, loop, fn, args, done)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        item = _FutureTask(fn, args, kwargs)
        self.post(item)
        return item.future

    def shutdown(self, wait: bool = False, *, cancel_futures: bool = True) -> None:
        self._shutdown = True
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _FutureTask):
                    item.future.cancel()
        self._queue.put(None)
        if wait and threading.get_ident() != self.thread_ident:
            self._thread.join()


class _FutureTask:
    """A `Worker.submit` job: runs fn and reports to a concurrent.futures.Future."""

    __slots__ = ("fn", "args", "kwargs", "future")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.future: Future = Future()

    def __call__(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as err:
            self.future.set_exception(err)
        else:
            self.future.set_result(result)


_live_workers: "weakref.WeakSet[Worker]" = weakref.WeakSet()


def _finish_workers_at_exit() -> None:
    """As concurrent.futures does for its threads: run what is queued, then let the thread end."""
    for worker in list(_live_workers):
        worker._queue.put(None)
    for worker in list(_live_workers):
        if worker._thread.is_alive() and worker._thread is not threading.current_thread():
            worker._thread.join()


threading._register_atexit(_finish_workers_at_exit)  # type: ignore[attr-defined]


class Lanes:
    """Which lane runs the handlers of which endpoint (see the module docstring).

    `main` is the service's own lane, made by `start()`; an endpoint's own lane is made the first
    time it is needed. Before `start()` (and after `shutdown()`) there are no threads.
    """

    def __init__(self, service_name: str, policy: str = "single") -> None:
        if policy not in LANE_POLICIES:
            raise ValueError(f"worker_lanes must be one of {', '.join(LANE_POLICIES)}, not {policy!r}")
        self.service_name = service_name
        self.policy = policy
        self.main: Worker | None = None
        self._own: dict[str, Worker] = {}
        self._dedicated: set[str] = set()

    def dedicate(self, name: str) -> None:
        """Give endpoint `name` a lane of its own whatever the policy (an async child)."""
        self._dedicated.add(name)

    def has_own_lane(self, name: str) -> bool:
        """Whether endpoint `name` (not the service itself) has a lane, and a queue, of its own."""
        return name != self.service_name and (self.policy == "per_endpoint"
                                              or name in self._dedicated)

    def start(self) -> None:
        self.main = Worker(f"{self.service_name}-worker")

    def for_endpoint(self, name: str) -> Worker | None:
        """The lane that runs `name`'s handlers (None before start)."""
        lane = self._own.get(name)
        if lane is not None or self.main is None or not self.has_own_lane(name):
            return lane or self.main
        lane = self._own[name] = Worker(f"{name}-worker")
        return lane

    def shutdown(self) -> None:
        """Stop every lane: queued work is dropped, running handlers finish on their own."""
        for worker in [self.main, *self._own.values()]:
            if worker is not None:
                worker.shutdown()
        self._own.clear()
