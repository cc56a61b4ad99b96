"""Issue 9 items 2-4 through the real broker, with raw pika and small volumes.

Chunk abuse is answered at once or with small 302s and leaves nothing held; 1,000 handler
exceptions write a bounded number of log records; a malformed reply ends the request it answers
at once with 402 instead of its timeout. Memory is checked on the reassembler's own accounting.
"""
from __future__ import annotations

import logging
import threading
import uuid

import pika
import pytest

from dripline.client.request_sender import build_request
from dripline.core import Interface, Service
from dripline.protocol.errors import DriplineError, TimeoutError_
from dripline.protocol.message import MsgReply, op_t
from dripline.testing import test_mesh, unique_name

from .endpoints import Echo
from .gates import take, wait_for

WAIT_MS = 200  # the service's chunk wait: short, so that expiries come quickly


def _headers(**extra):
    h = {"message_type": 3, "message_operation": 9, "specifier": "", "timestamp": "",
         "lockout_key": "", "sender_info": {"exe": "test", "hostname": "h", "username": "u",
                                            "service_name": "raw", "versions": {}}}
    h.update(extra)
    return h


def _size(props: pika.BasicProperties, body: bytes) -> int:
    """Bytes of one AMQP message as written: encoded properties plus body."""
    return len(b"".join(props.encode())) + len(body)


class RawClient:
    """A pika connection with its own reply queue bound on the requests exchange."""

    def __init__(self) -> None:
        self.conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
        self.ch = self.conn.channel()
        self.queue = self.ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self.ch.queue_bind(self.queue, "requests", self.queue)

    def publish(self, routing_key: str, body: bytes, message_id: str, correlation_id: str,
                reply: bool = True, **headers) -> int:
        props = pika.BasicProperties(content_encoding="application/json",
                                     correlation_id=correlation_id,
                                     reply_to=self.queue if reply else None, message_id=message_id,
                                     headers=_headers(**headers))
        self.ch.basic_publish("requests", routing_key, body, props)
        return _size(props, body)

    def replies(self, n: int, timeout: float = 30.0) -> list:
        """Up to `n` replies (properties, body), waiting at most `timeout` for them."""
        return [(props, body) for _, props, body in take(self.conn, self.ch, self.queue, n, timeout)]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def raw():
    client = RawClient()
    yield client
    client.close()


@pytest.fixture
def quick(dl_service):
    """A running service (short chunk wait) with one Echo endpoint: (service, endpoint name)."""
    svc = Service(unique_name("bounds"), dripline_mesh=test_mesh(), heartbeat_interval_s=0,
                  message_wait_ms=WAIT_MS)
    ep = Echo(name=unique_name("echo"))
    svc.add_child(ep)
    dl_service(svc)
    return svc, ep.name



# ------------------------------------------------------------------------------------------
# item 2: chunk abuse
# ------------------------------------------------------------------------------------------

def test_empty_chunk_announcing_2_to_the_32_chunks_is_refused(quick, raw, dl_interface):
    svc, ep = quick
    raw.publish(ep, b"", f"{uuid.uuid4()}/0/4294967296", "c-huge")
    (props, body), = raw.replies(1)
    assert props.correlation_id == "c-huge" and props.headers["return_code"] == 302
    assert "4294967296 chunks" in props.headers["return_message"]
    assert "max_message_size" in props.headers["return_message"]
    assert svc.runtime.receiver.assembler.held_bytes == 0 and len(svc.runtime.receiver.assembler) == 0
    assert dl_interface.cmd(ep, "add", [1, 2]) == 3


def test_tiny_first_chunks_announcing_a_million_chunks_get_small_replies(quick, raw, dl_interface):
    svc, ep = quick
    n = 200
    sent = {}
    for i in range(n):
        sent[f"c{i}"] = raw.publish(ep, b"0123456789", f"{uuid.uuid4()}/0/1000000", f"c{i}")
    got = raw.replies(n)
    assert len(got) == n
    for props, body in got:
        assert props.headers["return_code"] == 302
        assert "missing chunks 1-999999" in props.headers["return_message"]
        assert _size(props, body) <= sent[props.correlation_id] + 1024
        assert len(body) <= 10 + 1024
    assembler = svc.runtime.receiver.assembler
    assert wait_for(lambda: len(assembler) == 0) and assembler.held_bytes == 0
    assert dl_interface.get(ep) == {"value": None}


def test_incomplete_100kB_chunks_are_released_after_expiry(quick, raw, dl_interface):
    svc, ep = quick
    assembler = svc.runtime.receiver.assembler
    n = 30
    for i in range(n):
        raw.publish(ep, b"[" + b"1," * 50_000, f"{uuid.uuid4()}/0/3", f"big{i}",
                    reply=(i % 2 == 0))  # half of them without a reply_to
    replies = raw.replies(n // 2)
    assert len(replies) == n // 2
    assert all(p.headers["return_code"] == 302 for p, _ in replies)
    assert all(len(body) < 300 for _, body in replies)  # no padded payload
    assert wait_for(lambda: assembler.stats["expired"] + assembler.stats["evicted"] >= n)
    assert assembler.held_bytes == 0 and len(assembler) == 0
    assert dl_interface.cmd(ep, "add", [2, 2]) == 4


# ------------------------------------------------------------------------------------------
# item 3: bounded logs
# ------------------------------------------------------------------------------------------

def test_log_volume_bounded_for_1000_handler_exceptions(quick, raw, dl_interface, caplog):
    svc, ep = quick
    n = 1000
    with caplog.at_level(logging.WARNING):
        for i in range(n):
            raw.publish(ep, b"null", f"{uuid.uuid4()}/0/1", f"f{i}", specifier="fail")
        got = raw.replies(n, timeout=60)
        assert dl_interface.cmd(ep, "add", [1, 2]) == 3
    assert len(got) == n
    for props, _ in got:  # the reply still carries the exception's type and message
        assert props.headers["return_code"] == 999
        assert props.headers["return_message"] == "ValueError: this endpoint always fails"
    mine = [r for r in caplog.records if r.name.startswith("dripline")]
    tracebacks = [r for r in mine if r.exc_info]
    assert len(tracebacks) == 1 and "this endpoint always fails" in tracebacks[0].getMessage()
    assert len(mine) <= 3


def test_undecodable_flood_is_reported_once(quick, raw, caplog):
    svc, ep = quick
    with caplog.at_level(logging.WARNING):
        for i in range(300):
            raw.publish(ep, b"null", f"bad/{i}", f"u{i}")  # malformed message id
        got = raw.replies(300)
    assert len(got) == 300 and all(p.headers["return_code"] == 302 for p, _ in got)
    undecodable = [r for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(undecodable) == 1


# ------------------------------------------------------------------------------------------
# item 4: malformed replies fail fast
# ------------------------------------------------------------------------------------------

def _good_reply_headers(**extra):
    h = {"message_type": 2, "return_code": 0, "return_message": "", "specifier": "",
         "timestamp": "", "sender_info": {"exe": "x", "hostname": "h", "username": "u",
                                          "service_name": "bad_replier", "versions": {}}}
    h.update(extra)
    return h


def _malformed(shape: str, body: bytes = b"1"):
    """(properties kwargs, body) of a reply of the given bad shape."""
    if shape == "no headers":
        return {"headers": None}, body
    if shape == "return_code of the wrong type":
        return {"headers": _good_reply_headers(return_code="zero")}, body
    if shape == "message_type of the wrong type":
        return {"headers": _good_reply_headers(message_type="2")}, body
    if shape == "gzip":
        return {"headers": _good_reply_headers(), "content_encoding": "gzip"}, body
    if shape == "message id a/b/c":
        return {"headers": _good_reply_headers(), "message_id": "a/b/c"}, body
    if shape == "return_code 2**40":
        return {"headers": _good_reply_headers(return_code=2 ** 40)}, body
    if shape == "return_code -5":
        return {"headers": _good_reply_headers(return_code=-5)}, body
    if shape == "sender_info a string":  # tolerated: filled with defaults, the reply is used
        return {"headers": _good_reply_headers(sender_info="me")}, body
    raise AssertionError(shape)


class BadReplier(threading.Thread):
    """A raw pika 'service': answers each request with the reply shape named by its specifier."""

    def __init__(self, name: str) -> None:
        super().__init__(daemon=True)
        self.name_ = name
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
        ch = conn.channel()
        ch.exchange_declare("requests", "topic")
        q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(q, "requests", f"{self.name_}.#")
        ch.queue_bind(q, "requests", self.name_)
        self.ready.set()
        while not self.stop.is_set():
            method, props, _ = ch.basic_get(q, auto_ack=True)
            if method is None:
                conn.process_data_events(0.02)
                continue
            shape = (props.headers or {}).get("specifier", "")
            if isinstance(shape, bytes):
                shape = shape.decode()
            if shape == "incomplete":  # the first of two chunks only
                reply = {"headers": _good_reply_headers(), "message_id": f"{uuid.uuid4()}/0/2"}
                body = b"[1,"
            else:
                reply, body = _malformed(shape)
            reply.setdefault("content_encoding", "application/json")
            reply.setdefault("message_id", f"{uuid.uuid4()}/0/1")
            ch.basic_publish("requests", props.reply_to, body, pika.BasicProperties(
                correlation_id=props.correlation_id, **reply))
        conn.close()


@pytest.fixture(scope="module")
def bad_replier():
    replier = BadReplier(unique_name("badrep"))
    replier.start()
    assert replier.ready.wait(10)
    yield replier.name_
    replier.stop.set()
    replier.join(10)


@pytest.mark.parametrize("shape,expected", [
    ("no headers", "message_type header missing"),
    ("return_code of the wrong type", "'return_code' must be an integer"),
    ("message_type of the wrong type", "'message_type' must be an integer"),
    ("gzip", "content encoding <gzip>"),
    ("message id a/b/c", "Message ID is not formatted correctly"),
    ("return_code 2**40", "does not fit in 32 bits"),
    ("return_code -5", "'return_code' value -5 is negative"),
    ("incomplete", "1 of 2 chunks received"),
])
def test_malformed_reply_ends_the_request_with_402(bad_replier, dl_interface, shape, expected):
    with pytest.raises(DriplineError) as info:
        dl_interface.get(bad_replier, specifier=shape, timeout_s=20)
    err = info.value
    assert not isinstance(err, TimeoutError_), "the client waited out its timeout"
    assert err.return_code == 402 and expected in err.message, err.message


def test_tolerated_reply_oddities_still_deliver(bad_replier, dl_interface):
    reply = dl_interface.send_request(
        build_request(op_t.get, bad_replier, "sender_info a string", None, None), timeout_s=20)
    assert isinstance(reply, MsgReply) and reply.payload == 1
    assert reply.sender_info["service_name"] == "unknown"


def test_malformed_reply_from_a_broadcast_does_not_end_the_collection(bad_replier):
    with Interface(dripline_mesh=test_mesh(), timeout_s=5) as iface:
        replies = iface.send_request_all(build_request(op_t.get, bad_replier, "gzip", None, None),
                                         timeout_s=0.5)
    assert replies == []


def test_dl_mon_shows_an_undecodable_flood_once_and_incomplete_messages_small(raw):
    import subprocess
    import sys
    key = unique_name("sensor_value.bounds")
    mon = subprocess.Popen([sys.executable, "-m", "dripline.cli.mon", "-a", key, "-n", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "watching" in mon.stderr.readline()
        alert = dict(message_type=4)
        for i in range(100):  # undecodable: a malformed message id
            raw.ch.basic_publish("alerts", key, b"1", pika.BasicProperties(
                content_encoding="application/json", message_id=f"x/{i}", headers=_headers(**alert)))
        # the first chunk of a message announcing a million chunks: shown once its wait is over
        raw.ch.basic_publish("alerts", key, b"0123456789", pika.BasicProperties(
            content_encoding="application/json", message_id=f"{uuid.uuid4()}/0/1000000",
            headers=_headers(**alert)))
        raw.ch.basic_publish("alerts", key, b'{"value": 3}', pika.BasicProperties(
            content_encoding="application/json", message_id=f"{uuid.uuid4()}/0/1",
            headers=_headers(**alert)))
        out, err = mon.communicate(timeout=30)
    finally:
        if mon.poll() is None:
            mon.kill()
    lines = out.strip().splitlines()
    assert sum(line.startswith("undecodable message on") for line in lines) == 1, out
    assert lines[-1].startswith("... 99 more undecodable messages like this"), out  # at exit
    shown = [line for line in lines if "undecodable" not in line]
    assert len(shown) == 2 and '{"value": 3}' in shown[0]
    assert '"missing_chunks": "1-999999"' in shown[1] and len(shown[1]) < 1024
