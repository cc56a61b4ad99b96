"""The running part of a service: event loop, receive path, lanes, ack window and lifecycle.

Concurrency (DESIGN.md §4): the event loop owns the broker connection; synchronous handlers run
on worker lanes (`lanes.py`: by default one lane for the service and its children, so requests
are handled one at a time, in order); ``async def`` handlers run on the loop. Because handlers
run off the loop, a handler may call ``self.service.get(...)`` and block for the reply
(`request`). Publishing always happens on the loop thread (`outbox.py`), acknowledgements too
(`acks.py`), queues and bindings in `topology.py`.

What the reference does differently, on purpose (docs/compatibility.md): an exception in a handler
is answered 999 and the service keeps running; replies or alerts reaching a plain service are
logged and dropped; a request for an endpoint this service does not have gets a 102 reply; the
service reconnects by itself after the broker restarts; alerts sent while the broker is away are
kept (bounded) and sent when it is back.

The Runtime belongs to one Service (`service`) and calls back into it only for what a subclass may
change: `endpoint(name)` lookup, `_dispatch_alert`, `on_reply_message`, `bind_keys`/`_bind_extra`,
`on_start`, and the optional `metrics` hook.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Iterator

from dripline.client.interface import request_from_thread
from dripline.protocol.errors import DecodeError, DriplineError
from dripline.protocol.message import Message, MsgReply, MsgRequest
from dripline.service.acks import AckWindow
from dripline.service.lanes import Lanes, Worker
from dripline.service.outbox import Outbox
from dripline.service.scheduler import Scheduler
from dripline.service.topology import Topology
from dripline.transport.bridge import new_event_loop
from dripline.transport.ratelimit import LimitedLog
from dripline.transport.receiver import ChunkReceiver, Incomplete

if TYPE_CHECKING:
    from dripline.client.session import Core
    from dripline.service.endpoint import Endpoint

__all__ = ["Runtime"]

logger = logging.getLogger(__name__)
_log = LimitedLog(logger)  # what a remote sender can trigger is reported once, then counted


class Runtime:
    """Runs one service on an event loop; built by the Service, started by `Service.start`."""

    def __init__(self, service: Any, core: "Core", *, prefetch: int, message_wait_ms: float,
                 worker_lanes: str = "single") -> None:
        self.service = service
        self.core = core
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.tasks: set[asyncio.Task] = set()
        self.started = threading.Event()
        self.lanes = Lanes(service.name, worker_lanes)
        self.window = AckWindow(prefetch)
        self.receiver = ChunkReceiver(self.on_incomplete, wait_s=message_wait_ms / 1000,
                                      max_message_size=core.max_message_size,
                                      max_pending_bytes=core.max_pending_bytes,
                                      label=f"service {service.name}")
        self.outbox = Outbox(service, core)
        self.topology = Topology(service, self.lanes, self.window, self.on_delivery,
                                 self.outbox.flush)
        self.scheduler = Scheduler(self.run_scheduled)

    # ------------------------------------------------------------------ lifecycle
    def run_in_new_loop(self, main: Coroutine[Any, Any, Any]) -> None:
        """Run `main` (the service's run_async) on an event loop of its own, then close it."""
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    @contextlib.contextmanager
    def signals_cancel(self, install: bool) -> Iterator[None]:
        """Within the block (when `install`), SIGINT and SIGTERM stop the service."""
        signals = (signal.SIGINT, signal.SIGTERM) if install else ()
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        logger.info("service %s: received %s, stopping", self.service.name,
                    signal.Signals(sig).name)
        self.service.cancel()

    async def start(self) -> None:
        """Connect, claim the name, run the service's start hook, bind and consume; metrics.

        Anything that fails closes what was opened (no task, thread or connection left behind).
        """
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        self.lanes.start()
        if not self.core.make_connection:
            logger.warning("service %s: make_connection is false (dry run)", self.service.name)
            return
        try:
            await self.topology.claim()
            # the start hook opens instruments and databases; on the service's lane, off the loop
            await self.loop.run_in_executor(self.lanes.main, self.service.on_start)
            await self.topology.serve()
            self._start_metrics()
        except BaseException:
            self.topology.queues.clear()
            await self.core.close()
            self.lanes.shutdown()
            raise

    def _start_metrics(self) -> None:
        service = self.service
        if service.metrics_port is not None:  # imported only then: prometheus_client is optional
            from dripline.service.metrics import ServiceMetrics
            service.metrics = ServiceMetrics(service, service.metrics_port,
                                             service.metrics_address)
            self.spawn(service.metrics.poll_queues())

    async def listen(self, heartbeat_interval_s: float, enable_scheduling: bool) -> None:
        """Serve until `cancel()`; heartbeats and the scheduler run meanwhile."""
        if heartbeat_interval_s and self.core.make_connection:
            self.spawn(self.outbox.heartbeats(heartbeat_interval_s))
        if enable_scheduling and self.loop is not None:
            self.scheduler.start(self.loop)
        self.started.set()
        if self.stop_event is not None:
            await self.stop_event.wait()

    def cancel(self) -> None:
        """Ask a running service to stop (thread-safe)."""
        if self.loop is not None and self.stop_event is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.stop_event.set)

    def is_canceled(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    async def stop(self) -> None:
        """Stop timers and tasks, delete the queues, close the connection, end the lanes."""
        self.scheduler.stop()
        self.receiver.close()
        for task in list(self.tasks):
            task.cancel()
        await self.topology.delete()
        await self.core.close()
        if self.service.metrics is not None:
            self.service.metrics.close()
        self.lanes.shutdown()
        self.started.clear()
        logger.info("service %s stopped", self.service.name)

    # ------------------------------------------------------------------ threads
    def on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def call_on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.on_loop_thread():
            fn(*args)
        elif self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)
        else:
            raise DriplineError(f"service {self.service.name} is not running", 101)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        assert self.loop is not None, "spawn before start"
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # ------------------------------------------------------------------ sending (any thread)
    def send(self, msg: Message) -> None:
        """Publish a stamped reply or alert (dry run: raises "Thrown ...", as the reference does)."""
        if not self.core.make_connection:
            self.core.send(msg)
            return
        self.call_on_loop(self.outbox.send_now, msg)

    def request(self, msg: MsgRequest, timeout_s: float | None) -> MsgReply:
        """Send a stamped request and wait for its reply, from a handler's thread (the client
        pipeline: `request_from_thread`)."""
        return request_from_thread(self.loop, self.core, msg, timeout_s,
                                   owner=f"service {self.service.name}")

    def request_all(self, msg: MsgRequest, timeout_s: float) -> list[MsgReply]:
        """Send a stamped request (a broadcast) and wait for every reply within `timeout_s`."""
        return request_from_thread(self.loop, self.core, msg, timeout_s, collect=True,
                                   owner=f"service {self.service.name}")

    def run_on_worker(self, action: Callable[[], Any], lane: Worker | None = None) -> None:
        """Run `action` on `lane` (the service's by default); errors are logged, not raised."""
        def guarded() -> None:
            try:
                action()
            except Exception:
                _log.exception("service %s: error in %r (the service keeps running)",
                               self.service.name, action)
        worker = lane or self.lanes.main
        if self.loop is None or worker is None:
            guarded()
            return
        self.call_on_loop(worker.post, guarded)

    def run_scheduled(self, action: Callable[[], Any]) -> None:
        """The scheduler's runner: an endpoint's own action runs on that endpoint's lane."""
        owner = getattr(getattr(action, "__wrapped__", None), "__self__", None)
        name = getattr(owner, "name", None)
        lane = None
        if isinstance(name, str) and self.service.endpoint(name) is owner:
            lane = self.lanes.for_endpoint(name)
        self.run_on_worker(action, lane)

    # ------------------------------------------------------------------ receiving
    def on_delivery(self, routing_key: str, body: bytes, properties: Any, ack: Any) -> None:
        self.window.received(ack)
        try:
            msg = self.receiver.feed(routing_key, body, properties)
        except DecodeError as err:
            self.reply_to_undecodable(err, properties)
            return
        if msg is not None:
            self.dispatch(msg)

    def reply_to_undecodable(self, err: DecodeError, properties: Any) -> None:
        name = self.service.name
        reply_to = getattr(err, "reply_to", None) or getattr(properties, "reply_to", None)
        _log.warning(("undecodable", name, err.return_code),
                     "service %s: undecodable message (%s)%s", name, err.message,
                     "" if reply_to else "; no reply_to, dropped")
        if not reply_to:
            return
        reply = MsgReply.create(err.return_code, err.message, None, routing_key=reply_to)
        reply.correlation_id = getattr(err, "correlation_id", None) or \
            getattr(properties, "correlation_id", None) or ""
        self.outbox.send_now(self.outbox.stamp(reply))

    def on_incomplete(self, incomplete: Incomplete) -> None:
        """A message whose chunks did not all arrive: a request is answered 302 at once, with a
        short description of what was missing (never a payload the size of what it announced)."""
        msg = incomplete.message
        if not isinstance(msg, MsgRequest):
            self.dispatch(msg)
            return
        if msg.reply_to:
            self.outbox.send_now(self.outbox.stamp(msg.reply(302, incomplete.description,
                                                             msg.payload)))

    def dispatch(self, msg: Message) -> None:
        service = self.service
        if isinstance(msg, MsgRequest):
            target_name = msg.routing_key.split(".", 1)[0]
            target = service.endpoint(target_name)
            if target is None:
                reply = msg.reply(102, f"service {service.name!r} has no endpoint named "
                                       f"{target_name!r}", None)
                self.outbox.send_now(self.outbox.stamp(reply))
                return
            self.window.started()
            if target.has_async_handlers() and target.is_async_request(msg):
                self.spawn(self.handle_async(target, msg))
            else:
                lane = self.lanes.for_endpoint(target.name)
                assert self.loop is not None and lane is not None, "requests before start"
                lane.call(self.loop, self.handle_sync, (target, msg), self.after_handler)
        elif msg.is_alert():
            service._dispatch_alert(msg)
        elif msg.is_reply():
            self.run_on_worker(lambda: service.on_reply_message(msg))

    def handle_sync(self, target: "Endpoint", request: MsgRequest) -> MsgReply | None:
        metrics = self.service.metrics
        if metrics is None:
            return target.on_request_message(request)
        return metrics.timed(target.name, request, target.on_request_message)

    async def handle_async(self, target: "Endpoint", request: MsgRequest) -> None:
        try:
            metrics = self.service.metrics
            if metrics is None:
                reply = await target.on_request_message_async(request)
            else:
                reply = await metrics.timed_async(target.name, request,
                                                  target.on_request_message_async)
            if reply is not None:
                self.send_reply(reply)
        finally:
            self.window.finished()

    def after_handler(self, reply: MsgReply | None, err: BaseException | None) -> None:
        try:
            if err is not None:  # on_request_message never raises; this is a bug guard
                logger.error("service %s: request handling failed: %r", self.service.name, err)
            elif reply is not None:
                self.send_reply(reply)
        finally:
            self.window.finished()  # after the reply, so its acknowledgement follows it

    def send_reply(self, reply: MsgReply) -> None:
        if not reply.routing_key:
            logger.debug("request had no reply_to; reply %s not sent", reply.return_code)
            return
        self.outbox.send_now(self.outbox.stamp(reply))
