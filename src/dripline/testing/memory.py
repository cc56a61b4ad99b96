"""Services and endpoints served in memory: dripline tests without a broker.

What it is for: checking what an endpoint *answers* — its dispatch table, conversions, refusals,
alerts, calls to other endpoints — in a plain unit test, as nameko's ``worker_factory`` and
``entrypoint_hook`` do for nameko services::

    from dripline.testing import memory_service

    def test_peaches():
        with memory_service({"name": "my_store", "endpoints": [
                {"name": "peaches", "module": "KeyValueStore", "initial_value": 0.75,
                 "log_on_set": True}]}) as svc:
            assert svc.get("peaches") == {"value_raw": 0.75}
            svc.set("peaches", 0.9)
            assert svc.alerts == [("sensor_value.peaches", {"value_raw": 0.9})]

The service is built from the mapping exactly as ``dl-serve`` builds it (keywords checked by
`dripline.assembly.validation`, objects made by `dripline.assembly.objects`), its start hook
(`Service.on_start`) runs, and every request, reply and alert goes through the real codec:
encoded to AMQP bodies and headers (chunked when large), decoded, handed to the endpoint's real
dispatch table, the reply encoded and decoded again. Alerts are captured in `alerts` (and reach
the AlertConsumers of the same mesh whose `alert_keys` match); ``self.service.get(...)`` in a
handler reaches any endpoint of any service of the same `MemoryMesh`.

What it leaves out, on purpose: the broker, the event loop of the service, its worker lanes and
ack window, heartbeats and timers (nothing scheduled fires by itself: `fire` runs a job). A
handler runs on the thread that asked (``async def`` handlers on the mesh's own loop thread), so
a handler calling an endpoint of its own service does not wait for a lane as it would when
served. Test those with the broker fixtures (`dl_service`, `dl_endpoint`).
"""
from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any, Callable, Iterator, NamedTuple

from dripline.assembly.objects import create_object
from dripline.assembly.validation import check_service_config
from dripline.client.identity import now_timestamp, sender_info_for
from dripline.client.request_sender import RequestSender
from dripline.protocol.chunks import DEFAULT_MAX_MESSAGE_SIZE, Reassembler
from dripline.protocol.errors import ConfigError, ConnectionError_, DecodeError, DriplineError, UnableToSendError
from dripline.protocol.message import DEFAULT_MAX_PAYLOAD_SIZE, Message, MsgReply, MsgRequest
from dripline.service.endpoint import Endpoint
from dripline.service.runtime import Runtime
from dripline.service.service import Service

__all__ = ["Alert", "MemoryChannel", "MemoryClient", "MemoryEndpoint", "MemoryMesh",
           "MemoryService", "memory_endpoint", "memory_service"]

#: the reply_to requests carry in memory (a real client puts its reply queue's name there)
REPLY_TO = "dripline.testing.reply"

_names = itertools.count(1)


class Alert(NamedTuple):
    """An alert as the mesh carried it: compares equal to ``(routing_key, payload)``."""

    routing_key: str
    payload: Any


def _topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more."""
    words, parts = pattern.split("."), key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(words):
            return j == len(parts)
        if words[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and words[i] in ("*", parts[j]) and match(i + 1, j + 1)
    return match(0, 0)


class MemoryRuntime(Runtime):
    """A service's runtime that sends through a `MemoryMesh` instead of a broker.

    It takes over the scheduler of the runtime it replaces (so jobs scheduled while the service
    was built are kept); the scheduler is never started, so nothing fires by itself.
    """

    def __init__(self, service: Service, mesh: "MemoryMesh") -> None:
        replaced = service.runtime
        super().__init__(service, service.core, prefetch=replaced.window.size,
                         message_wait_ms=service.message_wait_ms, worker_lanes=service.worker_lanes)
        self.scheduler = replaced.scheduler
        self.mesh = mesh

    def send(self, msg: Message) -> None:
        self.mesh.publish(msg)

    def request(self, msg: MsgRequest, timeout_s: float | None) -> MsgReply:
        return self.mesh.request(msg)

    def request_all(self, msg: MsgRequest, timeout_s: float) -> list[MsgReply]:
        return self.mesh.request_all(msg)


class MemoryMesh:
    """Services served in memory, able to reach one another (see the module docstring).

    `published` holds every reply and alert a service sent (decoded), `alerts` every alert as an
    `Alert`. Set `down` to make every send and request fail with ConnectionError_, as when the
    broker is away.
    """

    def __init__(self, *, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_payload_size = max_payload_size
        self.max_message_size = max_message_size
        self.services: dict[str, Service] = {}
        self.published: list[Message] = []
        self.alerts: list[Alert] = []
        self.down = False
        self._loop_thread: Any = None

    # ---- building ----------------------------------------------------------------------------
    def add_service(self, config: Any, base_dir: str | None = None) -> "MemoryService":
        """Build a service from a mapping or YAML text (as dl-serve does), or adopt a Service that
        has not been started; its start hook runs. Returns a client bound to this mesh."""
        if isinstance(config, Service):
            service = config
        else:
            service = self._build(config, base_dir)
        self._adopt(service)
        return MemoryService(self, service)

    def add_endpoint(self, module: Any, **kwargs: Any) -> "MemoryEndpoint":
        """One endpoint alone in a service of its own: `module` names a class (as ``module:`` in
        YAML), or is a class, or an Endpoint object; `kwargs` are its keywords."""
        service_name = f"memory_{next(_names)}"
        if isinstance(module, Endpoint):
            if kwargs:
                raise TypeError("keywords are for building an endpoint, not for an Endpoint object")
            service = Service(service_name, enable_scheduling=True, heartbeat_interval_s=0,
                              dripline_mesh={"make_connection": False})
            service.add_child(module)
            name = module.name
            self.add_service(service)
        elif isinstance(module, type):
            name = kwargs.pop("name", None) or f"ep_{next(_names)}"
            service = Service(service_name, enable_scheduling=True, heartbeat_interval_s=0,
                              dripline_mesh={"make_connection": False})
            service.add_child(module(name=name, **kwargs))
            self.add_service(service)
        else:
            name = kwargs.pop("name", None) or f"ep_{next(_names)}"
            self.add_service({"name": service_name,
                              "endpoints": [{"name": name, "module": module, **kwargs}]})
        return MemoryEndpoint(self, self.services[service_name], name)

    def client(self, timeout_s: float = 10, confirm_retcodes: bool = True) -> "MemoryClient":
        return MemoryClient(self, timeout_s=timeout_s, confirm_retcodes=confirm_retcodes)

    def _build(self, config: Any, base_dir: str | None) -> Service:
        if isinstance(config, str):
            import yaml
            config = yaml.safe_load(config)
        if not isinstance(config, dict):
            raise ConfigError(f"a service configuration is a mapping, not {type(config).__name__}")
        config = dict(config)
        config.setdefault("name", "dlpy_service")
        config.setdefault("enable_scheduling", True)
        config["dripline_mesh"] = {**(config.get("dripline_mesh") or {}), "make_connection": False}
        fatal = [p for p in check_service_config(config, "in-memory service", base_dir) if p.fatal]
        if fatal:
            raise ConfigError("; ".join(str(p) for p in fatal))
        service = create_object(config, "Service", None, base_dir)
        if not isinstance(service, Service):
            raise ConfigError(f"{type(service).__name__} is not a Service class")
        return service

    def _adopt(self, service: Service) -> None:
        if service.runtime.loop is not None:
            raise DriplineError(f"service {service.name!r} has been started; give the mesh a "
                                "service that has not", 300)
        if service.name in self.services:
            raise DriplineError(f"a service named {service.name!r} is already in this mesh", 101)
        for name in (*service.sync_children, *service.async_children):
            for other in self.services.values():
                if other.endpoint(name) is not None:
                    raise DriplineError(f"endpoint {name!r} is already served by service "
                                        f"{other.name!r} in this mesh", 101)
        service.runtime = MemoryRuntime(service, self)
        service.on_start()
        self.services[service.name] = service

    # ---- what services send ------------------------------------------------------------------
    def _check_up(self, what: str) -> None:
        if self.down:
            raise ConnectionError_(f"the in-memory mesh is down; {what} not sent")

    def through_codec(self, msg: Message) -> Message:
        """`msg` encoded as it would be published (chunks included) and decoded again."""
        assembler = Reassembler(max_message_size=self.max_message_size)
        whole = None
        for wire in msg.encode(self.max_payload_size, timestamp=now_timestamp()):
            whole = assembler.feed(wire.routing_key, wire.body, wire.properties, time.monotonic())
        if whole is None:  # pragma: no cover - every chunk was fed
            raise DecodeError(f"message to {msg.routing_key!r} did not reassemble", 302)
        return whole

    def publish(self, msg: Message) -> None:
        """A reply or alert a service sent (its sender_info already stamped)."""
        self._check_up(f"message to {msg.routing_key!r}")
        sent = self.through_codec(msg)
        self.published.append(sent)
        if not sent.is_alert():
            return
        self.alerts.append(Alert(sent.routing_key, sent.payload))
        for service in list(self.services.values()):
            keys = getattr(service, "alert_keys", None)
            if keys and any(_topic_matches(k, sent.routing_key) for k in keys):
                service.runtime.dispatch(sent)

    def request(self, msg: MsgRequest) -> MsgReply:
        """Deliver a request to the endpoint it names and return the reply (UnableToSendError
        when no service of the mesh has that endpoint, as the broker reports it)."""
        self._check_up(f"request to {msg.routing_key!r}")
        msg.reply_to = msg.reply_to or REPLY_TO
        request = self.through_codec(msg)
        assert isinstance(request, MsgRequest)
        target = request.routing_key.split(".", 1)[0]
        for service in list(self.services.values()):
            endpoint = service.endpoint(target)
            if endpoint is not None:
                return self._answer(service, endpoint, request)
        raise UnableToSendError(f"nobody serves '{request.routing_key}' in this in-memory mesh")

    def request_all(self, msg: MsgRequest) -> list[MsgReply]:
        """Every service's reply to a request for its broadcast key (or to the one endpoint)."""
        self._check_up(f"request to {msg.routing_key!r}")
        msg.reply_to = msg.reply_to or REPLY_TO
        request = self.through_codec(msg)
        assert isinstance(request, MsgRequest)
        target = request.routing_key.split(".", 1)[0]
        replies = []
        for service in list(self.services.values()):
            endpoint = service.endpoint(target)
            if endpoint is not None:
                replies.append(self._answer(service, endpoint, request))
        return replies

    def _answer(self, service: Service, endpoint: Endpoint, request: MsgRequest) -> MsgReply:
        if endpoint.has_async_handlers() and endpoint.is_async_request(request):
            reply = self._run_async(endpoint.on_request_message_async(request))
        else:
            reply = endpoint.on_request_message(request)
        reply.sender_info = service.sender_info
        answered = self.through_codec(reply)
        assert isinstance(answered, MsgReply)
        return answered

    def _run_async(self, awaitable: Any) -> Any:
        if self._loop_thread is None:
            from dripline.transport.bridge import LoopThread
            self._loop_thread = LoopThread("dripline-memory")
        return self._loop_thread.run(awaitable)

    def run_job(self, action: Callable[[], Any]) -> Any:
        """Run a scheduled action now (an awaitable result is awaited on the mesh's loop)."""
        result = action()
        if hasattr(result, "__await__"):
            result = self._run_async(result)
        return result

    def close(self) -> None:
        """Stop the loop thread of ``async def`` handlers, if one was needed."""
        if self._loop_thread is not None:
            self._loop_thread.stop()
            self._loop_thread = None

    def __enter__(self) -> "MemoryMesh":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class MemoryClient(RequestSender):
    """get / set / cmd into a `MemoryMesh`, with the payload conventions and return-code checks
    of `Interface` (a non-zero code raises DriplineError unless `confirm_retcodes` is false)."""

    def __init__(self, mesh: MemoryMesh, timeout_s: float = 10, confirm_retcodes: bool = True) -> None:
        self.mesh = mesh
        self.timeout_s = timeout_s
        self.confirm_retcodes = confirm_retcodes
        self.sender_info = sender_info_for("dripline.testing")

    @property
    def alerts(self) -> list[Alert]:
        """Every alert sent in the mesh so far."""
        return self.mesh.alerts

    def send_request(self, request: MsgRequest, timeout_s: float | None = None) -> MsgReply:
        request.sender_info = self.sender_info
        return self.mesh.request(request)

    def send_request_all(self, request: MsgRequest, timeout_s: float = 1.0) -> list[MsgReply]:
        request.sender_info = self.sender_info
        return self.mesh.request_all(request)


class MemoryService(MemoryClient):
    """A client of the mesh that also holds one of its services (`service`)."""

    def __init__(self, mesh: MemoryMesh, service: Service) -> None:
        super().__init__(mesh)
        self.service = service

    def endpoint(self, name: str) -> Endpoint:
        """An endpoint object of the service (KeyError when it has none of that name)."""
        found = self.service.endpoint(name)
        if found is None:
            raise KeyError(f"service {self.service.name!r} has no endpoint {name!r}")
        return found

    @property
    def scheduled(self) -> dict[int, tuple[Callable[[], Any], float | None]]:
        """The service's scheduled jobs: {id: (action, interval in seconds or None)}."""
        return self.service.runtime.scheduler.jobs()

    def fire(self, job_id: int) -> Any:
        """Run a scheduled job now (nothing fires by itself in memory)."""
        action, _ = self.scheduled[job_id]
        return self.mesh.run_job(action)


class MemoryEndpoint(MemoryService):
    """One endpoint served in memory: get / set / cmd address it without naming it."""

    def __init__(self, mesh: MemoryMesh, service: Service, name: str) -> None:
        super().__init__(mesh, service)
        self.name = name

    @property
    def obj(self) -> Endpoint:
        """The endpoint object itself (to inspect its state)."""
        return self.endpoint(self.name)

    def get(self, specifier: str | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().get(self.name, specifier, **kwargs)

    def set(self, value: Any, specifier: str | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().set(self.name, value, specifier, **kwargs)

    def cmd(self, specifier: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().cmd(self.name, specifier, list(args), kwargs or None)


class MemoryChannel:
    """Stands in for a broker channel where a test checks acknowledgements.

    Hand `dripline.transport.connection.Ack(channel, tag)` objects to the code under test, as a
    consumer receives them; `acks` lists what was acknowledged as (delivery tag, multiple).
    After ``is_open = False`` acknowledgements do nothing, as on a channel lost in a reconnect.
    """

    def __init__(self) -> None:
        self.is_open = True
        self.acks: list[tuple[int, bool]] = []

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.acks.append((delivery_tag, multiple))


@contextlib.contextmanager
def memory_service(config: Any, base_dir: str | None = None) -> Iterator[MemoryService]:
    """Build `config` (a mapping, YAML text or an unstarted Service) in a mesh of its own and
    yield a client of it (see the module docstring)."""
    with MemoryMesh() as mesh:
        yield mesh.add_service(config, base_dir)


@contextlib.contextmanager
def memory_endpoint(module: Any, **kwargs: Any) -> Iterator[MemoryEndpoint]:
    """One endpoint (class name, class or Endpoint object; keywords) in a mesh of its own."""
    with MemoryMesh() as mesh:
        yield mesh.add_endpoint(module, **kwargs)
