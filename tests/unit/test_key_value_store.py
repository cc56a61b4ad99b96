"""KeyValueStore (reference §6.1) and a plugin-style subclass as in the plugin guide (seed)."""
from __future__ import annotations

import random

import pytest

from dripline.core import MsgRequest, ThrowReply, calibrate, op_t
from dripline.implementations import KeyValueStore
from dripline.testing import memory_endpoint


def request(op, specifier="", payload=None):
    return MsgRequest.create(payload=payload, msg_op=op, routing_key="peaches",
                             specifier=specifier, reply_to="a_receiver")


def get(ep, specifier=""):
    return ep.on_request_message(request(op_t.get, specifier))


def set_(ep, value, specifier=""):
    return ep.on_request_message(request(op_t.set, specifier, {"values": [value]}))


def cmd(ep, specifier, payload=None):
    return ep.on_request_message(request(op_t.cmd, specifier, payload))


class JitterEntity(KeyValueStore):
    """Written the way the plugin guide's example is: overrides on_get, adds update_seed."""

    def __init__(self, jitter_fraction=0.1, **kwargs):
        KeyValueStore.__init__(self, **kwargs)
        self._jitter_fraction = jitter_fraction

    @calibrate()
    def on_get(self):
        return self._value * (1 + random.uniform(-1, 1) * self._jitter_fraction)

    def update_seed(self, value):
        random.seed(value)


# ---------------------------------------------------------------------------------------------

def test_initial_value_and_get():
    kv = KeyValueStore(name="peaches", initial_value=0.75)
    reply = get(kv)
    assert (reply.return_code, reply.return_message, reply.payload) == (0, "", {"value_raw": 0.75})


def test_default_initial_value_is_none_so_get_is_null():
    kv = KeyValueStore(name="empty")
    reply = get(kv)
    assert (reply.return_code, reply.payload) == (0, None)


def test_calibrated_get():
    kv = KeyValueStore(name="peaches", initial_value=0.75, calibration="2*{}")
    assert get(kv).payload == {"value_raw": 0.75, "value_cal": 1.5}


def test_set_stores_and_replies_null():
    kv = KeyValueStore(name="chips", initial_value=1)
    reply = set_(kv, 42)
    assert (reply.return_code, reply.return_message, reply.payload) == (0, "", None)
    assert get(kv).payload == {"value_raw": 42}
    assert kv._value == 42


def test_set_with_get_on_set_replies_the_new_reading():
    kv = KeyValueStore(name="waffles", initial_value=1, get_on_set=True, calibration="{}+1")
    reply = set_(kv, 5)
    assert reply.payload == {"value_raw": 5, "value_cal": 6}


def test_log_on_set_sends_sensor_value_alert():
    with memory_endpoint("KeyValueStore", name="peaches", initial_value=1, log_on_set=True,
                         calibration="2*{}") as peaches:
        assert peaches.set(3) is None
        assert peaches.alerts == [("sensor_value.peaches", {"value_raw": 3, "value_cal": 6})]


def test_throw_something():
    reply = cmd(KeyValueStore(name="peaches"), "throw_something", {})
    assert reply.return_code == 200
    assert reply.return_message == "in throw_something method, rasing resource_error"


def test_entity_options_are_accepted():
    kv = KeyValueStore(name="p", initial_value=2, log_interval=10, max_interval=60,
                       max_absolute_change=0.5, max_fractional_change=0.1, check_field="value_raw",
                       log_routing_key_prefix="kv", unknown_option="ignored")
    assert kv.max_interval == 60 and kv.check_field == "value_raw"
    assert get(kv, "max_absolute_change").payload == {"values": [0.5]}


def test_calibration_error_is_refused_when_built():
    # a calibration that fails every get is refused at construction (issue 10 item 3)
    with pytest.raises(ThrowReply) as info:
        KeyValueStore(name="p", initial_value=1, calibration="undefined_fn({})")
    assert info.value.return_code == 304
    assert "undefined_fn" in info.value.return_message


def test_private_value_not_reachable_remotely():
    kv = KeyValueStore(name="p", initial_value=1)
    assert get(kv, "_value").return_code == 310
    assert set_(kv, 2, "_value").return_code == 310
    assert kv._value == 1


def test_built_from_configuration_by_module_name():
    from dripline.assembly.objects import create_object
    kv = create_object({"name": "peaches", "module": "KeyValueStore", "initial_value": 0.75,
                        "calibration": "2*{}"}, "Endpoint")
    assert isinstance(kv, KeyValueStore)
    assert get(kv).payload == {"value_raw": 0.75, "value_cal": 1.5}


# ---------------------------------------------------------------------------------------------
# the plugin-guide subclass

def test_jitter_subclass_overrides_on_get_and_keeps_calibration():
    ep = JitterEntity(name="jitter", initial_value=10.0, jitter_fraction=0.1, calibration="2*{}")
    for _ in range(20):
        payload = get(ep).payload
        assert 9.0 <= payload["value_raw"] <= 11.0
        assert payload["value_cal"] == pytest.approx(2 * payload["value_raw"])


def test_jitter_update_seed_cmd_makes_readings_reproducible():
    ep = JitterEntity(name="jitter", initial_value=10.0)
    reply = cmd(ep, "update_seed", {"values": [1234]})
    assert (reply.return_code, reply.payload) == (0, None)
    first = [get(ep).payload["value_raw"] for _ in range(3)]
    cmd(ep, "update_seed", {"values": [1234]})
    second = [get(ep).payload["value_raw"] for _ in range(3)]
    assert first == second
    assert len(set(first)) == 3  # and they do jitter


def test_jitter_set_still_uses_key_value_store_on_set():
    ep = JitterEntity(name="jitter", initial_value=10.0, jitter_fraction=0.0)
    assert set_(ep, 4.0).return_code == 0
    assert get(ep).payload == {"value_raw": 4.0}


def test_jitter_update_seed_wrong_arguments_is_304():
    ep = JitterEntity(name="jitter", initial_value=1.0)
    reply = cmd(ep, "update_seed", {"values": []})
    assert reply.return_code == 304


# ---------------------------------------------------------------------------------------------
# the lazy package

def test_implementations_package_is_lazy_and_lists_future_names():
    import dripline.implementations as impl
    assert impl.KeyValueStore is KeyValueStore
    names = set(impl.__all__)
    for expected in ["KeyValueStore", "EthernetSCPIService", "SimpleSCPIEntity",
                     "SimpleSCPIGetEntity", "SimpleSCPISetEntity", "FormatEntity",
                     "HeartbeatMonitor", "HeartbeatTracker", "PostgreSQLInterface", "SQLTable",
                     "PostgresSensorLogger", "BaseAddAuthSpec"]:
        assert expected in names and expected in dir(impl)
    assert impl._EXPORTS["FormatEntity"] == "entity_endpoints"
    assert impl._EXPORTS["PostgresSensorLogger"] == "postgres_sensor_logger"
    with pytest.raises(AttributeError):
        impl.NoSuchClass  # noqa: B018
