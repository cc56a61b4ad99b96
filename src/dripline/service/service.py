"""Service: a named endpoint that owns child endpoints and answers for them on the mesh.

The class is the lifecycle and the endpoints; the machinery is composed, one job per module:
runtime.py (receive path, lifecycle), lanes.py (worker threads), acks.py (prefetch window),
topology.py (queues, bindings), outbox.py (replies, alerts, heartbeats). Endpoints see a service
through `ServiceContext` (context.py); mappings become endpoints in dripline.assembly
(children.py). Constructors do no I/O: `on_start` is where one opens an instrument or database.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, Callable

from dripline.client.identity import sender_info_for
from dripline.client.request_sender import RequestSender
from dripline.client.session import Core
from dripline.protocol.message import Message, MsgAlert, MsgReply, MsgRequest
from dripline.service.children import build_endpoints, check_child_name
from dripline.service.endpoint import Endpoint
from dripline.service.options import ServiceOptions
from dripline.service.runtime import Runtime

__all__ = ["Service"]

logger = logging.getLogger(__name__)


class Service(Endpoint, RequestSender):
    """A dripline service (reference constructor keywords; unknown keywords are ignored).

    Typical use is through `dl-serve -c service.yaml`; in Python::

        svc = Service("my_store", endpoints=[{"name": "peaches", "module": "KeyValueStore"}])
        svc.run()   # until SIGINT/SIGTERM

    Chunked requests are reassembled within bounds (`max_message_size`, `max_pending_bytes`;
    also settable in `dripline_mesh`). `metrics_port` turns on Prometheus metrics (requests by
    endpoint and code, handler latency, reconnects, queue depth; dripline.service.metrics).
    """

    request_denylist = frozenset({
        "run", "run_async", "start", "listen", "stop", "stop_async", "cancel", "send", "send_alert",
        "send_request", "send_request_all", "get", "set", "cmd", "add_child", "add_async_child",
        "add_endpoints_from_config", "schedule", "unschedule", "bind_key", "bind_keys", "endpoint",
        "core", "loop", "started", "on_request_message", "on_request_message_async",
        "on_alert_message", "on_reply_message", "submit_request_message", "on_start", "runtime"})
    #: read by requests, never written by them: the service applied them when it started
    __dripline_readonly__ = ("id", "broadcast_key", "loop_timeout_ms", "message_wait_ms",
                             "heartbeat_interval_s", "enable_scheduling", "timeout_s",
                             "confirm_retcodes", "sender_info", "metrics_port", "metrics_address",
                             "worker_lanes")

    def __init__(self, name: str, make_connection: bool = True, endpoints: list | None = None,
                 add_endpoints_now: bool = True, enable_scheduling: bool = False,
                 broadcast_key: str = "broadcast", loop_timeout_ms: int = 1000,
                 message_wait_ms: int = 1000, heartbeat_interval_s: float = 60,
                 username: Any = None, password: Any = None, authentication_obj: Any = None,
                 dripline_mesh: dict | None = None, timeout_s: float = 10,
                 confirm_retcodes: bool = True, request_prefetch: int = 100,
                 max_message_size: int | None = None, max_pending_bytes: int | None = None,
                 metrics_port: int | None = None, metrics_address: str = "",
                 worker_lanes: str = "single", **kwargs: Any) -> None:
        """
        Args:
            name: the service's name on the mesh: requests to it and to its endpoints are routed
                by it, and a second service of the same name is refused.
            make_connection: false: a dry run that never contacts the broker (``--check``).
            endpoints: the endpoint mappings (``name``, ``module``, keywords) to build.
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
            timeout_s: default timeout of ``self.service.get(...)`` and the like in handlers.
            confirm_retcodes: whether those requests raise on a non-zero return code.
            request_prefetch: requests the broker hands over before they are acknowledged.
            max_message_size: largest reassembled message, in bytes (default 64 MiB).
            max_pending_bytes: bytes all incomplete chunked messages may hold (default 128 MiB).
            metrics_port: serve Prometheus metrics on this port (``/metrics``; 0 picks a free
                one); unset: no metrics. Needs ``pip install 'dripline[metrics]'``.
            metrics_address: the address the metrics are served on (every interface when empty).
            worker_lanes: ``single`` (the reference's way: one worker thread handles all the
                service's requests, in order) or ``per_endpoint`` (each endpoint has a thread and
                a queue of its own: a backlog on one endpoint does not delay the others).
        """
        opts = ServiceOptions.check(name, heartbeat_interval_s, loop_timeout_ms, message_wait_ms,
                                    request_prefetch, max_message_size, max_pending_bytes,
                                    metrics_port, worker_lanes)
        Endpoint.__init__(self, name, **kwargs)
        self.core = Core(dripline_mesh, authentication_obj, make_connection=make_connection,
                         service_name=name, username=username, password=password,
                         message_wait_ms=opts.message_wait_ms, connection_name=f"dripline:{name}",
                         max_message_size=opts.max_message_size,
                         max_pending_bytes=opts.max_pending_bytes)
        self.id = uuid.uuid4()
        self.loop_timeout_ms, self.message_wait_ms = opts.loop_timeout_ms, opts.message_wait_ms
        self.heartbeat_interval_s, self.worker_lanes = opts.heartbeat_interval_s, opts.worker_lanes
        self.broadcast_key, self.enable_scheduling = broadcast_key, enable_scheduling
        self.timeout_s, self.confirm_retcodes = timeout_s, confirm_retcodes
        self.metrics_port, self.metrics_address = opts.metrics_port, str(metrics_address or "")
        self.metrics: Any = None  # a dripline.service.metrics.ServiceMetrics while serving
        self.sync_children: dict[str, Endpoint] = {}
        self.async_children: dict[str, Endpoint] = {}
        self._endpoint_configs = list(endpoints or [])
        self._service = self
        self.sender_info = sender_info_for(name)
        self.runtime = Runtime(self, self.core, prefetch=opts.request_prefetch,
                               message_wait_ms=self.message_wait_ms, worker_lanes=self.worker_lanes)
        self.started = self.runtime.started
        if add_endpoints_now:
            self.add_endpoints_from_config()

    # the reference exposes the Core's mesh properties on the service
    auth = property(lambda self: self.core.auth)
    make_connection = property(lambda self: self.core.make_connection)
    address = broker = property(lambda self: self.core.address)
    port = property(lambda self: self.core.port)
    requests_exchange = property(lambda self: self.core.requests_exchange)
    alerts_exchange = property(lambda self: self.core.alerts_exchange)
    max_payload_size = property(lambda self: self.core.max_payload_size)
    heartbeat_routing_key = property(lambda self: self.core.heartbeat_routing_key)
    max_connection_attempts = property(lambda self: self.core.max_connection_attempts)
    username = property(lambda self: self.core.username)

    # ------------------------------------------------------------------ children
    def add_endpoints_from_config(self) -> None:
        """Build the endpoints listed in the `endpoints` configuration and attach them."""
        configs, self._endpoint_configs = self._endpoint_configs, []
        build_endpoints(self, configs)

    def add_child(self, endpoint: Endpoint) -> bool:
        """Attach a child; its requests are handled on the service's lane (see `worker_lanes`)."""
        return self._attach(endpoint, self.sync_children)

    def add_async_child(self, endpoint: Endpoint) -> bool:
        """Attach a child with its own queue (bound `<name>.#`, no broadcast) and worker thread."""
        return self._attach(endpoint, self.async_children)

    def _attach(self, endpoint: Endpoint, table: dict[str, Endpoint]) -> bool:
        check_child_name(self.name, endpoint.name, (*self.sync_children, *self.async_children))
        runtime = self.runtime
        if table is self.async_children:
            runtime.lanes.dedicate(endpoint.name)
        endpoint.service = self
        table[endpoint.name] = endpoint
        if runtime.loop is not None and runtime.loop.is_running():
            runtime.call_on_loop(lambda: runtime.spawn(runtime.topology.add_child(endpoint.name)))
        return True

    def endpoint(self, name: str) -> Endpoint | None:
        if name == self.name or name == self.broadcast_key:
            return self
        return self.sync_children.get(name) or self.async_children.get(name)

    # ------------------------------------------------------------------ what endpoints use
    def schedule(self, action: Callable[[], Any], when: Any = None, start: datetime | None = None) -> int:
        """Run `action` once at a datetime, or every `when` (timedelta or seconds)."""
        if not self.enable_scheduling:
            logger.warning("service %s: scheduling is disabled (enable_scheduling is false), so %r "
                           "will not run", self.name, action)
        return self.runtime.scheduler.schedule(action, when, start)

    def unschedule(self, event_id: int) -> bool:
        return self.runtime.scheduler.unschedule(event_id)

    def send(self, msg: Message) -> None:
        """Send a reply or alert from any thread (dry run: raises, as the reference does)."""
        msg.sender_info = self.sender_info
        self.runtime.send(msg)

    def send_alert(self, routing_key: str, payload: Any = None) -> None:
        self.send(MsgAlert.create(payload=payload, routing_key=routing_key))

    def send_request(self, request: MsgRequest, timeout_s: float | None = None) -> MsgReply:
        request.sender_info = self.sender_info
        return self.runtime.request(request, timeout_s)

    def send_request_all(self, request: MsgRequest, timeout_s: float = 1.0) -> list[MsgReply]:
        request.sender_info = self.sender_info
        return self.runtime.request_all(request, timeout_s)

    # ------------------------------------------------------------------ lifecycle
    def on_start(self) -> None:
        """Hook: open what the service needs (instrument, database); constructors do no I/O.

        `start()` calls it on the service's worker thread once the name is claimed on the broker,
        before any request is consumed; an exception stops the start. An override calls
        ``super().on_start()`` so that mix-ins' hooks (PostgreSQLInterface's) run too.
        """
        hook = getattr(super(), "on_start", None)
        if hook is not None:
            hook()

    def run(self) -> None:
        """start, serve until SIGINT/SIGTERM or stop(), then clean up (queue deleted)."""
        self.runtime.run_in_new_loop(self.run_async(install_signal_handlers=True))

    async def run_async(self, install_signal_handlers: bool = False) -> None:
        await self.start()
        try:
            with self.runtime.signals_cancel(install_signal_handlers):
                await self.listen()
        finally:
            await self.stop_async()

    async def start(self) -> None:
        """Connect, claim the name, `on_start`, bind the keys, start consuming (runtime.py)."""
        await self.runtime.start()

    async def listen(self) -> None:
        """Serve until cancel() or a signal; heartbeats and the scheduler run meanwhile."""
        await self.runtime.listen(self.heartbeat_interval_s, self.enable_scheduling)

    def cancel(self, code: int = 0) -> None:
        """Ask a running service to stop (thread-safe)."""
        self.runtime.cancel()

    stop = cancel  # reference name; the actual clean-up happens in stop_async

    async def stop_async(self) -> None:
        await self.runtime.stop()

    def is_canceled(self) -> bool:
        return self.runtime.is_canceled()

    # ------------------------------------------------------------------ hooks for subclasses
    def bind_keys(self, queue: Any = None) -> None:
        """Reference hook; subclasses add bindings in `_bind_extra` (e.g. AlertConsumer)."""

    async def _bind_extra(self, queue: Any) -> None:
        """Override to bind more keys to the service queue (AlertConsumer binds alert keys)."""

    def _dispatch_alert(self, msg: Message) -> None:
        """An alert arrived (loop thread): `on_alert_message` runs on the service's lane.
        AlertConsumer subclasses override it (the sensor logger takes alerts in bulk)."""
        self.runtime.run_on_worker(lambda: self.on_alert_message(msg))

    #: the event loop serving this service (None until start)
    loop = property(lambda self: self.runtime.loop,
                    lambda self, value: setattr(self.runtime, "loop", value))
