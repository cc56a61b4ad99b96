"""AlertConsumer: a service that also listens to alerts (sensor values, heartbeats, status messages).

An alert consumer binds its `alert_keys` on the alerts exchange and turns each alert into a call
``process_payload(payload, routing_key_data, timestamp)``, where `routing_key_data` holds the named
groups of `alert_key_parser_re` matched against the routing key (e.g. the sensor name of
``sensor_value.peaches``). Subclasses (the sensor logger, the heartbeat monitor) override
`process_payload`.

Where the reference binds the keys to the service queue and loses whatever arrives while the
service is down, ``durable_queue: true`` gives the consumer a durable queue of its own, named
``<service name>.alerts`` (or the name given instead of ``true``), that outlives the process: alerts
wait there while the consumer restarts, and each one is acknowledged only once it has been handled
(the sensor logger: once its row is committed). Delivery is then at-least-once: an alert handled
just before a crash, but not yet acknowledged, is handled again after the restart. Requests keep
going to the ordinary, exclusive service queue, so an unreachable consumer still makes requests
fail at once instead of piling up.

``queue_type: quorum`` makes that durable queue a RabbitMQ quorum queue, replicated on the nodes of
a cluster, so the alerts waiting in it survive the loss of a node (a classic queue lives on one
node only); unset, the queue is declared without a type and the broker's default applies (classic
on RabbitMQ 3.x, the reference's behaviour). Several consumer processes, each a service of its own
name, may give the same `durable_queue` name: they then share that queue as competing consumers,
each alert going to one of them.

Fixed with respect to the reference: an exception in `parse_routing_key`, `process_payload` or
`on_alert_message` is logged with the alert's routing key and the service keeps running (the
reference shuts the service down).
"""
from __future__ import annotations

import collections
import logging
import re
from typing import Any, Iterable

from dripline.protocol.errors import ConfigError, DecodeError, DriplineError
from dripline.protocol.message import Message
from dripline.service.service import Service
from dripline.transport.ratelimit import LimitedLog
from dripline.transport.receiver import ChunkReceiver, Incomplete

__all__ = ["AlertConsumer", "AckTracker"]

logger = logging.getLogger(__name__)
_log = LimitedLog(logger)  # a stream of bad alerts is reported once per kind, then counted

DEFAULT_DURABLE_PREFETCH = 1000
#: the values of `queue_type` (RabbitMQ's x-queue-type for the durable alert queue)
QUEUE_TYPES = ("classic", "quorum")


class _Delivery:
    """One delivery from the durable queue: its Ack and whether it has been dealt with."""

    __slots__ = ("ack", "done")

    def __init__(self, ack: Any) -> None:
        self.ack = ack
        self.done = False


class AckTracker:
    """Acknowledges a manual-ack consumer's deliveries in delivery order, in as few frames as possible.

    Deliveries may be finished out of order (a chunked alert completes after later single-chunk
    ones; a malformed alert is skipped before the rows buffered ahead of it are committed), but a
    delivery is acknowledged only when it and every delivery before it are finished, so a single
    ``basic.ack(multiple=True)`` covers the whole finished prefix. Must be used on the loop thread.
    """

    def __init__(self) -> None:
        self._pending: collections.deque[_Delivery] = collections.deque()

    def add(self, ack: Any) -> _Delivery:
        delivery = _Delivery(ack)
        self._pending.append(delivery)
        return delivery

    def finish(self, deliveries: Iterable[_Delivery]) -> None:
        for delivery in deliveries:
            delivery.done = True
        self._release()

    def __len__(self) -> int:
        return len(self._pending)

    def _release(self) -> None:
        pending = self._pending
        last = None
        while pending and pending[0].done:
            ack = pending.popleft().ack
            if last is not None and ack.channel is not last.channel:
                last(multiple=True)  # the channel changed (reconnect): close the old prefix
            last = ack
        if last is not None:
            last(multiple=True)


class AlertConsumer(Service):
    """A service that consumes alerts.

    `alert_keys`: binding keys on the alerts exchange (default ``["#"]``: every alert);
    `alert_key_parser_re`: a regular expression with named groups, matched against each alert's
    routing key; `durable_queue`: false (the reference behaviour), true (a durable queue named
    ``<name>.alerts``) or the queue's name; `durable_prefetch`: how many unacknowledged alerts the
    broker hands the consumer at a time from that queue; `queue_type`: the durable queue's type,
    ``classic`` or ``quorum`` (replicated across a cluster's nodes), unset for the broker's
    default. Other keywords go to Service.
    """

    def __init__(self, alert_keys: list[str] | str | None = None, alert_key_parser_re: str = "",
                 durable_queue: bool | str = False, durable_prefetch: int = DEFAULT_DURABLE_PREFETCH,
                 queue_type: str | None = None, **kwargs: Any) -> None:
        """
        Args:
            queue_type: type of the durable alert queue: ``quorum`` (replicated on the nodes of a
                RabbitMQ cluster, so waiting alerts survive the loss of a node) or ``classic``;
                unset, the broker's default (classic on RabbitMQ 3.x). Needs ``durable_queue``.
        """
        Service.__init__(self, **kwargs)
        if alert_keys is None:
            alert_keys = ["#"]
        elif isinstance(alert_keys, str):
            alert_keys = [alert_keys]
        self.alert_keys = [str(k) for k in alert_keys]
        self.alert_key_parser_re = alert_key_parser_re or ""
        try:
            self._alert_regex = re.compile(self.alert_key_parser_re)
        except re.error as err:
            raise ConfigError(f"service {self.name!r}: alert_key_parser_re "
                              f"{self.alert_key_parser_re!r} is not a valid regular expression: {err}") from None
        if not isinstance(durable_queue, (bool, str)):
            raise ConfigError(f"service {self.name!r}: durable_queue must be true, false or a queue name, "
                              f"not {durable_queue!r}")
        self.durable_queue = durable_queue
        if queue_type is not None:
            if queue_type not in QUEUE_TYPES:
                raise ConfigError(f"service {self.name!r}: queue_type must be one of "
                                  f"{', '.join(QUEUE_TYPES)} (or left out), not {queue_type!r}")
            if not durable_queue:
                raise ConfigError(f"service {self.name!r}: queue_type {queue_type!r} is the type of "
                                  "the durable alert queue; set durable_queue: true (or a queue "
                                  "name) too")
        self.queue_type = queue_type
        self.durable_prefetch = max(1, min(int(durable_prefetch), 65535))
        self._acks = AckTracker()
        self._durable_assembler: ChunkReceiver | None = None
        self._chunk_deliveries: dict[str, list[_Delivery]] = {}

    # ------------------------------------------------------------------ reference API
    @property
    def durable_queue_name(self) -> str | None:
        """Name of the durable alert queue, or None when alerts arrive on the service queue."""
        if not self.durable_queue:
            return None
        if isinstance(self.durable_queue, str):
            return self.durable_queue
        return f"{self.name}.alerts"

    def parse_routing_key(self, routing_key: str) -> dict[str, Any]:
        """The named groups of `alert_key_parser_re` in `routing_key` ({} with a warning if no match)."""
        match = self._alert_regex.match(routing_key)
        if match is None:
            _log.warning(("key mismatch", self.name), "service %s: alert routing key %r does not "
                         "match alert_key_parser_re %r", self.name, routing_key[:100],
                         self.alert_key_parser_re)
            return {}
        return match.groupdict()

    def on_alert_message(self, alert: Message) -> None:
        """Parse the routing key and call process_payload; errors are logged, never raised."""
        try:
            data = self.parse_routing_key(alert.routing_key)
            self.process_payload(_as_param(alert.payload), data, alert.timestamp)
        except Exception:
            _log.exception("service %s: error while processing the alert %r (the alert is skipped; "
                           "the service keeps running)", self.name, alert.routing_key)

    def process_payload(self, payload: Any, routing_key_data: dict[str, Any], timestamp: str) -> None:
        """Override: handle one alert. `payload` is a scarab Param (``payload.to_python()``)."""
        logger.debug("service %s: alert payload %r, routing key data %r, timestamp %s", self.name,
                     payload, routing_key_data, timestamp)

    # ------------------------------------------------------------------ bindings
    async def _bind_extra(self, queue: Any) -> None:
        conn = self.core.connection
        exchange = self.core.alerts_exchange
        name = self.durable_queue_name
        if name is None:
            for key in self.alert_keys:
                await conn.bind(queue, exchange, key)
            return
        self.runtime.window.multiple_ok = False  # durable deliveries are acknowledged only once stored
        self._durable_assembler = ChunkReceiver(
            self._expired_durable, wait_s=self.message_wait_ms / 1000,
            max_message_size=self.core.max_message_size,
            max_pending_bytes=self.core.max_pending_bytes, label=f"service {self.name} alert queue")
        # unset: no x-queue-type at all, so that the broker's default type applies
        extra = {"arguments": {"x-queue-type": self.queue_type}} if self.queue_type else {}
        try:
            durable = await conn.declare_queue(name, exclusive=False, auto_delete=False, durable=True,
                                               **extra)
        except DriplineError as err:
            if getattr(err, "amqp_code", None) != 406:
                raise
            # PRECONDITION_FAILED: the queue exists with other arguments (another type)
            raise ConfigError(
                f"service {self.name!r}: the durable queue {name!r} already exists with other "
                f"settings than queue_type {self.queue_type or '(unset)'} asks for ({err.message}). "
                "Give the queue_type it was made with, or let it empty and delete it "
                f"(rabbitmqctl delete_queue {name}) to make it anew") from None
        for key in self.alert_keys:
            await conn.bind(durable, exchange, key)
        await conn.consume(durable, self._on_durable_delivery, no_ack=False,
                           prefetch=self.durable_prefetch)
        logger.info("service %s: alerts (%s) wait in the durable %squeue %r while it is not running",
                    self.name, ", ".join(self.alert_keys),
                    f"{self.queue_type} " if self.queue_type else "", name)

    # ------------------------------------------------------------------ receiving
    def _dispatch_alert(self, msg: Message) -> None:
        self._deliver_alert(msg, ())

    def _deliver_alert(self, msg: Message, deliveries: Any) -> None:
        """Handle one alert (on the loop thread); `deliveries` are finished once it is handled.

        The default runs `on_alert_message` on the worker thread, like requests, and then
        acknowledges the durable-queue deliveries of the alert (if any).
        """
        if not deliveries:
            self.runtime.run_on_worker(lambda: self.on_alert_message(msg))
            return

        def handle() -> None:
            try:
                self.on_alert_message(msg)
            finally:
                self._finish_deliveries(deliveries)
        self.runtime.run_on_worker(handle)

    def _finish_deliveries(self, deliveries: Any) -> None:
        """Mark durable-queue deliveries as handled, from any thread."""
        if not deliveries:
            return
        loop = self.loop
        if loop is None or loop.is_closed():
            return  # never acknowledged: the broker delivers them again
        if self.runtime.on_loop_thread():
            self._acks.finish(deliveries)
        else:
            loop.call_soon_threadsafe(self._acks.finish, deliveries)

    def _on_durable_delivery(self, routing_key: str, body: bytes, properties: Any, ack: Any) -> None:
        delivery = self._acks.add(ack)
        base_id = str(getattr(properties, "message_id", "") or "").split("/", 1)[0]
        assembler = self._durable_assembler
        assert assembler is not None, "durable deliveries before the durable queue was bound"
        try:
            msg = assembler.feed(routing_key, body, properties)
        except DecodeError as err:
            _log.warning(("undecodable alert", self.name, err.return_code),
                         "service %s: undecodable message on the alert queue (routing key %r): %s; "
                         "dropped", self.name, str(routing_key)[:100], err.message)
            # a refused chunk may have ended its whole message: its other chunks are done too
            held = assembler.holds(base_id)
            self._acks.finish([delivery, *([] if held else self._chunk_deliveries.pop(base_id, []))])
            return
        if msg is None:  # one chunk of a larger alert: acknowledged with the whole alert
            if assembler.holds(base_id):
                self._chunk_deliveries.setdefault(base_id, []).append(delivery)
            else:  # a late or duplicate chunk of a message already handled or given up
                self._acks.finish([delivery])
            return
        deliveries = self._chunk_deliveries.pop(msg.message_id, [])
        deliveries.append(delivery)
        self._deliver_durable(msg, deliveries)

    def _deliver_durable(self, msg: Message, deliveries: list[_Delivery]) -> None:
        if not msg.is_alert():
            _log.warning(("not an alert", self.name), "service %s: a %s message arrived on the "
                         "alert queue (routing key %r); dropped", self.name, msg.message_type.name,
                         msg.routing_key[:100])
            self._acks.finish(deliveries)
            return
        try:
            self._deliver_alert(msg, deliveries)
        except Exception:
            _log.exception("service %s: error while handling the alert %r; skipped", self.name,
                           msg.routing_key[:100])
            self._acks.finish(deliveries)

    def _expired_durable(self, incomplete: Incomplete) -> None:
        msg = incomplete.message
        self._deliver_durable(msg, self._chunk_deliveries.pop(msg.message_id, []))


def _as_param(payload: Any) -> Any:
    """The payload as the reference hands it to process_payload: a scarab Param."""
    try:
        from scarab import to_param
        return to_param(payload)
    except (ImportError, TypeError):
        return payload
