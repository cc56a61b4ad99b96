"""The message codec: wire format (reference §1.5-§1.10), reference-compatible API (§4.9, §10.1
test_messages / test_constants) and robustness of decoding against arbitrary input."""
from __future__ import annotations

import datetime
import json
import logging
import math
import random
import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dripline.core import message as m
from dripline.protocol.chunks import Reassembler
from dripline.protocol.errors import DecodeError, DriplineError
from dripline.client.identity import SenderIdentity, now_timestamp, sender_info_for
from dripline.protocol.message import (
    MsgAlert, MsgReply, MsgRequest, Properties, UInt32, WireMessage, decode, format_timestamp,
    msg_t, new_id, op_t, unknown_sender_info,
)
from dripline.protocol.specifier import Specifier

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
NIL = uuid.UUID(int=0)
SENDER_KEYS = {"exe", "hostname", "username", "service_name", "versions"}
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def wire_of(msg, size=10000):
    chunks = msg.encode(size)
    assert all(isinstance(c, WireMessage) for c in chunks)
    return chunks


def roundtrip(msg):
    (w,) = wire_of(msg)
    return decode(w.routing_key, w.body, w.properties)


def good_headers(**overrides):
    headers = {
        "message_type": UInt32(3), "specifier": "", "timestamp": "2024-02-06T02:08:38.525721Z",
        "sender_info": {"exe": "/x", "hostname": "h", "username": "u", "service_name": "s",
                        "versions": {"dripline": {"version": "3.0.0"}}},
        "message_operation": UInt32(1), "lockout_key": str(NIL),
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not _MISSING}


_MISSING = object()


def props(headers=None, **kw):
    base = dict(content_encoding="application/json", correlation_id="cid", message_id="mid/0/1",
                reply_to="rq", headers=good_headers() if headers is None else headers)
    base.update(kw)
    return Properties(**base)


# ------------------------------------------------------------------------------------------
# constants (reference test_constants)
# ------------------------------------------------------------------------------------------

OPS = {"set": 0, "get": 1, "run": 8, "cmd": 9, "unknown": 0xFFFFFFFF}
TYPES = {"reply": 2, "request": 3, "alert": 4, "unknown": 0xFFFFFFFF}


@pytest.mark.parametrize("name,value", OPS.items())
def test_op_t_conversions(name, value):
    member = getattr(op_t, name)
    assert op_t.to_uint(member) == value
    assert op_t.to_string(member) == name
    assert op_t.to_op_t(value) is member
    assert op_t.to_op_t(name) is member
    assert m.to_uint(member) == value
    assert m.to_string(member) == name
    assert m.to_op_t(name) is member


@pytest.mark.parametrize("name,value", TYPES.items())
def test_msg_t_conversions(name, value):
    member = getattr(msg_t, name)
    assert msg_t.to_uint(member) == value
    assert msg_t.to_string(member) == name
    assert msg_t.to_msg_t(value) is member
    assert msg_t.to_msg_t(name) is member
    assert m.to_msg_t(value) is member


def test_cross_enum_conversion_raises_type_error():
    with pytest.raises(TypeError):
        op_t.to_string(msg_t.request)
    with pytest.raises(TypeError):
        msg_t.to_string(op_t.set)
    with pytest.raises(TypeError):
        op_t.to_uint(msg_t.reply)
    with pytest.raises(TypeError):
        msg_t.to_msg_t(op_t.get)
    with pytest.raises(TypeError):
        m.to_string(3)


def test_unknown_strings_raise_dripline_error():
    with pytest.raises(DriplineError):
        op_t.to_op_t("hello")
    with pytest.raises(DriplineError):
        msg_t.to_msg_t("hello")
    with pytest.raises(DriplineError):
        op_t.to_op_t(-1)


def test_unnamed_operation_numbers_are_preserved():
    op = op_t.to_op_t(5)
    assert isinstance(op, op_t) and int(op) == 5
    assert op_t(5) == 5
    with pytest.raises(DriplineError):
        op_t.to_string(op)
    assert len(list(op_t)) == 7  # no pseudo member leaks into the enum


def test_uint32_marker():
    value = UInt32(3)
    assert isinstance(value, int) and value == 3 and repr(value) == "UInt32(3)"
    assert UInt32(0xFFFFFFFF) == 4294967295
    with pytest.raises(ValueError):
        UInt32(-1)
    with pytest.raises(ValueError):
        UInt32(2 ** 32)


# ------------------------------------------------------------------------------------------
# reference-compatible constructors (reference test_messages)
# ------------------------------------------------------------------------------------------

def test_request_create_default():
    req = MsgRequest.create()
    assert isinstance(req, MsgRequest)
    assert req.is_request() and not req.is_reply() and not req.is_alert()
    assert req.lockout_key_valid
    assert req.lockout_key == NIL
    assert req.payload.is_null() and req.payload == None  # noqa: E711 - the reference's null Param
    assert req.message_operation is op_t.unknown
    assert req.routing_key == ""
    assert req.specifier.to_string() == ""
    assert req.reply_to == ""
    assert req.encoding.name == "json"
    assert req.encoding == "application/json"
    assert len(req.correlation_id) == 36 and UUID_RE.match(req.correlation_id)
    assert req.message_type is msg_t.request
    assert req.is_valid


def test_request_create_nondefault():
    req = MsgRequest.create({"p1": 1, "p2": 2}, op_t.get, "hey", "heyy.1", "a_receiver")
    assert req.payload == {"p1": 1, "p2": 2}
    assert req.message_operation is op_t.get
    assert req.routing_key == "hey"
    assert isinstance(req.specifier, Specifier) and req.specifier.to_string() == "heyy.1"
    assert req.reply_to == "a_receiver"
    assert len(req.correlation_id) == 36
    assert MsgRequest.create(msg_op="cmd").message_operation is op_t.cmd
    assert MsgRequest.create(msg_op=9).message_operation is op_t.cmd


def test_two_requests_have_different_correlation_ids():
    assert MsgRequest.create().correlation_id != MsgRequest.create().correlation_id


def test_create_rejects_non_json_encoding():
    with pytest.raises(DriplineError):
        MsgRequest.create(encoding="msgpack")
    assert MsgAlert.create(encoding="application/json").encoding.name == "json"


def test_lockout_key_roundtrip():
    req = MsgRequest.create()
    assert req.lockout_key == NIL
    key = uuid.uuid4()
    req.lockout_key = key
    assert req.lockout_key == key
    key2 = uuid.uuid4()
    req.lockout_key = str(key2)
    assert req.lockout_key == key2
    assert isinstance(req.lockout_key, uuid.UUID)


@pytest.mark.parametrize("form", [
    lambda u: str(u), lambda u: str(u).upper(), lambda u: u.hex, lambda u: u.hex.upper(),
    lambda u: "{" + str(u) + "}", lambda u: "{" + u.hex + "}",
])
def test_lockout_key_string_forms(form):
    key = uuid.uuid4()
    req = MsgRequest.create()
    req.lockout_key = form(key)
    assert req.lockout_key == key
    # and the same forms are understood on the wire
    msg = decode("t", b"null", props(good_headers(lockout_key=form(key))))
    assert msg.lockout_key == key and msg.lockout_key_valid


@pytest.mark.parametrize("bad", ["blah", "1234", str(uuid.uuid4())[:-1] + "g",
                                 "+" + uuid.uuid4().hex[1:], "12345678_1234_1234_1234_123456789012",
                                 12345])
def test_invalid_lockout_key_setter_raises(bad):
    req = MsgRequest.create()
    with pytest.raises(DriplineError):
        req.lockout_key = bad
    assert req.lockout_key == NIL


def test_request_reply_default():
    req = MsgRequest.create(reply_to="a_receiver")
    rep = req.reply()
    assert isinstance(rep, MsgReply)
    assert rep.return_code == 0 and rep.return_message == "" and rep.payload.is_null()
    assert rep.routing_key == "a_receiver"
    assert rep.correlation_id == req.correlation_id
    assert rep.specifier == ""


def test_request_reply_nondefault():
    req = MsgRequest.create(reply_to="a_receiver")
    rep = req.reply(788, "a return message.", 99)
    assert (rep.return_code, rep.return_message, rep.payload) == (788, "a return message.", 99)
    assert rep.routing_key == req.reply_to and rep.correlation_id == req.correlation_id


def test_reply_create_default():
    rep = MsgReply.create()
    assert rep.is_reply() and not rep.is_request() and not rep.is_alert()
    assert rep.return_code == 0 and rep.return_message == "" and rep.payload.is_null()
    assert rep.routing_key == "" and rep.specifier.to_string() == ""
    assert rep.encoding.name == "json"
    assert rep.correlation_id == ""
    assert rep.reply_to == ""


def test_reply_create_nondefault_forms():
    rep = MsgReply.create(1005, "a message!", 87, "hey", "heyy.11")
    assert (rep.return_code, rep.return_message, rep.payload) == (1005, "a message!", 87)
    assert rep.routing_key == "hey" and rep.specifier.to_string() == "heyy.11"
    assert rep.correlation_id == ""

    req = MsgRequest.create(reply_to="a_receiver", specifier="x.y")
    rep2 = MsgReply.create(2005, "another message!", 87, req)
    assert rep2.return_code == 2005 and rep2.return_message == "another message!"
    assert rep2.routing_key == "a_receiver" and rep2.specifier.to_string() == ""
    assert rep2.correlation_id == req.correlation_id
    rep3 = MsgReply.create(1, "m", None, msg_request=req)
    assert rep3.routing_key == "a_receiver" and rep3.correlation_id == req.correlation_id


def test_reply_return_code_forms():
    class FakeReturnCode:
        value = 307
    assert MsgReply.create(FakeReturnCode()).return_code == 307
    assert MsgReply.create(FakeReturnCode).return_code == 307
    assert MsgReply.create("success").return_code == 0  # snake_case names via return_codes
    with pytest.raises(DriplineError):
        MsgReply.create(-1)
    with pytest.raises(DriplineError):
        MsgReply.create(2 ** 32)
    with pytest.raises(DriplineError):
        MsgReply.create(3.5)


def test_alert_create_default_and_nondefault():
    alert = MsgAlert.create()
    assert alert.is_alert() and not alert.is_reply() and not alert.is_request()
    assert alert.payload.is_null() and alert.routing_key == "" and alert.specifier == ""
    assert alert.encoding.name == "json" and len(alert.correlation_id) == 36
    alert2 = MsgAlert.create(3, "hey", "heyy.1")
    assert (alert2.payload, alert2.routing_key, alert2.specifier.to_string()) == (3, "hey", "heyy.1")


def test_scarab_like_payload_is_converted_to_plain_data():
    class Param:
        def to_python(self):
            return {"a": [1, 2]}
    req = MsgRequest.create(Param())
    assert req.payload == {"a": [1, 2]}
    rep = MsgReply.create(payload={"nested": Param()})
    assert json.loads(wire_of(rep)[0].body) == {"nested": {"a": [1, 2]}}


@pytest.mark.parametrize("msg", [MsgRequest.create(payload=99), MsgReply.create(payload=99),
                                 MsgAlert.create(payload=99)])
def test_encode_full_message_is_json_of_all_fields(msg):
    text = msg.encode_full_message()
    assert isinstance(text, str) and text
    full = json.loads(text)
    common = {"routing_key", "specifier", "correlation_id", "message_id", "reply_to",
              "message_type", "encoding", "timestamp", "sender_info", "payload"}
    extra = {MsgRequest: {"message_operation", "lockout_key"},
             MsgReply: {"return_code", "return_message"}, MsgAlert: set()}[type(msg)]
    assert set(full) == common | extra
    assert full["payload"] == 99 and full["encoding"] == "application/json"
    assert full["message_type"] == int(msg.message_type)
    assert list(full) == sorted(full)  # keys sorted like the reference's param node
    assert full == json.loads(json.dumps(msg.to_dict()))
    assert len(msg.encode_full_message(max_size=20)) == 20


def test_plain_message_cannot_be_encoded():
    bare = m.Message({"a": 1}, "rk")
    assert bare.message_type is msg_t.unknown
    assert not (bare.is_request() or bare.is_reply() or bare.is_alert())
    assert "rk" in repr(bare) and bare.to_dict()["payload"] == {"a": 1}
    with pytest.raises(DriplineError):
        bare.encode()


# ------------------------------------------------------------------------------------------
# wire format (reference §1.5-§1.9)
# ------------------------------------------------------------------------------------------

def test_request_wire_format():
    req = MsgRequest.create({"values": [1]}, op_t.set, "my_store", "peaches.x", "reply_q")
    key = uuid.uuid4()
    req.lockout_key = key
    req.sender_info = sender_info_for()  # what a client's Core stamps when it publishes
    (w,) = req.encode(10000, timestamp=now_timestamp())
    assert w.routing_key == "my_store" and w.mandatory is True
    p = w.properties
    assert p.content_encoding == "application/json"
    assert p.correlation_id == req.correlation_id
    assert p.reply_to == "reply_q"
    base, index, total = p.message_id.split("/")
    assert UUID_RE.match(base) and (index, total) == ("0", "1")
    assert base == req.message_id
    h = p.headers
    assert set(h) == {"message_type", "specifier", "timestamp", "sender_info",
                      "message_operation", "lockout_key"}
    assert type(h["message_type"]) is UInt32 and h["message_type"] == 3
    assert type(h["message_operation"]) is UInt32 and h["message_operation"] == 0
    assert h["specifier"] == "peaches.x" and type(h["specifier"]) is str
    assert h["lockout_key"] == str(key)
    assert TIMESTAMP_RE.match(h["timestamp"]) and h["timestamp"] == req.timestamp
    parsed = datetime.datetime.fromisoformat(h["timestamp"])
    assert parsed.tzinfo is not None
    assert abs((datetime.datetime.now(datetime.timezone.utc) - parsed).total_seconds()) < 60
    assert set(h["sender_info"]) == SENDER_KEYS
    assert h["sender_info"]["service_name"] == "unknown"
    assert "dripline" in h["sender_info"]["versions"]
    assert w.body == b'{"values":[1]}'


def test_request_without_lockout_key_writes_nil_uuid():
    (w,) = wire_of(MsgRequest.create())
    assert w.properties.headers["lockout_key"] == "00000000-0000-0000-0000-000000000000"
    assert w.body == b"null"
    assert w.properties.headers["message_operation"] == 0xFFFFFFFF


def test_reply_wire_format():
    req = MsgRequest.create(reply_to="rq")
    rep = req.reply(307, "denied", {"b": 2, "a": 1})
    (w,) = wire_of(rep)
    assert w.routing_key == "rq" and w.mandatory is False
    assert w.properties.reply_to == "" and w.properties.correlation_id == req.correlation_id
    h = w.properties.headers
    assert set(h) == {"message_type", "specifier", "timestamp", "sender_info", "return_code",
                      "return_message"}
    assert type(h["message_type"]) is UInt32 and h["message_type"] == 2
    assert type(h["return_code"]) is UInt32 and h["return_code"] == 307
    assert h["return_message"] == "denied" and h["specifier"] == ""
    assert w.body == b'{"a":1,"b":2}'
    big = MsgReply.create(123456)
    assert type(wire_of(big)[0].properties.headers["return_code"]) is UInt32


def test_alert_wire_format():
    alert = MsgAlert.create({"value_raw": 0.75, "value_cal": 1.5}, "sensor_value.x")
    (w,) = wire_of(alert)
    assert w.mandatory is False and w.routing_key == "sensor_value.x"
    assert w.properties.reply_to == "" and w.properties.correlation_id == alert.correlation_id
    assert set(w.properties.headers) == {"message_type", "specifier", "timestamp", "sender_info"}
    assert w.properties.headers["message_type"] == 4
    assert w.body == b'{"value_cal":1.5,"value_raw":0.75}'


def test_message_id_is_kept_and_timestamp_is_the_one_handed_in():
    alert = MsgAlert.create(1)
    first = alert.encode(timestamp="2024-02-06T02:08:38.525721Z")[0].properties
    assert first.headers["timestamp"] == alert.timestamp == "2024-02-06T02:08:38.525721Z"
    second = wire_of(alert)[0].properties  # no new timestamp: the message's own is written
    assert second.headers["timestamp"] == "2024-02-06T02:08:38.525721Z"
    assert first.message_id == second.message_id
    assert alert.message_id == first.message_id.split("/")[0]
    other = MsgAlert.create(1)
    assert wire_of(other)[0].properties.message_id != first.message_id
    alert.message_id = ""
    assert wire_of(alert)[0].properties.message_id != first.message_id
    given = alert.encode(message_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")[0].properties
    assert given.message_id == "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/0/1"


def test_encoding_reads_no_clock_host_or_registry():
    """The same message with the same stamps encodes to the same bytes (sans-I/O codec)."""
    def build():
        req = MsgRequest.create({"values": [1.5]}, op_t.set, "peaches", "", "rq",
                                correlation_id="c0ffee00-0000-4000-8000-000000000000")
        req.sender_info = SenderIdentity("/usr/bin/dl-agent", "daq1", "alice",
                                         {"dripline": {"version": "3.0.0"}}).sender_info()
        return req.encode(10000, timestamp="2024-02-06T02:08:38.525721Z",
                          message_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    a, b = build(), build()
    assert [(w.body, w.properties) for w in a] == [(w.body, w.properties) for w in b]
    h = a[0].properties.headers
    assert h["sender_info"] == {"exe": "/usr/bin/dl-agent", "hostname": "daq1",
                                "username": "alice", "service_name": "unknown",
                                "versions": {"dripline": {"version": "3.0.0"}}}
    assert h["timestamp"] == "2024-02-06T02:08:38.525721Z"


def test_a_new_message_names_nobody_until_its_sender_stamps_it():
    req = MsgRequest.create()
    assert req.sender_info == unknown_sender_info()
    assert set(req.sender_info) == SENDER_KEYS
    assert req.sender_info is not MsgRequest.create().sender_info  # one dict per message
    assert wire_of(req)[0].properties.headers["timestamp"] == ""


def test_format_timestamp_and_new_id_are_pure():
    assert format_timestamp(1_707_185_318_525_721_000) == "2024-02-06T02:08:38.525721Z"
    assert format_timestamp(1_707_185_319_000_000_999) == "2024-02-06T02:08:39.000000Z"
    assert new_id(bytes(16)) == "00000000-0000-4000-8000-000000000000"
    assert new_id(b"\xff" * 16) == "ffffffff-ffff-4fff-bfff-ffffffffffff"
    assert UUID_RE.match(new_id()) and new_id() != new_id()
    with pytest.raises(DriplineError):
        new_id(b"short")


def test_body_encoding_rules(caplog):
    def body(payload):
        return wire_of(MsgAlert.create(payload))[0].body

    assert body(None) == b"null"
    assert body((1, 2, (3,))) == b"[1,2,[3]]"
    assert body({"z": {"y": 1, "x": 2}, "a": []}) == b'{"a":[],"z":{"x":2,"y":1}}'
    assert body(2 ** 100) == str(2 ** 100).encode()
    assert body({"big": -(2 ** 80), "t": (1,)}) == b'{"big":-%d,"t":[1]}' % 2 ** 80
    assert body(float("nan")) == b"null"
    assert body("é€😀") == '"é€😀"'.encode()
    assert body({1: "a"}) == b'{"1":"a"}'
    with caplog.at_level(logging.WARNING, logger="dripline.protocol.message"):
        assert body({"s": {1}}) == b'{"s":"{1}"}'
    assert "cannot be represented" in caplog.text


def test_circular_payload_falls_back_to_str():
    loop = []
    loop.append(loop)
    assert wire_of(MsgAlert(loop))[0].body == b'"[[...]]"'


# ------------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------------

def test_request_round_trip_all_fields():
    req = MsgRequest.create({"values": [1, "two", 3.5, None, True]}, op_t.cmd, "svc.ignored",
                            "method.a", "reply_queue")
    req.lockout_key = uuid.uuid4()
    req.sender_info = sender_info_for("my_service")
    back = roundtrip(req)
    assert isinstance(back, MsgRequest) and back.is_valid
    assert back.to_dict() == req.to_dict()
    assert back.message_operation is op_t.cmd
    assert back.lockout_key == req.lockout_key and back.lockout_key_valid
    assert isinstance(back.specifier, Specifier) and back.specifier.tokens == ["method", "a"]
    assert back.sender_info["service_name"] == "my_service"


def test_reply_round_trip_all_fields():
    rep = MsgReply.create(999, "bad thing", {"k": [1, 2]}, "reply_q", "sp")
    rep.correlation_id = str(uuid.uuid4())
    back = roundtrip(rep)
    assert isinstance(back, MsgReply)
    assert back.to_dict() == rep.to_dict()
    assert (back.return_code, back.return_message) == (999, "bad thing")


def test_alert_round_trip_all_fields():
    alert = MsgAlert.create({"name": "svc", "id": str(uuid.uuid4())}, "heartbeat.svc", "a.b")
    back = roundtrip(alert)
    assert isinstance(back, MsgAlert) and back.to_dict() == alert.to_dict()


def test_decode_accepts_pika_properties_after_binary_round_trip():
    pika = pytest.importorskip("pika")
    req = MsgRequest.create({"values": [5]}, op_t.set, "peaches", "", "rq")
    (w,) = wire_of(req)
    p = w.properties
    pika_props = pika.BasicProperties(content_encoding=p.content_encoding,
                                      correlation_id=p.correlation_id, message_id=p.message_id,
                                      reply_to=p.reply_to, headers=dict(p.headers))
    received = pika.BasicProperties()
    received.decode(b"".join(pika_props.encode()))
    back = decode("peaches", w.body, received)
    assert back.to_dict() == req.to_dict()


# ------------------------------------------------------------------------------------------
# decoding: leniency and errors
# ------------------------------------------------------------------------------------------

def test_message_id_without_slash_is_accepted():
    msg = decode("t", b"1", props(message_id="plain-uuid"))
    assert msg.message_id == "plain-uuid" and msg.payload == 1
    assert Reassembler().feed("t", b"1", props(message_id="plain-uuid"), 0.0).payload == 1


def test_bytes_headers_and_properties_are_decoded_as_utf8():
    headers = good_headers(specifier="sp.é".encode(), timestamp=b"ts", lockout_key=str(NIL).encode())
    msg = decode(b"rk", b"null", props(headers, correlation_id=b"c", reply_to=bytearray(b"r"),
                                       content_encoding=b"application/json"))
    assert msg.specifier == "sp.é" and msg.timestamp == "ts"
    assert (msg.routing_key, msg.correlation_id, msg.reply_to) == ("rk", "c", "r")
    assert msg.lockout_key_valid


def test_integer_headers_accept_any_int_type_and_wrap_signed():
    class MyInt(int):
        pass
    msg = decode("t", b"null", props(good_headers(message_type=MyInt(3), message_operation=1)))
    assert msg.message_operation is op_t.get
    msg = decode("t", b"null", props(good_headers(message_operation=-1)))
    assert msg.message_operation is op_t.unknown
    # return codes are unsigned: a negative one is an error, not wrapped (-5 is not 4294967291)
    with pytest.raises(DecodeError, match="negative"):
        decode("t", b"null", props(good_headers(message_type=2, return_code=-5)))


@pytest.mark.parametrize("bad", [True, 3.0, "3", 2 ** 40, -(2 ** 40), [3], {"a": 3}])
def test_bad_message_type_raises_decode_error(bad):
    with pytest.raises(DecodeError) as info:
        decode("t", b"null", props(good_headers(message_type=bad)))
    assert info.value.reply_to == "rq" and info.value.correlation_id == "cid"
    assert info.value.message_type is None


@pytest.mark.parametrize("value", [_MISSING, 0, 1, 5, 0xFFFFFFFF])
def test_missing_or_unknown_message_type_raises(value):
    with pytest.raises(DecodeError) as info:
        decode("t", b"null", props(good_headers(message_type=value)))
    assert isinstance(info.value, DriplineError) and info.value.return_code == 302


@pytest.mark.parametrize("encoding", [None, "", "text/plain", "application/msgpack", 5])
def test_wrong_content_encoding_raises_301_with_reply_info(encoding):
    with pytest.raises(DecodeError) as info:
        decode("svc", b"null", props(content_encoding=encoding))
    error = info.value
    assert error.return_code == 301
    assert (error.reply_to, error.correlation_id, error.routing_key) == ("rq", "cid", "svc")
    assert error.message_type is msg_t.request


@pytest.mark.parametrize("key,bad", [("specifier", 5), ("return_message", [1]),
                                     ("timestamp", 1.5), ("message_operation", "get"),
                                     ("return_code", "0")])
def test_wrongly_typed_headers_raise_decode_error_with_context(key, bad):
    headers = good_headers(**{key: bad})
    if key.startswith("return"):
        headers["message_type"] = 2
    with pytest.raises(DecodeError) as info:
        decode("t", b"null", props(headers))
    assert info.value.reply_to == "rq" and info.value.message_type in (msg_t.request, msg_t.reply)


def test_headers_not_a_table_raise():
    with pytest.raises(DecodeError):
        decode("t", b"null", props(headers=[1, 2]))
    with pytest.raises(DecodeError):  # no headers at all: message_type is missing
        decode("t", b"null", Properties(content_encoding="application/json"))


def test_missing_optional_headers_take_reference_defaults():
    msg = decode("t", b"null", props({"message_type": 3}))
    assert isinstance(msg, MsgRequest)
    assert msg.message_operation is op_t.unknown
    assert msg.lockout_key == NIL and msg.lockout_key_valid
    assert msg.specifier == "" and msg.timestamp == ""
    assert msg.sender_info == {"exe": "unknown", "hostname": "unknown", "username": "unknown",
                               "service_name": "unknown", "versions": {}}
    rep = decode("t", b"null", props({"message_type": 2}))
    assert rep.return_code == 999 and rep.return_message == ""


def test_incomplete_sender_info_is_filled():
    info = {"exe": b"/bin/x", "hostname": 7,
            "versions": {"a": {"version": "1"}, "b": "2", "c": 3, "d": {"commit": "x"}}}
    msg = decode("t", b"null", props(good_headers(sender_info=info)))
    assert msg.sender_info == {"exe": "/bin/x", "hostname": "7", "username": "unknown",
                               "service_name": "unknown",
                               "versions": {"a": {"version": "1"}, "b": {"version": "2"},
                                            "d": {"version": "", "commit": "x"}}}
    msg2 = decode("t", b"null", props(good_headers(sender_info="not a table")))
    assert set(msg2.sender_info) == SENDER_KEYS


def test_unknown_headers_are_ignored():
    msg = decode("t", b"7", props(good_headers(future_field={"x": 1}, another=[1, 2])))
    assert msg.payload == 7 and msg.is_valid


@pytest.mark.parametrize("value,valid", [("", True), (None, True), ("blah", False),
                                         (123, False), ([], False), (b"\xff\xfe", False)])
def test_lockout_key_header_validity(value, valid):
    msg = decode("t", b"null", props(good_headers(lockout_key=value)))
    assert msg.lockout_key_valid is valid
    assert msg.lockout_key == NIL


def test_unnamed_operation_survives_decode():
    msg = decode("t", b"null", props(good_headers(message_operation=5)))
    assert int(msg.message_operation) == 5 and isinstance(msg.message_operation, op_t)
    (w,) = wire_of(msg)
    assert w.properties.headers["message_operation"] == 5
    assert type(w.properties.headers["message_operation"]) is UInt32


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe\x00", b"NaN", b"[1,",
                                  "\"é\"".encode("latin-1")])
def test_unparsable_body_gives_invalid_message(body):
    msg = decode("t", body, props())
    assert msg.is_valid is False
    assert msg.payload == {"invalid": body.decode("utf-8", "replace"),
                           "error": "Message body could not be parsed; skipping request"}
    assert isinstance(msg, MsgRequest) and msg.reply_to == "rq"


def test_big_integers_in_body_are_exact():
    value = {"n": 123456789012345678901234567890, "m": -(2 ** 70), "f": 0.1234567890123456789}
    msg = decode("t", json.dumps(value).encode(), props())
    assert msg.payload == value and type(msg.payload["n"]) is int


def test_big_integers_in_large_body_are_exact():
    value = {"pad": "x" * 2000, "n": 2 ** 90, "digits_in_text": "1234567890123456789012"}
    msg = decode("t", json.dumps(value).encode(), props())
    assert msg.payload == value and msg.is_valid
    plain = {"pad": "y" * 2000, "n": 2 ** 62}
    assert decode("t", json.dumps(plain).encode(), props()).payload == plain


def test_message_id_suffix_is_stripped():
    assert decode("t", b"1", props(message_id="abc/0/1")).message_id == "abc"


# ------------------------------------------------------------------------------------------
# chunking and reassembly (reference §1.10)
# ------------------------------------------------------------------------------------------

def big_payload(n_bytes=1_000_000):
    rng = random.Random(1)
    words = ["alpha", "βeta", "gämma", "δέλτα", "😀", "x" * 7]
    items = []
    size = 0
    while size < n_bytes:
        word = rng.choice(words) * rng.randint(1, 20)
        items.append({"w": word, "n": rng.randint(-10 ** 6, 10 ** 6)})
        size += len(word.encode()) + 20
    return {"items": items}


def test_chunking_of_1mb_payload():
    payload = big_payload()
    req = MsgRequest.create(payload, op_t.set, "store", "spec", "rq")
    chunks = wire_of(req, 10000)
    body = m.dumps_payload(payload)
    assert len(body) >= 1_000_000
    assert len(chunks) == math.ceil(len(body) / 10000)
    assert b"".join(c.body for c in chunks) == body
    assert all(len(c.body) == 10000 for c in chunks[:-1]) and 0 < len(chunks[-1].body) <= 10000
    base = req.message_id
    for i, c in enumerate(chunks):
        assert c.properties.message_id == f"{base}/{i}/{len(chunks)}"
        assert c.mandatory is True and c.routing_key == "store"
        first = chunks[0].properties
        assert (c.properties.content_encoding, c.properties.correlation_id,
                c.properties.reply_to, c.properties.headers) == \
               (first.content_encoding, first.correlation_id, first.reply_to, first.headers)


def test_exact_multiple_and_tiny_chunk_sizes():
    alert = MsgAlert.create("x" * 98)  # body is 100 bytes with the quotes
    assert len(wire_of(alert, 100)) == 1
    assert len(wire_of(alert, 50)) == 2
    assert len(wire_of(alert, 1)) == 100
    assert len(wire_of(alert, None)) == 1
    with pytest.raises(DriplineError):
        alert.encode(0)


# reassembly: tests/unit/test_chunks.py


# ------------------------------------------------------------------------------------------
# property tests
# ------------------------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 200), max_value=2 ** 200)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text())
json_values = st.recursive(json_scalars,
                           lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5),
                           max_leaves=30)


@FAST
@given(payload=json_values, kind=st.sampled_from(["request", "reply", "alert"]),
       specifier=st.text(max_size=20), routing_key=st.text(max_size=20))
def test_property_round_trip(payload, kind, specifier, routing_key):
    if kind == "request":
        msg = MsgRequest.create(payload, op_t.get, routing_key, specifier, "rq")
    elif kind == "reply":
        msg = MsgReply.create(5, "msg ✓", payload, routing_key, specifier)
    else:
        msg = MsgAlert.create(payload, routing_key, specifier)
    back = roundtrip(msg)
    assert back.is_valid
    assert back.payload == payload
    assert back.to_dict() == msg.to_dict()


@FAST
@given(payload=json_values, size=st.integers(min_value=1, max_value=64),
       seed=st.integers(0, 2 ** 32))
def test_property_chunked_round_trip_any_order(payload, size, seed):
    msg = MsgAlert.create(payload, "k")
    chunks = msg.encode(size)
    order = list(chunks)
    random.Random(seed).shuffle(order)
    reasm = Reassembler()
    results = [r for c in order if (r := reasm.feed(c.routing_key, c.body, c.properties, 0.0))]
    assert len(results) == 1
    assert results[0].payload == payload and results[0].is_valid
    assert len(reasm) == 0


@FAST
@given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_property_random_bodies_never_raise(body):
    msg = decode("t", body, props())
    if msg.is_valid:
        assert msg.payload == json.loads(body)
    else:
        assert set(msg.payload) == {"invalid", "error"}


anything = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats() | st.text(max_size=40) | st.binary(max_size=40) | st.datetimes()
    | st.just(UInt32(3)) | st.sampled_from([0, 1, 2, 3, 4, 9, 999, 0xFFFFFFFF, -1]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12)
KNOWN_HEADERS = ["message_type", "specifier", "timestamp", "sender_info", "message_operation",
                 "lockout_key", "return_code", "return_message"]


GOOD_VALUES = dict(good_headers(), return_code=UInt32(0), return_message="ok")


@st.composite
def header_tables(draw):
    """Mostly plausible tables, each known header sometimes random or missing."""
    headers = {}
    for key in KNOWN_HEADERS:
        choice = draw(st.integers(0, 5))
        if choice <= 3:
            headers[key] = (draw(st.sampled_from([2, 3, 4, UInt32(3)])) if key == "message_type"
                            else GOOD_VALUES[key])
        elif choice == 4:
            headers[key] = draw(anything)
    headers.update(draw(st.dictionaries(st.text(max_size=10), anything, max_size=3)))
    return headers


def check_decoded(msg):
    assert isinstance(msg, (MsgRequest, MsgReply, MsgAlert))
    assert isinstance(msg.routing_key, str) and isinstance(msg.correlation_id, str)
    assert isinstance(msg.reply_to, str) and isinstance(msg.timestamp, str)
    assert isinstance(msg.specifier, Specifier)
    assert set(msg.sender_info) >= SENDER_KEYS
    if isinstance(msg, MsgRequest):
        assert isinstance(msg.message_operation, op_t)
        assert isinstance(msg.lockout_key, uuid.UUID)
    if isinstance(msg, MsgReply):
        assert 0 <= msg.return_code <= 0xFFFFFFFF
    msg.encode(50)  # anything we accepted can be sent on again
    json.loads(msg.encode_full_message())


@FAST
@given(headers=header_tables(), body=st.binary(max_size=30),
       encoding=st.sampled_from(["application/json"] * 4 + [None, b"application/json", "x", 7]),
       message_id=st.text(max_size=12) | st.none(), correlation_id=anything)
def test_property_random_header_tables_raise_only_decode_error(headers, body, encoding,
                                                               message_id, correlation_id):
    properties = Properties(content_encoding=encoding, correlation_id=correlation_id,
                            message_id=message_id, reply_to="rq", headers=headers)
    try:
        msg = decode("rk", body, properties)
    except DecodeError as error:
        assert isinstance(error, DriplineError) and error.return_code in (301, 302)
        assert hasattr(error, "reply_to") and hasattr(error, "message_type")
        return
    check_decoded(msg)
    try:
        msg2 = Reassembler().feed("rk", body, properties, 0.0)
    except DecodeError:
        return
    if msg2 is not None:
        check_decoded(msg2)


class Weird:
    """Properties object whose attributes misbehave."""

    def __init__(self, fail):
        self.fail = fail

    def __getattr__(self, name):
        if name in self.fail:
            raise RuntimeError("boom")
        return {"content_encoding": "application/json", "headers": {"message_type": 3}}.get(name)


@pytest.mark.parametrize("fail", [{"headers"}, {"content_encoding"}, {"message_id"},
                                  {"reply_to", "correlation_id"}])
def test_misbehaving_properties_raise_only_decode_error(fail):
    with pytest.raises(DecodeError):
        decode("t", b"null", Weird(fail))
    with pytest.raises(DecodeError):
        Reassembler().feed("t", b"null", Weird(fail), 0.0)
    with pytest.raises(DecodeError):
        decode("t", 12345, props())


def test_complete_in_order_delivery_after_noise():
    """Feeding every chunk once, interleaved with noise, still yields the exact message."""
    payload = {"k": "v" * 300}
    msg = MsgRequest.create(payload, op_t.set, "svc", "", "rq")
    chunks = msg.encode(64)
    reasm = Reassembler()
    got = []
    for c in chunks:
        with pytest.raises(DecodeError):
            reasm.feed("svc", b"?", props(message_id="zz/9/3"), 0.0)
        out = reasm.feed(c.routing_key, c.body, c.properties, 0.0)
        if out:
            got.append(out)
    assert len(got) == 1 and got[0].payload == payload
