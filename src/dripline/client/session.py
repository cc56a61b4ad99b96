"""Core: send dripline messages and await replies over one persistent broker connection.

Everything above this module (clients, services) speaks in MsgRequest/MsgReply/MsgAlert objects;
everything below (the transport) speaks in bytes. Core owns the reply queue and stamps what it
sends with this process's identity and the time (`dripline.client.identity`); which reply ends
which request, and how (a broker "return", a malformed reply, a lost connection, a deadline), is
decided by the sans-I/O tracker `dripline.client.pending`, for which Core keeps one timer. Every
request of every client (AsyncInterface, Interface, dl-agent, a service's own requests) starts
in `begin_request`, so no caller ever hangs and the rules live in one place.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Callable

from dripline.client.identity import now_timestamp, sender_info_for
from dripline.client.pending import Pending, PendingRequests
from dripline.protocol.errors import ConnectionError_, DecodeError, DriplineError
from dripline.protocol.message import Message, MsgAlert, MsgReply, MsgRequest, decode
from dripline.settings.auth import build_authentication
from dripline.settings.mesh import load_return_codes, mesh_config
from dripline.transport.ratelimit import LimitedLog
from dripline.transport.receiver import ChunkReceiver, Incomplete

__all__ = ["Core", "mesh_and_auth"]

logger = logging.getLogger(__name__)
_log = LimitedLog(logger)


def mesh_and_auth(dripline_mesh: dict | None = None, auth: Any = None, username: Any = None,
                  password: Any = None) -> tuple[dict, Any]:
    """Resolve the mesh settings (defaults < ~/.dripline_mesh.yaml < given) and the credentials."""
    mesh = mesh_config(dripline_mesh)
    if auth is None:
        user_kw = username if isinstance(username, str) or username is None else None
        pass_kw = password if isinstance(password, str) or password is None else None
        auth = build_authentication(username=user_kw, password=pass_kw)
    if mesh.get("return_codes") is not None:
        load_return_codes(mesh["return_codes"])
    return mesh, auth


def _settle(entry: Pending) -> None:
    """A tracked request ended: hand its outcome to the future its caller awaits (if still)."""
    future, convert = entry.token
    if future.done():  # the caller stopped waiting (cancelled, or its bridge timed out)
        return
    if entry.error is not None:
        future.set_exception(entry.error)
        return
    value: Any = entry.replies if entry.collect else entry.reply
    if convert is not None:
        try:
            value = convert(value)
        except Exception as err:  # e.g. a non-zero return code with confirm_retcodes
            future.set_exception(err)
            return
    future.set_result(value)


class Core:
    """A connection to a dripline mesh that can send requests, replies and alerts.

    `dripline_mesh` is the mesh block (broker, broker_port, exchanges, max_payload_size, ...);
    `auth` an Authentication (from config.build_authentication) or None for the defaults.
    """

    def __init__(self, dripline_mesh: dict | None = None, auth: Any = None, *,
                 make_connection: bool = True, service_name: str = "unknown",
                 username: Any = None, password: Any = None, message_wait_ms: float = 1000,
                 connection_name: str | None = None, max_message_size: int | None = None,
                 max_pending_bytes: int | None = None) -> None:
        self.mesh, self.auth = mesh_and_auth(dripline_mesh, auth, username, password)
        if self.mesh.get("make_connection") is not None:
            make_connection = bool(self.mesh["make_connection"])
        self.make_connection = make_connection
        self.service_name = service_name
        self._connection_name = connection_name or f"dripline:{service_name}"
        # reassembly limits: keyword, else the mesh block, else the defaults (dripline.protocol.chunks)
        self.max_message_size = max_message_size or self.mesh.get("max_message_size")
        self.max_pending_bytes = max_pending_bytes or self.mesh.get("max_pending_bytes")
        self._replies = ChunkReceiver(self._incomplete_reply, wait_s=message_wait_ms / 1000,
                                      max_message_size=self.max_message_size,
                                      max_pending_bytes=self.max_pending_bytes,
                                      label=f"{service_name} reply queue")
        self._pending = PendingRequests()
        self._timer: asyncio.TimerHandle | None = None  # wakes the tracker at its next deadline
        self._timer_at = 0.0
        self._reply_queue: Any = None
        self.connection: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # ---------------------------------------------------------------- mesh properties
    @property
    def address(self) -> str:
        return self.mesh["broker"]

    broker = address

    @property
    def port(self) -> int:
        return int(self.mesh["broker_port"])

    @property
    def requests_exchange(self) -> str:
        return self.mesh["requests_exchange"]

    @property
    def alerts_exchange(self) -> str:
        return self.mesh["alerts_exchange"]

    @property
    def max_payload_size(self) -> int:
        return int(self.mesh["max_payload_size"])

    @property
    def heartbeat_routing_key(self) -> str:
        return self.mesh["heartbeat_routing_key"]

    @property
    def max_connection_attempts(self) -> int:
        return int(self.mesh["max_connection_attempts"])

    @property
    def username(self) -> str:
        return self.auth.get("dripline", "username")

    # ---------------------------------------------------------------- lifecycle
    async def start(self, timeout_s: float | None = None) -> None:
        """Connect, declare both exchanges and the private reply queue.

        `timeout_s` bounds the connection attempts (None: max_connection_attempts rounds)."""
        self.loop = asyncio.get_running_loop()
        if not self.make_connection:
            logger.warning("make_connection is false: dry run, nothing is sent to a broker")
            return
        from dripline.client.broker import connection_for_mesh
        from dripline.transport.connection import OWN_NAME
        # every node of `broker` (a cluster), the user of self.auth, TLS when broker_tls is set
        self.connection = connection_for_mesh(self.mesh, self.auth, name=self._connection_name,
                                              max_connection_attempts=self.max_connection_attempts)
        self.connection.on_return = self._on_returned
        self.connection.on_lost.append(self._on_connection_lost)
        self.connection.on_publish_refused.append(self._on_publish_refused)
        await self.connection.connect(timeout_s)
        await self.connection.declare_exchange(self.requests_exchange)
        await self.connection.declare_exchange(self.alerts_exchange)
        self._reply_queue = await self.connection.declare_queue("")
        await self.connection.bind(self._reply_queue, self.requests_exchange, OWN_NAME)
        await self.connection.consume(self._reply_queue, self._on_reply_delivery)

    async def close(self) -> None:
        self._fail_all(ConnectionError_("the client was closed"))
        self._replies.close()
        if self.connection is not None:
            await self.connection.close()

    @property
    def reply_to(self) -> str:
        return self._reply_queue.name if self._reply_queue else ""

    # ---------------------------------------------------------------- sending
    def _publish(self, exchange: str, msg: Message) -> None:
        if not self.make_connection:
            kind = {2: "reply", 3: "request", 4: "alert"}.get(int(msg.message_type), "message")
            raise DriplineError(f"Thrown {kind}: dry run (make_connection is false), not sent:\n"
                                f"{msg.encode_full_message()}", 3)
        info = msg.sender_info
        if not info or info.get("service_name") in (None, "unknown"):
            msg.sender_info = sender_info_for(self.service_name)
        publish = self.connection.publish
        for wire in msg.encode(self.max_payload_size, timestamp=now_timestamp()):
            publish(exchange, wire)

    def send(self, msg: Message) -> None:
        """Send a reply (to its reply_to) or an alert, without waiting. Must run on the loop."""
        if isinstance(msg, MsgReply):
            if not msg.routing_key:
                logger.warning("reply (%s %s) has no reply_to; not sent", msg.return_code,
                               msg.return_message)
                return
            self._publish(self.requests_exchange, msg)
        elif msg.is_alert():
            self._publish(self.alerts_exchange, msg)
        else:
            self._publish(self.requests_exchange, msg)

    def begin_request(self, msg: MsgRequest, timeout_s: float | None = 10, *,
                      collect: bool = False,
                      convert: Callable[[Any], Any] | None = None) -> "asyncio.Future[Any]":
        """Send a request now and return the future of its outcome. Must run on the loop.

        The one start of every request. The future's result is the reply (with `collect`, the
        list of every reply until `timeout_s`, normally for a broadcast), passed through
        `convert` when given; it fails with UnableToSendError (nobody bound to the routing key,
        or the broker refused the publish), TimeoutError_ (no reply within timeout_s; None or 0
        waits forever), DriplineError 402 (a malformed reply) or ConnectionError_ (the broker
        was lost meanwhile). A future, not a coroutine: a blocked thread (the bridge) waits on it
        without a task. Cancelling the future abandons the request: a late reply is dropped, and
        the tracker forgets it at once (no deadline) or at its deadline.
        """
        if self.make_connection and (self.connection is None or not self.connection.is_open):
            where = (self.connection.describe_addresses() if self.connection is not None
                     else f"{self.address}:{self.port}")
            raise ConnectionError_(f"not connected to the broker at {where}; "
                                   f"request to '{msg.routing_key}' not sent")
        loop = self.loop
        if loop is None:
            raise ConnectionError_(f"the client is not started; request to '{msg.routing_key}' "
                                   "not sent")
        if collect and not timeout_s:
            timeout_s = 10  # a collection ends at its deadline: it needs one
        msg.reply_to = self.reply_to
        future = loop.create_future()
        cid = msg.correlation_id
        entry = self._pending.add(cid, msg.routing_key, now=loop.time(), timeout_s=timeout_s,
                                  collect=collect, on_done=_settle, token=(future, convert))
        try:
            self._publish(self.requests_exchange, msg)
        except BaseException:
            self._pending.discard(cid)
            raise
        deadline = entry.deadline
        if deadline is None:  # nothing would ever end an abandoned request: forget it at once
            future.add_done_callback(functools.partial(self._forget_cancelled, cid))
        elif self._timer is None or deadline < self._timer_at:
            self._arm(deadline)
        return future

    async def request(self, msg: MsgRequest, timeout_s: float | None = 10) -> MsgReply:
        """Send a request and return its first reply (outcomes: see `begin_request`)."""
        return await self.begin_request(msg, timeout_s)

    async def request_all(self, msg: MsgRequest, timeout_s: float = 1.0) -> list[MsgReply]:
        """Send a request (normally a broadcast) and collect every reply arriving within timeout_s."""
        return await self.begin_request(msg, timeout_s, collect=True)

    def _forget_cancelled(self, correlation_id: str, future: asyncio.Future) -> None:
        if future.cancelled():
            self._pending.discard(correlation_id)

    # ---------------------------------------------------------------- deadlines
    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        assert self.loop is not None
        self._timer = self.loop.call_at(deadline, self._on_deadline)

    def _on_deadline(self) -> None:
        self._timer = None
        assert self.loop is not None
        self._pending.expire(self.loop.time())
        following = self._pending.next_deadline()
        if following is not None:
            self._arm(following)

    # ---------------------------------------------------------------- receiving
    def _on_reply_delivery(self, routing_key: str, body: bytes, properties: Any, ack: Any) -> None:
        try:
            msg = self._replies.feed(routing_key, body, properties)
        except DecodeError as err:
            self._malformed_reply(err, properties)
            return
        if msg is not None:
            self._deliver_reply(msg)

    def _malformed_reply(self, err: DecodeError, properties: Any) -> None:
        """An undecodable reply ends the request it answers at once (402), instead of its timeout."""
        correlation_id = getattr(err, "correlation_id", None) or \
            getattr(properties, "correlation_id", None)
        outcome = self._pending.on_undecodable(correlation_id, err.message)
        if outcome == "unknown":
            _log.warning(("undecodable reply", err.return_code),
                         "undecodable message on the reply queue: %s", err.message)
        elif outcome == "ignored":  # one bad answer to a broadcast does not end the collection
            _log.warning(("undecodable broadcast reply", err.return_code),
                         "undecodable reply to a broadcast request: %s", err.message)

    def _incomplete_reply(self, incomplete: Incomplete) -> None:
        self._pending.on_incomplete(incomplete.message, incomplete.description)

    def _deliver_reply(self, msg: Message) -> None:
        if self._pending.on_message(msg) == "unknown":
            logger.debug("reply with unknown correlation id %s dropped (late or duplicate)",
                         msg.correlation_id)

    def _on_returned(self, properties: Any, text: str) -> None:
        if not self._pending.on_returned(getattr(properties, "correlation_id", None), text):
            logger.warning("message returned by the broker: %s", text)

    def _on_publish_refused(self, refused: Any) -> None:
        """A publish refused by the broker (a missing write or topic permission) ends the
        requests it concerns at once with 403, instead of their timeout: those to the refused
        routing key, or every waiting request when the whole requests exchange was refused."""
        if refused.exchange and refused.exchange != self.requests_exchange:
            return
        self._pending.on_refused(refused.topic, refused.message)

    async def send_confirmed(self, msg: Message, timeout_s: float = 10) -> None:
        """Send a reply or alert and return once the broker has confirmed it (publisher
        confirms: for a quorum queue, once a majority of its nodes hold it).

        A refusal raises PublishRefused (code 403); a lost connection or no confirmation within
        `timeout_s` raises ConnectionError_, and the message may or may not have been taken:
        sending the same message object again keeps its message id and timestamp, so a
        deduplicating logger stores it once. For ``dl-agent alert`` and senders that must not
        lose an alert.
        """
        if not self.make_connection or (isinstance(msg, MsgReply) and not msg.routing_key):
            self.send(msg)  # a dry run raises; a reply without reply_to is logged, not sent
            return
        exchange = self.alerts_exchange if msg.is_alert() else self.requests_exchange
        info = msg.sender_info
        if not info or info.get("service_name") in (None, "unknown"):
            msg.sender_info = sender_info_for(self.service_name)
        for wire in msg.encode(self.max_payload_size, timestamp=msg.timestamp or now_timestamp()):
            await self.connection.publish_confirmed(exchange, wire, timeout_s)

    def _on_connection_lost(self, err: BaseException) -> None:
        self._fail_all(ConnectionError_(
            f"connection to the broker lost while waiting for a reply ({err}); the request may or "
            "may not have been handled"))

    def _fail_all(self, err: BaseException) -> None:
        self._pending.fail_all(err)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ---------------------------------------------------------------- watching
    async def watch(self, queue_name: str, request_keys: list[str], alert_keys: list[str],
                    on_delivery: Callable[[str, bytes, Any, Any], None]) -> Any:
        """Bind a private queue to keys of both exchanges and hand every delivery, undecoded, to
        ``on_delivery(routing_key, body, properties, ack)`` (dl-mon). Returns the queue, for
        `unwatch`."""
        conn = self.connection
        queue = await conn.declare_queue(queue_name)
        for key in request_keys:
            await conn.bind(queue, self.requests_exchange, key)
        for key in alert_keys:
            await conn.bind(queue, self.alerts_exchange, key)
        await conn.consume(queue, on_delivery)
        return queue

    async def unwatch(self, queue: Any) -> None:
        await self.connection.delete_queue(queue)

    # ---------------------------------------------------------------- conveniences
    def send_alert(self, routing_key: str, payload: Any = None) -> MsgAlert:
        alert = MsgAlert.create(payload=payload, routing_key=routing_key)
        self.send(alert)
        return alert

    @staticmethod
    def decode(routing_key: str, body: bytes, properties: Any) -> Message:
        return decode(routing_key, body, properties)
