"""The keyword reference: `dripline.assembly.keywords` and `dl-serve --list NAME` (no broker)."""
from __future__ import annotations

import io

import pytest

from dripline.assembly.keywords import Keyword, builtin_classes, describe_class
from dripline.assembly.validation import accepted_keywords
from dripline.cli import serve
from dripline.core import Entity, Service
from dripline.implementations import EthernetSCPIService, KeyValueStore


def test_names_are_exactly_what_validation_accepts():
    for info in builtin_classes():
        from dripline.assembly.objects import find_class
        cls = find_class(info.name)
        assert {k.name for k in info.keywords} == accepted_keywords(cls), info.name


def test_every_builtin_class_of_dl_serve_list_is_described():
    names = {c.name for c in builtin_classes()}
    assert {"KeyValueStore", "Service", "Entity", "EthernetSCPIService", "PostgresSensorLogger",
            "SQLTable", "AlertConsumer", "HeartbeatMonitor"} <= names


def test_defaults_and_defining_class_come_from_the_signatures():
    kws = {k.name: k for k in describe_class(KeyValueStore).keywords}
    assert kws["initial_value"].default is None and kws["initial_value"].defined_in == "KeyValueStore"
    assert kws["log_routing_key_prefix"].default == "sensor_value"
    assert kws["log_routing_key_prefix"].defined_in == "Entity"
    assert kws["name"].required and kws["name"].default is Keyword.REQUIRED
    assert kws["name"].default_text() == "required"
    # subclass keywords come before the ones inherited
    order = [k.name for k in describe_class(KeyValueStore).keywords]
    assert order.index("initial_value") < order.index("calibration") < order.index("name")


def test_docs_are_taken_from_the_docstring_that_names_the_keyword():
    kws = {k.name: k for k in describe_class(EthernetSCPIService).keywords}
    assert "None sends nothing" in kws["cmd_at_reconnect"].doc
    assert "reconnect_test" not in kws["cmd_at_reconnect"].doc  # one keyword's text only


def test_structured_args_sections_win():
    class Thermo(Entity):
        """A thermometer; `offset` is mentioned here too."""

        def __init__(self, offset: float = 0.5, channel: int = 1, **kwargs):
            """
            Args:
                offset (float): added to every reading,
                    in kelvin
                channel: input of the readout box
            """
            Entity.__init__(self, **kwargs)

    kws = {k.name: k for k in describe_class(Thermo).keywords}
    assert kws["offset"].doc == "added to every reading, in kelvin"
    assert kws["channel"].doc == "input of the readout box"
    assert kws["channel"].annotation == "int" and kws["offset"].default == 0.5


def test_param_fields_are_read():
    class Valve(Service):
        def __init__(self, port: str = "/dev/ttyUSB0", **kwargs):
            """:param port: serial device of the valve controller"""
            Service.__init__(self, **kwargs)

    kws = {k.name: k for k in describe_class(Valve).keywords}
    assert kws["port"].doc == "serial device of the valve controller"


def test_dl_serve_list_name_prints_keywords_defaults_and_docs():
    out = io.StringIO()
    assert serve.print_class_keywords("KeyValueStore", out) == 0
    text = out.getvalue()
    assert text.startswith("KeyValueStore: Endpoint class dripline.implementations.key_value_store.KeyValueStore")
    assert "  initial_value = None  [Any]  from KeyValueStore" in text
    assert "what a get returns before any set" in text
    assert "  log_routing_key_prefix = 'sensor_value'  [str]  from Entity" in text
    assert "  name  (required)  [str]  from Endpoint" in text


def test_dl_serve_list_through_the_command_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        serve.main(["--list", "SQLTable"])
    assert exit_info.value.code == 0
    assert "table_name  (required)" in capsys.readouterr().out


def test_dl_serve_list_without_a_name_lists_classes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        serve.main(["--list"])
    assert exit_info.value.code == 0
    assert "KeyValueStore" in capsys.readouterr().out


def test_unknown_name_is_refused_with_a_suggestion(capsys):
    assert serve.print_class_keywords("KeyValueStor") == 2
    err = capsys.readouterr().err
    assert "unknown module 'KeyValueStor'" in err and "did you mean 'KeyValueStore'" in err


def test_a_class_that_cannot_be_built_is_refused(capsys):
    assert serve.print_class_keywords("Interface") == 2
    assert "not a Service or Endpoint" in capsys.readouterr().err


def test_a_keyword_named_in_passing_borrows_no_text():
    class Probe(Entity):
        """Reads a number back plus `offset`."""

        def __init__(self, offset: float = 0.0, gain: float = 1.0, **kwargs):
            Entity.__init__(self, **kwargs)

    kws = {k.name: k for k in describe_class(Probe).keywords}
    assert kws["offset"].doc == "" and kws["gain"].doc == ""


def test_a_keyword_explained_in_parentheses_is_described():
    class Probe(Entity):
        """A probe.

        Readings are scaled by `gain` (a plain factor, no unit) before calibration.
        """

        def __init__(self, gain: float = 1.0, **kwargs):
            Entity.__init__(self, **kwargs)

    kws = {k.name: k for k in describe_class(Probe).keywords}
    assert kws["gain"].doc == "Readings are scaled by `gain` (a plain factor, no unit) before calibration"
