"""The explicit request surface (issue 9 item 1), `describe` and limits (issue 12 item 2).

Every request goes through the real dispatch of a real (dry-run) Service and its endpoints.
The service's dangerous methods are replaced on the instance by spies, so a hostile request
that reached one would be recorded (a request can never reach an instance's callables, so the
spies change nothing for the surface itself).
"""
from __future__ import annotations

import datetime
import importlib.util
import pathlib
import uuid

import pytest

from dripline.core import (Endpoint, Entity, MsgRequest, RequestSurface, Service, ThrowReply,
                           calibrate, expose, hide, op_t)
from dripline.implementations import KeyValueStore
from dripline.protocol.message import loads_payload

ROOT = pathlib.Path(__file__).resolve().parents[2]
DESCRIBE_KEYS = {"name", "kind", "class", "plugin", "version", "doc", "operations", "commands",
                 "settings", "calibration", "units", "description", "limits"}
ALLOWED_LIST = ("gettable:", "settable:", "commands:", "keys:", "indices")


class Pump(Endpoint):
    """A plugin-style endpoint: its own methods are its commands."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rate = 1.5
        self.mode = "auto"
        self.table = {"a": 1, "nested": {"b": 2}}
        self.history = [1, 2, 3]
        self.helper = object()  # not data: out of reach
        # secrets kept in public attributes by careless code: never answered nor described
        self.database_url = "postgresql://logger:hunter2@db/sensors"
        self.password = "hunter2"
        self.options = {"user": "u", "password": "hunter2"}

    def on_get(self):
        return {"value_raw": self.rate}

    def on_set(self, value):
        self.rate = value

    def start_pump(self, speed=1, *, ramp=False):
        """Start pumping at `speed`.

        Second paragraph, not shown by describe.
        """
        return {"speed": speed, "ramp": ramp}

    async def purge(self, seconds):
        return seconds

    def on_alert_message(self, message):  # overrides a framework hook: never a command
        raise AssertionError("reached on_alert_message through a request")

    @hide
    def write_flash(self):
        raise AssertionError("reached a hidden method")

    @property
    def token(self):
        return "s3cret"

    token = hide(token)

    @property
    def temperature(self):
        return 21.5


class Logged(Entity):
    @calibrate()
    def on_get(self):
        return 4

    @expose
    def scheduled_log(self):  # an override of a framework name, exposed explicitly
        return "custom"


def _load_jitter():
    path = ROOT / "examples/jitter-plugin/dripline/extensions/jitter/jitter_endpoint.py"
    spec = importlib.util.spec_from_file_location("jitter_example_endpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.JitterEntity


class Spy:
    """Stands in for the service's lifecycle methods and loop: records any call."""

    def __init__(self, calls, name):
        self.calls, self.name = calls, name

    def __call__(self, *args, **kwargs):
        self.calls.append(self.name)

    def __getattr__(self, attr):
        return Spy(self.calls, f"{self.name}.{attr}")


DANGEROUS = ["cancel", "stop", "run", "start", "listen", "stop_async", "send", "send_alert",
             "add_child", "add_async_child", "schedule", "unschedule", "on_alert_message",
             "on_reply_message", "send_request", "get", "set", "cmd"]


@pytest.fixture
def mesh():
    svc = Service(f"svc_{uuid.uuid4().hex[:6]}", make_connection=False, heartbeat_interval_s=7)
    svc.add_child(KeyValueStore(name="peaches", initial_value=0.75, calibration="2*{}"))
    svc.add_child(Pump(name="pump"))
    svc.add_child(Logged(name="logged", log_interval=5))
    svc.add_child(KeyValueStore(name="valve", initial_value=1, min=0, max=10, units="V",
                                description="the valve voltage"))
    svc.add_child(KeyValueStore(name="selector", initial_value="a", allowed=["a", "b", 3]))
    calls: list[str] = []
    for name in DANGEROUS:
        setattr(svc, name, Spy(calls, name))
    svc.loop = Spy(calls, "loop")
    svc.calls = calls
    svc.real_add_child = type(svc).add_child.__get__(svc)
    return svc


def ask(svc, target, op, spec="", payload=None, key=None):
    name = svc.name if target == "svc" else target
    request = MsgRequest.create(payload=payload, msg_op=op, routing_key=name, specifier=spec,
                                reply_to="r")
    request.sender_info = {"exe": "/usr/bin/dl-agent", "hostname": "h", "username": "u",
                           "service_name": "dl-agent", "versions": {}}
    if key is not None:
        request.lockout_key = key
    reply = svc.endpoint(name).on_request_message(request)
    loads_payload(reply.encode()[0].body)  # every reply encodes
    return reply


def still_serving(svc, name):
    assert svc.calls == []
    assert svc.name == name and not svc.is_canceled()
    assert ask(svc, "peaches", op_t.get).payload == {"value_raw": 0.75, "value_cal": 1.5}
    assert ask(svc, "svc", op_t.get, "name").payload == {"values": [name]}
    assert ask(svc, "peaches", op_t.cmd, "ping").return_code == 0


# ---------------------------------------------------------------------------------------------
# hostile specifiers: (target, operation, specifier, value for a set, expected code)

HOSTILE = [
    # reading secrets and plumbing
    ("peaches", "get", "service", None, 310),
    ("peaches", "get", "service.core", None, 310),
    ("peaches", "get", "service.core.connection.address.password", None, 310),
    ("peaches", "get", "service.auth", None, 310),
    ("peaches", "get", "service.name", None, 310),
    ("peaches", "get", "_service", None, 310),
    ("peaches", "get", "__class__", None, 310),
    ("peaches", "get", "__dict__", None, 310),
    ("peaches", "get", "__class__.__init__.__globals__", None, 310),
    ("peaches", "get", "_value", None, 310),
    ("peaches", "get", "_calibration", None, 310),
    ("peaches", "get", "on_get", None, 310),
    ("peaches", "get", "start_logging", None, 310),
    ("peaches", "get", "request_denylist", None, 310),
    ("peaches", "get", "name.__class__", None, 310),
    ("peaches", "get", "calibration.format", None, 310),
    ("peaches", "get", "log_interval.total_seconds", None, 310),
    ("pump", "get", "helper", None, 310),
    ("pump", "get", "token", None, 310),
    ("pump", "get", "write_flash", None, 310),
    ("pump", "get", "table.nested.b.real", None, 310),
    ("pump", "get", "database_url", None, 310),
    ("pump", "get", "password", None, 310),
    ("pump", "get", "options", None, 310),
    ("pump", "get", "options.password", None, 310),
    ("pump", "set", "password", "x", 310),
    ("pump", "set", "options.password", "x", 310),
    ("svc", "get", "core", None, 310),
    ("svc", "get", "core.connection", None, 310),
    ("svc", "get", "core.auth", None, 310),
    ("svc", "get", "auth", None, 310),
    ("svc", "get", "loop", None, 310),
    ("svc", "get", "started", None, 310),
    ("svc", "get", "sync_children", None, 310),
    ("svc", "get", "sync_children.peaches._value", None, 310),
    ("svc", "get", "username", None, 310),
    ("svc", "get", "address", None, 310),
    ("svc", "get", "_receiver", None, 310),
    ("svc", "get", "_worker", None, 310),
    # writing what is not a setting of the endpoint, or a bad value
    ("peaches", "set", "service.name", "hacked", 310),
    ("peaches", "set", "name", "hacked", 310),
    ("svc", "set", "name", "hacked", 310),
    ("peaches", "set", "calibration", "1/0*{}", 304),
    ("peaches", "set", "calibration", "2*x", 304),
    ("peaches", "set", "calibration", "2*{}+", 304),
    ("peaches", "set", "calibration", "times3({})", 304),
    ("peaches", "set", "calibration", 5, 304),
    ("peaches", "set", "_value", 5, 310),
    ("peaches", "set", "_calibration", "1/0*{}", 310),
    ("peaches", "set", "on_get", 1, 310),
    ("peaches", "set", "__class__", "x", 310),
    ("peaches", "set", "log_interval", "abc", 304),
    ("peaches", "set", "max_interval", -1, 304),
    ("peaches", "set", "start_logging", 1, 310),
    ("svc", "set", "heartbeat_interval_s", "abc", 310),
    ("svc", "set", "sender_info", {}, 310),
    ("svc", "set", "core", 1, 310),
    ("svc", "set", "sync_children", {}, 310),
    ("svc", "set", "cancel", 1, 310),
    ("valve", "set", "max", 1000, 310),
    ("valve", "set", "units", "mV", 310),
    ("pump", "set", "rate", "fast", 304),
    ("pump", "set", "helper", 1, 310),
    ("pump", "set", "table.nested", 5, 304),
    ("pump", "set", "table.new_key", 5, 310),
    ("pump", "set", "temperature", 5, 310),
    # calling what is not a command
    ("peaches", "cmd", "service.cancel", None, 306),
    ("peaches", "cmd", "service.loop.stop", None, 306),
    ("peaches", "cmd", "service.stop", None, 306),
    ("peaches", "cmd", "service.send_alert", None, 306),
    ("svc", "cmd", "cancel", None, 306),
    ("svc", "cmd", "stop", None, 306),
    ("svc", "cmd", "run", None, 306),
    ("svc", "cmd", "start", None, 306),
    ("svc", "cmd", "listen", None, 306),
    ("svc", "cmd", "stop_async", None, 306),
    ("svc", "cmd", "loop.stop", None, 306),
    ("svc", "cmd", "core.close", None, 306),
    ("svc", "cmd", "send_alert", None, 306),
    ("svc", "cmd", "add_child", None, 306),
    ("svc", "cmd", "schedule", None, 306),
    ("svc", "cmd", "endpoint", None, 306),
    ("svc", "cmd", "get", None, 306),
    ("svc", "cmd", "on_request_message", None, 306),
    ("svc", "cmd", "on_request_message_async", None, 306),
    ("svc", "cmd", "submit_request_message", None, 306),
    ("peaches", "cmd", "do_get_request", None, 306),
    ("peaches", "cmd", "on_alert_message", None, 306),
    ("peaches", "cmd", "log_a_value", None, 306),
    ("peaches", "cmd", "_wrap_on_set", None, 306),
    ("peaches", "cmd", "__init__", None, 306),
    ("peaches", "cmd", "__class__", None, 306),
    ("peaches", "cmd", "_pipeline", None, 306),
    ("peaches", "cmd", "on_get", None, 306),
    ("peaches", "cmd", "calibration", None, 306),
    ("peaches", "cmd", "name", None, 306),
    ("peaches", "cmd", "request_surface", None, 306),
    ("pump", "cmd", "on_alert_message", None, 306),
    ("pump", "cmd", "write_flash", None, 306),
    ("pump", "cmd", "helper", None, 306),
    ("pump", "cmd", "start_pump.__globals__", None, 306),
]

_OPS = {"get": op_t.get, "set": op_t.set, "cmd": op_t.cmd}


def test_the_hostile_table_is_large():
    assert len(HOSTILE) >= 40
    assert {op for _, op, _, _, _ in HOSTILE} == {"get", "set", "cmd"}


@pytest.mark.parametrize("target, op, spec, value, code", HOSTILE,
                         ids=[f"{op} {t} -s {s}" for t, op, s, _, _ in HOSTILE])
def test_hostile_specifier_is_refused(mesh, target, op, spec, value, code):
    name = mesh.name
    before = {"calibration": mesh.endpoint("peaches").calibration,
              "pump": dict(vars(mesh.endpoint("pump"))), "valve": (mesh.endpoint("valve").max,
                                                                   mesh.endpoint("valve").units)}
    payload = {"values": [value]} if op == "set" else None
    reply = ask(mesh, target, _OPS[op], spec, payload)
    assert reply.return_code == code, reply.return_message
    assert len(reply.return_message) < 2000
    if code in (306, 310):
        assert any(word in reply.return_message for word in ALLOWED_LIST), reply.return_message
    for secret in ("s3cret", "hunter2", "guest"):
        assert secret not in reply.return_message
    assert reply.payload is None
    assert mesh.endpoint("peaches").calibration == before["calibration"] == "2*{}"
    assert vars(mesh.endpoint("pump")) == before["pump"]
    assert (mesh.endpoint("valve").max, mesh.endpoint("valve").units) == before["valve"]
    still_serving(mesh, name)


def test_lifecycle_refusal_says_not_available_and_lists_commands(mesh):
    reply = ask(mesh, "svc", op_t.cmd, "cancel")
    assert "not available through requests" in reply.return_message
    assert "commands: " in reply.return_message and "ping" in reply.return_message
    reply = ask(mesh, "peaches", op_t.get, "service")
    assert "not available through requests" in reply.return_message
    assert "gettable: " in reply.return_message and "calibration" in reply.return_message


def test_a_refusal_lists_a_bounded_number_of_names():
    class Many(Endpoint):
        def __init__(self):
            super().__init__("many")
            for i in range(200):
                setattr(self, f"setting_{i:03d}", i)
    reply = Many().on_request_message(MsgRequest.create(None, op_t.get, "many", "nope", "r"))
    assert reply.return_code == 310
    assert "(and 186 more)" in reply.return_message and len(reply.return_message) < 1000


# ---------------------------------------------------------------------------------------------
# legitimate uses, unchanged

def test_name_and_settings_are_readable(mesh):
    assert ask(mesh, "peaches", op_t.get, "name").payload == {"values": ["peaches"]}
    assert ask(mesh, "peaches", op_t.get, "calibration").payload == {"values": ["2*{}"]}
    assert ask(mesh, "svc", op_t.get, "heartbeat_interval_s").payload == {"values": [7]}
    assert ask(mesh, "pump", op_t.get, "temperature").payload == {"values": [21.5]}
    assert ask(mesh, "pump", op_t.get, "table.nested.b").payload == {"values": [2]}
    assert ask(mesh, "pump", op_t.get, "history.-1").payload == {"values": [3]}
    assert ask(mesh, "logged", op_t.get, "log_interval").payload == {"values": [5.0]}  # seconds, as set
    assert ask(mesh, "logged", op_t.get, "is_logging").payload == {"values": [False]}
    assert ask(mesh, "valve", op_t.get, "units").payload == {"values": ["V"]}


def test_calibration_set_is_compiled_first_and_a_bad_one_keeps_the_old(mesh):
    reply = ask(mesh, "peaches", op_t.set, "calibration", {"values": ["1/0*{}"]})
    assert reply.return_code == 304 and "ZeroDivisionError" in reply.return_message
    assert ask(mesh, "peaches", op_t.get).payload == {"value_raw": 0.75, "value_cal": 1.5}
    assert ask(mesh, "peaches", op_t.set, "calibration", {"values": ["3*{}"]}).return_code == 0
    assert ask(mesh, "peaches", op_t.get).payload == {"value_raw": 0.75, "value_cal": 2.25}
    table = {"0.75": "three quarters"}
    assert ask(mesh, "peaches", op_t.set, "calibration", {"values": [table]}).return_code == 0
    assert ask(mesh, "peaches", op_t.get).payload["value_cal"] == "three quarters"
    assert type(mesh.endpoint("peaches").calibration) is dict


def test_settings_are_written_through_their_validation(mesh):
    assert ask(mesh, "peaches", op_t.set, "log_interval", {"values": [2]}).return_code == 0
    assert mesh.endpoint("peaches").log_interval == datetime.timedelta(seconds=2)
    assert ask(mesh, "pump", op_t.set, "rate", {"values": [3]}).return_code == 0
    assert ask(mesh, "pump", op_t.set, "table.nested.b", {"values": [9]}).return_code == 0
    assert mesh.endpoint("pump").table == {"a": 1, "nested": {"b": 9}}
    assert ask(mesh, "pump", op_t.set, "history.0", {"values": [7]}).return_code == 0
    assert mesh.endpoint("pump").history == [7, 2, 3]


def test_lockout_and_ping_unchanged(mesh):
    reply = ask(mesh, "peaches", op_t.cmd, "lock")
    key = reply.payload["key"]
    assert ask(mesh, "peaches", op_t.set, "", {"values": [1]}).return_code == 307
    assert ask(mesh, "peaches", op_t.get, "is-locked").payload["is_locked"] is True
    assert ask(mesh, "peaches", op_t.set, "", {"values": [1]}, key=key).return_code == 0
    assert ask(mesh, "peaches", op_t.cmd, "unlock", key=key).return_code == 0
    assert ask(mesh, "peaches", op_t.cmd, "ping").return_message == "Hello, /usr/bin/dl-agent"
    assert ask(mesh, "svc", op_t.cmd, "ping").return_code == 0


def test_plugin_commands_are_callable(mesh):
    reply = ask(mesh, "pump", op_t.cmd, "start_pump", {"values": [3], "ramp": True})
    assert (reply.return_code, reply.payload) == (0, {"speed": 3, "ramp": True})
    assert ask(mesh, "peaches", op_t.cmd, "throw_something").return_code == 200
    assert ask(mesh, "logged", op_t.cmd, "stop_logging").return_code == 0
    assert ask(mesh, "logged", op_t.cmd, "scheduled_log").payload == "custom"
    assert mesh.endpoint("pump").is_async_request(
        MsgRequest.create({"values": [1]}, op_t.cmd, "pump", "purge", "r"))


def test_jitter_example_update_seed_and_seed(mesh):
    jitter_cls = _load_jitter()
    mesh.real_add_child(jitter_cls(name="jitter", initial_value=1.0, calibration="2*{}"))
    assert ask(mesh, "jitter", op_t.cmd, "update_seed", {"values": [42]}).payload == 42
    first = ask(mesh, "jitter", op_t.get).payload
    assert ask(mesh, "jitter", op_t.set, "seed", {"values": [42]}).return_code == 0
    assert ask(mesh, "jitter", op_t.get).payload == first
    assert ask(mesh, "jitter", op_t.get, "seed").payload == {"values": [42]}
    assert "update_seed" in RequestSurface.of(mesh.endpoint("jitter")).commands


def test_scpi_service_methods_are_commands_and_its_lifecycle_is_not():
    from dripline.implementations import EthernetSCPIService

    class MyInstrument(EthernetSCPIService):
        def identify(self):
            return "id"
    surface = RequestSurface(MyInstrument)
    assert {"identify", "send_to_device", "reconnect"} <= set(surface.commands)
    assert not {"run", "start", "stop", "cancel", "send", "on_request_message"} & \
        set(surface.commands)
    assert "socket_timeout" in surface.properties and surface.properties["socket_timeout"]
    assert surface.properties["connected"] is False  # read-only


def test_explicit_exposure_with_class_attributes():
    class Declared(Endpoint):
        __dripline_expose__ = ("on_reply_message",)
        __dripline_hide__ = ("visible",)
        __dripline_readonly__ = ("limit",)

        def __init__(self):
            super().__init__("declared")
            self.limit = 5

        def visible(self):
            return 1

        def on_reply_message(self, message):
            return "exposed hook"
    ep = Declared()
    surface = RequestSurface.of(ep)
    assert "on_reply_message" in surface.commands and "visible" not in surface.commands
    reply = ep.on_request_message(MsgRequest.create({"values": [9]}, op_t.set, "declared",
                                                    "limit", "r"))
    assert reply.return_code == 310 and "read-only" in reply.return_message
    assert ep.limit == 5
    reply = ep.on_request_message(MsgRequest.create({"values": [None]}, op_t.cmd, "declared",
                                                    "on_reply_message", "r"))
    assert reply.payload == "exposed hook"


def test_surface_is_cached_per_class(mesh):
    assert RequestSurface.of(mesh.endpoint("peaches")) is RequestSurface.of(
        KeyValueStore(name="other"))


# ---------------------------------------------------------------------------------------------
# limits

def test_set_within_limits_reaches_on_set(mesh):
    assert ask(mesh, "valve", op_t.set, "", {"values": [10]}).return_code == 0
    assert ask(mesh, "valve", op_t.set, "", {"values": ["2.5"]}).return_code == 0
    assert mesh.endpoint("valve")._value == "2.5"  # the raw value as sent
    assert ask(mesh, "selector", op_t.set, "", {"values": [3]}).return_code == 0
    assert ask(mesh, "selector", op_t.set, "", {"values": ["b"]}).return_code == 0


@pytest.mark.parametrize("target, value", [("valve", 10.5), ("valve", -1), ("valve", "high"),
                                           ("valve", float("nan")), ("valve", None),
                                           ("valve", True), ("selector", "c"),
                                           ("selector", True), ("selector", [3])])
def test_set_outside_limits_is_304_before_on_set(mesh, target, value):
    before = mesh.endpoint(target)._value
    reply = ask(mesh, target, op_t.set, "", {"values": [value]})
    assert reply.return_code == 304, reply.return_message
    assert mesh.endpoint(target)._value == before


@pytest.mark.parametrize("kwargs", [{"min": "a"}, {"max": [1]}, {"min": 5, "max": 1},
                                    {"allowed": "ab"}, {"allowed": [{"a": 1}]},
                                    {"units": 5}, {"min": True}])
def test_bad_limit_declarations_are_refused_when_built(kwargs):
    with pytest.raises(ThrowReply) as info:
        KeyValueStore(name="bad", **kwargs)
    assert info.value.return_code == 304 and "bad" in info.value.return_message


def test_limits_declared_as_class_attributes():
    class Heater(KeyValueStore):
        units = "W"
        min = 0
        max = 100
    heater = Heater(name="heater", initial_value=0)
    reply = heater.on_request_message(MsgRequest.create({"values": [101]}, op_t.set, "heater",
                                                        "", "r"))
    assert reply.return_code == 304 and "[0, 100]" in reply.return_message
    assert Heater(name="h2", max=200).max == 200  # the YAML keyword wins


# ---------------------------------------------------------------------------------------------
# describe

def test_describe_endpoint_payload(mesh):
    reply = ask(mesh, "valve", op_t.cmd, "describe")
    assert reply.return_code == 0
    d = reply.payload
    assert set(d) == DESCRIBE_KEYS
    assert d["name"] == "valve" and d["kind"] == "endpoint"
    assert d["class"] == "dripline.implementations.key_value_store.KeyValueStore"
    assert d["plugin"] is None and isinstance(d["version"], str)
    assert d["doc"].startswith("Stores one value")
    assert d["operations"] == {"get": True, "set": True, "cmd": True}
    names = [c["name"] for c in d["commands"]]
    assert names[-5:] == ["ping", "lock", "unlock", "set_condition", "describe"]
    assert {"throw_something", "start_logging", "stop_logging", "scheduled_log"} <= set(names)
    assert "log_a_value" not in names and "on_get" not in names
    assert d["units"] == "V" and d["description"] == "the valve voltage"
    assert d["limits"] == {"min": 0, "max": 10, "allowed": None}
    assert d["calibration"] is None
    assert d["settings"]["log_interval"] == 0.0 and "name" not in d["settings"]


def test_describe_plugin_commands_and_parameters(mesh):
    d = ask(mesh, "pump", op_t.cmd, "describe").payload
    start = next(c for c in d["commands"] if c["name"] == "start_pump")
    assert start["doc"] == "Start pumping at `speed`."
    assert start["parameters"] == [{"name": "speed", "default": 1, "required": False},
                                   {"name": "ramp", "default": False, "required": False}]
    purge = next(c for c in d["commands"] if c["name"] == "purge")
    assert purge["parameters"] == [{"name": "seconds", "default": None, "required": True}]
    names = {c["name"] for c in d["commands"]}
    assert not {"write_flash", "on_alert_message"} & names
    assert d["settings"] == {"rate": 1.5, "mode": "auto", "table": {"a": 1, "nested": {"b": 2}},
                             "history": [1, 2, 3], "temperature": 21.5}
    assert "hunter2" not in str(d)
    assert ask(mesh, "pump", op_t.get, "options.user").payload == {"values": ["u"]}
    assert d["limits"] is None and d["calibration"] is None and d["units"] is None
    assert d["class"].endswith("test_request_surface.Pump") and d["plugin"] is None


def test_describe_service_lists_endpoints_and_no_lifecycle(mesh):
    d = ask(mesh, "svc", op_t.cmd, "describe").payload
    assert set(d) == DESCRIBE_KEYS | {"endpoints"}
    assert d["kind"] == "service"
    assert d["endpoints"] == ["logged", "peaches", "pump", "selector", "valve"]
    names = [c["name"] for c in d["commands"]]
    assert names == ["ping", "lock", "unlock", "set_condition", "describe"]
    assert d["operations"] == {"get": False, "set": False, "cmd": False}
    assert d["settings"]["heartbeat_interval_s"] == 7
    assert not {"core", "loop", "started", "sync_children"} & set(d["settings"])


def test_describe_calibration_and_entity(mesh):
    d = ask(mesh, "peaches", op_t.cmd, "describe").payload
    assert d["calibration"] == "2*{}" and "calibration" not in d["settings"]


def test_describe_is_bounded():
    class Big(Endpoint):
        """x""" + "y" * 5000

        def __init__(self):
            super().__init__("big")
            self.huge = list(range(10000))
            self.small = 1
    d = Big().on_request_message(MsgRequest.create(None, op_t.cmd, "big", "describe", "r")).payload
    assert len(d["doc"]) <= 1000
    assert "huge" not in d["settings"] and d["settings"]["small"] == 1


def test_describe_jitter_plugin_origin(mesh):
    jitter_cls = _load_jitter()
    plugin_cls = type("JitterEntity", (jitter_cls,), {"__module__": "dripline.extensions.jitter"})
    mesh.sender_info = {**mesh.sender_info, "versions": {
        **mesh.sender_info.get("versions", {}), "dripline.extensions.jitter": {"version": "1.2.3"}}}
    mesh.real_add_child(plugin_cls(name="j", initial_value=1.0))
    d = ask(mesh, "j", op_t.cmd, "describe").payload
    assert (d["plugin"], d["version"]) == ("jitter", "1.2.3")
    assert d["class"] == "dripline.extensions.jitter.JitterEntity"
    assert "update_seed" in [c["name"] for c in d["commands"]]
    assert isinstance(d["settings"]["seed"], int)
    declared = type("Declared", (Endpoint,), {"__dripline_plugin__": "jitter"})
    mesh.real_add_child(declared(name="declared"))
    assert ask(mesh, "declared", op_t.cmd, "describe").payload["version"] == "1.2.3"


def test_describe_is_not_subject_to_lockout(mesh):
    ask(mesh, "valve", op_t.cmd, "lock")
    assert ask(mesh, "valve", op_t.cmd, "describe").return_code == 0
    assert ask(mesh, "valve", op_t.cmd, "throw_something").return_code == 307
