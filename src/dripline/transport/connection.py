"""The broker connection: reconnection, topology, publishing and consuming, over pika.

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
  header fields; pika writes Python ints as signed: `dripline.transport.tables` (imported here)
  writes them as AMQP ``i`` and speeds up pika's table codec.
* The request/reply hot path (the loop's own transport under pika, one write per message, a short
  path for publish and deliver frames) is `dripline.transport.frames`.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

import pika
import pika.data
from pika.exchange_type import ExchangeType

from dripline.protocol.errors import ConfigError, ConnectionError_, DriplineError
from dripline.protocol.message import WireMessage
from dripline.transport import tables as _tables  # noqa: F401 - installs the header-table codec into pika
from dripline.transport.frames import FastConnection, LoopIOServices
from dripline.transport.ratelimit import LimitedLog

__all__ = ["Ack", "Connection", "Queue", "OWN_NAME", "BrokerAddress", "TLSOptions", "AccessRefused",
           "PublishRefused", "SECURITY_DOC"]

logger = logging.getLogger(__name__)
_log = LimitedLog(logger)  # refused publishes: reported once per kind, then counted

#: where the permission recipes live; every "refused" error points there
SECURITY_DOC = "docs/security.md"


# a binding key that means "whatever name the broker gave this queue" (reply queues)
OWN_NAME = object()

MessageCallback = Callable[[str, bytes, Any, "Ack | None"], None]

#: the longest wait between two rounds of connection attempts. It bounds how long a service stays
#: away after its broker is back (bench/faults.py: 4 s after a graceful restart with a 5 s cap);
#: a round that fails costs the broker one refused TCP connection per node
MAX_BACKOFF_S = 1.6

#: after a reconnect, the bindings are declared again after these delays (see _reassert_bindings)
REASSERT_AFTER_RECONNECT_S = (2.0, 8.0)


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


@dataclass(frozen=True)
class TLSOptions:
    """How to speak TLS (amqps) to the broker; the ``tls_*`` keys of ``dripline_mesh``.

    `verify` (default) checks the broker's certificate against `ca_file` (the system's store when
    None) and its name against `server_hostname` (the broker address connected to when None).
    `cert_file` / `key_file` present a client certificate (mutual TLS). Only paths are held here:
    nothing read from the files is ever logged or kept beyond the SSL context.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    server_hostname: str | None = None

    def context(self) -> ssl.SSLContext:
        """A client SSL context; ConfigError naming the setting when a file cannot be used."""
        try:
            if self.verify:
                ctx = ssl.create_default_context(cafile=self.ca_file)
            else:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"dripline_mesh tls_ca_file {self.ca_file!r} cannot be used as CA "
                              f"certificates: {_ssl_reason(err)}") from None
        if self.cert_file or self.key_file:
            if not self.cert_file:
                raise ConfigError("dripline_mesh tls_key_file is given without tls_cert_file")
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as err:
                # the reason names the file or the mismatch, never the key's content
                raise ConfigError(f"dripline_mesh tls_cert_file {self.cert_file!r} / tls_key_file "
                                  f"{self.key_file!r} cannot be used as the client certificate: "
                                  f"{_ssl_reason(err)}") from None
        return ctx


def _ssl_reason(err: BaseException) -> str:
    return getattr(err, "reason", None) or getattr(err, "strerror", None) or str(err) or \
        type(err).__name__


@dataclass
class BrokerAddress:
    """One broker node and the credentials used on it (a cluster is a list of these)."""

    host: str = "localhost"
    port: int = 5672
    username: str = "guest"
    password: str = field(default="guest", repr=False)
    vhost: str = "/"
    tls: TLSOptions | None = None

    def __str__(self) -> str:  # never the password
        scheme = "amqps" if self.tls is not None else "amqp"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{self.username}@{host}:{self.port}{self.vhost}"


@dataclass(eq=False)
class Queue:
    """A queue this process declared; `name` may change after a reconnect (server-named queues).

    `arguments` are the queue's x-arguments (e.g. ``{"x-queue-type": "quorum"}``); None declares
    none, so the broker's defaults apply.
    """

    requested_name: str
    exclusive: bool = True
    auto_delete: bool = True
    durable: bool = False
    arguments: dict[str, Any] | None = None
    name: str = ""
    bindings: list[tuple[str, Any]] = field(default_factory=list)
    consumer: MessageCallback | None = None
    no_ack: bool = True
    prefetch: int = 0
    consumer_tag: str | None = None
    on_renamed: list[Callable[[str], None]] = field(default_factory=list)


class Connection:
    """An asyncio connection to RabbitMQ with remembered topology and automatic reconnection.

    `address` is one broker node or several (the nodes of a cluster): connecting tries them in
    turn, starting with the first, and backs off after each round in which none answered; after
    the connection is lost, reconnecting starts with the node after the one that was lost. The
    remembered topology is declared again on whichever node answers.

    Two channels: one carries declarations, bindings, consumers and acknowledgements, the other
    carries every publish. A publish the broker refuses (a missing write permission) closes only
    the publishing channel, which is reopened at once, so consumers and reply queues live on; the
    refusal is logged (rate-limited) and handed to `on_publish_refused` callbacks.

    All methods must be called from the event loop's thread.
    """

    #: messages published while the publishing channel is being reopened, sent once it is open
    PUBLISH_BACKLOG = 10000

    def __init__(self, address: BrokerAddress | Sequence[BrokerAddress], *,
                 max_connection_attempts: int = 10, name: str = "dripline", prefetch: int = 0,
                 reconnect: bool = True, heartbeat_s: int = 60) -> None:
        addresses = [address] if isinstance(address, BrokerAddress) else list(address)
        if not addresses:
            raise ConfigError("no broker address given")
        self.addresses: list[BrokerAddress] = addresses
        self._index = 0  # the node tried next / connected to
        self.max_connection_attempts = max(1, int(max_connection_attempts))
        self.name = name
        self.prefetch = prefetch
        self.reconnect = reconnect
        self.heartbeat_s = heartbeat_s
        # pika objects (untyped), and the loop once connect() ran
        self._conn: Any = None
        self._channel: Any = None
        self._pub_channel: Any = None
        # publisher confirms, for publish_confirmed() only: a channel of their own, opened on
        # first use, so that the request/reply path carries no confirmation frames
        self._confirm_channel: Any = None
        self._confirm_opening: asyncio.Future | None = None
        self._confirm_tag = 0
        self._confirm_waiters: dict[int, asyncio.Future] = {}
        self._pub_backlog: collections.deque = collections.deque()
        self._pub_waiters: set[asyncio.Future] = set()
        self._exchanges: list[str] = []
        self._queues: list[Queue] = []
        self._pending: set[asyncio.Future] = set()
        self._closing = False
        self._ready = asyncio.Event()
        self._reconnect_task: asyncio.Task | None = None
        self._reopen_task: asyncio.Task | None = None
        self._pub_reopen_task: asyncio.Task | None = None
        self._side_tasks: set[asyncio.Task] = set()
        self.on_return: Callable[[Any, str], None] | None = None
        self.on_lost: list[Callable[[BaseException], None]] = []
        self.on_restored: list[Callable[[], Awaitable[None] | None]] = []
        self.on_publish_refused: list[Callable[["PublishRefused"], None]] = []
        self._loop: Any = None
        self.connected_once = False
        #: how often the connection was restored after a loss, and publishes the broker refused
        self.reconnects = 0
        self.publishes_refused = 0

    @property
    def address(self) -> BrokerAddress:
        """The node connected to (or tried next)."""
        return self.addresses[self._index]

    def describe_addresses(self) -> str:
        """All nodes, for messages: ``amqp://user@h1:5672/ (or h2:5672, h3:5672)``."""
        first = str(self.address)
        others = [f"{a.host}:{a.port}" for a in self.addresses if a is not self.address]
        return first + (f" (or {', '.join(others)})" if others else "")

    # -------------------------------------------------------------- connect / close
    @property
    def is_open(self) -> bool:
        return self._ready.is_set()

    async def connect(self, timeout_s: float | None = None) -> None:
        """Open the connection, retrying with back-off up to max_connection_attempts rounds.

        `timeout_s` bounds the whole attempt (a one-shot client such as dl-agent must give up
        within its request timeout, not after ten back-off rounds). A broker host name that does
        not resolve fails at once: retrying cannot fix a typo (with several nodes: when none of
        them resolves).
        """
        self._loop = asyncio.get_running_loop()
        self._closing = False
        deadline = None if not timeout_s else self._loop.time() + timeout_s
        await self._check_hosts_resolve(timeout_s)
        await self._connect_with_retry(self.max_connection_attempts, deadline, timeout_s)
        self.connected_once = True

    async def _check_hosts_resolve(self, timeout_s: float | None) -> None:
        """ConnectionError_ at once when no host name resolves (EAI_NONAME); a temporary resolver
        failure (EAI_AGAIN) is left to the retry loop, and so is a cluster in which some names
        resolve (a node that is down may have no DNS record for a while)."""
        unknown: list[tuple[str, str]] = []
        for a in self.addresses:
            try:
                await asyncio.wait_for(self._loop.getaddrinfo(a.host, a.port, type=socket.SOCK_STREAM),
                                       timeout_s or None)
            except socket.gaierror as err:
                if err.errno in _UNKNOWN_HOST_ERRNOS:
                    unknown.append((a.host, str(err.strerror)))
                    continue
                return
            except (asyncio.TimeoutError, OSError):
                return  # the connection attempts below report it
            else:
                if len(self.addresses) > 1:
                    continue
                return
        if len(unknown) == len(self.addresses):
            names = ", ".join(repr(h) for h, _ in unknown)
            raise ConnectionError_(
                f"cannot connect to the broker: the host name{'s' if len(unknown) > 1 else ''} "
                f"{names} do{'' if len(unknown) > 1 else 'es'} not resolve ({unknown[0][1]}). Set "
                "the host with -b/--broker or `broker:` in dripline_mesh")
        for host, reason in unknown:
            logger.warning("broker node %r does not resolve (%s); trying the other nodes", host, reason)

    async def _connect_with_retry(self, attempts: int | None, deadline: float | None = None,
                                  budget_s: float | None = None) -> None:
        """Try the nodes in turn from `self._index`; back off after every round that failed.

        `attempts` counts rounds (one attempt on every node); None: until it works or close()."""
        n = 0
        loop = asyncio.get_running_loop()
        nodes = len(self.addresses)
        while True:
            n += 1
            address = self.address
            try:
                if deadline is None:
                    await self._open_once(address)
                else:
                    try:
                        await asyncio.wait_for(self._open_once(address),
                                               max(deadline - loop.time(), 0.001))
                    except asyncio.TimeoutError:
                        raise ConnectionError_("no answer in time") from None
                if n > 1:
                    logger.info("connected to %s after %d attempts", address, n)
                return
            except _HardConnectError as err:
                raise ConnectionError_(str(err)) from None
            except ConnectionError_ as err:
                if self._closing:
                    raise
                self._index = (self._index + 1) % nodes
                rounds, round_done = divmod(n, nodes)
                round_done = round_done == 0
                delay = min(0.1 * 2 ** rounds, MAX_BACKOFF_S) if round_done else 0.0
                out_of_time = deadline is not None and loop.time() + delay >= deadline
                if (attempts is not None and round_done and rounds >= attempts) or out_of_time:
                    within = f" within {budget_s:g} s" if out_of_time and budget_s else ""
                    where = str(address) if nodes == 1 else \
                        f"{', '.join(f'{a.host}:{a.port}' for a in self.addresses)} (every node)"
                    raise ConnectionError_(
                        f"cannot connect to the broker at {where} after {n} attempt(s){within}: "
                        f"{err.message}. Is RabbitMQ running there? (set the host with -b/--broker, "
                        "the port with -p/--port)"
                    ) from None
                # INFO, not WARNING: the final error says what happened; a one-shot command
                # should print one line, not one per back-off round (-v shows them)
                if delay:
                    of = "" if not attempts else f"/{attempts}" if nodes == 1 else \
                        f" (round {rounds}/{attempts})"
                    logger.info("connection attempt %d%s to %s failed (%s); retrying in %.1f s",
                                n, of, address, err.message, delay)
                    await asyncio.sleep(delay)
                else:
                    logger.info("connection attempt %d to %s failed (%s); trying %s", n, address,
                                err.message, self.address)

    async def _open_once(self, a: BrokerAddress) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future = loop.create_future()
        ssl_options = None
        if a.tls is not None:
            ssl_options = pika.SSLOptions(a.tls.context(), a.tls.server_hostname or a.host)
        params = pika.ConnectionParameters(
            host=a.host, port=a.port, virtual_host=a.vhost,
            credentials=pika.PlainCredentials(a.username, a.password),
            heartbeat=self.heartbeat_s, frame_max=131072, connection_attempts=1,
            socket_timeout=5, stack_timeout=10, blocked_connection_timeout=30,
            ssl_options=ssl_options,
            client_properties={"connection_name": self.name, "product": "dripline-python (pure)"},
        )

        def on_open(conn):
            if not opened.done():
                opened.set_result(conn)

        def on_open_error(conn, err):
            if not opened.done():
                opened.set_exception(_classify_open_error(err, a))

        try:
            conn = FastConnection(params, on_open_callback=on_open,
                                  on_open_error_callback=on_open_error,
                                  on_close_callback=self._on_connection_closed,
                                  custom_ioloop=LoopIOServices(loop))
        except Exception as err:  # e.g. name resolution raised synchronously
            raise ConnectionError_(str(err)) from None
        try:
            await opened
        except asyncio.CancelledError:
            conn.close()
            raise
        self._conn = conn
        try:
            self._channel = await self._open_channel()
            self._pub_channel = await self._open_pub_channel()
            try:
                await self._replay_topology()
            except ConnectionError_:
                raise
            except DriplineError as err:  # e.g. a queue still held through the lost connection
                raise ConnectionError_(f"declaring the queues and bindings again on {a} failed: "
                                       f"{err.message}") from None
        except BaseException:
            # half set up (e.g. the node went down again, or a declaration was refused): drop it
            self._conn = None
            self._channel = self._pub_channel = None
            if conn.is_open:
                conn.close()
            raise
        self._ready.set()
        self._flush_backlog()

    async def _open_channel(self):
        fut = self._loop.create_future()
        self._conn.channel(on_open_callback=lambda ch: fut.done() or fut.set_result(ch))
        channel = await self._wait(fut)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_consumer_cancelled)
        if self.prefetch:
            await self._call(channel.basic_qos, prefetch_count=self.prefetch)
        return channel

    async def _open_pub_channel(self):
        fut = self._loop.create_future()
        self._conn.channel(on_open_callback=lambda ch: fut.done() or fut.set_result(ch))
        channel = await self._wait(fut)
        channel.add_on_close_callback(self._on_pub_channel_closed)
        channel.add_on_return_callback(self._on_returned)
        return channel

    async def close(self) -> None:
        """Close for good: no reconnect; cancel consumers and let auto-delete queues go."""
        self._closing = True
        tasks = [t for t in (self._reconnect_task, self._reopen_task, self._pub_reopen_task,
                             *self._side_tasks)
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
        err = ConnectionError_("connection closed")
        self._fail_pending(err)
        self._fail_pub_waiters(err)
        self._fail_confirm_waiters(err)
        self._pub_backlog.clear()

    # -------------------------------------------------------------- failure handling
    def _on_connection_closed(self, conn, reason) -> None:
        waiter = getattr(self, "_close_waiter", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if conn is not self._conn:
            return  # a half-open attempt; its error was reported by on_open_error
        self._ready.clear()
        self._channel = None
        self._pub_channel = None
        self._confirm_channel = None
        self._fail_confirm_waiters(ConnectionError_(
            f"connection to the broker at {self.address} lost before the broker confirmed the "
            "message; it may or may not have been taken"))
        if self._closing:
            return
        err = ConnectionError_(f"connection to the broker at {self.address} lost: {reason}")
        logger.warning("%s", err.message)
        self._fail_pending(err)
        self._fail_pub_waiters(err)
        if self._pub_backlog:
            logger.warning("%d messages waiting for the publishing channel were not sent",
                           len(self._pub_backlog))
            self._pub_backlog.clear()
        for cb in list(self.on_lost):
            try:
                cb(err)
            except Exception:
                logger.exception("error in connection-lost callback")
        if len(self.addresses) > 1:  # the node just lost is the least likely to answer now
            self._index = (self._index + 1) % len(self.addresses)
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
            self._flush_backlog()
        except DriplineError as err:
            logger.error("could not reopen the AMQP channel: %s", err.message)
            if self._conn is not None and self._conn.is_open:
                self._conn.close()

    def _on_pub_channel_closed(self, channel, reason) -> None:
        if channel is not self._pub_channel or self._closing:
            return
        self._pub_channel = None
        code = getattr(reason, "reply_code", None)
        if not isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            return  # the connection went away with it: handled by _on_connection_closed
        # the broker closes a channel on which a publish was refused: a permission (403), an
        # exchange that does not exist (404); the frames after the refused one are discarded
        refused = PublishRefused.from_reason(code, getattr(reason, "reply_text", str(reason)),
                                             self.address)
        self.publishes_refused += 1
        _log.warning(("publish refused", code, refused.exchange, refused.topic), "%s",
                     refused.message)
        self._fail_pub_waiters(refused)
        for cb in list(self.on_publish_refused):
            try:
                cb(refused)
            except Exception:
                logger.exception("error in publish-refused callback")
        if self._conn is not None and self._conn.is_open:
            reopening = self._pub_reopen_task is not None and not self._pub_reopen_task.done()
            if not reopening:
                self._pub_reopen_task = self._loop.create_task(self._reopen_pub_channel())

    async def _reopen_pub_channel(self) -> None:
        try:
            self._pub_channel = await self._open_pub_channel()
        except DriplineError as err:
            logger.error("could not reopen the publishing channel: %s", err.message)
            if self._conn is not None and self._conn.is_open:
                self._conn.close()
            return
        self._flush_backlog()

    def _flush_backlog(self) -> None:
        backlog = self._pub_backlog
        while backlog and self._pub_channel is not None and self._ready.is_set():
            exchange, wire = backlog.popleft()
            self._basic_publish(exchange, wire)

    def _on_consumer_cancelled(self, frame: Any) -> None:
        """The broker ended one of our consumers: its queue was deleted (by an operator, or by a
        cluster cleaning up after a lost node). Declare it, bind it and consume again."""
        tag = frame.method.consumer_tag
        queue = next((q for q in self._queues if q.consumer_tag == tag), None)
        if queue is None or self._closing:
            return
        logger.warning("the broker cancelled the consumer of the queue '%s' (the queue was "
                       "deleted); declaring it again", queue.name)
        queue.consumer_tag = None
        self._spawn(self._restore_queue(queue))

    async def _restore_queue(self, queue: Queue) -> None:
        try:
            await self._replay_queue(queue)
        except DriplineError as err:
            logger.error("could not declare the queue '%s' again: %s", queue.name, err.message)

    async def _reassert_bindings(self) -> None:
        """Bind every queue again a little after a reconnect (binding is idempotent).

        When a cluster node is lost, the others remove its queues' bindings by queue *name*; if
        this process was quicker and had already declared its queues again on another node, that
        cleanup can take the new bindings with it, and requests would find no route.
        """
        for delay in REASSERT_AFTER_RECONNECT_S:
            await asyncio.sleep(delay)
            if self._closing or not self._ready.is_set():
                return
            try:
                for queue in list(self._queues):
                    for exchange, key in list(queue.bindings):
                        await self._bind(queue, exchange, key)
            except DriplineError as err:
                logger.debug("binding again after a reconnect failed: %s", err.message)
                return

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _reconnect_forever(self) -> None:
        while not self._closing:
            try:
                await self._connect_with_retry(None)
            except ConnectionError_ as err:
                logger.error("%s", err.message)
                await asyncio.sleep(5)
                continue
            self.reconnects += 1
            logger.info("reconnected to %s; queues and bindings restored", self.address)
            self._spawn(self._reassert_bindings())
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

    def _fail_pub_waiters(self, err: BaseException) -> None:
        waiters, self._pub_waiters = self._pub_waiters, set()
        for fut in waiters:
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

    async def _call(self, method, *args, what: str | None = None, **kwargs):
        """Call a synchronous AMQP method and await its answer. `what` names the operation
        (``declare queue 'x'``): a refusal (403 ACCESS_REFUSED) is then raised as AccessRefused
        saying which operation was refused and where the permission recipes are."""
        fut = self._loop.create_future()
        method(*args, callback=lambda frame: fut.done() or fut.set_result(frame), **kwargs)
        try:
            return await self._wait(fut)
        except DriplineError as err:
            if what is not None and getattr(err, "amqp_code", None) == 403:
                raise AccessRefused.for_operation(what, err, self.address) from None
            raise

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
                         exchange_type=ExchangeType.topic, durable=False, auto_delete=False,
                         what=f"declare the exchange '{name}'")

    async def declare_queue(self, name: str = "", *, exclusive: bool = True, auto_delete: bool = True,
                            durable: bool = False, arguments: dict[str, Any] | None = None) -> Queue:
        await self._ensure_ready()
        q = Queue(requested_name=name, exclusive=exclusive, auto_delete=auto_delete, durable=durable,
                  arguments=dict(arguments) if arguments else None)
        await self._declare_queue(q)
        self._queues.append(q)
        return q

    async def _declare_queue(self, q: Queue) -> None:
        what = f"declare the queue '{q.requested_name}'" if q.requested_name else \
            "declare a reply queue (named amq.gen-... by the broker)"
        frame = await self._call(self._channel.queue_declare, queue=q.requested_name,
                                 exclusive=q.exclusive, auto_delete=q.auto_delete, durable=q.durable,
                                 arguments=q.arguments, what=what)
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

    async def queue_depth(self, name: str, timeout: float = 5) -> tuple[int, int] | None:
        """(messages ready, consumers) of queue `name` as the broker reports it now, or None when
        it cannot say (no such queue, not connected). Asked on a channel of its own, opened and
        closed for the purpose, so that a missing queue disturbs nothing else."""
        conn = self._conn
        if conn is None or not conn.is_open or not self._ready.is_set():
            return None
        loop = self._loop
        opened = loop.create_future()
        conn.channel(on_open_callback=lambda ch: opened.done() or opened.set_result(ch))
        try:
            channel = await asyncio.wait_for(opened, timeout)
        except asyncio.TimeoutError:
            return None
        answer = loop.create_future()
        channel.add_on_close_callback(lambda ch, reason: answer.done() or answer.set_result(None))
        try:
            channel.queue_declare(name, passive=True,
                                  callback=lambda frame: answer.done() or answer.set_result(frame))
            frame = await asyncio.wait_for(answer, timeout)
        except (asyncio.TimeoutError, pika.exceptions.AMQPError):
            frame = None
        finally:
            if channel.is_open:
                channel.close()
        if frame is None:
            return None
        return int(frame.method.message_count), int(frame.method.consumer_count)

    async def bind(self, queue: Queue, exchange: str, key: Any) -> None:
        """Bind `queue` to `exchange` with `key` (or OWN_NAME: the queue's own name)."""
        await self._ensure_ready()
        await self._bind(queue, exchange, key)
        queue.bindings.append((exchange, key))

    async def _bind(self, queue: Queue, exchange: str, key: Any) -> None:
        rk = queue.name if key is OWN_NAME else key
        await self._call(self._channel.queue_bind, queue=queue.name, exchange=exchange, routing_key=rk,
                         what=f"bind the queue '{queue.name}' to the exchange '{exchange}' with the "
                              f"key '{rk}'")

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
        if callback is None:
            raise ValueError(f"queue {queue.name!r} has no consumer callback")

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
        try:
            await self._wait(fut)
        except DriplineError as err:
            if getattr(err, "amqp_code", None) == 403:
                raise AccessRefused.for_operation(f"consume from the queue '{queue.name}'", err,
                                                  self.address) from None
            raise

    async def delete_queue(self, queue: Queue) -> None:
        if queue in self._queues:
            self._queues.remove(queue)
        if not self.is_open:
            return
        if queue.consumer_tag:
            await self._call(self._channel.basic_cancel, consumer_tag=queue.consumer_tag)
        await self._call(self._channel.queue_delete, queue=queue.name,
                         what=f"delete the queue '{queue.name}'")

    async def _replay_topology(self) -> None:
        for name in self._exchanges:
            await self._declare_exchange(name)
        for q in self._queues:
            await self._replay_queue(q)

    async def _replay_queue(self, q: Queue) -> None:
        """Declare `q` again with its bindings and its consumer (after a reconnect or a delete)."""
        await self._declare_queue(q)
        for exchange, key in q.bindings:
            await self._bind(q, exchange, key)
        if q.consumer is not None:
            await self._consume(q)

    # -------------------------------------------------------------- publishing
    def publish(self, exchange: str, wire: WireMessage) -> None:
        """Publish one AMQP message now; raise ConnectionError_ when not connected.

        While the publishing channel is being reopened after a refused publish (a millisecond
        or so), messages wait in a bounded backlog and go out once it is open.
        """
        if self._channel is None or not self._ready.is_set():
            raise ConnectionError_(f"not connected to the broker at {self.address}; message to "
                                   f"'{wire.routing_key}' not sent")
        if self._pub_channel is None:
            if len(self._pub_backlog) >= self.PUBLISH_BACKLOG:
                raise ConnectionError_(f"the publishing channel to {self.address} is being reopened "
                                       f"and {self.PUBLISH_BACKLOG} messages already wait; message "
                                       f"to '{wire.routing_key}' not sent")
            self._pub_backlog.append((exchange, wire))
            return
        if self._pub_backlog:
            self._flush_backlog()
        self._basic_publish(exchange, wire)

    def _basic_publish(self, exchange: str, wire: WireMessage) -> None:
        self._conn.publish(self._pub_channel, exchange, wire.routing_key, wire.body,
                           wire.properties, wire.mandatory)

    async def confirm_published(self, timeout: float = 10) -> None:
        """Return once the broker has processed everything published so far, or raise the refusal.

        One round trip on the publishing channel: the broker handles a channel's frames in
        order, so an answer means the earlier publishes were accepted, and a refused one closes
        the channel before the answer (PublishRefused). For one-shot senders (``dl-agent
        alert``), which would otherwise exit 0 without knowing.
        """
        await self._ensure_ready()
        deadline = self._loop.time() + timeout
        while self._pub_channel is None or self._pub_backlog:
            if self._loop.time() > deadline:
                raise ConnectionError_("the publishing channel was not reopened in time")
            await asyncio.sleep(0.005)
        fut = self._loop.create_future()
        self._pub_waiters.add(fut)
        try:
            self._pub_channel.basic_qos(prefetch_count=0,
                                        callback=lambda frame: fut.done() or fut.set_result(frame))
            await asyncio.wait_for(fut, max(deadline - self._loop.time(), 0.001))
        except asyncio.TimeoutError:
            raise ConnectionError_(f"the broker did not confirm the publish within {timeout:g} s") \
                from None
        finally:
            self._pub_waiters.discard(fut)

    async def publish_confirmed(self, exchange: str, wire: WireMessage, timeout: float = 10) -> None:
        """Publish one AMQP message and return once the broker has confirmed it (publisher
        confirms): for a quorum queue, once a majority of its nodes hold it.

        Raises PublishRefused when the broker refused it (a permission, a negative
        confirmation), and ConnectionError_ when the connection was lost or no confirmation came
        within `timeout`: the message may then or may not have been taken, so a sender that must
        not lose it sends it again with the same message id (a deduplicating logger stores it
        once).
        """
        await self._ensure_ready()
        channel = self._confirm_channel
        if channel is None:
            channel = await self._open_confirm_channel()
        self._confirm_tag += 1
        tag = self._confirm_tag
        fut = self._loop.create_future()
        self._confirm_waiters[tag] = fut
        try:
            p = wire.properties
            channel.basic_publish(exchange, wire.routing_key, wire.body,
                                  pika.BasicProperties(content_encoding=p.content_encoding,
                                                       correlation_id=p.correlation_id,
                                                       message_id=p.message_id, reply_to=p.reply_to,
                                                       headers=p.headers), wire.mandatory)
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise ConnectionError_(f"the broker did not confirm the message to '{wire.routing_key}' "
                                   f"within {timeout:g} s; it may or may not have been taken") from None
        finally:
            self._confirm_waiters.pop(tag, None)

    async def _open_confirm_channel(self) -> Any:
        if self._confirm_opening is not None:  # another caller is opening it
            return await asyncio.shield(self._confirm_opening)
        self._confirm_opening = opening = self._loop.create_future()
        try:
            fut = self._loop.create_future()
            self._conn.channel(on_open_callback=lambda ch: fut.done() or fut.set_result(ch))
            channel = await self._wait(fut)
            channel.add_on_close_callback(self._on_confirm_channel_closed)
            channel.add_on_return_callback(self._on_returned)
            await self._call(channel.confirm_delivery, self._on_confirmation)
            self._confirm_tag = 0  # delivery tags count from 1 on every channel
            self._confirm_channel = channel
            opening.set_result(channel)
            return channel
        except BaseException as err:
            opening.set_exception(err)
            opening.exception()  # retrieved: other waiters get it through shield
            raise
        finally:
            self._confirm_opening = None

    def _on_confirmation(self, frame: Any) -> None:
        method = frame.method
        tag, multiple = int(method.delivery_tag), bool(method.multiple)
        nack = isinstance(method, pika.spec.Basic.Nack)
        tags = [t for t in self._confirm_waiters if t <= tag] if multiple else [tag]
        for t in tags:
            fut = self._confirm_waiters.get(t)
            if fut is None or fut.done():
                continue
            if nack:
                fut.set_exception(PublishRefused(f"the broker at {self.address.host}:"
                                                 f"{self.address.port} could not take the message "
                                                 "(negative confirmation); send it again", None))
            else:
                fut.set_result(None)

    def _on_confirm_channel_closed(self, channel: Any, reason: BaseException) -> None:
        if channel is not self._confirm_channel:
            return
        self._confirm_channel = None
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            refused = PublishRefused.from_reason(getattr(reason, "reply_code", None),
                                                 getattr(reason, "reply_text", str(reason)),
                                                 self.address)
            self.publishes_refused += 1
            _log.warning(("publish refused", refused.amqp_code, refused.exchange, refused.topic),
                         "%s", refused.message)
            self._fail_confirm_waiters(refused)
        else:
            self._fail_confirm_waiters(ConnectionError_(
                f"the channel to {self.address} closed before the broker confirmed the message; "
                "it may or may not have been taken"))

    def _fail_confirm_waiters(self, err: BaseException) -> None:
        waiters, self._confirm_waiters = self._confirm_waiters, {}
        for fut in waiters.values():
            if not fut.done():
                fut.set_exception(err)


# ---------------------------------------------------------------------------------------------
# getaddrinfo errors that mean "this name does not exist" (not "the resolver is unreachable")
_UNKNOWN_HOST_ERRNOS = frozenset(e for e in (getattr(socket, "EAI_NONAME", None),
                                             getattr(socket, "EAI_NODATA", None)) if e is not None)


class _HardConnectError(Exception):
    """Retrying will not help (wrong credentials, vhost missing, a certificate not accepted)."""


class AccessRefused(ConnectionError_):
    """The broker refused an operation for lack of permission (AMQP 403 ACCESS_REFUSED).

    Raised by the declaration, binding or consume it refused, naming that operation, the user and
    where the permission recipes are. `amqp_code` is 403.
    """

    amqp_code = 403

    @classmethod
    def for_operation(cls, what: str, err: DriplineError, address: BrokerAddress) -> "AccessRefused":
        reason = err.message.removeprefix("the broker closed the channel: ")
        return cls(f"the broker at {address.host}:{address.port} refused to {what} ({reason}): "
                   f"user '{address.username}' lacks the permission for it on virtual host "
                   f"'{address.vhost}'. See the permission recipe of this role in {SECURITY_DOC}")


_TOPIC_RE = re.compile(r"access to topic '(?P<topic>[^']*)' in exchange '(?P<exchange>[^']*)'")
_EXCHANGE_RE = re.compile(r"(?:access to|no) exchange '(?P<exchange>[^']*)'")


class PublishRefused(ConnectionError_):
    """The broker refused a published message (it closed the publishing channel).

    `exchange` and `topic` (the routing key, when a topic permission refused it) are parsed from
    the broker's reason where it names them, else empty; `amqp_code` is the broker's reply code
    (403 for a permission, 404 for an exchange that does not exist). The return code is 403, as
    for a request that could not be delivered.
    """

    def __init__(self, message: str, amqp_code: int | None = None, exchange: str = "",
                 topic: str = "") -> None:
        super().__init__(message, 403)
        self.amqp_code = amqp_code
        self.exchange = exchange
        self.topic = topic

    @classmethod
    def from_reason(cls, code: int | None, text: str, address: BrokerAddress) -> "PublishRefused":
        topic = _TOPIC_RE.search(text)
        exchange = topic or _EXCHANGE_RE.search(text)
        ex = exchange.group("exchange") if exchange else ""
        key = topic.group("topic") if topic else ""
        what = f"a message to '{key}' on the exchange '{ex}'" if key else \
            f"a message to the exchange '{ex}'" if ex else "a published message"
        hint = (f": user '{address.username}' may not publish it. See the permission recipe of "
                f"this role in {SECURITY_DOC}") if code == 403 else ""
        return cls(f"the broker at {address.host}:{address.port} refused {what} ({code} {text})"
                   f"{hint}", code, ex, key)


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
    tls = _tls_failure(err)
    if tls is not None and address.tls is not None:
        return _HardConnectError(
            f"TLS with the broker at {address.host}:{address.port} failed: {tls}. Check tls_ca_file, "
            f"tls_server_hostname, tls_cert_file and tls_key_file in dripline_mesh ({SECURITY_DOC})")
    inner = _innermost(err)
    text = str(inner) or type(inner).__name__
    if address.tls is None and "ConnectionResetError" in repr(err) and address.port == 5671:
        text += " (port 5671 is usually a TLS listener: set broker_tls: true)"
    return ConnectionError_(text)


def _innermost(err: BaseException) -> BaseException:
    """The error inside pika's connection-workflow wrappers (whose own text is just their name)."""
    for _ in range(5):
        inner = getattr(err, "exception", None)
        if inner is None:
            many = getattr(err, "exceptions", None)
            inner = many[-1] if many else None
        if not isinstance(inner, BaseException):
            return err
        err = inner
    return err


def _chain_text(err: BaseException) -> str:
    parts, item = [], err
    for _ in range(6):
        parts.append(repr(item))
        inner = getattr(item, "exception", None)
        if inner is None:
            many = getattr(item, "exceptions", None)
            inner = many[-1] if many else None
        if not isinstance(inner, BaseException):
            break
        item = inner
    return " ".join(parts).upper()


def _tls_failure(err: BaseException) -> str | None:
    """The reason of a failed TLS handshake inside pika's error, or None if it is something else.

    A certificate the client does not trust, a name that does not match, or a broker that wants
    a client certificate it did not get: retrying the same settings cannot succeed.
    """
    # with TLS 1.3 the broker's refusal of a missing client certificate arrives after the
    # handshake, inside pika's protocol errors, as text only
    if "CERTIFICATE_REQUIRED" in repr(err).upper() or "CERTIFICATE_REQUIRED" in _chain_text(err):
        return "the broker requires a client certificate (set tls_cert_file and tls_key_file)"
    seen: list[BaseException] = []
    todo: list[Any] = [err]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or item in seen:
            continue
        seen.append(item)
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"the broker's certificate was not accepted ({item.verify_message or item.reason})"
        if isinstance(item, ssl.SSLError):
            reason = item.reason or str(item)
            if "CERTIFICATE_REQUIRED" in str(reason).upper():
                return "the broker requires a client certificate (set tls_cert_file and tls_key_file)"
            return f"handshake refused ({reason})"
        todo.extend(getattr(item, "exceptions", None) or [])
        todo.append(getattr(item, "exception", None))
        todo.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
        for attr in ("__cause__", "__context__"):
            todo.append(getattr(item, attr, None))
    return None


def _channel_error(reason: BaseException) -> DriplineError:
    code = getattr(reason, "reply_code", None)
    text = getattr(reason, "reply_text", str(reason))
    if code == 405:  # RESOURCE_LOCKED: an exclusive queue owned by another connection
        err = DriplineError(f"the broker refused: {text}. Another process already holds this "
                            "queue: is a service with the same name already running?", 101)
    else:
        err = DriplineError(f"the broker closed the channel: {code} {text}", 100)
    setattr(err, "amqp_code", code)  # the AMQP reply code (404 NOT_FOUND, 405 RESOURCE_LOCKED, ...)
    return err
