"""Reference-era plugin code: scarab, message constructors, `.to_python()` on payloads, and
unit-testing a handler without a broker; plus `dl-plugin new` output (files only: the generated
package is installed and its tests run in tests/integration/test_plugins_install.py)."""
from __future__ import annotations

import json
import os
import sys

import pytest

import scarab
from dripline.core import Endpoint, MsgAlert, MsgReply, MsgRequest, op_t
from dripline.protocol.message import PayloadDict, PayloadList, Properties, decode
from dripline.implementations import KeyValueStore


def test_scarab_covers_what_plugins_use():
    v = scarab.VersionSemantic()
    assert v.version == "0.0.0"
    assert v.parse("v1.2.3") and (v.major_version, v.minor_version, v.patch_version) == (1, 2, 3)
    v.package, v.commit = "me/plugin", "na"
    assert (v.package, v.commit, v.version) == ("me/plugin", "na", "v1.2.3")
    assert scarab.VersionSemantic(1, 2, 3) == v and v < scarab.VersionSemantic(1, 10, 0) and v >= "1.2.0"
    node = scarab.to_param({"a": [1, 2.5, "x"], "b": {"c": True}})
    assert isinstance(node, scarab.ParamNode) and isinstance(node["a"], scarab.ParamArray)
    assert isinstance(node["a"][0], scarab.ParamValue) and node["a"][1].as_double() == 2.5
    assert node.to_python() == {"a": [1, 2.5, "x"], "b": {"c": True}}
    assert scarab.to_python(node) == scarab.to_python(node.to_python())


def test_reference_message_constructors():
    req = MsgRequest.create({"values": [1]}, op_t.set, "peaches", "calibration", "reply_q")
    assert (req.routing_key, str(req.specifier), req.reply_to) == ("peaches", "calibration", "reply_q")
    assert req.message_operation == op_t.set and req.payload == {"values": [1]}
    rep = MsgReply.create(0, "fine", {"x": 1}, "reply_q", "spec")
    assert (rep.return_code, rep.return_message, rep.routing_key, str(rep.specifier)) == \
        (0, "fine", "reply_q", "spec")
    answer = MsgReply.create(304, "bad", None, req)
    assert answer.routing_key == "reply_q" and answer.correlation_id == req.correlation_id
    alert = MsgAlert.create({"value_raw": 2}, "sensor_value.peaches")
    assert alert.routing_key == "sensor_value.peaches" and alert.payload == {"value_raw": 2}
    # a scarab Param as payload, as reference code passes it
    req2 = MsgRequest.create(scarab.ParamValue(5), op_t.get, "hey", "name", "a_receiver")
    assert req2.payload == 5


def _wire_round_trip(msg):
    wire = msg.encode()[0]
    props = Properties(**{k: getattr(wire.properties, k) for k in
                          ("content_encoding", "correlation_id", "message_id", "reply_to", "headers")})
    return decode(wire.routing_key, wire.body, props)


def test_received_payloads_are_plain_data_with_to_python():
    got = _wire_round_trip(MsgAlert.create({"value_cal": 1.5, "value_raw": 0.75}, "sensor_value.p"))
    assert isinstance(got.payload, dict) and isinstance(got.payload, PayloadDict)
    insert_data = {"endpoint_name": "p"}
    insert_data.update(got.payload.to_python())  # the reference sensor-logger pattern
    assert insert_data == {"endpoint_name": "p", "value_cal": 1.5, "value_raw": 0.75}
    assert type(got.payload.to_python()) is dict
    arr = _wire_round_trip(MsgAlert.create([1, 2], "k"))
    assert isinstance(arr.payload, PayloadList) and arr.payload.to_python() == [1, 2]
    assert json.loads(json.dumps(got.payload)) == got.payload  # still plain JSON-able data
    # re-sent as it is
    assert _wire_round_trip(MsgAlert.create(got.payload, "k")).payload == got.payload


def test_a_handler_is_unit_testable_without_a_broker():
    kvs = KeyValueStore(name="peaches", initial_value=0.75, calibration="2*{}")
    reply = kvs.on_request_message(MsgRequest.create(None, op_t.get, "peaches", "", "r"))
    assert reply.return_code == 0
    assert reply.payload.to_python() == {"value_raw": 0.75, "value_cal": 1.5}
    reply = kvs.on_request_message(MsgRequest.create({"values": [1.0]}, op_t.set, "peaches", "", "r"))
    assert reply.return_code == 0
    assert kvs.on_request_message(MsgRequest.create(None, op_t.get, "peaches")).payload["value_cal"] == 2.0
    bad = Endpoint("e").on_request_message(MsgRequest.create(None, op_t.cmd, "e", "nonexistent"))
    assert bad.return_code == 306


# --- dl-plugin new ----------------------------------------------------------------------------------

def test_new_plugin_entry_point_layout(tmp_path):
    from dripline.cli.plugin import new_plugin
    written = new_plugin("thermo-sensor", str(tmp_path / "p"))
    rel = sorted(os.path.relpath(w, tmp_path / "p") for w in written)
    assert rel == sorted([".dockerignore", ".gitignore", "Dockerfile", "README.md", "example.yaml",
                          "pyproject.toml", "src/thermo_sensor/__init__.py",
                          "src/thermo_sensor/entities.py", "tests/test_thermo_sensor.py"])
    if sys.version_info >= (3, 11):
        import tomllib
        meta = tomllib.loads((tmp_path / "p" / "pyproject.toml").read_text())
        assert meta["project"]["name"] == "thermo-sensor"
        assert meta["project"]["entry-points"]["dripline.extensions"] == {
            "ThermoSensorEntity": "thermo_sensor.entities:ThermoSensorEntity"}
    init = (tmp_path / "p" / "src/thermo_sensor/__init__.py").read_text()
    assert '_metadata.version("thermo-sensor")' in init
    for path in written:
        if path.endswith(".py"):
            compile(open(path).read(), path, "exec")
    import yaml
    example = yaml.safe_load((tmp_path / "p" / "example.yaml").read_text())
    assert example["endpoints"][0]["module"] == "ThermoSensorEntity"
    assert "dl_endpoint" in (tmp_path / "p" / "tests/test_thermo_sensor.py").read_text()


def test_new_plugin_namespace_layout_is_the_reference_one(tmp_path):
    from dripline.cli.plugin import new_plugin
    new_plugin("kv_extra", str(tmp_path / "p"), namespace=True)
    root = tmp_path / "p"
    assert (root / "dripline/extensions/__init__.py").read_text() == \
        "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
    assert not (root / "dripline/__init__.py").exists()
    init = (root / "dripline/extensions/kv_extra/__init__.py").read_text()
    assert "version = scarab.VersionSemantic()" in init and "__all__" in init
    assert 'include = ["dripline.extensions.*"]' in (root / "pyproject.toml").read_text()


@pytest.mark.parametrize("bad", ["1abc", "has space", "class", "dripline", "a/b", ""])
def test_new_plugin_rejects_bad_names(tmp_path, bad):
    from dripline.cli.plugin import new_plugin
    with pytest.raises(ValueError):
        new_plugin(bad, str(tmp_path / "p"))


def test_new_plugin_refuses_a_non_empty_folder(tmp_path, capsys):
    from dripline.cli.plugin import build_parser, run
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "keep.txt").write_text("mine")
    assert run(build_parser().parse_args(["new", "thing", "--dir", str(tmp_path / "p")])) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "p" / "keep.txt").read_text() == "mine"
    assert run(build_parser().parse_args(["new", "thing", "--dir", str(tmp_path / "p"), "--force"])) == 0
    assert (tmp_path / "p" / "src/thing/entities.py").exists()
