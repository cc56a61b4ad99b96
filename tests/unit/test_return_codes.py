"""Return-code registry: the standard table, DL_* classes, custom codes and codes from config."""
from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dripline.core import return_codes as rc
from dripline.protocol.errors import ConfigError, DriplineError
from dripline.protocol.return_codes import (
    DL_ClientErrorTimeout, DL_ServiceError, DL_ServiceErrorInvalidMethod, DL_Success,
    DL_UnhandledException, ReturnCode, add_return_code, check_and_add_return_code, code_value,
    get_return_code_values, get_return_codes_dict, get_return_codes_map,
    lookup_return_code,
)
from dripline.settings.mesh import load_return_codes

# value, snake_case name, class name, description (reference §2.1, typed in independently)
STANDARD = [
    (0, "success", "DL_Success", "Success"),
    (1, "warning_no_action_taken", "DL_WarningNoActionTaken", "No Action Taken"),
    (2, "warning_deprecated_feature", "DL_WarningDeprecatedFeature", "Deprecated Feature"),
    (3, "warning_dry_run", "DL_WarningDryRun", "Dry Run"),
    (4, "warning_offline", "DL_WarningOffline", "Offline"),
    (5, "warning_sub_service", "DL_WarningSubService", "Sub-Service Warning"),
    (100, "amqp_error", "DL_AmqpError", "Generic AMQP Error"),
    (101, "amqp_error_broker_connection", "DL_AmqpErrorBrokerConnection", "AMQP Connection Error"),
    (102, "amqp_error_routingkey_notfound", "DL_AmqpErrorRoutingkeyNotfound",
     "Invalid AMQP Routing Key"),
    (200, "resource_error", "DL_ResourceError", "Generic Resource Error"),
    (201, "resource_error_connection", "DL_ResourceErrorConnection", "Resource Connection Error"),
    (202, "resource_error_no_response", "DL_ResourceErrorNoResponse", "No Response Error"),
    (203, "resource_error_sub_service", "DL_ResourceErrorSubService", "Sub-Service Error"),
    (300, "service_error", "DL_ServiceError", "Generic Service Error"),
    (301, "service_error_no_encoding", "DL_ServiceErrorNoEncoding", "Invalid Message Encoding"),
    (302, "service_error_decoding_fail", "DL_ServiceErrorDecodingFail", "Decoding Failed"),
    (303, "service_error_bad_payload", "DL_ServiceErrorBadPayload", "Invalid Payload"),
    (304, "service_error_invalid_value", "DL_ServiceErrorInvalidValue", "Invalid Value"),
    (305, "service_error_timeout", "DL_ServiceErrorTimeout", "Timeout Handling Message"),
    (306, "service_error_invalid_method", "DL_ServiceErrorInvalidMethod", "Invalid Command"),
    (307, "service_error_access_denied", "DL_ServiceErrorAccessDenied", "Access Denied"),
    (308, "service_error_invalid_key", "DL_ServiceErrorInvalidKey", "Invalid Lockout Key"),
    (310, "service_error_invalid_specifier", "DL_ServiceErrorInvalidSpecifier",
     "Invalid Specifier"),
    (400, "client_error", "DL_ClientError", "Generic Client Error"),
    (401, "client_error_invalid_request", "DL_ClientErrorInvalidRequest", "Invalid Request"),
    (402, "client_error_handling_reply", "DL_ClientErrorHandlingReply", "Error Handling Reply"),
    (403, "client_error_unable_to_send", "DL_ClientErrorUnableToSend", "Unable to Send"),
    (404, "client_error_timeout", "DL_ClientErrorTimeout", "Client Timeout"),
    (999, "unhandled_exception", "DL_UnhandledException", "Unhandled Exception"),
]


@pytest.fixture(autouse=True)
def clean_registry():
    """Custom codes registered by a test must not leak into the next one."""
    saved = dict(rc._registry)
    yield
    rc._registry.clear()
    rc._registry.update(saved)


# --- the standard table ----------------------------------------------------------------------

@pytest.mark.parametrize("value,name,class_name,description", STANDARD)
def test_standard_code_class_and_registry(value, name, class_name, description):
    cls = getattr(rc, class_name)
    for obj in (cls, cls()):  # readable on the class and on instances
        assert (obj.value, obj.name, obj.description) == (value, name, description)
    assert lookup_return_code(value).name == name
    assert lookup_return_code(name).value == value
    assert lookup_return_code(cls) == cls()
    assert str(cls()) == f"{description}({value})"


def test_exactly_the_standard_codes_are_built_in():
    assert get_return_code_values() == [v for v, *_ in STANDARD]
    assert sorted(n for n in dir(rc) if n.startswith("DL_")) == sorted(c for _, _, c, _ in STANDARD)
    assert rc.STANDARD_VALUES == {v for v, *_ in STANDARD}


def test_dripline_core_exports_the_classes():
    import dripline.core as core

    assert core.DL_ServiceErrorInvalidMethod is DL_ServiceErrorInvalidMethod
    assert core.lookup_return_code is lookup_return_code


def test_instances_compare_by_value_and_hash():
    assert DL_Success() == DL_Success()
    assert DL_Success() == 0 and DL_Success() != 1
    assert DL_Success() != DL_ServiceError()
    assert DL_Success() == ReturnCode(0, "other_name", "x")
    assert {DL_Success(), ReturnCode(0, "success", "Success")} == {DL_Success()}
    assert DL_Success() != "success"  # strings are names, not codes
    assert int(DL_ClientErrorTimeout()) == 404


def test_codes_are_read_only():
    code = DL_Success()
    with pytest.raises(AttributeError):
        code.value = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ReturnCode(7000, "x", "y").name = "z"  # type: ignore[misc]
    assert DL_Success.value == 0


def test_snapshots_do_not_change_the_registry():
    codes = get_return_codes_map()
    codes.clear()
    names = get_return_codes_dict()
    names.clear()
    assert lookup_return_code(0).name == "success"
    assert list(get_return_codes_map())[:2] == [0, 1]
    assert get_return_codes_dict()["unhandled_exception"].value == 999


# --- adding codes ----------------------------------------------------------------------------

def test_add_ten_custom_codes_then_retrieve_them():
    for i in range(10):
        add_return_code(1000 + i, f"custom_{i}", f"Custom {i}")
    for i in range(10):
        code = lookup_return_code(1000 + i)
        assert (code.name, code.description) == (f"custom_{i}", f"Custom {i}")
        assert get_return_codes_dict()[f"custom_{i}"] == code
    assert get_return_code_values()[-10:] == list(range(1000, 1010))


def test_add_duplicate_value_names_both_codes():
    with pytest.raises(DriplineError) as info:
        add_return_code(306, "my_invalid_method", "Mine")
    assert "306" in str(info.value)
    assert "service_error_invalid_method" in str(info.value)
    assert "my_invalid_method" in str(info.value)
    assert lookup_return_code(306).name == "service_error_invalid_method"


def test_check_and_add_returns_false_on_duplicate():
    assert check_and_add_return_code(1500, "first", "First") is True
    assert check_and_add_return_code(1500, "second", "Second") is False
    assert lookup_return_code(1500).name == "first"


@pytest.mark.parametrize("value,name,description,error", [
    (-1, "neg", "x", ValueError),
    (2**32, "huge", "x", ValueError),
    (True, "bool", "x", TypeError),
    ("1000", "str_value", "x", TypeError),
    (1000, "", "x", ValueError),
    (1000, None, "x", TypeError),
    (1000, "no_desc", None, TypeError),
])
def test_add_rejects_bad_fields(value, name, description, error):
    with pytest.raises(error):
        add_return_code(value, name, description)
    assert 1000 not in get_return_codes_map()


def test_duplicate_names_later_value_wins_in_dict():
    add_return_code(2001, "shared_name", "A")
    add_return_code(2000, "shared_name", "B")
    assert get_return_codes_dict()["shared_name"].value == 2001


@given(value=st.integers(min_value=1000, max_value=2**32 - 1),
       name=st.from_regex(r"[a-z][a-z_]{0,30}", fullmatch=True),
       description=st.text(max_size=40))
def test_added_code_round_trips(value, name, description):
    saved = dict(rc._registry)
    try:
        code = add_return_code(value, name, description)
        assert lookup_return_code(value) is code
        assert str(code) == f"{description}({value})"
        assert code_value(code) == value
    finally:
        rc._registry.clear()
        rc._registry.update(saved)


# --- lookup and code_value ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["no_such_code", 12345, 3.0, None, [0]])
def test_lookup_unknown_raises_dripline_error_not_key_error(bad):
    with pytest.raises(DriplineError) as info:
        lookup_return_code(bad)
    assert not isinstance(info.value, KeyError)


def test_code_value_accepts_every_form():
    assert code_value(304) == 304
    assert code_value(123456) == 123456  # unregistered application codes pass through
    assert code_value("client_error_timeout") == 404
    assert code_value(DL_UnhandledException()) == 999
    assert code_value(DL_UnhandledException) == 999
    assert code_value(ReturnCode(5555, "x", "y")) == 5555


def test_code_value_unknown_name_is_service_error_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="dripline.protocol.return_codes"):
        assert code_value("message_error_invalid_method") == 300
    assert "message_error_invalid_method" in caplog.text


@pytest.mark.parametrize("bad", [1.5, None, b"success", True])
def test_code_value_rejects_other_types(bad):
    with pytest.raises(TypeError):
        code_value(bad)


def test_code_value_rejects_out_of_range_ints():
    with pytest.raises(ValueError):
        code_value(-3)


# --- codes from configuration ------------------------------------------------------------------

def test_load_list_registers_codes():
    codes = load_return_codes([{"name": "custom_5000", "value": 5000, "description": "Five k"},
                               {"name": "custom_5001", "value": 5001, "description": ""}])
    assert [c.value for c in codes] == [5000, 5001]
    assert lookup_return_code("custom_5000").description == "Five k"
    assert lookup_return_code(5001).name == "custom_5001"


def test_load_yaml_file(tmp_path):
    path = tmp_path / "codes.yaml"
    path.write_text("- name: custom_5100\n  value: 5100\n  description: From YAML\n")
    load_return_codes(str(path))
    assert lookup_return_code(5100).description == "From YAML"


def test_load_json_file_as_path_object(tmp_path):
    path = tmp_path / "codes.json"
    path.write_text(json.dumps([{"name": "custom_5200", "value": 5200, "description": "J"}]))
    load_return_codes(path)
    assert lookup_return_code("custom_5200").value == 5200


def test_reloading_identical_codes_is_a_no_op():
    spec = [{"name": "custom_5300", "value": 5300, "description": "D"}]
    load_return_codes(spec)
    load_return_codes(spec)
    load_return_codes([{"name": "success", "value": 0, "description": "Success"}])
    assert lookup_return_code(5300).name == "custom_5300"
    assert get_return_code_values().count(5300) == 1


def test_load_conflict_with_registered_code_names_both():
    with pytest.raises(ConfigError) as info:
        load_return_codes([{"name": "my_success", "value": 0, "description": "x"}])
    message = str(info.value)
    assert "my_success" in message and "'success'" in message and " 0 " in message


def test_load_conflict_inside_the_spec_names_both():
    with pytest.raises(ConfigError) as info:
        load_return_codes([{"name": "alpha", "value": 6000, "description": "a"},
                           {"name": "beta", "value": 6000, "description": "b"}])
    assert "alpha" in str(info.value) and "beta" in str(info.value)
    assert 6000 not in get_return_codes_map()


def test_load_is_all_or_nothing():
    with pytest.raises(ConfigError):
        load_return_codes([{"name": "good", "value": 6100, "description": "ok"},
                           {"name": "bad", "value": "6101", "description": "str value"}])
    assert 6100 not in get_return_codes_map()


@pytest.mark.parametrize("entry,fragment", [
    ({"name": "x", "value": 7000}, "missing description"),
    ({"value": 7000, "description": "d"}, "missing name"),
    ({"name": "x", "value": -5, "description": "d"}, "between 0"),
    ({"name": "x", "value": 7000, "description": 5}, "description must be a string"),
    ({"name": "x", "value": 7000, "descripton": "d"}, "did you mean 'description'"),
    ("not a mapping", "must be a mapping"),
])
def test_load_bad_entries_give_clear_config_errors(entry, fragment):
    with pytest.raises(ConfigError) as info:
        load_return_codes([entry], source="test.yaml")
    assert fragment in str(info.value)
    assert "entry 0 of test.yaml" in str(info.value)


@pytest.mark.parametrize("spec", [{"name": "x"}, 42, None])
def test_load_rejects_non_list_specs(spec):
    with pytest.raises(ConfigError) as info:
        load_return_codes(spec)
    assert "must be a list" in str(info.value)


def test_load_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_return_codes(str(missing))
    assert str(missing) in str(info.value)

    not_a_list = tmp_path / "codes.yaml"
    not_a_list.write_text("name: x\nvalue: 1\n")
    with pytest.raises(ConfigError) as info:
        load_return_codes(not_a_list)
    assert str(not_a_list) in str(info.value) and "list" in str(info.value)
