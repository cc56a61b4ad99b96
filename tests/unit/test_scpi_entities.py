"""SCPI entities and FormatEntity with a stand-in service (what they send, how they answer)."""
from __future__ import annotations

import pytest
import yaml

from dripline.protocol.errors import ConfigError
from dripline.protocol.message import MsgRequest, op_t
from dripline.protocol.throw_reply import ThrowReply
from dripline.assembly.validation import accepted_keywords, check_service_config
from dripline.implementations import (EthernetSCPIService, FormatEntity, SimpleSCPIEntity,
                                      SimpleSCPIGetEntity, SimpleSCPISetEntity)


class FakeInstrument:
    """Records commands; answers from a table (a callable, or a fixed answer)."""

    def __init__(self, answers=None):
        self.sent: list[list[str]] = []
        self.answers = answers or {}

    def send_to_device(self, commands):
        self.sent.append(list(commands))
        answer = self.answers.get(commands[0], "")
        return answer(commands[0]) if callable(answer) else answer


def attach(entity, answers=None):
    fake = FakeInstrument(answers)
    entity.service = fake
    return fake


def request(op, payload=None, specifier=""):
    return MsgRequest.create(payload=payload, msg_op=op, routing_key="x", specifier=specifier,
                             reply_to="r")


def code_of(fn, *args):
    with pytest.raises(ThrowReply) as info:
        fn(*args)
    return info.value


# ---- SimpleSCPIEntity and its get-only / set-only forms --------------------------------------

def test_simple_entity_commands_and_calibrated_get():
    ep = SimpleSCPIEntity(name="volts", base_str="SOUR:VOLT", calibration="2*{}")
    fake = attach(ep, {"SOUR:VOLT?": "1.25\r", "SOUR:VOLT 3;SOUR:VOLT?": "3"})
    assert ep.on_get() == {"value_raw": "1.25", "value_cal": 2.5}
    assert ep.on_set(3) == "3"
    assert fake.sent == [["SOUR:VOLT?"], ["SOUR:VOLT 3;SOUR:VOLT?"]]
    assert ep.cmd_base == "SOUR:VOLT"


def test_booleans_are_sent_as_scpi_booleans():
    ep = SimpleSCPIEntity(name="out", base_str="OUTP")
    fake = attach(ep)
    ep.on_set(True)
    ep.on_set(False)
    assert fake.sent == [["OUTP 1;OUTP?"], ["OUTP 0;OUTP?"]]


def test_get_entity_refuses_set_with_306():
    ep = SimpleSCPIGetEntity(name="meas", base_str="MEAS:CURR", calibration="1000*{}")
    fake = attach(ep, {"MEAS:CURR?": "0.5"})
    assert ep.on_get() == {"value_raw": "0.5", "value_cal": 500.0}
    err = code_of(ep.on_set, 1)
    assert err.return_code == 306 and "'meas' does not support set" in err.message
    assert fake.sent == [["MEAS:CURR?"]]


def test_set_entity_refuses_get_with_306_and_sets_with_opc():
    ep = SimpleSCPISetEntity(name="setp", base_str="CURR")
    fake = attach(ep, {"CURR 0.2;*OPC?": "1"})
    assert ep.on_set(0.2) == "1"
    assert code_of(ep.on_get).return_code == 306
    assert fake.sent == [["CURR 0.2;*OPC?"]]


def test_unsupported_operations_answer_306_through_the_request_pipeline():
    get_only = SimpleSCPIGetEntity(name="g", base_str="A")
    set_only = SimpleSCPISetEntity(name="s", base_str="B")
    attach(get_only)
    attach(set_only)
    assert get_only.on_request_message(request(op_t.set, {"values": [1]})).return_code == 306
    assert set_only.on_request_message(request(op_t.get)).return_code == 306


def test_get_on_set_answers_the_set_with_a_fresh_get():
    ep = SimpleSCPIEntity(name="v", base_str="VOLT", get_on_set=True, calibration="10*{}")
    attach(ep, {"VOLT?": "2", "VOLT 2;VOLT?": "2"})
    assert ep.on_set(2) == {"value_raw": "2", "value_cal": 20}


@pytest.mark.parametrize("cls", [SimpleSCPIEntity, SimpleSCPIGetEntity, SimpleSCPISetEntity])
@pytest.mark.parametrize("base", [None, "", 5])
def test_base_str_is_required(cls, base):
    with pytest.raises(ValueError) as info:
        cls(name="nobase", base_str=base)
    assert isinstance(info.value, ConfigError) and "'nobase'" in info.value.message


def test_unattached_entity_cannot_reach_an_instrument():
    ep = SimpleSCPIEntity(name="lonely", base_str="X")
    reply = ep.on_request_message(request(op_t.get))
    assert reply.return_code != 0 and "not attached" in reply.return_message


# ---- FormatEntity ---------------------------------------------------------------------------

def test_format_entity_get_and_set_strings():
    ep = FormatEntity(name="f", get_str="MEAS:TEMP? (@1)", set_str="SETP {}", calibration="{}+273.15")
    fake = attach(ep, {"MEAS:TEMP? (@1)": "20"})
    assert ep.on_get() == {"value_raw": "20", "value_cal": 293.15}
    ep.on_set(21.5)
    assert fake.sent[-1] == ["SETP 21.5"]


def test_format_entity_without_get_or_set_str_is_306():
    assert code_of(FormatEntity(name="a", set_str="X {}").on_get).return_code == 306
    assert code_of(FormatEntity(name="b", get_str="X?").on_set, 1).return_code == 306


@pytest.mark.parametrize("regex, raw", [
    (r"T=(?P<value_raw>[-\d.]+)K", "4.20"),
    (r"T=([-\d.]+)K", "4.20"),
    (r"[-\d.]+", "4.20"),
])
def test_extract_raw_regex(regex, raw):
    ep = FormatEntity(name="t", get_str="T?", extract_raw_regex=regex, calibration="{}*1")
    attach(ep, {"T?": "T=4.20K,OK"})
    assert ep.on_get() == {"value_raw": raw, "value_cal": 4.2}


def test_extract_raw_regex_without_match_is_304():
    ep = FormatEntity(name="t", get_str="T?", extract_raw_regex=r"T=(?P<value_raw>\d+)")
    attach(ep, {"T?": "ERR"})
    err = code_of(ep.on_get)
    assert err.return_code == 304 and "unparsable" in err.message and "[ERR]" in err.message


def test_bad_regex_is_a_config_error():
    with pytest.raises(ValueError):
        FormatEntity(name="t", get_str="T?", extract_raw_regex="(unclosed")


def test_set_value_lowercase_and_dict_map():
    ep = FormatEntity(name="o", set_str="OUTP {}", set_value_map={"on": "ON", "off": "OFF", 1: "ON"})
    fake = attach(ep)
    for value in ("On", "OFF", 1, "1"):
        ep.on_set(value)
    assert [c[0] for c in fake.sent] == ["OUTP ON", "OUTP OFF", "OUTP ON", "OUTP ON"]


def test_dict_map_from_yaml_booleans():
    # unquoted `on:` / `off:` keys load as True / False in YAML 1.1
    table = yaml.safe_load("{on: 'ON', off: 'OFF'}")
    assert table == {True: "ON", False: "OFF"}
    ep = FormatEntity(name="o", set_str="OUTP {}", set_value_map=table)
    fake = attach(ep)
    for value in ("on", "Off", True, False, "yes"):
        ep.on_set(value)
    assert [c[0] for c in fake.sent] == ["OUTP ON", "OUTP OFF", "OUTP ON", "OUTP OFF", "OUTP ON"]


def test_missing_map_value_is_304_naming_the_valid_ones():
    ep = FormatEntity(name="o", set_str="OUTP {}", set_value_map={"on": 1, "off": 0})
    attach(ep)
    err = code_of(ep.on_set, "sideways")
    assert err.return_code == 304 and "'on', 'off'" in err.message
    assert code_of(ep.on_set, ["on"]).return_code == 304


def test_case_sensitive_map_when_not_lowercasing():
    ep = FormatEntity(name="m", set_str="MODE {}", set_value_lowercase=False,
                      set_value_map={"Fast": "F", "fast": "f"})
    fake = attach(ep)
    ep.on_set("Fast")
    ep.on_set("fast")
    assert [c[0] for c in fake.sent] == ["MODE F", "MODE f"]
    assert code_of(ep.on_set, "FAST").return_code == 304


def test_expression_map():
    ep = FormatEntity(name="mv", set_str="VOLT {}", set_value_map="{}/1000")
    fake = attach(ep)
    ep.on_set(2500)
    assert fake.sent == [["VOLT 2.5"]]
    err = code_of(ep.on_set, "abc")
    assert err.return_code == 304 and "set_value_map" in err.message


def test_set_value_lowercase_false_keeps_case_without_map():
    ep = FormatEntity(name="n", set_str="NAME {}", set_value_lowercase=False)
    fake = attach(ep)
    ep.on_set("MiXed")
    assert fake.sent == [["NAME MiXed"]]
    ep2 = FormatEntity(name="n2", set_str="NAME {}")
    fake2 = attach(ep2)
    ep2.on_set("MiXed")
    assert fake2.sent == [["NAME mixed"]]


def test_set_str_that_cannot_be_formatted_is_304():
    ep = FormatEntity(name="x", set_str="SET {value}")
    attach(ep)
    assert code_of(ep.on_set, 1).return_code == 304


def test_bad_set_value_map_type_is_a_config_error():
    with pytest.raises(ValueError):
        FormatEntity(name="x", set_str="S {}", set_value_map=[1, 2])


def test_configuration_is_readable_by_specifier():
    ep = FormatEntity(name="f", get_str="A?", set_str="A {}", set_value_map={"x": 1})
    reply = ep.on_request_message(request(op_t.get, specifier="get_str"))
    assert reply.payload == {"values": ["A?"]}


# ---- validation (dl-serve --check) -----------------------------------------------------------

def test_keywords_are_known_to_the_config_checker():
    assert {"base_str", "calibration", "name", "log_interval"} <= accepted_keywords(SimpleSCPIGetEntity)
    assert {"get_str", "set_str", "set_value_lowercase", "set_value_map", "extract_raw_regex",
            "calibration"} <= accepted_keywords(FormatEntity)
    assert {"socket_timeout", "socket_info", "cmd_at_reconnect", "reconnect_test",
            "command_terminator", "response_terminator", "reply_echo_cmd", "endpoints",
            "name"} <= accepted_keywords(EthernetSCPIService)


def test_example_configuration_is_valid():
    import pathlib
    path = pathlib.Path(__file__).parents[2] / "examples" / "scpi" / "scpi_demo.yaml"
    config = yaml.safe_load(path.read_text())
    assert check_service_config(config, str(path), strict=True) == []
    names = {ep["name"] for ep in config["endpoints"]}
    assert {"voltage", "current", "identity"} <= names
    config["endpoints"][0]["base_sr"] = "X"
    (problem,) = check_service_config(config, str(path))
    assert problem.key == "base_sr" and "base_str" in problem.suggestions


# ---- per-entity resend_on_timeout --------------------------------------------------------------

class KeywordInstrument(FakeInstrument):
    """A service whose send_to_device also records the keywords it was given."""

    def __init__(self, answers=None):
        super().__init__(answers)
        self.keywords: list[dict] = []

    def send_to_device(self, commands, **kwargs):
        self.keywords.append(kwargs)
        return super().send_to_device(commands)


@pytest.mark.parametrize("make_entity", [
    lambda **kw: SimpleSCPIEntity(name="v", base_str="VOLT", **kw),
    lambda **kw: SimpleSCPISetEntity(name="v", base_str="VOLT", **kw),
    lambda **kw: FormatEntity(name="v", get_str="VOLT?", set_str="VOLT {}", **kw),
])
def test_an_entity_passes_its_resend_choice_to_the_service(make_entity):
    ep = make_entity(resend_on_timeout="Never")
    assert ep.resend_on_timeout == "never"
    fake = KeywordInstrument()
    ep.service = fake
    ep.on_set(1)
    assert fake.keywords == [{"resend_on_timeout": "never"}]


def test_without_a_choice_the_entity_passes_no_keyword():
    ep = FormatEntity(name="v", get_str="VOLT?")
    assert ep.resend_on_timeout is None
    fake = KeywordInstrument({"VOLT?": "1"})
    ep.service = fake
    ep.on_get()
    assert fake.keywords == [{}]


@pytest.mark.parametrize("cls, kw", [(SimpleSCPIEntity, {"base_str": "VOLT"}),
                                     (FormatEntity, {"get_str": "VOLT?"})])
def test_a_bad_entity_resend_choice_is_a_config_error(cls, kw):
    with pytest.raises(ConfigError) as info:
        cls(name="volts", resend_on_timeout="maybe", **kw)
    assert "'volts'" in str(info.value) and "resend_on_timeout" in str(info.value)


def test_resend_on_timeout_is_an_accepted_keyword_of_service_and_entities():
    for cls in (EthernetSCPIService, SimpleSCPIEntity, SimpleSCPIGetEntity, SimpleSCPISetEntity,
                FormatEntity):
        assert "resend_on_timeout" in accepted_keywords(cls)
