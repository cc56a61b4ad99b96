"""The request surface through the real broker: issue 9's attacks, describe, one converter."""
from __future__ import annotations

import datetime

import pytest

from dripline.client.request_sender import build_request
from dripline.core import Endpoint, Service
from dripline.protocol.message import op_t
from dripline.testing import test_mesh, unique_name


class Clock(Endpoint):
    """Answers a datetime inside a dict: the codec sends it as ISO text."""

    def on_get(self):
        return {"now": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)}


@pytest.fixture
def store(dl_service):
    svc = dl_service({"name": unique_name("svc"), "heartbeat_interval_s": 0, "endpoints": [
        {"name": unique_name("peaches"), "module": "KeyValueStore", "initial_value": 0.75,
         "calibration": "2*{}", "units": "V", "min": 0, "max": 5}]})
    return svc, next(iter(svc.sync_children))


def _send(iface, op, rk, spec="", payload=None):
    return iface.send_request(build_request(op_t[op], rk, spec or None, payload), 10)


@pytest.mark.parametrize("op, spec, payload, code", [
    ("get", "service.core.connection.address.password", None, 310),
    ("get", "service.core.auth", None, 310),
    ("get", "__class__", None, 310),
    ("cmd", "service.cancel", None, 306),
    ("cmd", "service.loop.stop", None, 306),
    ("set", "service.name", {"values": ["hacked"]}, 310),
    ("set", "calibration", {"values": ["1/0*{}"]}, 304),
    ("set", "", {"values": [99]}, 304),
])
def test_attacks_are_refused_and_the_service_keeps_serving(store, dl_interface, op, spec, payload,
                                                           code):
    svc, ep = store
    reply = _send(dl_interface, op, ep, spec, payload)
    assert reply.return_code == code, reply.return_message
    assert "guest" not in reply.return_message
    assert dl_interface.get(ep) == {"value_raw": 0.75, "value_cal": 1.5}
    assert dl_interface.get(svc.name, specifier="name") == {"values": [svc.name]}
    assert not svc.is_canceled()


def test_service_lifecycle_is_out_of_reach(store, dl_interface):
    svc, ep = store
    for spec in ("cancel", "stop", "loop.stop", "core.close"):
        assert _send(dl_interface, "cmd", svc.name, spec).return_code == 306
    assert _send(dl_interface, "cmd", svc.name, "ping").return_code == 0
    assert dl_interface.get(ep, specifier="calibration") == {"values": ["2*{}"]}


def test_describe_through_the_broker(store, dl_interface):
    svc, ep = store
    d = dl_interface.cmd(ep, "describe")
    assert d["name"] == ep and d["kind"] == "endpoint" and d["units"] == "V"
    assert d["limits"] == {"min": 0, "max": 5, "allowed": None}
    assert d["calibration"] == "2*{}"
    service = dl_interface.cmd(svc.name, "describe")
    assert service["kind"] == "service" and service["endpoints"] == [ep]


def test_datetime_result_arrives_as_iso_text(dl_service, dl_interface):
    svc = Service(unique_name("svc"), dripline_mesh=test_mesh(), heartbeat_interval_s=0)
    name = unique_name("clock")
    svc.add_child(Clock(name=name))
    dl_service(svc)
    assert dl_interface.get(name) == {"now": "2024-05-06T07:08:09+00:00"}


def test_dl_agent_describe_prints_it_readably(store):
    from .endpoints import dl
    svc, ep = store
    r = dl("agent", "describe", ep)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith(f"{ep} (endpoint) - dripline.implementations.key_value_store.KeyValueStore")
    assert "units: V" in out and "limits: min 0, max 5" in out and 'calibration: "2*{}"' in out
    assert "  throw_something()" in out and "  unlock(force=false)" in out
    r = dl("agent", "describe", svc.name)
    assert r.returncode == 0, r.stderr
    assert f"endpoints: {ep}" in r.stdout and "(service)" in r.stdout.splitlines()[0]
    r = dl("agent", "describe", ep, "--json-print")
    assert r.returncode == 0 and '"kind":"endpoint"' in r.stdout
