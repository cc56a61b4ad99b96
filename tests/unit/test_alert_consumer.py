"""AlertConsumer without a broker: routing-key parsing, error containment, bindings, durable acks.

Alerts travel through an in-memory mesh (`dripline.testing.MemoryMesh`); acknowledgements are
the transport's real `Ack` objects on a `MemoryChannel`.
"""
from __future__ import annotations

import asyncio
import logging

import pytest

from dripline.core import AlertConsumer, MsgAlert, MsgRequest, Service
from dripline.service.alert_consumer import AckTracker
from dripline.protocol.errors import ConfigError
from dripline.protocol.message import Properties, op_t
from dripline.testing import MemoryChannel, MemoryMesh
from dripline.transport.connection import Ack


def make(**kwargs):
    kwargs.setdefault("name", "consumer")
    return AlertConsumer(make_connection=False, **kwargs)


class Recorder(AlertConsumer):
    def __init__(self, **kwargs):
        kwargs.setdefault("name", "recorder")
        super().__init__(make_connection=False, **kwargs)
        self.calls = []

    def process_payload(self, payload, routing_key_data, timestamp):
        self.calls.append((payload.to_python(), routing_key_data, timestamp))
        if routing_key_data.get("sensor") == "boom":
            raise ValueError("bad sensor")


def alert(routing_key, payload=None):
    msg = MsgAlert.create(payload=payload, routing_key=routing_key)
    msg.timestamp = "2024-05-06T07:08:09.123456Z"
    return msg


class FakeConnection:
    def __init__(self):
        self.calls = []

    async def declare_queue(self, name="", **kwargs):
        self.calls.append(("declare", name, kwargs))
        return f"queue:{name}"

    async def bind(self, queue, exchange, key):
        self.calls.append(("bind", queue, exchange, key))

    async def consume(self, queue, callback, **kwargs):
        self.calls.append(("consume", queue, kwargs))


# ---------------------------------------------------------------------------------- parameters
def test_defaults_follow_the_reference():
    c = make()
    assert c.alert_keys == ["#"]
    assert c.alert_key_parser_re == ""
    assert c.parse_routing_key("sensor_value.peaches") == {}
    assert c.durable_queue is False and c.durable_queue_name is None


def test_a_single_key_string_is_a_list_of_one():
    assert make(alert_keys="sensor_value.#").alert_keys == ["sensor_value.#"]


def test_named_groups_of_the_parser_become_routing_key_data():
    c = make(alert_key_parser_re=r"sensor_value\.(?P<sensor_name>\w+)")
    assert c.parse_routing_key("sensor_value.peaches") == {"sensor_name": "peaches"}


def test_a_key_that_does_not_match_gives_empty_data_and_a_warning(caplog):
    c = make(alert_key_parser_re=r"sensor_value\.(?P<sensor_name>\w+)")
    with caplog.at_level(logging.WARNING):
        assert c.parse_routing_key("heartbeat.x") == {}
    assert "heartbeat.x" in caplog.text


def test_an_invalid_parser_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="alert_key_parser_re"):
        make(alert_key_parser_re="(unclosed")


def test_durable_queue_name_defaults_to_service_name_dot_alerts():
    assert make(name="logger", durable_queue=True).durable_queue_name == "logger.alerts"
    assert make(durable_queue="my_alerts").durable_queue_name == "my_alerts"
    with pytest.raises(ConfigError):
        make(durable_queue=3)


def test_unknown_keywords_are_ignored_like_every_service():
    c = make(database_name="x", anything=1)
    assert c.alert_keys == ["#"]
    assert not hasattr(c, "database_name") and not hasattr(c, "anything")


# ---------------------------------------------------------------------------------- dispatch
def test_on_alert_message_calls_process_payload_with_param_data_and_timestamp():
    c = Recorder(alert_key_parser_re=r"sensor_value\.(?P<sensor>\w+)")
    c.on_alert_message(alert("sensor_value.peaches", {"value_raw": 1.5}))
    assert c.calls == [({"value_raw": 1.5}, {"sensor": "peaches"}, "2024-05-06T07:08:09.123456Z")]


def test_an_exception_in_process_payload_is_logged_with_the_routing_key(caplog):
    c = Recorder(alert_key_parser_re=r"sensor_value\.(?P<sensor>\w+)")
    with caplog.at_level(logging.ERROR):
        c.on_alert_message(alert("sensor_value.boom", {"value_raw": 1}))
    assert "sensor_value.boom" in caplog.text and "bad sensor" in caplog.text
    c.on_alert_message(alert("sensor_value.fine", {"value_raw": 2}))
    assert len(c.calls) == 2


def test_alerts_of_the_mesh_reach_on_alert_message_through_the_codec():
    with MemoryMesh() as mesh:
        recorder = Recorder(alert_keys=["sensor_value.#"],
                            alert_key_parser_re=r"sensor_value\.(?P<sensor>\w+)")
        mesh.add_service(recorder)
        peaches = mesh.add_endpoint("KeyValueStore", name="peaches", log_on_set=True)
        peaches.set(1.5)
        mesh.add_endpoint("KeyValueStore", name="ignored", log_on_set=True,
                          log_routing_key_prefix="other_value").set(2)
    assert [(payload, data) for payload, data, _ in recorder.calls] == \
        [({"value_raw": 1.5}, {"sensor": "peaches"})]
    assert recorder.calls[0][2].endswith("Z")  # the timestamp the codec wrote


def test_a_plain_service_only_logs_alerts(caplog):
    svc = Service("plain", make_connection=False)
    with caplog.at_level(logging.WARNING):
        svc.runtime.dispatch(alert("sensor_value.x", 1))
    assert "does not handle" in caplog.text


# ---------------------------------------------------------------------------------- bindings
async def test_alert_keys_are_bound_on_the_alerts_exchange_to_the_service_queue():
    c = make(alert_keys=["sensor_value.#", "heartbeat.#"])
    conn = FakeConnection()
    c.core.connection = conn
    await c._bind_extra("servicequeue")
    assert conn.calls == [("bind", "servicequeue", "alerts", "sensor_value.#"),
                          ("bind", "servicequeue", "alerts", "heartbeat.#")]


async def test_durable_queue_is_declared_bound_and_consumed_with_manual_ack():
    c = make(name="logger", alert_keys=["sensor_value.#"], durable_queue=True, durable_prefetch=50)
    conn = FakeConnection()
    c.core.connection = conn
    await c._bind_extra("servicequeue")
    assert conn.calls[0] == ("declare", "logger.alerts",
                             {"exclusive": False, "auto_delete": False, "durable": True})
    assert conn.calls[1] == ("bind", "queue:logger.alerts", "alerts", "sensor_value.#")
    assert conn.calls[2] == ("consume", "queue:logger.alerts", {"no_ack": False, "prefetch": 50})
    assert not any(call[1] == "servicequeue" for call in conn.calls)


# ---------------------------------------------------------------------------------- acknowledgements
def test_ack_tracker_acknowledges_the_finished_prefix_in_one_frame():
    ch = MemoryChannel()
    tracker = AckTracker()
    d = [tracker.add(Ack(ch, tag)) for tag in (1, 2, 3, 4)]
    tracker.finish([d[1], d[2]])
    assert ch.acks == []  # delivery 1 is not finished yet
    tracker.finish([d[0]])
    assert ch.acks == [(3, True)]
    tracker.finish([d[3]])
    assert ch.acks == [(3, True), (4, True)]
    assert len(tracker) == 0


def test_ack_tracker_skips_deliveries_of_a_closed_channel():
    old, new = MemoryChannel(), MemoryChannel()
    tracker = AckTracker()
    a = tracker.add(Ack(old, 7))
    b = tracker.add(Ack(new, 1))
    old.is_open = False
    tracker.finish([a, b])
    assert old.acks == [] and new.acks == [(1, True)]


def _wire(msg):
    (w,) = msg.encode()
    return w.routing_key, w.body, w.properties


async def test_durable_alert_is_acknowledged_after_it_is_handled():
    c = Recorder(name="logger", durable_queue=True)
    c.loop = asyncio.get_running_loop()
    from dripline.transport.receiver import ChunkReceiver
    c._durable_assembler = ChunkReceiver(c._expired_durable)
    ch = MemoryChannel()
    c._on_durable_delivery(*_wire(alert("sensor_value.a", {"v": 1})), Ack(ch, 1))
    assert c.calls[0][0] == {"v": 1}
    assert ch.acks == [(1, True)]


async def test_durable_processing_error_still_acknowledges(caplog):
    c = Recorder(name="logger", durable_queue=True, alert_key_parser_re=r"s\.(?P<sensor>\w+)")
    c.loop = asyncio.get_running_loop()
    from dripline.transport.receiver import ChunkReceiver
    c._durable_assembler = ChunkReceiver(c._expired_durable)
    ch = MemoryChannel()
    with caplog.at_level(logging.ERROR):
        c._on_durable_delivery(*_wire(alert("s.boom", {"v": 1})), Ack(ch, 5))
    assert ch.acks == [(5, True)] and "bad sensor" in caplog.text


async def test_durable_chunked_alert_is_acknowledged_as_a_whole():
    c = Recorder(name="logger", durable_queue=True)
    c.loop = asyncio.get_running_loop()
    from dripline.transport.receiver import ChunkReceiver
    c._durable_assembler = ChunkReceiver(c._expired_durable)
    ch = MemoryChannel()
    big = alert("sensor_value.big", {"text": "x" * 25000})
    wires = big.encode(max_payload_size=10000)
    assert len(wires) == 3
    for tag, w in enumerate(wires[:-1], start=1):
        c._on_durable_delivery(w.routing_key, w.body, w.properties, Ack(ch, tag))
    assert ch.acks == [] and c.calls == []
    w = wires[-1]
    c._on_durable_delivery(w.routing_key, w.body, w.properties, Ack(ch, 3))
    assert c.calls[0][0] == {"text": "x" * 25000}
    assert ch.acks == [(3, True)]


async def test_durable_undecodable_or_non_alert_messages_are_acknowledged_and_dropped(caplog):
    c = Recorder(name="logger", durable_queue=True)
    c.loop = asyncio.get_running_loop()
    from dripline.transport.receiver import ChunkReceiver
    c._durable_assembler = ChunkReceiver(c._expired_durable)
    ch = MemoryChannel()
    with caplog.at_level(logging.WARNING):
        c._on_durable_delivery("sensor_value.x", b"{}", Properties(message_id="no-slash"), Ack(ch, 1))
        req = MsgRequest.create(payload=None, msg_op=op_t.get, routing_key="sensor_value.x")
        c._on_durable_delivery(*_wire(req), Ack(ch, 2))
    assert ch.acks[-1] == (2, True) and c.calls == []
