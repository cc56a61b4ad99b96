"""dripline.testing's in-memory harness (issue 11 item 6): services built from configuration as
dl-serve builds them, requests through the real dispatch table and codec, no broker."""
from __future__ import annotations

import datetime
import threading

import pytest

from dripline.client.request_sender import build_request
from dripline.core import AlertConsumer, Endpoint, Service
from dripline.protocol.message import op_t
from dripline.protocol.errors import ConfigError, ConnectionError_, DriplineError, UnableToSendError
from dripline.service.context import ServiceContext
from dripline.testing import MemoryMesh, memory_endpoint, memory_service

STORE = {"name": "my_store", "endpoints": [
    {"name": "peaches", "module": "KeyValueStore", "initial_value": 0.75, "calibration": "2*{}",
     "log_on_set": True}]}


class Relay(Endpoint):
    """Asks another endpoint from inside its handler, as reference-era plugins do."""

    def __init__(self, other: str = "", **kwargs):
        super().__init__(**kwargs)
        self.other = other

    def on_get(self):
        return {"relayed": self.service.get(self.other)}

    def tell(self, value):
        return self.service.set(self.other, value)


class Clock(Endpoint):
    def on_get(self):
        return {"now": datetime.datetime(2024, 5, 6, 7, 8, 9, 123456,
                                         tzinfo=datetime.timezone.utc)}


class AsyncValue(Endpoint):
    async def on_get(self):
        return {"loop_thread": threading.current_thread().name}


class Opened(Service):
    """A service whose start hook records that it ran (constructors do no I/O)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.opened = 0

    def on_start(self):
        super().on_start()
        self.opened += 1


def test_get_set_cmd_through_the_codec():
    with memory_service(STORE) as svc:
        assert svc.get("peaches") == {"value_raw": 0.75, "value_cal": 1.5}
        assert svc.set("peaches", 2) is None
        assert svc.get("peaches", "calibration") == {"values": ["2*{}"]}
        assert svc.cmd("peaches", "ping") is None
        assert svc.get("my_store", "name") == {"values": ["my_store"]}
        assert svc.alerts == [("sensor_value.peaches", {"value_raw": 2, "value_cal": 4})]
        sent = svc.mesh.published[-1]  # the alert as decoded from the wire
        assert sent.sender_info["service_name"] == "my_store" and sent.timestamp.endswith("Z")


def test_refusals_raise_with_their_code_or_return_the_payload():
    with memory_service(STORE) as svc:
        with pytest.raises(DriplineError) as info:
            svc.cmd("peaches", "no_such_method")
        assert info.value.return_code == 306
        reply = svc.send_request(build_request(op_t.set, "peaches", "service.name",
                                               {"values": ["x"]}))
        assert reply.return_code == 310 and "service" in reply.return_message
        with pytest.raises(UnableToSendError):
            svc.get("nobody_serves_this")


def test_results_are_converted_once_by_the_codec():
    with memory_endpoint(Clock) as clock:
        assert clock.get() == {"now": "2024-05-06T07:08:09.123456+00:00"}


def test_large_messages_are_chunked_and_reassembled():
    text = "x" * 25_000
    with MemoryMesh(max_payload_size=1000) as mesh:
        store = mesh.add_endpoint("KeyValueStore", name="big")
        store.set(text)
        assert store.get() == {"value_raw": text}


def test_a_handler_reaches_endpoints_of_its_own_and_other_services():
    with MemoryMesh() as mesh:
        mesh.add_service(STORE)
        relays = mesh.add_service({"name": "relays", "endpoints": [
            {"name": "relay", "module": f"{__name__}.Relay", "other": "peaches"},
            {"name": "inner", "module": f"{__name__}.Relay", "other": "relay"}]})
        assert relays.get("relay") == {"relayed": {"value_raw": 0.75, "value_cal": 1.5}}
        assert relays.get("inner") == {"relayed": {"relayed": {"value_raw": 0.75,
                                                               "value_cal": 1.5}}}
        relays.cmd("relay", "tell", [3])
        assert relays.get("peaches") == {"value_raw": 3, "value_cal": 6}


def test_broadcast_reaches_every_service():
    with MemoryMesh() as mesh:
        mesh.add_service(STORE)
        client = mesh.add_service({"name": "other"})
        assert client.get("broadcast", "name") == {"my_store": {"values": ["my_store"]},
                                                   "other": {"values": ["other"]}}


def test_async_handlers_run_on_the_meshs_loop_thread():
    with memory_endpoint(AsyncValue) as ep:
        assert ep.get() == {"loop_thread": "dripline-memory"}


def test_the_build_is_the_one_dl_serve_makes():
    with pytest.raises(ConfigError, match="unknown keyword 'initial_valu'"):
        with memory_service({"name": "s", "endpoints": [
                {"name": "p", "module": "KeyValueStore", "initial_valu": 1}]}):
            pass
    with memory_service({"name": "opened", "module": f"{__name__}.Opened"}) as svc:
        assert svc.service.opened == 1  # the start hook ran; the constructor did no I/O


def test_scheduled_jobs_fire_only_when_asked():
    config = {"name": "logging", "endpoints": [
        {"name": "temp", "module": "KeyValueStore", "initial_value": 4, "log_interval": 30}]}
    with memory_service(config) as svc:
        (job, (action, interval)), = svc.scheduled.items()
        assert interval == 30 and svc.alerts == []
        svc.fire(job)
        assert svc.alerts == [("sensor_value.temp", {"value_raw": 4})]


def test_alerts_reach_alert_consumers_of_the_mesh_whose_keys_match():
    class Collector(AlertConsumer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.got = []

        def process_payload(self, payload, routing_key_data, timestamp):
            self.got.append((payload.to_python(), routing_key_data))

    with MemoryMesh() as mesh:
        collector = Collector(name="collector", make_connection=False,
                              alert_keys=["sensor_value.*"],
                              alert_key_parser_re=r"sensor_value\.(?P<name>\w+)")
        mesh.add_service(collector)
        mesh.add_service(STORE).set("peaches", 5)
        mesh.add_endpoint("KeyValueStore", name="elsewhere", log_on_set=True,
                          log_routing_key_prefix="other").set(1)
    assert collector.got == [({"value_raw": 5, "value_cal": 10}, {"name": "peaches"})]


def test_a_mesh_that_is_down_fails_sends_and_requests():
    with memory_service(STORE) as svc:
        svc.mesh.down = True
        with pytest.raises(ConnectionError_):
            svc.get("peaches")
        svc.mesh.down = False
        assert svc.get("peaches")["value_raw"] == 0.75


def test_names_are_unique_in_a_mesh():
    with MemoryMesh() as mesh:
        mesh.add_service(STORE)
        with pytest.raises(DriplineError, match="already served by service 'my_store'"):
            mesh.add_service({"name": "second", "endpoints": [
                {"name": "peaches", "module": "KeyValueStore"}]})


def test_endpoints_see_the_service_context():
    with memory_endpoint("KeyValueStore", name="p") as ep:
        assert isinstance(ep.obj.service, ServiceContext)
        assert ep.obj.service is ep.service
