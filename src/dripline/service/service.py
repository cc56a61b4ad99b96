"""Service: a named endpoint with child endpoints, served from one queue on the mesh.

Concurrency (DESIGN.md §4): the event loop owns the broker connection; requests to the service and
its synchronous children are handled one at a time on the service's worker thread (instruments on
one bus are never hit concurrently); `async def` handlers run on the loop; each async child has a
queue and a worker thread of its own. Because handlers run off the loop, a handler may call
`self.service.get(...)` and block for the reply.

What the reference does differently, on purpose (docs/compatibility.md): an exception in a handler
is answered 999 and the service keeps running; replies or alerts reaching a plain service are
logged and dropped; a request for an endpoint this service does not have gets a 102 reply; the
service reconnects by itself after the broker restarts; alerts sent while the broker is away are
kept (bounded) and sent when it is back.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import queue
import signal
import threading
import uuid
import weakref
from concurrent.futures import Executor, Future
from datetime import datetime, timedelta
from typing import Any, Callable

from dripline.service.endpoint import Endpoint
from dripline.protocol.errors import (ConfigError, ConnectionError_, DecodeError, DriplineError, TimeoutError_,
                         UnableToSendError)
from dripline.protocol.message import Message, MsgAlert, MsgReply, MsgRequest, op_t
from dripline.transport.ratelimit import LimitedLog
from dripline.transport.receiver import ChunkReceiver, Incomplete
from dripline.client.identity import sender_info_for
from dripline.client.interface import request_from_thread
from dripline.client.request_sender import RequestSender
from dripline.service.scheduler import Scheduler

__all__ = ["Service"]

logger = logging.getLogger(__name__)
_log = LimitedLog(logger)  # what a remote sender can trigger is reported once, then counted

ALERT_BUFFER_SIZE = 10000
ACK_DELAY_S = 0.005  # longest wait of an acknowledgement that no finishing handler carries
#: the shortest heartbeat interval accepted (0 disables heartbeats); shorter ones flood the broker
HEARTBEAT_MIN_S = 0.1
#: how long Service.start waits for an answer when it asks whether an endpoint name is served
ENDPOINT_PROBE_TIMEOUT_S = 0.5


def _as_number(value: Any) -> float | int | None:
    """An int or float from a number or a numeric string (as ENV{...} substitution produces)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _number_option(service: str, key: str, value: Any, minimum: float | None = None) -> float | int:
    """A timing option: a finite number > 0, or (when `minimum` is given) 0 or >= minimum."""
    number = _as_number(value)
    if minimum is None:
        expected = "a number greater than 0"
        ok = number is not None and 0 < number < float("inf")
    else:
        expected = f"a number of seconds, 0 (disabled) or at least {minimum:g}"
        ok = number is not None and (number == 0 or minimum <= number < float("inf"))
    if not ok:
        raise ConfigError(f"service {service!r}: {key} must be {expected}; got {value!r}")
    return number


def _count_option(service: str, key: str, value: Any, minimum: int = 1) -> int:
    number = _as_number(value)
    if isinstance(number, float):  # 100.0 is fine; 2.5, nan and inf are not
        number = int(number) if number.is_integer() else None
    if number is None or number < minimum:
        raise ConfigError(f"service {service!r}: {key} must be a whole number, at least {minimum}; "
                          f"got {value!r}")
    return int(number)


class _AckWindow:
    """Bounds how many requests a service holds at once (the prefetch window).

    The service queue is consumed with manual acknowledgement and a basic.qos prefetch of
    `size`. Deliveries are acknowledged as they arrive while fewer than `size` requests are being
    handled; beyond that acknowledgements wait until handlers finish, so the broker keeps the
    rest of a flood queued instead of pushing it all into this process's memory.

    Acknowledgements are sent after a handler finishes (its reply already published), as one
    `multiple` ack for everything received so far, or after ACK_DELAY_S for deliveries that start
    no handler: an ack written ahead of the reply costs the broker work on the latency path, and
    per-message acks cost it measurable CPU under load (bench/request_reply.py).
    `multiple` covers every earlier delivery on the channel, so a service that also consumes a
    queue whose messages must be acknowledged later (a durable alert queue) sets
    `multiple_ok = False` and each delivery is acknowledged on its own.
    """

    __slots__ = ("size", "busy", "held", "ready", "multiple_ok", "_timer")

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self.busy = 0
        self.held: collections.deque = collections.deque()
        self.ready: list = []
        self.multiple_ok = True
        self._timer: asyncio.TimerHandle | None = None

    def received(self, ack: Any) -> None:
        if ack is None:
            return
        if self.busy < self.size and not self.held:
            self._ready(ack)
        else:
            self.held.append(ack)

    def started(self) -> None:
        self.busy += 1

    def finished(self) -> None:
        self.busy -= 1
        while self.held and self.busy < self.size:
            self.ready.append(self.held.popleft())
        self.flush()

    def _ready(self, ack: Any) -> None:
        self.ready.append(ack)
        if len(self.ready) * 2 >= self.size:  # do not let the broker stall on a full window
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(ACK_DELAY_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ready, self.ready = self.ready, []
        if not ready:
            return
        if self.multiple_ok:
            ready[-1](multiple=True)
        else:
            for ack in ready:
                ack()


class _Worker(Executor):
    """A single thread that runs handlers one at a time, in arrival order.

    Every request crosses from the event loop to this thread and its reply back, so the hand-off
    is on the latency path: a SimpleQueue plus ``loop.call_soon_threadsafe`` takes about half the
    time of ``loop.run_in_executor`` on a ThreadPoolExecutor (chained concurrent and asyncio
    futures, a semaphore per task), measured with bench/request_reply.py. Otherwise it behaves as
    the one-thread ThreadPoolExecutor it replaces: `submit` (so ``loop.run_in_executor(worker.
    executor, ...)`` keeps working), queued work still runs at interpreter exit, and `shutdown`
    drops what has not started yet and lets the running handler finish.
    """

    def __init__(self, name: str) -> None:
        self.thread_ident: int | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._shutdown = False
        self._thread = threading.Thread(target=self._run, name=f"{name}_0", daemon=True)
        self._thread.start()
        _live_workers.add(self)

    @property
    def executor(self) -> "_Worker":
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

    def call(self, loop: asyncio.AbstractEventLoop, fn: Callable, args: tuple,
             done: Callable[[Any, BaseException | None], None]) -> None:
        """Run fn(*args) on the worker, then done(result, error) on `loop`."""
        def item() -> None:
            try:
                result, error = fn(*args), None
            except BaseException as err:  # reported to `done`, as a future would carry it
                result, error = None, err
            try:
                loop.call_soon_threadsafe(done, result, error)
            except RuntimeError:  # the loop was closed meanwhile (service stopped)
                logger.debug("worker result dropped: the event loop is closed")
        self.post(item)

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
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
    """A `_Worker.submit` job: runs fn and reports to a concurrent.futures.Future."""

    __slots__ = ("fn", "args", "kwargs", "future")

    def __init__(self, fn: Callable, args: tuple, kwargs: dict) -> None:
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


_live_workers: "weakref.WeakSet[_Worker]" = weakref.WeakSet()


def _finish_workers_at_exit() -> None:
    """As concurrent.futures does for its threads: run what is queued, then let the thread end."""
    for worker in list(_live_workers):
        worker._queue.put(None)
    for worker in list(_live_workers):
        if worker._thread.is_alive() and worker._thread is not threading.current_thread():
            worker._thread.join()


threading._register_atexit(_finish_workers_at_exit)


class Service(Endpoint, RequestSender):
    """A dripline service (reference constructor keywords; unknown keywords are ignored).

    Typical use is through `dl-serve -c service.yaml`; in Python::

        svc = Service("my_store", endpoints=[{"name": "peaches", "module": "KeyValueStore"}])
        svc.run()   # until SIGINT/SIGTERM

    Chunked requests are reassembled within bounds: `max_message_size` (bytes of one message,
    default 64 MiB) and `max_pending_bytes` (bytes all incomplete messages of the process may
    hold, default 128 MiB); both may also be set in `dripline_mesh`.

    `metrics_port` turns on Prometheus metrics (requests by endpoint and code, handler latency,
    reconnects, queue depth; dripline.service.metrics) served on that port, on `metrics_address`
    (every interface when empty); off by default.
    """

    request_denylist = frozenset({
        "run", "run_async", "start", "listen", "stop", "stop_async", "cancel", "send", "send_alert",
        "send_request", "send_request_all", "get", "set", "cmd", "add_child", "add_async_child",
        "add_endpoints_from_config", "schedule", "unschedule", "bind_key", "bind_keys", "endpoint",
        "core", "loop", "started", "on_request_message", "on_request_message_async",
        "on_alert_message", "on_reply_message", "submit_request_message"})
    #: read by requests, never written by them: the service applied them when it started
    __dripline_readonly__ = ("id", "broadcast_key", "loop_timeout_ms", "message_wait_ms",
                             "heartbeat_interval_s", "enable_scheduling", "timeout_s",
                             "confirm_retcodes", "sender_info", "metrics_port", "metrics_address")

    def __init__(self, name: str, make_connection: bool = True, endpoints: list | None = None,
                 add_endpoints_now: bool = True, enable_scheduling: bool = False,
                 broadcast_key: str = "broadcast", loop_timeout_ms: int = 1000,
                 message_wait_ms: int = 1000, heartbeat_interval_s: float = 60,
                 username: Any = None, password: Any = None, authentication_obj: Any = None,
                 dripline_mesh: dict | None = None, timeout_s: float = 10,
                 confirm_retcodes: bool = True, request_prefetch: int = 100,
                 max_message_size: int | None = None, max_pending_bytes: int | None = None,
                 metrics_port: int | None = None, metrics_address: str = "",
                 **kwargs: Any) -> None:
        """
        Args:
            name: the service's name on the mesh: requests to it and to its endpoints are routed
                by it, and a second service of the same name is refused.
            make_connection: false builds the service without contacting the broker (tests,
                ``dl-serve --check``).
            endpoints: the endpoint mappings (``name``, ``module``, keywords) built with the
                service.
            add_endpoints_now: false leaves building them to ``add_endpoints_from_config()``,
                for subclasses that must prepare something first (a database connection).
            enable_scheduling: run scheduled actions, such as an entity's ``log_interval``
                logging (dl-serve turns it on).
            broadcast_key: routing key that reaches every service (``<key>.#``).
            loop_timeout_ms: the reference's consumer poll period; accepted, changes nothing here.
            message_wait_ms: how long the rest of a chunked message is waited for.
            heartbeat_interval_s: seconds between heartbeat alerts (0: none; else at least 0.1).
            username: broker user (the auth file or DRIPLINE_USER is preferred).
            password: broker password (the auth file or DRIPLINE_PASSWORD is preferred).
            timeout_s: default timeout of the requests the service sends itself
                (``self.service.get(...)`` in a handler).
            confirm_retcodes: whether those requests raise on a non-zero return code.
            request_prefetch: how many requests the broker hands the service before they are
                acknowledged.
            max_message_size: largest reassembled message, in bytes (default 64 MiB).
            max_pending_bytes: bytes all incomplete chunked messages may hold (default 128 MiB).
            metrics_port: serve Prometheus metrics on this port (``/metrics``; 0 picks a free
                one); unset: no metrics. Needs ``pip install 'dripline[metrics]'``.
            metrics_address: the address the metrics are served on (every interface when empty).
        """
        heartbeat_interval_s = _number_option(name, "heartbeat_interval_s", heartbeat_interval_s,
                                              HEARTBEAT_MIN_S)
        loop_timeout_ms = _number_option(name, "loop_timeout_ms", loop_timeout_ms)
        message_wait_ms = _number_option(name, "message_wait_ms", message_wait_ms)
        request_prefetch = _count_option(name, "request_prefetch", request_prefetch)
        if max_message_size is not None:
            max_message_size = _count_option(name, "max_message_size", max_message_size)
        if max_pending_bytes is not None:
            max_pending_bytes = _count_option(name, "max_pending_bytes", max_pending_bytes, 4096)
        Endpoint.__init__(self, name, **kwargs)
        from dripline.client.session import Core
        self.core = Core(dripline_mesh, authentication_obj, make_connection=make_connection,
                         service_name=name, username=username, password=password,
                         message_wait_ms=message_wait_ms, connection_name=f"dripline:{name}",
                         max_message_size=max_message_size, max_pending_bytes=max_pending_bytes)
        self.id = uuid.uuid4()
        self.broadcast_key = broadcast_key
        self.loop_timeout_ms = loop_timeout_ms
        self.message_wait_ms = message_wait_ms
        self.heartbeat_interval_s = heartbeat_interval_s
        self.enable_scheduling = enable_scheduling
        self.timeout_s = timeout_s
        self.confirm_retcodes = confirm_retcodes
        self.sync_children: dict[str, Endpoint] = {}
        self.async_children: dict[str, Endpoint] = {}
        self._endpoint_configs = list(endpoints or [])
        self._service = self
        self.loop: asyncio.AbstractEventLoop | None = None
        self._worker: _Worker | None = None
        self._child_workers: dict[str, _Worker] = {}
        self._receiver = ChunkReceiver(self._on_incomplete, wait_s=message_wait_ms / 1000,
                                       max_message_size=self.core.max_message_size,
                                       max_pending_bytes=self.core.max_pending_bytes,
                                       label=f"service {name}")
        self._window = _AckWindow(request_prefetch)
        self._queues: list = []
        self._stop_event: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()
        self._alert_buffer: collections.deque = collections.deque(maxlen=ALERT_BUFFER_SIZE)
        self._scheduler = Scheduler(self._run_on_worker)
        self.started = threading.Event()
        self.sender_info = sender_info_for(name)
        if metrics_port is not None:
            metrics_port = _count_option(name, "metrics_port", metrics_port, 0)
        self.metrics_port = metrics_port
        self.metrics_address = str(metrics_address or "")
        self.metrics: Any = None  # a dripline.service.metrics.ServiceMetrics while serving
        if add_endpoints_now:
            self.add_endpoints_from_config()

    # ------------------------------------------------------------------ children
    @property
    def auth(self) -> Any:
        return self.core.auth

    @property
    def make_connection(self) -> bool:
        return self.core.make_connection

    # the reference exposes the Core's mesh properties on the service
    address = property(lambda self: self.core.address)
    broker = address
    port = property(lambda self: self.core.port)
    requests_exchange = property(lambda self: self.core.requests_exchange)
    alerts_exchange = property(lambda self: self.core.alerts_exchange)
    max_payload_size = property(lambda self: self.core.max_payload_size)
    heartbeat_routing_key = property(lambda self: self.core.heartbeat_routing_key)
    max_connection_attempts = property(lambda self: self.core.max_connection_attempts)
    username = property(lambda self: self.core.username)

    def add_endpoints_from_config(self) -> None:
        """Build the endpoints listed in the `endpoints` configuration and attach them."""
        from dripline.assembly.objects import create_object
        configs, self._endpoint_configs = self._endpoint_configs, []
        for conf in configs:
            endpoint = create_object(dict(conf), "Endpoint")
            self.add_child(endpoint)
            if _positive_interval(getattr(endpoint, "log_interval", 0)):
                endpoint.start_logging()

    def add_child(self, endpoint: Endpoint) -> bool:
        """Attach a synchronous child; its requests are handled serially with the service's."""
        return self._attach(endpoint, self.sync_children)

    def add_async_child(self, endpoint: Endpoint) -> bool:
        """Attach a child with its own queue (bound `<name>.#`, no broadcast) and worker thread."""
        return self._attach(endpoint, self.async_children)

    def _attach(self, endpoint: Endpoint, table: dict) -> bool:
        name = endpoint.name
        if "." in name or not name:
            raise DriplineError(f"endpoint name {name!r} is not usable as a routing key "
                                "(it must be non-empty and contain no '.')", 300)
        if name in self.sync_children or name in self.async_children or name == self.name:
            raise DriplineError(f"service {self.name!r} already has an endpoint named {name!r}; "
                                "endpoint names must be unique", 300)
        endpoint.service = self
        table[name] = endpoint
        if self.loop is not None and self.loop.is_running():
            self._call_on_loop(self._bind_new_child, endpoint, table is self.async_children)
        return True

    def endpoint(self, name: str) -> Endpoint | None:
        if name == self.name or name == self.broadcast_key:
            return self
        return self.sync_children.get(name) or self.async_children.get(name)

    # ------------------------------------------------------------------ scheduling
    def schedule(self, action: Callable[[], Any], when: Any = None, start: datetime | None = None) -> int:
        """Run `action` once at a datetime, or every `when` (timedelta or seconds)."""
        if not self.enable_scheduling:
            logger.warning("service %s: scheduling is disabled (enable_scheduling is false), so %r "
                           "will not run", self.name, action)
        return self._scheduler.schedule(action, when, start)

    def unschedule(self, event_id: int) -> bool:
        return self._scheduler.unschedule(event_id)

    # ------------------------------------------------------------------ sending
    def send(self, msg: Message) -> None:
        """Send a reply or alert from any thread (dry run: raises, as the reference does)."""
        msg.sender_info = self.sender_info
        if not self.core.make_connection:
            self.core.send(msg)  # raises "Thrown ..."
            return
        self._call_on_loop(self._send_now, msg)

    def _send_now(self, msg: Message) -> None:
        try:
            self.core.send(msg)
        except ConnectionError_:
            if msg.is_alert():
                if len(self._alert_buffer) == self._alert_buffer.maxlen:
                    logger.warning("alert buffer full (%d): dropping the oldest alert",
                                   self._alert_buffer.maxlen)
                self._alert_buffer.append(msg)
            else:
                logger.warning("broker unavailable: %s to %s not sent",
                               "reply" if msg.is_reply() else "message", msg.routing_key)

    def send_alert(self, routing_key: str, payload: Any = None) -> None:
        self.send(MsgAlert.create(payload=payload, routing_key=routing_key))

    def send_request(self, request: MsgRequest, timeout_s: float | None = None) -> MsgReply:
        request.sender_info = self.sender_info
        return request_from_thread(self.loop, self.core, request, timeout_s,
                                   owner=f"service {self.name}")

    def send_request_all(self, request: MsgRequest, timeout_s: float = 1.0) -> list[MsgReply]:
        request.sender_info = self.sender_info
        return request_from_thread(self.loop, self.core, request, timeout_s, collect=True,
                                   owner=f"service {self.name}")

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def _call_on_loop(self, fn: Callable, *args: Any) -> None:
        if self._on_loop_thread():
            fn(*args)
        elif self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)
        else:
            raise DriplineError(f"service {self.name} is not running", 101)

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> None:
        """start, serve until SIGINT/SIGTERM or stop(), then clean up (queue deleted)."""
        from dripline.transport.bridge import new_event_loop
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.run_async(install_signal_handlers=True))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    async def run_async(self, install_signal_handlers: bool = False) -> None:
        await self.start()
        try:
            if install_signal_handlers:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self.loop.add_signal_handler(sig, self._on_signal, sig)
            await self.listen()
        finally:
            if install_signal_handlers:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self.loop.remove_signal_handler(sig)
            await self.stop_async()

    def _on_signal(self, sig: int) -> None:
        logger.info("service %s: received %s, stopping", self.name, signal.Signals(sig).name)
        self.cancel()

    async def start(self) -> None:
        """Connect, declare the exchanges and this service's queue(s), bind keys, start consuming."""
        self.loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._worker = _Worker(f"{self.name}-worker")
        if not self.core.make_connection:
            logger.warning("service %s: make_connection is false (dry run)", self.name)
            return
        try:
            await self._connect_and_declare()
            if self.metrics_port is not None:  # imported only then: prometheus_client is optional
                from dripline.service.metrics import ServiceMetrics
                self.metrics = ServiceMetrics(self, self.metrics_port, self.metrics_address)
                self._spawn(self.metrics.poll_queues())
        except BaseException:
            # nothing is served: close what was opened (no task or connection left behind)
            self._queues.clear()
            await self.core.close()
            self._worker.shutdown()
            raise

    async def _connect_and_declare(self) -> None:
        await self.core.start()
        conn = self.core.connection
        try:
            queue = await conn.declare_queue(self.name)
        except DriplineError as err:
            if "already running" in err.message or "RESOURCE_LOCKED" in err.message:
                raise DriplineError(f"cannot start service {self.name!r}: a service with that name is "
                                    "already running on this mesh (its queue is held by another "
                                    "connection)", 101) from None
            raise
        self._queues.append(queue)
        await self._refuse_served_endpoints()
        self.bind_keys(queue)
        for key in self._binding_keys():
            await conn.bind(queue, self.core.requests_exchange, key)
        await self._bind_extra(queue)
        await conn.consume(queue, self._on_delivery, no_ack=False, prefetch=self._window.size)
        conn.on_restored.append(self._flush_alert_buffer)
        for child in self.async_children.values():
            await self._start_async_child(child)
        logger.info("service %s listening on %s (endpoints: %s)", self.name, conn.address,
                    ", ".join(list(self.sync_children) + list(self.async_children)) or "none")

    async def _refuse_served_endpoints(self) -> None:
        """DriplineError when another service on the mesh already answers for a child's name.

        Before `<child>.#` is bound, a mandatory ``cmd <child> ping`` goes out for every child at
        once: the broker returns it at once (UnableToSendError) when nobody is bound, which is
        the usual case and costs about a millisecond. Any reply means another service serves that
        name. No answer within ENDPOINT_PROBE_TIMEOUT_S means something is bound that does not
        answer requests (e.g. dl-mon watching the key): the name is taken as free.
        """
        names = [n for n in (*self.sync_children, *self.async_children) if n != self.broadcast_key]
        if not names:
            return

        async def probe(name: str) -> MsgReply | None:
            request = MsgRequest.create(payload={}, msg_op=op_t.cmd, routing_key=name,
                                        specifier="ping")
            request.sender_info = self.sender_info
            try:
                return await self.core.request(request, ENDPOINT_PROBE_TIMEOUT_S)
            except UnableToSendError:
                return None
            except TimeoutError_:
                logger.debug("service %s: '%s.#' is bound on the mesh but nothing answered a ping "
                             "within %g s; taking the name as free", self.name, name,
                             ENDPOINT_PROBE_TIMEOUT_S)
                return None

        replies = await asyncio.gather(*(probe(n) for n in names))
        for name, reply in zip(names, replies):
            if reply is not None:
                owner = (reply.sender_info or {}).get("service_name") or "unknown"
                raise DriplineError(f"endpoint {name!r} is already served by service {owner!r} on "
                                    "this mesh; endpoint names must be unique", 101)

    def bind_keys(self, queue: Any = None) -> None:
        """Reference hook; subclasses add bindings in `_bind_extra` (e.g. AlertConsumer)."""

    def _binding_keys(self) -> list[str]:
        return [f"{self.name}.#", f"{self.broadcast_key}.#"] + [f"{c}.#" for c in self.sync_children]

    async def _bind_extra(self, queue: Any) -> None:
        """Override to bind more keys to the service queue (AlertConsumer binds alert keys)."""

    async def bind_key(self, exchange: str, key: str) -> None:
        await self.core.connection.bind(self._queues[0], exchange, key)

    async def _start_async_child(self, child: Endpoint) -> None:
        conn = self.core.connection
        queue = await conn.declare_queue(child.name)
        self._queues.append(queue)
        await conn.bind(queue, self.core.requests_exchange, f"{child.name}.#")
        self._child_workers[child.name] = _Worker(f"{child.name}-worker")
        await conn.consume(queue, self._on_delivery, no_ack=False, prefetch=self._window.size)

    def _bind_new_child(self, endpoint: Endpoint, is_async: bool) -> None:
        if self.core.connection is None or not self._queues:
            return

        async def bind() -> None:
            if is_async:
                await self._start_async_child(endpoint)
            else:
                await self.core.connection.bind(self._queues[0], self.core.requests_exchange,
                                                f"{endpoint.name}.#")
        self._spawn(bind())

    async def listen(self) -> None:
        """Serve until cancel() or a signal; heartbeats and the scheduler run meanwhile."""
        if self.heartbeat_interval_s and self.core.make_connection:
            self._spawn(self._heartbeat_loop())
        if self.enable_scheduling:
            self._scheduler.start(self.loop)
        self.started.set()
        await self._stop_event.wait()

    def cancel(self, code: int = 0) -> None:
        """Ask a running service to stop (thread-safe)."""
        if self.loop is not None and self._stop_event is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop_event.set)

    stop = cancel  # reference name; the actual clean-up happens in stop_async

    async def stop_async(self) -> None:
        self._scheduler.stop()
        self._receiver.close()
        for task in list(self._tasks):
            task.cancel()
        conn = self.core.connection
        if conn is not None and conn.is_open:
            for declared in self._queues:
                try:
                    await conn.delete_queue(declared)
                except DriplineError as err:
                    logger.debug("deleting queue %s: %s", declared.name, err.message)
        self._queues.clear()
        await self.core.close()
        if self.metrics is not None:
            self.metrics.close()
        for worker in [self._worker, *self._child_workers.values()]:
            if worker is not None:
                worker.shutdown()
        self.started.clear()
        logger.info("service %s stopped", self.name)

    def is_canceled(self) -> bool:
        return self._stop_event is not None and self._stop_event.is_set()

    def _spawn(self, coro) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _heartbeat_loop(self) -> None:
        key = f"{self.core.heartbeat_routing_key}.{self.name}"
        payload = {"name": self.name, "id": str(self.id)}
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            self._send_now(MsgAlert.create(payload=payload, routing_key=key))

    def _flush_alert_buffer(self) -> None:
        n = len(self._alert_buffer)
        while self._alert_buffer:
            msg = self._alert_buffer.popleft()
            try:
                self.core.send(msg)
            except ConnectionError_:
                self._alert_buffer.appendleft(msg)
                return
        if n:
            logger.info("service %s: sent %d alerts kept while the broker was away", self.name, n)

    # ------------------------------------------------------------------ receiving
    def _on_delivery(self, routing_key: str, body: bytes, properties: Any, ack: Any) -> None:
        self._window.received(ack)
        try:
            msg = self._receiver.feed(routing_key, body, properties)
        except DecodeError as err:
            self._reply_to_undecodable(err, properties)
            return
        if msg is not None:
            self._dispatch(msg)

    def _reply_to_undecodable(self, err: DecodeError, properties: Any) -> None:
        reply_to = getattr(err, "reply_to", None) or getattr(properties, "reply_to", None)
        _log.warning(("undecodable", self.name, err.return_code),
                     "service %s: undecodable message (%s)%s", self.name, err.message,
                     "" if reply_to else "; no reply_to, dropped")
        if not reply_to:
            return
        reply = MsgReply.create(err.return_code, err.message, None, routing_key=reply_to)
        reply.correlation_id = getattr(err, "correlation_id", None) or \
            getattr(properties, "correlation_id", None) or ""
        self._send_now(self._stamp(reply))

    def _on_incomplete(self, incomplete: Incomplete) -> None:
        """A message whose chunks did not all arrive: a request is answered 302 at once, with a
        short description of what was missing (never a payload the size of what it announced)."""
        msg = incomplete.message
        if not isinstance(msg, MsgRequest):
            self._dispatch(msg)
            return
        if msg.reply_to:
            self._send_now(self._stamp(msg.reply(302, incomplete.description, msg.payload)))

    def _stamp(self, msg: Message) -> Message:
        msg.sender_info = self.sender_info
        return msg

    def _dispatch(self, msg: Message) -> None:
        target_name = msg.routing_key.split(".", 1)[0]
        if msg.is_request():
            target = self.endpoint(target_name)
            if target is None:
                reply = msg.reply(102, f"service {self.name!r} has no endpoint named "
                                       f"{target_name!r}", None)
                self._send_now(self._stamp(reply))
                return
            self._window.started()
            if target.has_async_handlers() and target.is_async_request(msg):
                self._spawn(self._handle_async(target, msg))
            else:
                worker = self._child_workers.get(target.name, self._worker)
                worker.call(self.loop, self._handle_sync, (target, msg), self._after_handler)
        elif msg.is_alert():
            self._dispatch_alert(msg)
        elif msg.is_reply():
            self._run_on_worker(lambda: self.on_reply_message(msg))

    def _dispatch_alert(self, msg: Message) -> None:
        """Hand an alert to `on_alert_message` on the worker thread (on the loop thread).

        AlertConsumer subclasses override this to take alerts off the loop in bulk (the sensor
        logger buffers them for batched inserts instead of one worker hand-off per alert).
        """
        self._run_on_worker(lambda: self.on_alert_message(msg))

    def _handle_sync(self, target: Endpoint, request: MsgRequest) -> MsgReply | None:
        if self.metrics is None:
            return target.on_request_message(request)
        return self.metrics.timed(target.name, request, target.on_request_message)

    async def _handle_async(self, target: Endpoint, request: MsgRequest) -> None:
        try:
            if self.metrics is None:
                reply = await target.on_request_message_async(request)
            else:
                reply = await self.metrics.timed_async(target.name, request,
                                                       target.on_request_message_async)
            if reply is not None:
                self._send_reply(reply)
        finally:
            self._window.finished()

    def _after_handler(self, reply: MsgReply | None, err: BaseException | None) -> None:
        try:
            if err is not None:  # on_request_message never raises; this is a bug guard
                logger.error("service %s: request handling failed: %r", self.name, err)
            elif reply is not None:
                self._send_reply(reply)
        finally:
            self._window.finished()  # after the reply, so its acknowledgement follows it

    def _send_reply(self, reply: MsgReply) -> None:
        if not reply.routing_key:
            logger.debug("request had no reply_to; reply %s not sent", reply.return_code)
            return
        self._send_now(self._stamp(reply))

    def _run_on_worker(self, action: Callable[[], Any]) -> None:
        def guarded() -> None:
            try:
                action()
            except Exception:
                _log.exception("service %s: error in %r (the service keeps running)", self.name, action)
        if self.loop is None or self._worker is None:
            guarded()
            return
        self._call_on_loop(lambda: self._worker.post(guarded))


def _positive_interval(value: Any) -> bool:
    if isinstance(value, timedelta):
        return value.total_seconds() > 0
    if isinstance(value, dict):
        return timedelta(**value).total_seconds() > 0
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False
