"""Core: send dripline messages and await replies over one persistent broker connection.

Everything above this module (clients, services) speaks in MsgRequest/MsgReply/MsgAlert objects;
everything below (amqp) speaks in bytes. Core owns the reply queue, matches replies to requests by
correlation id, turns a broker "return" of an unroutable request into an immediate error, and fails
every waiting request when the connection drops, so that no caller ever hangs.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from dripline.protocol.errors import ConnectionError_, DecodeError, DriplineError, TimeoutError_, UnableToSendError
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


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


class _PendingRequest:
    __slots__ = ("future", "replies", "collect", "routing_key")

    def __init__(self, future: asyncio.Future, collect: bool, routing_key: str = "") -> None:
        self.future = future
        self.replies: list[MsgReply] = []
        self.collect = collect
        self.routing_key = routing_key


class Core:
    """A connection to a dripline mesh that can send requests, replies and alerts.

    `dripline_mesh` is the mesh block (broker, broker_port, exchanges, max_payload_size, ...);
    `auth` an Authentication (from config.build_authentication) or None for the defaults.
    """

    def __init__(self, dripline_mesh: dict | None = None, auth: Any = None, *,
                 make_connection: bool = True, service_name: str = "unknown",
                 username: Any = None, password: Any = None, message_wait_ms: int = 1000,
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
        self._pending: dict[str, _PendingRequest] = {}
        self._reply_queue = None
        self.connection = None
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
        if not msg.sender_info or msg.sender_info.get("service_name") in (None, "unknown"):
            from dripline.protocol.message import default_sender_info
            msg.sender_info = default_sender_info(self.service_name)
        publish = self.connection.publish
        for wire in msg.encode(self.max_payload_size):
            publish(exchange, wire)

    def send(self, msg: Message) -> None:
        """Send a reply (to its reply_to) or an alert, without waiting. Must run on the loop."""
        if msg.is_reply():
            if not msg.routing_key:
                logger.warning("reply (%s %s) has no reply_to; not sent", msg.return_code,
                               msg.return_message)
                return
            self._publish(self.requests_exchange, msg)
        elif msg.is_alert():
            self._publish(self.alerts_exchange, msg)
        else:
            self._publish(self.requests_exchange, msg)

    async def request(self, msg: MsgRequest, timeout_s: float | None = 10) -> MsgReply:
        """Send a request and return its first reply.

        Raises UnableToSendError (nobody bound to the routing key), TimeoutError_ (no reply within
        timeout_s; None or 0 waits forever), ConnectionError_ (broker lost meanwhile).
        """
        pending = self._send_request(msg, collect=False)
        try:
            return await self._await(pending, msg, timeout_s)
        finally:
            self._pending.pop(msg.correlation_id, None)

    def request_callback(self, msg: MsgRequest, timeout_s: float | None,
                         done: Callable[[MsgReply | None, BaseException | None], None]) -> None:
        """`request` for a blocked thread (Interface): send now, then done(reply, error) once.

        Same outcomes as `request` (reply, UnableToSendError, TimeoutError_, ConnectionError_ ...)
        without a task: the reply's future calls `done` directly, which saves a task and two
        loop iterations per blocking request. Must run on the loop.
        """
        try:
            pending = self._send_request(msg, collect=False)
        except Exception as err:
            done(None, err)
            return
        future = pending.future
        timer = future.get_loop().call_later(timeout_s, _expire, future) if timeout_s else None

        def finished(fut: asyncio.Future) -> None:
            if timer is not None:
                timer.cancel()
            self._pending.pop(msg.correlation_id, None)
            if fut.cancelled():
                done(None, asyncio.CancelledError())
                return
            err = fut.exception()
            if err is None:
                done(fut.result(), None)
            elif isinstance(err, asyncio.TimeoutError):
                done(None, TimeoutError_(f"no reply from '{msg.routing_key}' within "
                                         f"{timeout_s:g} s"))
            else:
                done(None, err)
        future.add_done_callback(finished)

    async def request_all(self, msg: MsgRequest, timeout_s: float = 1.0) -> list[MsgReply]:
        """Send a request (normally a broadcast) and collect every reply arriving within timeout_s."""
        pending = self._send_request(msg, collect=True)
        try:
            await asyncio.wait_for(asyncio.shield(pending.future), timeout_s)
        except asyncio.TimeoutError:
            pass
        finally:
            self._pending.pop(msg.correlation_id, None)
        if pending.future.done() and pending.future.exception() is not None:
            raise pending.future.exception()
        return list(pending.replies)

    def _send_request(self, msg: MsgRequest, collect: bool) -> _PendingRequest:
        if self.make_connection and (self.connection is None or not self.connection.is_open):
            raise ConnectionError_(f"not connected to the broker at {self.address}:{self.port}; "
                                   f"request to '{msg.routing_key}' not sent")
        msg.reply_to = self.reply_to
        pending = _PendingRequest(self.loop.create_future(), collect, msg.routing_key)
        self._pending[msg.correlation_id] = pending
        try:
            self._publish(self.requests_exchange, msg)
        except BaseException:
            self._pending.pop(msg.correlation_id, None)
            raise
        return pending

    async def _await(self, pending: _PendingRequest, msg: MsgRequest, timeout_s: float | None):
        future = pending.future
        if not timeout_s:
            return await future
        # a timer that fails the future: what asyncio.wait_for does, minus its extra future,
        # callbacks and (before 3.12) task; this is on every request's path
        timer = future.get_loop().call_later(timeout_s, _expire, future)
        try:
            return await future
        except asyncio.TimeoutError:
            raise TimeoutError_(f"no reply from '{msg.routing_key}' within {timeout_s:g} s") from None
        finally:
            timer.cancel()

    # ---------------------------------------------------------------- receiving
    def _on_reply_delivery(self, routing_key: str, body: bytes, properties: Any, ack) -> None:
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
        pending = self._pending.get(correlation_id) if isinstance(correlation_id, str) else None
        if pending is None or pending.future.done():
            _log.warning(("undecodable reply", err.return_code),
                         "undecodable message on the reply queue: %s", err.message)
            return
        if pending.collect:  # one bad answer to a broadcast does not end the collection
            _log.warning(("undecodable broadcast reply", err.return_code),
                         "undecodable reply to a broadcast request: %s", err.message)
            return
        pending.future.set_exception(DriplineError(f"malformed reply: {err.message}", 402))

    def _incomplete_reply(self, incomplete: Incomplete) -> None:
        msg = incomplete.message
        pending = self._pending.get(msg.correlation_id)
        if pending is None or pending.future.done() or pending.collect or not msg.is_reply():
            return
        pending.future.set_exception(DriplineError(f"incomplete reply: {incomplete.description}",
                                                   402, msg.payload))

    def _deliver_reply(self, msg: Message) -> None:
        pending = self._pending.get(msg.correlation_id)
        if pending is None:
            logger.debug("reply with unknown correlation id %s dropped (late or duplicate)",
                         msg.correlation_id)
            return
        if not msg.is_reply():
            err = DriplineError(f"a non-reply message ({msg.message_type.name}) arrived on the reply "
                                "queue", 402)
            if not pending.future.done():
                pending.future.set_exception(err)
            return
        if not msg.is_valid:
            err = DriplineError("the reply could not be decoded completely", 402, msg.payload)
            if not pending.future.done() and not pending.collect:
                pending.future.set_exception(err)
            return
        if pending.collect:
            pending.replies.append(msg)
        elif not pending.future.done():
            pending.future.set_result(msg)

    def _on_returned(self, properties: Any, text: str) -> None:
        pending = self._pending.get(getattr(properties, "correlation_id", None) or "")
        if pending is None:
            logger.warning("message returned by the broker: %s", text)
            return
        if not pending.future.done():
            pending.future.set_exception(UnableToSendError(f"request not delivered: {text}"))

    def _on_publish_refused(self, refused: Any) -> None:
        """A publish refused by the broker (a missing write or topic permission) ends the
        requests it concerns at once with 403, instead of their timeout: those to the refused
        routing key, or every waiting request when the whole requests exchange was refused."""
        if refused.exchange and refused.exchange != self.requests_exchange:
            return
        for pending in list(self._pending.values()):
            if refused.topic and pending.routing_key != refused.topic:
                continue
            if not pending.future.done():
                pending.future.set_exception(UnableToSendError(
                    f"request to '{pending.routing_key}' not delivered: {refused.message}"))

    async def send_confirmed(self, msg: Message, timeout_s: float = 10) -> None:
        """Send a reply or alert and return once the broker accepted it; a refusal raises
        (PublishRefused, code 403): for one-shot senders such as ``dl-agent alert``."""
        self.send(msg)
        if self.make_connection:
            await self.connection.confirm_published(timeout_s)

    def _on_connection_lost(self, err: BaseException) -> None:
        self._fail_all(ConnectionError_(
            f"connection to the broker lost while waiting for a reply ({err}); the request may or "
            "may not have been handled"))

    def _fail_all(self, err: BaseException) -> None:
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(err)
        self._pending.clear()

    # ---------------------------------------------------------------- conveniences
    def send_alert(self, routing_key: str, payload: Any = None) -> MsgAlert:
        alert = MsgAlert.create(payload=payload, routing_key=routing_key)
        self.send(alert)
        return alert

    @staticmethod
    def decode(routing_key: str, body: bytes, properties: Any) -> Message:
        return decode(routing_key, body, properties)
