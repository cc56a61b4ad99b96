"""The one loop<->thread bridge, both ways.

Thread to loop: scripts, notebooks (which already run a loop of their own) and service handlers
(which run on a worker thread) all need to block until something on a loop finishes; `block_on`
is the only way any of them does it, so its contract (errors, cancellation, timeouts) is written
once. `LoopThread` is a private loop in a daemon thread for callers that have none (`Interface`).

Loop to thread: `call_in_thread` hands a blocking function to a worker thread and brings its
outcome back to the loop as a callback (a service's handler lanes), without a concurrent Future.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Callable

__all__ = ["LoopThread", "block_on", "call_in_thread", "new_event_loop"]

logger = logging.getLogger(__name__)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (measured faster with pika), the standard loop otherwise."""
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    # _get_running_loop: None outside a loop, where get_running_loop raises (costly per call)
    return asyncio._get_running_loop() is loop


def block_on(loop: asyncio.AbstractEventLoop, work: Any, *args: Any,
             timeout: float | None = None) -> Any:
    """Do `work` on `loop` (running in another thread) and block until it is finished.

    `work` is a coroutine object, or a callable that is called on the loop with `args` and returns
    an awaitable: an asyncio future is waited for as it is (no task; the client's requests
    come this way: `Core.begin_request`), a coroutine is run as a task.

    Same contract as ``asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)``: the
    result, or the exception raised; concurrent.futures.CancelledError when the work was
    cancelled; after `timeout` seconds the work is cancelled and concurrent.futures.TimeoutError
    raised. The hand-off costs one lock instead of a concurrent Future chained to a task.
    """
    if asyncio.iscoroutine(work):
        if args:
            work.close()
            raise TypeError("block_on(loop, coroutine) takes no arguments for the coroutine")
    elif not callable(work):
        raise TypeError(f"block_on needs a coroutine or a callable, not {type(work).__name__}")
    if _on_loop(loop):
        if asyncio.iscoroutine(work):
            work.close()
        raise RuntimeError("a blocking dripline call was made from its own event loop thread; "
                           "use the async API (await ...) there instead")
    if loop.is_closed() or not loop.is_running():
        if asyncio.iscoroutine(work):
            work.close()
        raise RuntimeError("the event loop that would do this work is not running")
    call = _BlockingCall(loop, work, args)
    loop.call_soon_threadsafe(call.start)
    if not call.lock.acquire(True, -1 if timeout is None else max(timeout, 0)):
        loop.call_soon_threadsafe(call.cancel)
        raise concurrent.futures.TimeoutError()
    return call.outcome()


def call_in_thread(post: Callable[[Callable[[], None]], None], loop: asyncio.AbstractEventLoop,
                   fn: Callable[..., Any], args: tuple,
                   done: Callable[[Any, BaseException | None], None]) -> None:
    """Run fn(*args) on a worker thread, then done(result, error) on `loop`.

    `post` puts a no-argument callable on the worker's queue (it runs it and must not care
    about its result). An exception of `fn` goes to `done`, as a future would carry it; a loop
    closed meanwhile (the service stopped) drops the outcome.
    """
    def item() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as err:
            result, error = None, err
        try:
            loop.call_soon_threadsafe(done, result, error)
        except RuntimeError:
            logger.debug("worker result dropped: the event loop is closed")
    post(item)


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

    def run(self, work: Any, *args: Any, timeout: float | None = None) -> Any:
        """`block_on` this thread's loop."""
        return block_on(self.loop, work, *args, timeout=timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(5)


class _BlockingCall:
    """One `block_on`: `lock` is released when the work is finished."""

    __slots__ = ("loop", "work", "args", "lock", "future", "abandoned", "result", "error",
                 "cancelled")

    def __init__(self, loop: asyncio.AbstractEventLoop, work: Any, args: tuple) -> None:
        self.loop, self.work, self.args = loop, work, args
        self.lock = threading.Lock()
        self.lock.acquire()
        self.future: asyncio.Future | None = None
        self.abandoned = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.cancelled = False

    def start(self) -> None:  # on the loop
        work, self.work = self.work, None
        try:
            awaitable = work if asyncio.iscoroutine(work) else work(*self.args)
            if asyncio.isfuture(awaitable):
                future = awaitable
            elif asyncio.iscoroutine(awaitable):
                future = self.loop.create_task(awaitable)
            else:
                raise TypeError(f"{work!r} returned {type(awaitable).__name__}, not an awaitable")
        except BaseException as err:
            self.error = err
            self.lock.release()
            if not isinstance(err, Exception):
                raise
            return
        self.future = future
        if self.abandoned:
            future.cancel()
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future) -> None:  # on the loop
        if future.cancelled():
            self.cancelled = True
        else:
            self.error = future.exception()
            if self.error is None:
                self.result = future.result()
        self.lock.release()

    def cancel(self) -> None:  # on the loop, after the caller gave up waiting
        self.abandoned = True
        if self.future is not None:
            self.future.cancel()

    def outcome(self) -> Any:
        if self.cancelled:
            raise concurrent.futures.CancelledError()
        error = self.error
        if error is not None:
            self.error = None  # no reference cycle through the traceback
            if isinstance(error, asyncio.CancelledError):
                raise concurrent.futures.CancelledError() from None
            raise error
        return self.result
