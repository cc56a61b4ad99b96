"""The broker connection: the only module that knows the AMQP library (pika).

Why this shape:
* One persistent connection and one channel per process (the reference opens a new TCP connection
  for every message it sends, which costs milliseconds each time).
* pika's AsyncioConnection was the fastest Python client measured on these machines
  (../shared/bench/RESULTS.md: ~2000 replies/s at 64 in flight against ~1550 for aiormq and ~940
  for aio-pika). Its callback API is wrapped here into a few awaitables.
* The broker may go away at any time. Everything declared through this class (exchanges, queues,
  bindings, consumers) is remembered as *topology* and replayed after a reconnect, so services come
  back by themselves. Whoever waits on the connection is told at once when it is lost.
* dripline-cpp reads ``message_type``, ``message_operation`` and ``return_code`` as unsigned 32-bit
  header fields; pika writes Python ints as signed. The codec marks those ints as ``UInt32`` and the
  encoder patch below writes them as AMQP ``i``.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import pika
import pika.data
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.exchange_type import ExchangeType

from dripline.protocol.errors import ConnectionError_, DriplineError
from dripline.protocol.message import UInt32, WireMessage

__all__ = ["Ack", "Connection", "Queue", "OWN_NAME", "BrokerAddress"]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# header tables: unsigned 32-bit integers, and a faster codec
#
# Besides writing UInt32 as AMQP ``i``, these replacements of pika's table functions exist for
# speed: bench/request_reply.py showed pika's table codec as the largest single cost of a dripline
# message on both ends (every header value goes through a chain of isinstance tests, and the
# nested 11-key sender_info table is encoded for every message sent and decoded for every message
# received). The output is byte-identical to pika's and the decoded values are identical: the
# common field types (str, nested table, uint32) are handled directly, every other type by pika's
# own functions. In addition:
# * a nested table that is sent again and again as the *same dict object* (a service's
#   sender_info) is encoded once; it is encoded afresh when its content was changed in place;
# * a nested table received again with the same bytes (a peer's sender_info) is decoded once and
#   handed out as a fresh copy each time.
_originals = getattr(pika.data, "_dripline_originals", None)
if _originals is None:  # keep pika's functions even if this module is imported twice
    _originals = (pika.data.encode_value, pika.data.encode_table, pika.data.decode_table,
                  pika.data.decode_value)
    pika.data._dripline_originals = _originals
_pika_encode_value, _pika_encode_table, _pika_decode_table, _pika_decode_value = _originals

_pack_B = struct.Struct("B").pack
_pack_I = struct.Struct(">I").pack
_pack_cI = struct.Struct(">cI").pack
_unpack_B = struct.Struct("B").unpack_from
_unpack_I = struct.Struct(">I").unpack_from

_TABLE_CACHE_SIZE = 32
_encoded_tables: dict[int, tuple[dict, dict, bytes]] = {}  # id -> (table, snapshot, b"F"+table)
_seen_tables: dict[int, dict] = {}  # id -> table sent once (cached when sent a second time)
_decoded_tables: dict[bytes, dict] = {}  # encoded nested table -> decoded (never handed out)
_IMMUTABLE_LEAVES = frozenset((str, bytes, int, bool, type(None)))
_TEXT_LEAVES = frozenset((str, type(None)))  # == between these implies the same encoding


def _encode_value(pieces: list, value: Any) -> int:
    t = type(value)
    if t is str:
        data = value.encode("UTF-8")
        pieces.append(_pack_cI(b"S", len(data)))
        pieces.append(data)
        return 5 + len(data)
    if t is UInt32:
        pieces.append(_pack_cI(b"i", value))
        return 5
    if t is dict:
        return _encode_nested_table(pieces, value)
    return _pika_encode_value(pieces, value)


def _encode_table(pieces: list, table: Any) -> int:
    table = table or {}
    length_index = len(pieces)
    pieces.append(None)
    size = 0
    for key, value in table.items():
        data = key if isinstance(key, bytes) else key.encode("UTF-8")
        n = len(data)
        if n > 255:
            raise pika.exceptions.ShortStringTooLong(data)
        pieces.append(_pack_B(n))
        pieces.append(data)
        size += 1 + n + _encode_value(pieces, value)
    pieces[length_index] = _pack_I(size)
    return size + 4


def _plain_table(table: dict, leaves: frozenset) -> bool:
    """Only str keys, leaves of the given types and nested plain dicts of the same kind.

    With text leaves (str, None), equality with a snapshot proves that a table would encode to
    the same bytes (unlike e.g. 1 == True == 1.0); with immutable leaves a copy of the nesting
    is a complete copy.
    """
    for key, value in table.items():
        if type(key) is not str:
            return False
        if type(value) is dict:
            if not _plain_table(value, leaves):
                return False
        elif type(value) not in leaves:
            return False
    return True


def _copy_table(table: dict) -> dict:
    return {k: (_copy_table(v) if type(v) is dict else v) for k, v in table.items()}


def _encode_nested_table(pieces: list, table: dict) -> int:
    key = id(table)
    hit = _encoded_tables.get(key)
    if hit is not None and hit[0] is table and table == hit[1]:
        pieces.append(hit[2])
        return len(hit[2])
    sub: list = [b"F"]
    _encode_table(sub, table)
    data = b"".join(sub)
    if (hit is not None and hit[0] is table) or _seen_tables.get(key) is table:
        if _plain_table(table, _TEXT_LEAVES):  # equality then detects every change
            if len(_encoded_tables) >= _TABLE_CACHE_SIZE:
                _encoded_tables.clear()
            _encoded_tables[key] = (table, _copy_table(table), data)
    else:
        if len(_seen_tables) >= _TABLE_CACHE_SIZE:
            _seen_tables.clear()
        _seen_tables[key] = table
    pieces.append(data)
    return len(data)


def _decode_table(encoded: bytes, offset: int) -> tuple[dict, int]:
    result = {}
    tablesize = _unpack_I(encoded, offset)[0]
    offset += 4
    limit = offset + tablesize
    while offset < limit:
        length = _unpack_B(encoded, offset)[0]
        offset += 1
        key = encoded[offset:offset + length]
        try:
            key = key.decode("utf8")
        except UnicodeDecodeError:
            pass
        offset += length
        kind = encoded[offset:offset + 1]
        if kind == b"S":
            length = _unpack_I(encoded, offset + 1)[0]
            offset += 5
            value = encoded[offset:offset + length]
            try:
                value = value.decode("utf8")
            except UnicodeDecodeError:
                pass
            offset += length
        elif kind == b"i":
            value = _unpack_I(encoded, offset + 1)[0]
            offset += 5
        elif kind == b"F":
            start = offset + 1
            end = start + 4 + _unpack_I(encoded, start)[0]
            raw = encoded[start:end]
            known = _decoded_tables.get(raw)
            if known is not None:
                value, offset = _copy_table(known), end
            else:
                value, offset = _decode_table(encoded, start)
                if offset == end and _plain_table(value, _IMMUTABLE_LEAVES):
                    if len(_decoded_tables) >= _TABLE_CACHE_SIZE:
                        _decoded_tables.clear()
                    _decoded_tables[raw] = _copy_table(value)
        else:
            value, offset = _pika_decode_value(encoded, offset)
        result[key] = value
    return result, offset


pika.data.encode_value = _encode_value
pika.data.encode_table = _encode_table
pika.data.decode_table = _decode_table

# a binding key that means "whatever name the broker gave this queue" (reply queues)
OWN_NAME = object()

MessageCallback = Callable[[str, bytes, Any, "Ack | None"], None]


class Ack:
    """Acknowledges one delivery of a manual-ack consumer; call it on the event loop's thread.

    ``ack()`` acknowledges this delivery, ``ack(multiple=True)`` also every earlier unacknowledged
    delivery of the same channel (one frame for a whole batch). After a reconnect the channel is
    a new one: acknowledging a delivery of the old channel does nothing, because the broker has
    already put that message back in its queue and will deliver it again.
    """

    __slots__ = ("channel", "tag")

    def __init__(self, channel: Any, tag: int) -> None:
        self.channel = channel
        self.tag = tag

    def __call__(self, multiple: bool = False) -> None:
        if self.channel.is_open:
            self.channel.basic_ack(self.tag, multiple)


@dataclass
class BrokerAddress:
    host: str = "localhost"
    port: int = 5672
    username: str = "guest"
    password: str = field(default="guest", repr=False)
    vhost: str = "/"

    def __str__(self) -> str:  # never the password
        return f"amqp://{self.username}@{self.host}:{self.port}{self.vhost}"


@dataclass(eq=False)
class Queue:
    """A queue this process declared; `name` may change after a reconnect (server-named queues)."""

    requested_name: str
    exclusive: bool = True
    auto_delete: bool = True
    durable: bool = False
    name: str = ""
    bindings: list[tuple[str, Any]] = field(default_factory=list)
    consumer: MessageCallback | None = None
    no_ack: bool = True
    prefetch: int = 0
    consumer_tag: str | None = None
    on_renamed: list[Callable[[str], None]] = field(default_factory=list)


class Connection:
    """An asyncio connection to RabbitMQ with remembered topology and automatic reconnection.

    All methods must be called from the event loop's thread.
    """

    def __init__(self, address: BrokerAddress, *, max_connection_attempts: int = 10,
                 name: str = "dripline", prefetch: int = 0,
                 reconnect: bool = True, heartbeat_s: int = 60) -> None:
        self.address = address
        self.max_connection_attempts = max(1, int(max_connection_attempts))
        self.name = name
        self.prefetch = prefetch
        self.reconnect = reconnect
        self.heartbeat_s = heartbeat_s
        self._conn: AsyncioConnection | None = None
        self._channel = None
        self._exchanges: list[str] = []
        self._queues: list[Queue] = []
        self._pending: set[asyncio.Future] = set()
        self._closing = False
        self._ready = asyncio.Event()
        self._reconnect_task: asyncio.Task | None = None
        self._reopen_task: asyncio.Task | None = None
        self.on_return: Callable[[Any, str], None] | None = None
        self.on_lost: list[Callable[[BaseException], None]] = []
        self.on_restored: list[Callable[[], Awaitable[None] | None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connected_once = False

    # -------------------------------------------------------------- connect / close
    @property
    def is_open(self) -> bool:
        return self._ready.is_set()

    async def connect(self, timeout_s: float | None = None) -> None:
        """Open the connection, retrying with back-off up to max_connection_attempts.

        `timeout_s` bounds the whole attempt (a one-shot client such as dl-agent must give up
        within its request timeout, not after ten back-off rounds). A broker host name that does
        not resolve fails at once: retrying cannot fix a typo.
        """
        self._loop = asyncio.get_running_loop()
        self._closing = False
        deadline = None if not timeout_s else self._loop.time() + timeout_s
        await self._check_host_resolves(timeout_s)
        await self._connect_with_retry(self.max_connection_attempts, deadline, timeout_s)
        self.connected_once = True

    async def _check_host_resolves(self, timeout_s: float | None) -> None:
        """ConnectionError_ at once for a host name that does not exist (EAI_NONAME); a temporary
        resolver failure (EAI_AGAIN) is left to the retry loop."""
        host = self.address.host
        try:
            await asyncio.wait_for(self._loop.getaddrinfo(host, self.address.port, type=socket.SOCK_STREAM),
                                   timeout_s or None)
        except socket.gaierror as err:
            if err.errno in _UNKNOWN_HOST_ERRNOS:
                raise ConnectionError_(
                    f"cannot connect to the broker: the host name {host!r} does not resolve "
                    f"({err.strerror}). Set the host with -b/--broker or `broker:` in dripline_mesh"
                ) from None
        except (asyncio.TimeoutError, OSError):
            pass  # the connection attempts below report it

    async def _connect_with_retry(self, attempts: int | None, deadline: float | None = None,
                                  budget_s: float | None = None) -> None:
        n = 0
        loop = asyncio.get_running_loop()
        while True:
            n += 1
            try:
                if deadline is None:
                    await self._open_once()
                else:
                    try:
                        await asyncio.wait_for(self._open_once(), max(deadline - loop.time(), 0.001))
                    except asyncio.TimeoutError:
                        raise ConnectionError_("no answer in time") from None
                if n > 1:
                    logger.info("connected to %s after %d attempts", self.address, n)
                return
            except _HardConnectError as err:
                raise ConnectionError_(str(err)) from None
            except ConnectionError_ as err:
                if self._closing:
                    raise
                delay = min(0.1 * 2 ** n, 5.0)
                out_of_time = deadline is not None and loop.time() + delay >= deadline
                if (attempts is not None and n >= attempts) or out_of_time:
                    within = f" within {budget_s:g} s" if out_of_time and budget_s else ""
                    raise ConnectionError_(
                        f"cannot connect to the broker at {self.address} after {n} attempt(s){within}: "
                        f"{err.message}. Is RabbitMQ running there? (set the host with -b/--broker, "
                        "the port with -p/--port)"
                    ) from None
                # INFO, not WARNING: the final error says what happened; a one-shot command
                # should print one line, not one per back-off round (-v shows them)
                logger.info("connection attempt %d%s to %s failed (%s); retrying in %.1f s",
                            n, f"/{attempts}" if attempts else "", self.address, err.message, delay)
                await asyncio.sleep(delay)

    async def _open_once(self) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future = loop.create_future()
        a = self.address
        params = pika.ConnectionParameters(
            host=a.host, port=a.port, virtual_host=a.vhost,
            credentials=pika.PlainCredentials(a.username, a.password),
            heartbeat=self.heartbeat_s, frame_max=131072, connection_attempts=1,
            socket_timeout=5, stack_timeout=10, blocked_connection_timeout=30,
            client_properties={"connection_name": self.name, "product": "dripline-python (pure)"},
        )

        def on_open(conn):
            if not opened.done():
                opened.set_result(conn)

        def on_open_error(conn, err):
            if not opened.done():
                opened.set_exception(_classify_open_error(err, a))

        try:
            conn = AsyncioConnection(params, on_open_callback=on_open,
                                     on_open_error_callback=on_open_error,
                                     on_close_callback=self._on_connection_closed,
                                     custom_ioloop=loop)
        except Exception as err:  # e.g. name resolution raised synchronously
            raise ConnectionError_(str(err)) from None
        try:
            await opened
        except asyncio.CancelledError:
            conn.close()
            raise
        self._conn = conn
        self._channel = await self._open_channel()
        await self._replay_topology()
        self._ready.set()

    async def _open_channel(self):
        fut = self._loop.create_future()
        self._conn.channel(on_open_callback=lambda ch: fut.done() or fut.set_result(ch))
        channel = await self._wait(fut)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_returned)
        if self.prefetch:
            await self._call(channel.basic_qos, prefetch_count=self.prefetch)
        return channel

    async def close(self) -> None:
        """Close for good: no reconnect; cancel consumers and let auto-delete queues go."""
        self._closing = True
        tasks = [t for t in (self._reconnect_task, self._reopen_task)
                 if t is not None and not t.done() and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:  # let them finish before the loop may be closed (no "Task was destroyed")
            await asyncio.gather(*tasks, return_exceptions=True)
        self._ready.clear()
        conn, self._conn = self._conn, None
        if conn is not None and conn.is_open:
            done = self._loop.create_future()
            self._close_waiter = done
            try:
                conn.close()
                await asyncio.wait_for(done, 5)
            except (asyncio.TimeoutError, Exception):  # closing is best effort
                pass
        self._fail_pending(ConnectionError_("connection closed"))

    # -------------------------------------------------------------- failure handling
    def _on_connection_closed(self, conn, reason) -> None:
        waiter = getattr(self, "_close_waiter", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if conn is not self._conn:
            return  # a half-open attempt; its error was reported by on_open_error
        self._ready.clear()
        self._channel = None
        if self._closing:
            return
        err = ConnectionError_(f"connection to the broker at {self.address} lost: {reason}")
        logger.warning("%s", err.message)
        self._fail_pending(err)
        for cb in list(self.on_lost):
            try:
                cb(err)
            except Exception:
                logger.exception("error in connection-lost callback")
        reconnecting = self._reconnect_task is not None and not self._reconnect_task.done()
        if self.reconnect and self.connected_once and not reconnecting:
            self._reconnect_task = self._loop.create_task(self._reconnect_forever())

    def _on_channel_closed(self, channel, reason) -> None:
        if channel is not self._channel or self._closing:
            return
        # a channel-level error (e.g. a queue locked by another connection); the connection lives on
        logger.debug("channel closed: %s", reason)
        self._channel = None
        self._ready.clear()
        err = _channel_error(reason)
        self._fail_pending(err)
        if self._conn is not None and self._conn.is_open:
            reopening = self._reopen_task is not None and not self._reopen_task.done()
            if not reopening:
                self._reopen_task = self._loop.create_task(self._reopen_channel())

    async def _reopen_channel(self) -> None:
        try:
            self._channel = await self._open_channel()
            await self._replay_topology()
            self._ready.set()
        except DriplineError as err:
            logger.error("could not reopen the AMQP channel: %s", err.message)
            if self._conn is not None and self._conn.is_open:
                self._conn.close()

    async def _reconnect_forever(self) -> None:
        while not self._closing:
            try:
                await self._connect_with_retry(None)
            except ConnectionError_ as err:
                logger.error("%s", err.message)
                await asyncio.sleep(5)
                continue
            logger.info("reconnected to %s; queues and bindings restored", self.address)
            for cb in list(self.on_restored):
                try:
                    res = cb()
                    if asyncio.iscoroutine(res):
                        await res
                except Exception:
                    logger.exception("error in connection-restored callback")
            return

    def _fail_pending(self, err: BaseException) -> None:
        pending, self._pending = self._pending, set()
        for fut in pending:
            if not fut.done():
                fut.set_exception(err)

    def _on_returned(self, channel, method, properties, body) -> None:
        text = f"{method.reply_code} {method.reply_text}: no queue is bound to routing key " \
               f"'{method.routing_key}' on exchange '{method.exchange}'"
        if self.on_return is not None:
            self.on_return(properties, text)
        else:
            logger.warning("message returned by the broker: %s", text)

    # -------------------------------------------------------------- awaiting pika callbacks
    async def _wait(self, fut: asyncio.Future, timeout: float = 30):
        self._pending.add(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise ConnectionError_("the broker did not answer within %s s" % timeout) from None
        finally:
            self._pending.discard(fut)

    async def _call(self, method, *args, **kwargs):
        fut = self._loop.create_future()
        method(*args, callback=lambda frame: fut.done() or fut.set_result(frame), **kwargs)
        return await self._wait(fut)

    async def _ensure_ready(self) -> None:
        if not self._ready.is_set():
            if self._closing or not self.connected_once:
                raise ConnectionError_(f"not connected to the broker at {self.address}")
            await asyncio.wait_for(self._ready.wait(), 60)

    # -------------------------------------------------------------- topology
    async def declare_exchange(self, name: str) -> None:
        """Declare a topic exchange exactly as dripline-cpp does (non-durable, not auto-delete)."""
        await self._ensure_ready()
        await self._declare_exchange(name)
        if name not in self._exchanges:
            self._exchanges.append(name)

    async def _declare_exchange(self, name: str) -> None:
        await self._call(self._channel.exchange_declare, exchange=name,
                         exchange_type=ExchangeType.topic, durable=False, auto_delete=False)

    async def declare_queue(self, name: str = "", *, exclusive: bool = True, auto_delete: bool = True,
                            durable: bool = False) -> Queue:
        await self._ensure_ready()
        q = Queue(requested_name=name, exclusive=exclusive, auto_delete=auto_delete, durable=durable)
        await self._declare_queue(q)
        self._queues.append(q)
        return q

    async def _declare_queue(self, q: Queue) -> None:
        frame = await self._call(self._channel.queue_declare, queue=q.requested_name,
                                 exclusive=q.exclusive, auto_delete=q.auto_delete, durable=q.durable)
        old, q.name = q.name, frame.method.queue
        if old and old != q.name:
            for cb in q.on_renamed:
                cb(q.name)

    async def queue_exists(self, name: str, timeout: float = 10) -> bool:
        """Whether a queue called `name` exists on the broker; nothing is declared or remembered.

        A passive declare: an exclusive queue held by another connection (a running service)
        counts as existing (the broker answers 405 RESOURCE_LOCKED), 404 NOT_FOUND means there is
        none. Both answers close the channel; it is reopened (topology replayed) before this
        returns, so the connection stays usable.
        """
        await self._ensure_ready()
        try:
            await self._call(self._channel.queue_declare, queue=name, passive=True)
            return True
        except DriplineError as err:
            code = getattr(err, "amqp_code", None)
            if code not in (404, 405):
                raise
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except asyncio.TimeoutError:
            raise ConnectionError_(f"the AMQP channel was not reopened within {timeout:g} s") from None
        return code == 405

    async def bind(self, queue: Queue, exchange: str, key: Any) -> None:
        """Bind `queue` to `exchange` with `key` (or OWN_NAME: the queue's own name)."""
        await self._ensure_ready()
        await self._bind(queue, exchange, key)
        queue.bindings.append((exchange, key))

    async def _bind(self, queue: Queue, exchange: str, key: Any) -> None:
        rk = queue.name if key is OWN_NAME else key
        await self._call(self._channel.queue_bind, queue=queue.name, exchange=exchange, routing_key=rk)

    async def unbind(self, queue: Queue, exchange: str, key: str) -> None:
        await self._ensure_ready()
        await self._call(self._channel.queue_unbind, queue=queue.name, exchange=exchange, routing_key=key)
        if (exchange, key) in queue.bindings:
            queue.bindings.remove((exchange, key))

    async def consume(self, queue: Queue, callback: MessageCallback, *, no_ack: bool = True,
                      prefetch: int = 0) -> None:
        """Deliver every message of `queue` to callback(routing_key, body, properties, ack).

        `ack` is None with no_ack=True; otherwise an `Ack` that acknowledges that message.
        `prefetch` (manual ack only; at most 65535) bounds how many unacknowledged messages the
        broker hands this consumer: the rest wait in the queue.
        """
        await self._ensure_ready()
        queue.consumer, queue.no_ack, queue.prefetch = callback, no_ack, prefetch
        await self._consume(queue)

    async def _consume(self, queue: Queue) -> None:
        callback, no_ack, channel = queue.consumer, queue.no_ack, self._channel

        if no_ack:
            def on_message(ch, method, properties, body):
                callback(method.routing_key, body, properties, None)
        else:
            if queue.prefetch:
                # RabbitMQ applies a non-global qos to the consumers started after it on this
                # channel; auto-ack consumers (service and reply queues) are not limited by it
                await self._call(channel.basic_qos, prefetch_count=min(queue.prefetch, 65535))

            def on_message(ch, method, properties, body):
                callback(method.routing_key, body, properties, Ack(ch, method.delivery_tag))

        fut = self._loop.create_future()
        queue.consumer_tag = channel.basic_consume(
            queue.name, on_message, auto_ack=no_ack, exclusive=queue.exclusive,
            callback=lambda frame: fut.done() or fut.set_result(frame))
        await self._wait(fut)

    async def delete_queue(self, queue: Queue) -> None:
        if queue in self._queues:
            self._queues.remove(queue)
        if not self.is_open:
            return
        if queue.consumer_tag:
            await self._call(self._channel.basic_cancel, consumer_tag=queue.consumer_tag)
        await self._call(self._channel.queue_delete, queue=queue.name)

    async def _replay_topology(self) -> None:
        for name in self._exchanges:
            await self._declare_exchange(name)
        for q in self._queues:
            await self._declare_queue(q)
            for exchange, key in q.bindings:
                await self._bind(q, exchange, key)
            if q.consumer is not None:
                await self._consume(q)

    # -------------------------------------------------------------- publishing
    def publish(self, exchange: str, wire: WireMessage) -> None:
        """Publish one AMQP message now; raise ConnectionError_ when not connected."""
        channel = self._channel
        if channel is None or not self._ready.is_set():
            raise ConnectionError_(f"not connected to the broker at {self.address}; message to "
                                   f"'{wire.routing_key}' not sent")
        p = wire.properties
        props = pika.BasicProperties(content_encoding=p.content_encoding,
                                     correlation_id=p.correlation_id, message_id=p.message_id,
                                     reply_to=p.reply_to, headers=p.headers)
        channel.basic_publish(exchange, wire.routing_key, wire.body, props, wire.mandatory)

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)


# ---------------------------------------------------------------------------------------------
# getaddrinfo errors that mean "this name does not exist" (not "the resolver is unreachable")
_UNKNOWN_HOST_ERRNOS = frozenset(e for e in (getattr(socket, "EAI_NONAME", None),
                                             getattr(socket, "EAI_NODATA", None)) if e is not None)


class _HardConnectError(Exception):
    """Retrying will not help (wrong credentials, vhost missing)."""


def _classify_open_error(err: BaseException, address: BrokerAddress) -> Exception:
    from pika import exceptions as pe
    if isinstance(err, (pe.ProbableAuthenticationError, pe.AuthenticationError)):
        return _HardConnectError(
            f"the broker at {address.host}:{address.port} refused the credentials of user "
            f"'{address.username}'. Check --username/--password, --auth-file, or the "
            "DRIPLINE_USER / DRIPLINE_PASSWORD environment variables")
    if isinstance(err, pe.ProbableAccessDeniedError):
        return _HardConnectError(f"access to virtual host '{address.vhost}' denied for user "
                                 f"'{address.username}' at {address.host}:{address.port}")
    text = str(err) or type(err).__name__
    return ConnectionError_(text)


def _channel_error(reason: BaseException) -> DriplineError:
    code = getattr(reason, "reply_code", None)
    text = getattr(reason, "reply_text", str(reason))
    if code == 405:  # RESOURCE_LOCKED: an exclusive queue owned by another connection
        err = DriplineError(f"the broker refused: {text}. Another process already holds this "
                            "queue: is a service with the same name already running?", 101)
    else:
        err = DriplineError(f"the broker closed the channel: {code} {text}", 100)
    err.amqp_code = code  # the AMQP reply code (404 NOT_FOUND, 405 RESOURCE_LOCKED, ...)
    return err
