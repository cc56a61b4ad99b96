"""Payload views (Param-style calls on plain payloads), re-parsable specifiers, reference error hooks."""
from __future__ import annotations

import json

import pytest
import scarab

import dripline.core
from dripline.core import Endpoint, MsgAlert, MsgReply, MsgRequest, op_t
from dripline.protocol.errors import DriplineError
from dripline.protocol.message import Properties, decode, dumps_payload
from dripline.protocol.payload import (NULL_PAYLOAD, PayloadBool, PayloadDict, PayloadFloat,
                                       PayloadInt, PayloadList, PayloadNull, PayloadStr, plain,
                                       reference_view, view)
from dripline.protocol.specifier import Specifier


def received(body: bytes, message_type: int = 2) -> object:
    """A message as it arrives from the broker, with `body` as its payload."""
    props = Properties("application/json", "c1", "m/0/1", "", {
        "message_type": message_type, "specifier": "", "timestamp": "",
        "sender_info": {}, "return_code": 0, "return_message": ""})
    return decode("rk", body, props)


# ---- one view per payload type -------------------------------------------------------------

@pytest.mark.parametrize("data, cls, kind", [
    ({"a": 1}, PayloadDict, "node"), ([1, 2], PayloadList, "array"), ("volts", PayloadStr, "value"),
    (7, PayloadInt, "value"), (2.5, PayloadFloat, "value"),
])
def test_each_plain_type_gets_a_view_that_still_is_that_type(data, cls, kind):
    got = view(data)
    assert type(got) is cls and isinstance(got, type(data)) and got == data
    assert (got.is_node(), got.is_array(), got.is_value(), got.is_null()) == \
        (kind == "node", kind == "array", kind == "value", False)
    assert got.to_python() == data and type(got.to_python()) is type(data)
    assert json.loads(json.dumps(got)) == data and json.loads(dumps_payload(got)) == data


def test_views_leave_bool_none_and_foreign_objects_alone():
    marker = object()
    assert view(True) is True and view(None) is None and view(marker) is marker
    already = PayloadStr("x")
    assert view(already) is already


def test_value_views_convert_as_scarab_does():
    assert view("on").as_value().as_bool() is True
    assert view("2.0").as_int() == 2 and view(" 4 ").as_uint() == 4
    assert view(3).as_double() == 3.0 and view(3).type() == "uint" and view(-3).type() == "int"
    assert view(1.5).type() == "double" and view("x").type() == "string"
    assert PayloadBool(False).as_string() == "false" and PayloadBool(True).type() == "bool"
    with pytest.raises(ValueError):
        view("maybe").as_bool()
    with pytest.raises(ValueError):
        view(-1).as_uint()


def test_a_view_refuses_to_be_what_it_is_not():
    with pytest.raises(TypeError, match="not a node"):
        view([1]).as_node()
    with pytest.raises(TypeError, match="is a node .*not a value"):
        view({"a": 1}).as_value()
    with pytest.raises(TypeError, match="is an array, not a node"):
        view([1]).as_node()
    with pytest.raises(TypeError, match="null"):
        NULL_PAYLOAD.as_array()


def test_node_and_array_calls_keep_the_data_plain():
    node = view({"values": [1]})
    assert node.count("values") == 1 and node.count("nope") == 0 and node.has("values")
    assert node.add("extra", scarab.ParamValue(5)) is True and node.add("extra", 6) is False
    assert node == {"values": [1], "extra": 5} and type(node["extra"]) is int
    node.replace("extra", scarab.ParamNode({"k": "v"}))
    assert node["extra"] == {"k": "v"} and type(node["extra"]) is dict
    assert node.remove("extra") == {"k": "v"} and node.remove("extra") is None
    assert node.size() == 1 and not node.empty() and node.as_node() is node
    array = view([2])
    array.push_back(scarab.ParamValue(3))
    array.push_front(1)
    assert array == [1, 2, 3] and array.size() == 3 and array.as_array() is array


def test_null_is_none_like_and_an_empty_mapping():
    assert PayloadNull() is NULL_PAYLOAD
    assert NULL_PAYLOAD == None  # noqa: E711 - the point of the test
    assert NULL_PAYLOAD == scarab.Param() and NULL_PAYLOAD != 0 and NULL_PAYLOAD != {}
    assert not NULL_PAYLOAD and len(NULL_PAYLOAD) == 0 and list(NULL_PAYLOAD) == []
    assert NULL_PAYLOAD.get("values", []) == [] and "values" not in NULL_PAYLOAD
    assert NULL_PAYLOAD.is_null() and NULL_PAYLOAD.to_python() is None
    assert hash(NULL_PAYLOAD) == hash(None) and dumps_payload(NULL_PAYLOAD) == b"null"


def test_bool_view_behaves_like_its_bool():
    yes, no = PayloadBool(1), PayloadBool(0)
    assert yes == True and no == False and yes != no  # noqa: E712
    assert bool(yes) and not no and repr(yes) == "True" and hash(yes) == hash(True)
    assert yes.is_value() and yes.as_value().as_bool() is True and yes.to_python() is True
    assert dumps_payload({"on": yes}) == b'{"on":true}'


def test_reference_view_covers_null_and_bool_and_param_trees():
    assert reference_view(None) is NULL_PAYLOAD and reference_view(scarab.Param()) is NULL_PAYLOAD
    flag = reference_view(scarab.ParamValue(True))
    assert type(flag) is PayloadBool and flag == True  # noqa: E712
    node = reference_view(scarab.ParamNode({"a": [1, {"b": 2}]}))
    assert type(node) is PayloadDict and node == {"a": [1, {"b": 2}]}
    assert plain(node) == {"a": [1, {"b": 2}]} and type(plain(node)) is dict
    assert plain(5) == 5 and plain(PayloadBool(True)) is True


def test_scarab_turns_views_back_into_params():
    assert scarab.to_param(NULL_PAYLOAD).is_null()
    assert scarab.to_param(PayloadBool(False)).as_value().as_bool() is False
    assert scarab.to_param(view({"x": 1}))["x"].as_value().as_int() == 1


# ---- where messages carry views ---------------------------------------------------------------

def test_factories_give_a_null_payload_that_answers_and_encodes_as_null():
    for msg in (MsgRequest.create(), MsgReply.create(), MsgAlert.create(),
                MsgRequest.create(reply_to="me").reply(), MsgRequest.create(scarab.Param())):
        assert msg.payload.is_null(), msg
        assert msg.encode()[0].body == b"null"
        assert json.loads(msg.encode_full_message())["payload"] is None


def test_factories_answer_for_values_nodes_and_bools():
    alert = MsgAlert.create(scarab.ParamValue(41.5), "sensor_value.t")
    assert alert.payload.is_value() and alert.payload.as_value().as_double() == 41.5
    request = MsgRequest.create(scarab.ParamNode({"values": [1]}), op_t.set, "x")
    assert request.payload.is_node() and request.payload.count("values") == 1
    reply = MsgReply.create(0, "", scarab.ParamValue(True))
    assert reply.payload.is_value() and reply.payload.as_bool() is True
    assert reply.encode()[0].body == b"true"


def test_an_explicit_none_in_reply_stays_none():
    request = MsgRequest.create(reply_to="me")
    assert request.reply(0, "", None).payload is None
    assert MsgRequest(None, op_t.get).payload is None  # the constructor keeps what it is given


def test_received_payloads_are_views_but_null_and_bool_stay_plain():
    assert received(b"2.5").payload.is_value() and received(b"2.5").payload == 2.5
    assert received(b'"on"').payload.as_bool() is True
    assert received(b"[1]").payload.is_array() and received(b'{"a":1}').payload.is_node()
    assert received(b"null").payload is None and received(b"true").payload is True


def test_a_reply_built_by_an_endpoint_carries_a_value_view():
    class Adder(Endpoint):
        def add(self, a, b):
            return a + b

    request = MsgRequest.create(scarab.ParamNode({"values": [2, 3]}), op_t.cmd, "adder", "add",
                                "me")
    reply = Adder("adder").do_cmd_request(request)
    assert reply.payload.to_python() == 5 and type(reply.payload.to_python()) is int


def test_a_cmd_with_the_factory_null_payload_calls_without_arguments():
    class Pinger(Endpoint):
        def hello(self):
            return "hi"

    request = MsgRequest.create(msg_op=op_t.cmd, routing_key="p", specifier="hello", reply_to="me")
    assert Pinger("p").do_cmd_request(request).payload == "hi"


# ---- specifiers re-parsed in place ------------------------------------------------------------

@pytest.mark.parametrize("text", ["hi", "he-llo", ".", "1.", "5.6.7", ""])
def test_parse_retargets_a_specifier_in_place(text):
    spec = Specifier("first.one")
    assert spec.parse(text) is spec
    spec.reparse()
    assert spec.to_string() == text and str(spec) == text and f"{spec}" == text
    assert spec == text and spec == Specifier(text) and hash(spec) == hash(text)
    assert len(spec) == len(text) and bool(spec) == bool(text)
    assert spec.tokens == (text.split(".") if text else [])


def test_a_reparsed_specifier_answers_string_questions_from_its_new_text():
    spec = Specifier("old.text")
    spec.parse("ch1.volt.max")
    assert spec.first == "ch1" and spec.rest == "volt.max" and spec.unparsed == "ch1.volt.max"
    assert spec.split(".") == ["ch1", "volt", "max"] and spec.startswith("ch1")
    assert "volt" in spec and spec[0] == "c" and spec + "!" == "ch1.volt.max!"
    assert repr(spec) == "Specifier('ch1.volt.max')" and Specifier(spec) == "ch1.volt.max"
    assert type(Specifier.parse("a.b")) is Specifier and Specifier.parse("a.b").tokens == ["a", "b"]


def test_a_message_sends_the_reparsed_text():
    request = MsgRequest.create(None, op_t.get, "ep", "before", "me")
    request.specifier.parse("after.this")
    (wire,) = request.encode()
    assert wire.properties.headers["specifier"] == "after.this"
    assert json.loads(request.encode_full_message())["specifier"] == "after.this"


# ---- the reference's error hooks -----------------------------------------------------------

def test_reference_error_hooks_resolve_and_raise_as_the_reference_does():
    with pytest.raises(DriplineError, match="boom") as info:
        dripline.core.throw_dripline_error("boom")
    assert info.value.message == "boom"
    with pytest.raises(RuntimeError) as info2:
        dripline.core.throw_message("payload here")
    assert type(info2.value) is RuntimeError and "payload here" in str(info2.value)
    from dripline.core import throw_dripline_error, throw_message  # noqa: F401 - names resolve
