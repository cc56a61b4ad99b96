"""What the live page shows: the services of a mesh, their endpoints and values, and its alerts.

`MeshWatcher` follows a mesh through the gateway's one `AsyncInterface`:

* it binds a private, exclusive queue to the alerts exchange (``#`` by default) on the
  interface's own connection, as dl-mon does; the connection re-declares and re-binds it after a
  broker restart;
* ``heartbeat.<service>`` alerts rate each service alive / late / gone with the heartbeat
  monitor's rule (age of the last heartbeat, as received here, against a warning and a critical
  threshold; 120 s and 300 s as the monitor's defaults);
* a broadcast ``ping`` every `ping_interval_s` finds services that do not send heartbeats, and
  each new service is asked ``describe`` (its endpoints), each endpoint ``describe`` and ``get``;
  a service that cannot describe itself (an older dripline) is still listed, with the endpoints
  its ``sensor_value`` alerts reveal;
* ``sensor_value.<endpoint>`` alerts update the endpoint's value and, when it is a number, a ring
  buffer of its recent values (the page's small plot);
* every other alert, ``status_message.#`` among them, goes to a bounded list of recent alerts.

Changes are pushed to `Subscriber`s as small JSON events, each serialised once whatever the
number of pages. A subscriber's queue is bounded: a page that cannot keep up is told how many
events it lost and receives a fresh snapshot, so memory stays bounded whatever a page does.

Everything read from the mesh is untrusted: names are checked and bounded, payloads shown on the
page are cut to `MAX_PAYLOAD_CHARS`, and the number of services and endpoints kept is capped.
"""
from __future__ import annotations

import asyncio
import collections
import fnmatch
import logging
import math
import re
import time
import uuid
from typing import Any, Iterable

import orjson

from dripline.client.interface import AsyncInterface
from dripline.client.request_sender import build_request
from dripline.protocol.errors import DecodeError, DriplineError
from dripline.protocol.message import Message, op_t
from dripline.transport.receiver import ChunkReceiver

__all__ = ["MeshWatcher", "Subscriber", "rate_heartbeat", "numeric_value"]

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9_\-:+@/]{1,200}$")
MAX_PAYLOAD_CHARS = 2000
MAX_DESCRIBE_BYTES = 256 * 1024
MAX_DESCRIBE_ATTEMPTS = 3
TRANSIENT_CODES = frozenset({101, 403, 404})  # connection lost, not delivered, timed out
MAX_SERVICES = 2000
MAX_ENDPOINTS = 20000
DEFAULT_HISTORY_POINTS = 300
DEFAULT_RECENT_ALERTS = 300


def rate_heartbeat(age_s: float | None, late_s: float, gone_s: float) -> str:
    """'alive', 'late' or 'gone' for a heartbeat received `age_s` ago ('unknown': none seen).

    The heartbeat monitor's rule (implementations/heartbeat_monitor.py): older than the warning
    threshold is WARNING (late), older than the critical threshold is CRITICAL (gone).
    """
    if age_s is None:
        return "unknown"
    if age_s > gone_s:
        return "gone"
    if age_s > late_s:
        return "late"
    return "alive"


def numeric_value(payload: Any) -> float | None:
    """The number to plot from a value payload: value_cal, else value_raw, else the payload."""
    if isinstance(payload, dict):
        for key in ("value_cal", "value_raw"):
            if key in payload:
                return numeric_value(payload[key])
        return None
    if isinstance(payload, bool):
        return float(payload)
    if isinstance(payload, (int, float)):
        value = float(payload)
        return value if math.isfinite(value) else None
    return None


def _bounded(payload: Any) -> Any:
    """The payload itself when its JSON is small, else a cut text of it (the page shows either)."""
    try:
        text = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return repr(payload)[:MAX_PAYLOAD_CHARS]
    if len(text) <= MAX_PAYLOAD_CHARS:
        return payload
    return text[:MAX_PAYLOAD_CHARS].decode("utf-8", "ignore") + "…"


def _worth_retrying(thing: Any) -> bool:
    """A describe that failed for a passing reason (timeout, not delivered) is asked again, a few times."""
    error = thing.describe_error or ""
    code = error.split(":", 1)[0]
    return code.isdigit() and int(code) in TRANSIENT_CODES and thing.attempts < MAX_DESCRIBE_ATTEMPTS


def _description(payload: dict) -> dict | None:
    """A describe payload to keep, or None when it is unreasonably large (a page would choke)."""
    try:
        size = len(orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS, default=str))
    except (TypeError, orjson.JSONEncodeError):
        return None
    if size > MAX_DESCRIBE_BYTES:
        logger.warning("describe of %r is %d bytes; not shown", str(payload.get("name"))[:100], size)
        return None
    return payload


def _now() -> float:
    return time.time()


class Subscriber:
    """One page's queue of serialised events (bounded; see the module documentation)."""

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self.events: list[bytes] = []
        self.dropped = 0
        self.overflowed = False
        self.wake = asyncio.Event()

    def push(self, event: bytes) -> None:
        if self.overflowed:
            self.dropped += 1
            return
        if len(self.events) >= self.max_events:
            self.overflowed = True
            self.dropped += len(self.events) + 1
            self.events.clear()
        else:
            self.events.append(event)
        self.wake.set()

    def take(self) -> list[bytes]:
        events, self.events = self.events, []
        self.wake.clear()
        return events


class _Service:
    __slots__ = ("name", "last_heartbeat", "last_heartbeat_wall", "heartbeats", "state", "last_ping",
                 "describe", "describe_error", "endpoints", "asked", "attempts")

    def __init__(self, name: str) -> None:
        self.name = name
        self.last_heartbeat: float | None = None
        self.last_heartbeat_wall: float | None = None
        self.heartbeats = 0
        self.state = "unknown"
        self.last_ping: float | None = None
        self.describe: dict | None = None
        self.describe_error: str | None = None
        self.endpoints: list[str] = []
        self.asked = False
        self.attempts = 0

    def public(self, now: float) -> dict[str, Any]:
        age = None if self.last_heartbeat is None else round(time.monotonic() - self.last_heartbeat, 1)
        return {"name": self.name, "state": self.state, "heartbeat_age_s": age,
                "last_heartbeat": self.last_heartbeat_wall, "heartbeats": self.heartbeats,
                "last_ping": self.last_ping, "describe": self.describe,
                "describe_error": self.describe_error, "endpoints": list(self.endpoints)}


class _Endpoint:
    __slots__ = ("name", "service", "describe", "describe_error", "value", "value_at", "value_source",
                 "history", "asked", "attempts")

    def __init__(self, name: str, history_points: int) -> None:
        self.name = name
        self.service: str | None = None
        self.describe: dict | None = None
        self.describe_error: str | None = None
        self.value: Any = None
        self.value_at: float | None = None
        self.value_source: str | None = None
        self.history: collections.deque[tuple[float, float]] = collections.deque(maxlen=history_points)
        self.asked = False
        self.attempts = 0

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "service": self.service, "describe": self.describe,
                "describe_error": self.describe_error, "value": self.value, "value_at": self.value_at,
                "value_source": self.value_source, "history": [list(p) for p in self.history]}


class MeshWatcher:
    """Follows a mesh for the live page (see the module documentation)."""

    def __init__(self, dl: AsyncInterface, *, alert_keys: Iterable[str] = ("#",),
                 history_points: int = DEFAULT_HISTORY_POINTS, recent_alerts: int = DEFAULT_RECENT_ALERTS,
                 late_s: float = 120.0, gone_s: float = 300.0, ping_interval_s: float = 30.0,
                 request_timeout_s: float = 5.0, max_events_per_page: int = 50000,
                 mesh_requests: int = 4, services: Iterable[str] = ("*",)) -> None:
        self.dl = dl
        self.alert_keys = [str(k) for k in alert_keys]
        # which services the page shows (shell patterns): those are described and read; the
        # others are left alone (their alerts still reach the alert stream)
        self.service_patterns = [str(p) for p in services] or ["*"]
        self.history_points = max(2, int(history_points))
        self.late_s = float(late_s)
        self.gone_s = float(gone_s)
        self.ping_interval_s = float(ping_interval_s)
        self.request_timeout_s = float(request_timeout_s)
        self.max_events_per_page = int(max_events_per_page)
        self.services: dict[str, _Service] = {}
        self.endpoints: dict[str, _Endpoint] = {}
        self.recent: collections.deque[bytes] = collections.deque(maxlen=max(1, int(recent_alerts)))
        self.subscribers: set[Subscriber] = set()
        self.alerts_received = 0
        self.undecodable = 0
        self._asking = asyncio.Semaphore(max(1, mesh_requests))
        self._tasks: set[asyncio.Task] = set()
        self._receiver: ChunkReceiver | None = None
        self._queue: Any = None
        self._heartbeat_prefix = "heartbeat"
        self._capped_warned = False
        self.started = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.dl.start()
        core = self.dl.core
        self._heartbeat_prefix = core.heartbeat_routing_key
        conn = core.connection
        self._receiver = ChunkReceiver(lambda inc: self._on_alert(inc.message),
                                       max_message_size=getattr(core, "max_message_size", None),
                                       max_pending_bytes=getattr(core, "max_pending_bytes", None),
                                       label="dl-http-server alerts")
        if conn is not None:
            self._queue = await conn.declare_queue(f"dl_http_server_{uuid.uuid4()}")
            for key in self.alert_keys:
                await conn.bind(self._queue, core.alerts_exchange, key)
            await conn.consume(self._queue, self._on_delivery)
        self._spawn(self._rating_loop())
        self._spawn(self._discovery_loop())
        self.started.set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except BaseException:
                pass
        if self._receiver is not None:
            self._receiver.close()
        conn = self.dl.core.connection
        if self._queue is not None and conn is not None:
            try:
                await conn.delete_queue(self._queue)
            except Exception as err:  # the broker may be gone already
                logger.debug("could not delete the alert queue: %s", err)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ subscribers
    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.max_events_per_page)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _emit(self, event: dict[str, Any]) -> bytes:
        data = orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS, default=str)
        for sub in self.subscribers:
            sub.push(data)
        return data

    def snapshot(self) -> dict[str, Any]:
        now = _now()
        return {"t": "snapshot", "now": now, "late_s": self.late_s, "gone_s": self.gone_s,
                "services": [s.public(now) for s in self.services.values()],
                "endpoints": [e.public() for e in self.endpoints.values()],
                "alerts": [orjson.loads(a) for a in self.recent],
                "stats": self.stats()}

    def stats(self) -> dict[str, Any]:
        return {"alerts_received": self.alerts_received, "undecodable": self.undecodable,
                "services": len(self.services), "endpoints": len(self.endpoints),
                "pages": len(self.subscribers)}

    # ------------------------------------------------------------------ alerts in
    def _on_delivery(self, routing_key: str, body: bytes, properties: Any, ack: Any) -> None:
        assert self._receiver is not None
        try:
            msg = self._receiver.feed(routing_key, body, properties)
        except DecodeError as err:
            self.undecodable += 1
            logger.debug("undecodable alert on %r: %s", str(routing_key)[:100], err.message)
            return
        if msg is not None:
            self._on_alert(msg)

    def _on_alert(self, msg: Message) -> None:
        if not msg.is_alert():
            return
        self.alerts_received += 1
        key = str(msg.routing_key or "")[:255]
        first, _, rest = key.partition(".")
        sender = msg.sender_info.get("service_name") if isinstance(msg.sender_info, dict) else None
        # "unknown": a client (dl-agent, a script) that sent an alert; not a service to list
        sender = sender if isinstance(sender, str) and sender != "unknown" and NAME_RE.match(sender) else None
        try:
            if first == self._heartbeat_prefix:
                name = rest.split(".", 1)[0] or sender
                self.heartbeat(name)
            elif first == "sensor_value" and rest and (sender is None or self.watches(sender)):
                self.note_value(rest, msg.payload, "alert", service=sender, timestamp=msg.timestamp)
            else:
                event = {"t": "alert", "rk": key, "p": _bounded(msg.payload), "ts": msg.timestamp,
                         "from": sender, "at": _now()}
                self.recent.append(self._emit(event))
        except Exception:  # one odd alert must never stop the stream
            logger.exception("error while handling the alert %r", key[:100])

    def heartbeat(self, name: str | None) -> None:
        if not name or not NAME_RE.match(name):
            return
        service = self._service(name)
        if service is None:
            return
        service.last_heartbeat = time.monotonic()
        service.last_heartbeat_wall = _now()
        service.heartbeats += 1
        before, service.state = service.state, "alive"
        self._emit({"t": "hb", "s": name, "state": "alive", "at": service.last_heartbeat_wall})
        if before != "alive":
            self._emit_service(service)

    def note_value(self, name: str, payload: Any, source: str, service: str | None = None,
                   timestamp: str | None = None) -> None:
        """Record an endpoint's value (from an alert, or a get/set the gateway answered)."""
        if not NAME_RE.match(name):
            return
        endpoint = self._endpoint(name)
        if endpoint is None:
            return
        at = _now()
        endpoint.value = _bounded(payload)
        endpoint.value_at = at
        endpoint.value_source = source
        number = numeric_value(payload)
        if source == "alert" and number is not None:
            endpoint.history.append((at, number))
        if service and endpoint.service is None:
            endpoint.service = service
            owner = self._service(service)
            if owner is not None and name not in owner.endpoints:
                owner.endpoints.append(name)
                self._emit_service(owner)
        self._emit({"t": "v", "n": name, "p": endpoint.value, "ts": timestamp, "at": at, "src": source,
                    "x": number if source == "alert" else None, "s": endpoint.service})

    # ------------------------------------------------------------------ state
    def watches(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.service_patterns)

    def _service(self, name: str) -> _Service | None:
        service = self.services.get(name)
        if service is None:
            if not self.watches(name):
                return None
            if len(self.services) >= MAX_SERVICES:
                self._warn_capped()
                return None
            service = self.services[name] = _Service(name)
            self._emit_service(service)
            if self.started.is_set():
                self._spawn(self._learn_service(service))
        return service

    def _endpoint(self, name: str) -> _Endpoint | None:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            if len(self.endpoints) >= MAX_ENDPOINTS:
                self._warn_capped()
                return None
            endpoint = self.endpoints[name] = _Endpoint(name, self.history_points)
            self._emit({"t": "ep", "e": endpoint.public()})
        return endpoint

    def _warn_capped(self) -> None:
        if not self._capped_warned:
            self._capped_warned = True
            logger.warning("more than %d services or %d endpoints seen; new names are not shown",
                           MAX_SERVICES, MAX_ENDPOINTS)

    def _emit_service(self, service: _Service) -> None:
        self._emit({"t": "svc", "s": service.public(_now())})

    def rate_all(self) -> None:
        now = time.monotonic()
        for service in self.services.values():
            age = None if service.last_heartbeat is None else now - service.last_heartbeat
            state = rate_heartbeat(age, self.late_s, self.gone_s)
            if state != service.state:
                service.state = state
                self._emit_service(service)

    async def _rating_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.rate_all()

    # ------------------------------------------------------------------ asking the mesh
    async def _ask(self, op: op_t, name: str, specifier: str | None = None,
                   payload: Any = None) -> tuple[int, str, Any]:
        async with self._asking:
            request = build_request(op, name, specifier, payload)
            reply = await self.dl.send_request(request, self.request_timeout_s)
            return reply.return_code, reply.return_message, reply.payload

    async def ping_all(self) -> list[str]:
        """Broadcast a ping; the names of the services that answered."""
        request = build_request(op_t.cmd, self.dl.broadcast_key, "ping", {"values": []})
        try:
            replies = await self.dl.send_request_all(request, min(self.request_timeout_s, 2.0))
        except DriplineError as err:
            logger.debug("broadcast ping failed: %s", err.message)
            return []
        names = []
        now = _now()
        for reply in replies:
            info = reply.sender_info if isinstance(reply.sender_info, dict) else {}
            name = info.get("service_name")
            if isinstance(name, str) and NAME_RE.match(name):
                names.append(name)
                service = self._service(name)
                if service is not None:
                    service.last_ping = now
        return names

    async def _discovery_loop(self) -> None:
        while True:
            await self.ping_all()
            for service in list(self.services.values()):
                if not service.asked:
                    self._spawn(self._learn_service(service))
            for endpoint in list(self.endpoints.values()):
                if endpoint.asked and endpoint.describe is None and _worth_retrying(endpoint):
                    endpoint.asked = False  # a describe that timed out or was not delivered
                    self._spawn(self._learn_endpoint(endpoint))
            await asyncio.sleep(self.ping_interval_s)

    async def _learn_service(self, service: _Service) -> None:
        if service.asked:
            return
        service.asked = True
        service.attempts += 1
        try:
            code, message, payload = await self._ask(op_t.cmd, service.name, "describe", {"values": []})
        except DriplineError as err:
            code, message, payload = err.return_code, err.message, None
        if code == 0 and isinstance(payload, dict):
            service.describe = _description(payload)
            service.describe_error = None
            names = payload.get("endpoints")
            for name in names if isinstance(names, list) else []:
                if isinstance(name, str) and NAME_RE.match(name) and name not in service.endpoints:
                    service.endpoints.append(name)
        else:
            service.describe_error = f"{code}: {str(message)[:200]}"
            if code in TRANSIENT_CODES and service.attempts < MAX_DESCRIBE_ATTEMPTS:
                service.asked = False  # asked again by the next discovery round
        self._emit_service(service)
        for name in list(service.endpoints):
            endpoint = self._endpoint(name)
            if endpoint is not None:
                endpoint.service = endpoint.service or service.name
                self._spawn(self._learn_endpoint(endpoint))

    async def _learn_endpoint(self, endpoint: _Endpoint) -> None:
        if endpoint.asked:
            return
        endpoint.asked = True
        endpoint.attempts += 1
        try:
            code, message, payload = await self._ask(op_t.cmd, endpoint.name, "describe", {"values": []})
        except DriplineError as err:
            code, message, payload = err.return_code, err.message, None
        if code == 0 and isinstance(payload, dict):
            endpoint.describe = _description(payload)
            endpoint.describe_error = None
        else:
            endpoint.describe_error = f"{code}: {str(message)[:200]}"
        self._emit({"t": "ep", "e": endpoint.public()})
        can_get = (endpoint.describe or {}).get("operations", {}).get("get", endpoint.describe is None)
        if can_get and endpoint.value is None:
            await self.refresh(endpoint.name)

    async def refresh(self, name: str) -> None:
        """Read an endpoint's value now (the page's "read" button, and after describe)."""
        try:
            code, _message, payload = await self._ask(op_t.get, name)
        except DriplineError as err:
            logger.debug("get %s failed: %s", name, err.message)
            return
        if code == 0:
            self.note_value(name, payload, "get")
