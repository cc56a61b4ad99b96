"""ThrowReply: code resolution, default messages, payload conversion, raising and pickling."""
from __future__ import annotations

import logging
import pickle

import pytest

import scarab
from dripline.protocol.return_codes import (
    DL_ResourceErrorConnection, DL_ServiceErrorInvalidValue, DL_WarningDryRun,
)
from dripline.protocol.throw_reply import ThrowReply


def test_defaults_are_success():
    exc = ThrowReply()
    assert isinstance(exc, Exception)
    assert (exc.return_code, exc.return_message, exc.return_payload) == (0, "Success", None)
    assert str(exc) == "Success"


@pytest.mark.parametrize("code,value,description", [
    ("service_error_invalid_value", 304, "Invalid Value"),
    (DL_ResourceErrorConnection(), 201, "Resource Connection Error"),
    (DL_WarningDryRun, 3, "Dry Run"),
    (306, 306, "Invalid Command"),
])
def test_code_forms_and_default_message(code, value, description):
    exc = ThrowReply(code)
    assert exc.return_code == value
    assert exc.return_message == description


def test_explicit_message_and_payload():
    exc = ThrowReply("resource_error_no_response", "instrument did not answer", {"tries": 3})
    assert exc.return_code == 202
    assert exc.return_message == "instrument did not answer"
    assert exc.return_payload == {"tries": 3}
    assert str(exc) == "instrument did not answer"


def test_reference_keyword_names():
    exc = ThrowReply(return_code="service_error_bad_payload", message="no values",
                     payload=[1, 2])
    assert (exc.return_code, exc.return_message, exc.return_payload) == (303, "no values", [1, 2])
    # the reference-style attribute names read the same values
    assert exc.message == "no values" and exc.payload == [1, 2]


def test_unknown_name_gives_300_keeps_message_and_warns(caplog):
    with caplog.at_level(logging.WARNING):
        exc = ThrowReply("device_error_connection", "port closed")
    assert exc.return_code == 300
    assert exc.return_message == "port closed"
    assert "device_error_connection" in caplog.text


def test_unknown_name_without_message_uses_service_error_description():
    assert ThrowReply("no_such_code").return_message == "Generic Service Error"


def test_unregistered_int_code_passes_through():
    exc = ThrowReply(4242)
    assert exc.return_code == 4242
    assert exc.return_message == ""


def test_scarab_param_payload_becomes_plain_data():
    node = scarab.ParamNode()
    node.add("value", 5)
    node.add("list", [1, "a"])
    exc = ThrowReply("success", "ok", node)
    assert exc.return_payload == {"value": 5, "list": [1, "a"]}
    assert type(exc.return_payload) is dict
    assert ThrowReply(payload=scarab.Param()).return_payload is None


def test_plain_payload_is_kept_as_is():
    payload = {"nested": {"x": [1.5]}}
    assert ThrowReply(payload=payload).return_payload is payload


def test_raise_and_catch_in_handler_style():
    def handler():
        raise ThrowReply(DL_ServiceErrorInvalidValue, "value out of range", {"limit": 10})

    with pytest.raises(ThrowReply) as info:
        handler()
    assert info.value.return_code == 304
    assert info.value.return_payload == {"limit": 10}


def test_pickle_round_trip_keeps_everything():
    exc = pickle.loads(pickle.dumps(ThrowReply("client_error_timeout", "late", {"s": 2})))
    assert (exc.return_code, exc.return_message, exc.return_payload) == (404, "late", {"s": 2})


class NotFound(ThrowReply):
    def __init__(self, what: str):
        super().__init__("resource_error", f"{what} not found")


def test_subclass_with_own_constructor_pickles():
    exc = pickle.loads(pickle.dumps(NotFound("probe")))
    assert isinstance(exc, NotFound)
    assert (exc.return_code, exc.return_message) == (200, "probe not found")
    assert str(exc) == "probe not found"


def test_reference_attribute_names_are_settable():
    exc = ThrowReply("service_error")
    exc.message = "changed"
    exc.payload = scarab.to_param({"a": 1})
    assert exc.return_message == "changed"
    assert exc.return_payload == {"a": 1}


def test_bad_code_type_is_a_type_error():
    with pytest.raises(TypeError):
        ThrowReply(3.5)


def test_repr_shows_code_and_message():
    assert repr(ThrowReply("warning_offline", "off")) == "ThrowReply(4, 'off', None)"
