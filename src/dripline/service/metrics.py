"""Prometheus metrics of a running service: what an operator graphs and alarms on.

Off by default. A service given ``metrics_port`` (the service file's top level, or the keyword)
serves ``/metrics`` on that port (on every interface unless ``metrics_address`` says otherwise;
port 0 picks a free one, see `ServiceMetrics.port`) with:

* ``dripline_requests_total{service,endpoint,operation,code}``: requests handled, by the return
  code of their reply;
* ``dripline_request_handler_seconds{service,endpoint}``: how long handlers took (histogram);
* ``dripline_broker_connected{service}``, ``dripline_broker_reconnects_total{service}`` and
  ``dripline_publishes_refused_total{service}``: the broker connection;
* ``dripline_queue_messages{service,queue}``: messages waiting in each queue the service consumes,
  as the broker reported them at the last look (every ``metrics_interval_s``, 5 s by default);
* for an alert consumer that counts what it stores (the sensor logger):
  ``dripline_alerts_received_total``, ``dripline_alerts_stored_total``,
  ``dripline_alerts_skipped_total``, ``dripline_alerts_dropped_total`` and
  ``dripline_alerts_held`` (received, not yet stored).

Why a module of its own, imported only when a port is configured: ``prometheus_client`` is an
optional extra (``dripline[metrics]``) and must stay out of ``dl-agent``'s start-up. Why one registry
per service: several services in one process (tests, plugins) each get their own page, and
nothing leaks into prometheus_client's global registry. Values the service already counts
(reconnects, the logger's counters) are read when the page is scraped, not copied on every event.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator

from dripline.protocol.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from dripline.protocol.message import MsgReply, MsgRequest

__all__ = ["ServiceMetrics", "HANDLER_BUCKETS"]

logger = logging.getLogger(__name__)

#: histogram buckets (seconds) of handler latency: from a key-value get to a slow instrument
HANDLER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)

_ALERT_COUNTERS = ("received", "stored", "skipped", "dropped")


class ServiceMetrics:
    """The metrics of one service and the HTTP server that exposes them.

    Built by the service when it starts (`Service.metrics`); `observe` is called for every handled
    request, from the thread that handled it (prometheus_client's metrics are thread-safe).
    """

    def __init__(self, service: Any, port: int, address: str = "", interval_s: float = 5.0) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError:
            raise ConfigError(f"service {service.name!r}: metrics_port needs the prometheus-client "
                              "package: pip install 'dripline[metrics]'") from None
        self.service = service
        self.interval_s = interval_s
        self.queue_depths: dict[str, int] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        name = service.name
        self._requests = Counter("dripline_requests", "Requests handled, by endpoint, operation and "
                                 "the return code of the reply",
                                 ["service", "endpoint", "operation", "code"], registry=self.registry)
        self._latency = Histogram("dripline_request_handler_seconds", "Time a request handler took",
                                  ["service", "endpoint"], buckets=HANDLER_BUCKETS,
                                  registry=self.registry)
        self._name = name
        self.registry.register(_StateCollector(self))
        self._server: Any = None
        self._thread: Any = None
        self._start_server(port, address)

    # ---------------------------------------------------------------- serving
    def _start_server(self, port: int, address: str) -> None:
        from prometheus_client import start_http_server
        try:
            self._server, self._thread = start_http_server(int(port), address or "0.0.0.0",
                                                           registry=self.registry)
        except OSError as err:
            raise ConfigError(f"service {self._name!r}: cannot serve metrics on "
                              f"{address or '*'}:{port}: {err.strerror or err}") from None
        logger.info("service %s: Prometheus metrics on http://%s:%d/metrics", self._name,
                    address or "0.0.0.0", self.port)

    @property
    def port(self) -> int:
        """The port the metrics page is served on (the one chosen when 0 was given)."""
        return int(self._server.server_address[1]) if self._server is not None else 0

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # ---------------------------------------------------------------- requests
    def observe(self, endpoint: str, request: "MsgRequest", reply: "MsgReply | None",
                seconds: float) -> None:
        code = "none" if reply is None else str(int(reply.return_code))
        operation = getattr(getattr(request, "message_operation", None), "name", None) or "unknown"
        self._requests.labels(self._name, endpoint, operation, code).inc()
        self._latency.labels(self._name, endpoint).observe(seconds)

    def timed(self, endpoint: str, request: "MsgRequest",
              handler: Callable[["MsgRequest"], "MsgReply | None"]) -> "MsgReply | None":
        """handler(request), counted and timed."""
        started = time.perf_counter()
        reply = None
        try:
            reply = handler(request)
            return reply
        finally:
            self.observe(endpoint, request, reply, time.perf_counter() - started)

    async def timed_async(self, endpoint: str, request: "MsgRequest",
                          handler: Callable[["MsgRequest"], Awaitable["MsgReply | None"]]
                          ) -> "MsgReply | None":
        started = time.perf_counter()
        reply = None
        try:
            reply = await handler(request)
            return reply
        finally:
            self.observe(endpoint, request, reply, time.perf_counter() - started)

    # ---------------------------------------------------------------- queue depth
    def queue_names(self) -> list[str]:
        """The service's own queues (its name, async children) and its durable alert queue."""
        topology = getattr(getattr(self.service, "runtime", None), "topology", None)
        queues = getattr(topology, "queues", None)
        if queues is None:  # a service without the runtime split keeps them itself
            queues = getattr(self.service, "_queues", [])
        names = [q.name for q in queues if getattr(q, "name", "")]
        durable = getattr(self.service, "durable_queue_name", None)
        if durable and durable not in names:
            names.append(durable)
        return names

    async def poll_queues(self) -> None:
        """Ask the broker how many messages wait in each queue, every `interval_s` (a task of
        the service's loop, cancelled when it stops)."""
        while True:
            connection = getattr(self.service.core, "connection", None)
            if connection is not None:
                for name in self.queue_names():
                    try:
                        depth = await connection.queue_depth(name)
                    except Exception as err:  # a probe must never end the loop
                        logger.debug("queue depth of %s: %s", name, err)
                        depth = None
                    if depth is not None:
                        self.queue_depths[name] = depth[0]
            await asyncio.sleep(self.interval_s)


class _StateCollector:
    """Reads, at scrape time, what the service and its connection already count."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list:
        return []  # collected afresh on every scrape

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        metrics = self.metrics
        service = metrics.service
        name = service.name
        connection = getattr(service.core, "connection", None)
        connected = GaugeMetricFamily("dripline_broker_connected",
                                      "1 while the broker connection is open", labels=["service"])
        connected.add_metric([name], 1.0 if connection is not None and connection.is_open else 0.0)
        yield connected
        reconnects = CounterMetricFamily("dripline_broker_reconnects",
                                         "Times the broker connection was restored after a loss",
                                         labels=["service"])
        reconnects.add_metric([name], float(getattr(connection, "reconnects", 0)))
        yield reconnects
        refused = CounterMetricFamily("dripline_publishes_refused",
                                      "Messages the broker refused to take (missing permission)",
                                      labels=["service"])
        refused.add_metric([name], float(getattr(connection, "publishes_refused", 0)))
        yield refused
        depth = GaugeMetricFamily("dripline_queue_messages", "Messages waiting in a queue this "
                                  "service consumes, as last reported by the broker",
                                  labels=["service", "queue"])
        for queue, count in sorted(metrics.queue_depths.items()):
            depth.add_metric([name, queue], float(count))
        yield depth
        counters = getattr(service, "counters", None)
        if isinstance(counters, dict) and "stored" in counters:
            for key in _ALERT_COUNTERS:
                family = CounterMetricFamily(f"dripline_alerts_{key}", f"Alerts {key} by this logger",
                                             labels=["service"])
                family.add_metric([name], float(counters.get(key, 0)))
                yield family
            held = GaugeMetricFamily("dripline_alerts_held", "Alerts received and not yet stored",
                                     labels=["service"])
            held.add_metric([name], float(_held(service)))
            yield held


def _held(service: Any) -> int:
    try:
        return int(len(service._buffer) + service._in_flight)
    except (AttributeError, TypeError):
        return 0
