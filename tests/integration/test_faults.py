"""Bad input on the wire, and a broker that drops every connection, restarts or is killed.

The broker faults run on a private node this module starts (tests/brokers.py), never the shared
broker."""
from __future__ import annotations

import time
import uuid

import pika
import pytest

from dripline.core import Interface, Service
from dripline.testing import run_service, unique_name

from .endpoints import Echo


def _raw_rpc(routing_key: str, body: bytes, headers: dict | None, content_encoding="application/json",
             timeout=5.0):
    """Publish a hand-made request with pika and return (properties, body) of the reply, or None."""
    conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(q, "requests", q)
        corr = str(uuid.uuid4())
        ch.basic_publish("requests", routing_key, body, pika.BasicProperties(
            content_encoding=content_encoding, correlation_id=corr, reply_to=q,
            message_id=f"{uuid.uuid4()}/0/1", headers=headers))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, rbody = ch.basic_get(q, auto_ack=True)
            if method is not None:
                assert props.correlation_id == corr
                return props, rbody
            conn.process_data_events(0.05)
        return None
    finally:
        conn.close()


def _headers(**extra):
    h = {"message_type": 3, "message_operation": 1, "specifier": "", "timestamp": "",
         "lockout_key": "", "sender_info": {"exe": "test", "hostname": "h", "username": "u",
                                            "service_name": "raw", "versions": {}}}
    h.update(extra)
    return h


def test_malformed_json_gets_an_error_reply_and_service_survives(served, dl_interface):
    _, ep = served
    result = _raw_rpc(ep, b"{not json", _headers())
    assert result is not None, "no reply to a malformed request"
    props, body = result
    assert props.headers["return_code"] == 302
    assert dl_interface.cmd(ep, "add", [1, 2]) == 3


def test_wrong_encoding_gets_301(served, dl_interface):
    _, ep = served
    props, body = _raw_rpc(ep, b"<xml/>", _headers(), content_encoding="application/xml")
    assert props.headers["return_code"] == 301
    assert dl_interface.cmd(ep, "add", [1, 2]) == 3


def test_missing_message_type_with_reply_to_is_answered(served, dl_interface):
    _, ep = served
    headers = _headers()
    del headers["message_type"]
    result = _raw_rpc(ep, b"null", headers)
    assert result is not None
    assert result[0].headers["return_code"] in (301, 302)
    assert dl_interface.get(ep) == {"value": None}


def test_reply_header_integers_are_unsigned_32_bit(served):
    """dripline-cpp <= 2.10.3 only reads AMQP 'i' (uint32) for these headers."""
    _, ep = served
    props, _ = _raw_rpc(ep, b"null", _headers())
    from dripline.protocol.message import UInt32
    encoded = pika.BasicProperties(headers={"return_code": UInt32(props.headers["return_code"])}).encode()
    assert b"return_code" + b"i" in b"".join(encoded)


def test_request_with_a_missing_chunk_is_answered_302_after_the_wait(served, dl_interface):
    _, ep = served
    conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(q, "requests", q)
        ch.basic_publish("requests", ep, b'{"values": [1', pika.BasicProperties(  # chunk 0 of 2 only
            content_encoding="application/json", correlation_id="c1", reply_to=q,
            message_id=f"{uuid.uuid4()}/0/2", headers=_headers()))
        deadline = time.monotonic() + 5
        reply = None
        while reply is None and time.monotonic() < deadline:
            method, props, body = ch.basic_get(q, auto_ack=True)
            if method is not None:
                reply = props
            conn.process_data_events(0.05)
    finally:
        conn.close()
    assert reply is not None and reply.headers["return_code"] == 302
    assert dl_interface.cmd(ep, "add", [1, 2]) == 3


def test_bad_lockout_key_gets_308(served):
    _, ep = served
    props, _ = _raw_rpc(ep, b"null", _headers(lockout_key="not-a-uuid"))
    assert props.headers["return_code"] == 308


def test_reply_sent_to_a_plain_service_is_logged_and_dropped(served, dl_interface):
    svc, ep = served
    conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    try:
        ch = conn.channel()
        ch.basic_publish("requests", svc.name, b"null", pika.BasicProperties(
            content_encoding="application/json", correlation_id="x", message_id="m/0/1",
            headers=dict(_headers(), message_type=2, return_code=0, return_message="")))
    finally:
        conn.close()
    assert dl_interface.cmd(ep, "add", [2, 2]) == 4


# ---------------------------------------------------------------------------------------------
# Broker faults. These run against a private RabbitMQ node that this module starts for itself
# (tests/brokers.py): closing connections on, restarting or killing the shared broker would break
# every other test running on the machine.

RECOVERY_WINDOW_S = 120  # a restart takes 10-20 s here; the bound only stops a broken run hanging

# what a client may raise while its broker is away: a clear error, never a hang
_TRANSIENT = ("ConnectionError_", "UnableToSendError", "TimeoutError_")


@pytest.fixture
def private_served(private_rabbit):
    """An Echo service on the private node: (node, service, endpoint name)."""
    svc = Service(unique_name("svc"), dripline_mesh=private_rabbit.mesh(), heartbeat_interval_s=0)
    ep = Echo(name=unique_name("echo"))
    svc.add_child(ep)
    with run_service(svc):
        yield private_rabbit, svc, ep.name
    if not private_rabbit.running:  # leave the module's node usable for the next test
        private_rabbit.start()


def _answers_again(iface: Interface, ep: str, a: int, b: int) -> list[str]:
    """Call `add` until the service answers (bounded); returns the names of the errors seen."""
    deadline = time.monotonic() + RECOVERY_WINDOW_S
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            assert iface.cmd(ep, "add", [a, b], timeout_s=3) == a + b
            return seen
        except AssertionError:
            raise
        except Exception as err:  # reconnecting
            assert type(err).__name__ in _TRANSIENT, f"unexpected error while recovering: {err!r}"
            seen.append(type(err).__name__)
            time.sleep(0.2)
    pytest.fail(f"no answer within {RECOVERY_WINDOW_S} s after the broker came back; errors: "
                f"{seen[-5:]}")


def _check_recovery(node, ep: str, fault) -> None:
    """Run `fault` on the node while a client is connected; both the client and the service must
    come back by themselves, and a brand-new client must reach the service (it re-bound)."""
    with Interface(dripline_mesh=node.mesh(), timeout_s=5) as iface:
        assert iface.cmd(ep, "add", [1, 1]) == 2
        fault()
        _answers_again(iface, ep, 2, 3)          # the same client, reconnected
        assert iface.get(ep) == {"value": None}  # and it keeps working
    with Interface(dripline_mesh=node.mesh(), timeout_s=5) as fresh:
        assert fresh.cmd(ep, "add", [4, 5]) == 9


def test_client_and_service_recover_after_connections_are_closed(private_served):
    node, _, ep = private_served
    _check_recovery(node, ep, lambda: node.ctl("close_all_connections", "test: forced close"))


def test_client_and_service_recover_after_a_graceful_broker_restart(private_served):
    node, _, ep = private_served
    _check_recovery(node, ep, lambda: node.restart(hard=False))


def test_client_and_service_recover_after_the_broker_is_killed(private_served):
    """kill -9 of the broker, then a start: exchanges and queues are declared again, bindings
    replayed, and requests sent while the broker was down failed with a clear error."""
    node, _, ep = private_served
    errors_while_down: list[str] = []

    def kill_then_start() -> None:
        node.kill()
        try:  # a new client cannot connect while the broker is down: it says so at once
            Interface(dripline_mesh=node.mesh(max_connection_attempts=1), timeout_s=2).close()
        except Exception as err:
            errors_while_down.append(type(err).__name__)
        node.start()

    _check_recovery(node, ep, kill_then_start)
    assert errors_while_down == ["ConnectionError_"]


def test_a_service_whose_queue_is_deleted_declares_it_again(private_served):
    """The broker cancels the consumer of a deleted queue (an operator's delete_queue, or a
    cluster cleaning up after a lost node): the service declares, binds and consumes again."""
    node, svc, ep = private_served
    with Interface(dripline_mesh=node.mesh(), timeout_s=5) as iface:
        assert iface.cmd(ep, "add", [1, 1]) == 2
        node.ctl("delete_queue", svc.name)
        _answers_again(iface, ep, 2, 3)
        assert any(q["name"] == svc.name for q in node.list_queues("name"))
