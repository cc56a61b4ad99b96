"""Bad input on the wire and a broker that drops every connection."""
from __future__ import annotations

import subprocess
import time
import uuid

import pika
import pytest

from dripline.client.interface import Interface
from dripline.testing import test_mesh



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


def test_client_and_service_recover_after_connections_are_closed(served):
    _, ep = served
    iface = Interface(dripline_mesh=test_mesh())
    try:
        assert iface.cmd(ep, "add", [1, 1]) == 2
        subprocess.run(["rabbitmqctl", "close_all_connections", "test: forced close"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        last_error = None
        while time.monotonic() < deadline:
            try:
                assert iface.cmd(ep, "add", [2, 3], timeout_s=2) == 5
                break
            except Exception as err:  # reconnecting: clear errors, never a hang
                last_error = err
                assert type(err).__name__ in ("ConnectionError_", "UnableToSendError", "TimeoutError_")
                time.sleep(0.2)
        else:
            pytest.fail(f"no recovery within 30 s; last error: {last_error!r}")
    finally:
        iface.close()
