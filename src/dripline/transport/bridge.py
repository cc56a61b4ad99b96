"""A private asyncio event loop in a daemon thread, for synchronous callers.

Scripts, notebooks (which already run a loop of their own) and service handlers (which run on a
worker thread) all need to block on a coroutine; running it on a separate loop thread works in all
three places, where asyncio.run() would not.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable, Coroutine

__all__ = ["LoopThread", "new_event_loop"]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (measured faster with pika), the standard loop otherwise."""
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()


class LoopThread:
    """Owns one event loop running forever in a daemon thread."""

    def __init__(self, name: str = "dripline-io") -> None:
        self.loop = new_event_loop()
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()

    def run(self, coro: Coroutine, timeout: float | None = None) -> Any:
        """Run `coro` on the loop and block until it finishes (or `timeout` seconds pass).

        Same contract as ``asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)`` (on a
        timeout the task is cancelled and concurrent.futures.TimeoutError raised; a cancelled
        task raises concurrent.futures.CancelledError), with a cheaper hand-off: one lock
        instead of a concurrent Future (a Condition) chained to the task. Every blocking
        Interface call goes through here (bench/request_reply.py).
        """
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a blocking dripline call was made from its own event loop thread; "
                               "use the async API (await ...) there instead")
        if not asyncio.iscoroutine(coro):
            raise TypeError("A coroutine object is required")
        call = _BlockingCall(coro, self.loop)
        self.loop.call_soon_threadsafe(call.start)
        if not call.lock.acquire(True, -1 if timeout is None else max(timeout, 0)):
            self.loop.call_soon_threadsafe(call.cancel)
            raise concurrent.futures.TimeoutError()
        return call.outcome()

    def call(self, fn: Callable[..., None], *args: Any) -> Any:
        """Run fn(*args, done) on the loop and block until it calls done(result, error).

        For callback-style loop APIs (Core.request_callback): no task, no coroutine. An error is
        raised here; a CancelledError becomes concurrent.futures.CancelledError, as with `run`.
        """
        if threading.current_thread() is self.thread:
            raise RuntimeError("a blocking dripline call was made from its own event loop thread; "
                               "use the async API (await ...) there instead")
        call = _CallbackCall(fn, args)
        self.loop.call_soon_threadsafe(call.start)
        call.lock.acquire()
        return call.outcome()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(5)


class _BlockingCall:
    """One coroutine run for a blocked thread: `lock` is released when the task is done."""

    __slots__ = ("coro", "loop", "lock", "task", "abandoned", "result", "error", "cancelled")

    def __init__(self, coro: Coroutine, loop: asyncio.AbstractEventLoop) -> None:
        self.coro, self.loop = coro, loop
        self.lock = threading.Lock()
        self.lock.acquire()
        self.task: asyncio.Task | None = None
        self.abandoned = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.cancelled = False

    def start(self) -> None:  # on the loop
        try:
            self.task = self.loop.create_task(self.coro)
        except BaseException as err:
            self.error = err
            self.lock.release()
            raise
        if self.abandoned:
            self.task.cancel()
        self.task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:  # on the loop
        if task.cancelled():
            self.cancelled = True
        else:
            self.error = task.exception()
            if self.error is None:
                self.result = task.result()
        self.lock.release()

    def cancel(self) -> None:  # on the loop, after the caller gave up waiting
        self.abandoned = True
        if self.task is not None:
            self.task.cancel()

    def outcome(self) -> Any:
        if self.cancelled:
            raise concurrent.futures.CancelledError()
        if self.error is not None:
            try:
                raise self.error
            finally:
                self.error = None  # no reference cycle through the traceback
        return self.result


class _CallbackCall:
    """One `LoopThread.call`: `lock` is released by the first done(result, error)."""

    __slots__ = ("fn", "args", "lock", "finished", "result", "error")

    def __init__(self, fn: Callable[..., None], args: tuple) -> None:
        self.fn, self.args = fn, args
        self.lock = threading.Lock()
        self.lock.acquire()
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None

    def start(self) -> None:  # on the loop
        try:
            self.fn(*self.args, self.done)
        except BaseException as err:
            self.done(None, err)
            if not isinstance(err, Exception):
                raise

    def done(self, result: Any, error: BaseException | None) -> None:
        if self.finished:
            return
        self.finished = True
        self.result, self.error = result, error
        self.lock.release()

    def outcome(self) -> Any:
        error = self.error
        if error is not None:
            self.error = None  # no reference cycle through the traceback
            if isinstance(error, asyncio.CancelledError):
                raise concurrent.futures.CancelledError() from None
            raise error
        return self.result
