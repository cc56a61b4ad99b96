"""The scarab stand-in: VersionSemantic, the Param family, cancellation and verbosity."""
from __future__ import annotations

import gc
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

import scarab
from scarab import (
    Cancelable, Param, ParamArray, ParamNode, ParamValue, SignalHandler, VersionSemantic,
    s2py_verbosity, to_param, to_python,
)

# --- VersionSemantic -------------------------------------------------------------------------


def test_default_and_numeric_constructors():
    v = VersionSemantic()
    assert (v.major_version, v.minor_version, v.patch_version, v.version) == (0, 0, 0, "0.0.0")
    w = VersionSemantic(5, 2, 10)
    assert (w.major_version, w.minor_version, w.patch_version) == (5, 2, 10)
    assert str(w) == "5.2.10" and w.version == "5.2.10"


@pytest.mark.parametrize("bad", [(-1, 0, 0), (1.5, 0, 0), (True, 0, 0), ("1", 0, 0)])
def test_constructor_rejects_bad_numbers(bad):
    with pytest.raises(ValueError):
        VersionSemantic(*bad)


@pytest.mark.parametrize("text,numbers", [
    ("1.2.3", (1, 2, 3)), ("v1.2.3", (1, 2, 3)), ("10.20.30", (10, 20, 30)),
    ("5.2.0rc1", (5, 2, 0)), ("1.0.0-beta.2", (1, 0, 0)), ("0.1.0.dev3+g1a2b", (0, 1, 0)),
    ("", (0, 0, 0)), ("unknown", (0, 0, 0)),
])
def test_parse_accepts_versions_and_keeps_the_string(text, numbers):
    v = VersionSemantic(9, 9, 9)
    assert v.parse(text) is True
    assert (v.major_version, v.minor_version, v.patch_version) == numbers
    assert v.version == text and str(v) == text


@pytest.mark.parametrize("text", ["1.2", "1", "a.b.c", "1.2.3 ", " 1.2.3", "V1.2.3", "vv1.2.3",
                                  "1..3", "-1.2.3", "1.2.3!", None, 123])
def test_parse_rejects_non_versions_and_changes_nothing(text):
    v = VersionSemantic(4, 5, 6)
    assert v.parse(text) is False
    assert (v.major_version, v.minor_version, v.patch_version, v.version) == (4, 5, 6, "4.5.6")


def test_package_and_commit_are_settable():
    v = VersionSemantic()
    assert (v.package, v.commit) == ("", "")
    v.package = "driplineorg/dripline-python"
    v.commit = "na"
    assert (v.package, v.commit) == ("driplineorg/dripline-python", "na")
    with pytest.raises(AttributeError):
        v.major_version = 3  # type: ignore[misc]


def test_comparisons():
    assert VersionSemantic(1, 2, 3) == VersionSemantic(1, 2, 3)
    assert VersionSemantic(1, 2, 3) < VersionSemantic(1, 10, 0)
    assert VersionSemantic(2, 0, 0) > VersionSemantic(1, 99, 99)
    assert VersionSemantic(1, 2, 3) <= VersionSemantic(1, 2, 3)
    assert VersionSemantic(1, 2, 3) != VersionSemantic(1, 2, 4)
    assert VersionSemantic(1, 2, 3) == "v1.2.3" and VersionSemantic(1, 2, 3) >= "1.2.0"
    assert VersionSemantic(1, 2, 3) != "not a version"
    with pytest.raises(TypeError):
        _ = VersionSemantic() < 5
    suffixed = VersionSemantic()
    suffixed.parse("1.2.3rc1")
    assert suffixed == VersionSemantic(1, 2, 3)  # suffixes do not take part in comparisons
    assert hash(suffixed) == hash(VersionSemantic(1, 2, 3))


def test_registered_in_version_store_like_a_plugin():
    from dripline.client.identity import get_versions, add_version, remove_version

    v = VersionSemantic()
    v.parse("v2.3.4")
    v.package, v.commit = "me/plugin", "abc123"
    add_version("dripline.extensions.test_plugin", v)
    try:
        assert get_versions()["dripline.extensions.test_plugin"] == {
            "version": "v2.3.4", "commit": "abc123", "package": "me/plugin"}
    finally:
        remove_version("dripline.extensions.test_plugin")


numbers = st.integers(min_value=0, max_value=10**12)


@given(numbers, numbers, numbers, st.sampled_from(["", "v"]),
       st.sampled_from(["", "rc1", "-alpha", ".dev2+gabc"]))
def test_parse_round_trip(major, minor, patch, prefix, suffix):
    text = f"{prefix}{major}.{minor}.{patch}{suffix}"
    v = VersionSemantic()
    assert v.parse(text)
    assert (v.major_version, v.minor_version, v.patch_version) == (major, minor, patch)
    assert str(v) == text
    assert v == VersionSemantic(major, minor, patch)


@given(st.tuples(numbers, numbers, numbers), st.tuples(numbers, numbers, numbers))
def test_ordering_matches_tuple_ordering(a, b):
    va, vb = VersionSemantic(*a), VersionSemantic(*b)
    assert (va < vb) == (a < b) and (va == vb) == (a == b) and (va >= vb) == (a >= b)


@given(st.text(max_size=15))
def test_parse_never_raises(text):
    assert VersionSemantic().parse(text) in (True, False)


# --- Param family ----------------------------------------------------------------------------

@pytest.mark.parametrize("value,kind", [
    (True, "bool"), (False, "bool"), (0, "uint"), (7, "uint"), (-7, "int"), (1.5, "double"),
    ("x", "string"), ("", "string"),
])
def test_param_value_types(value, kind):
    p = to_param(value)
    assert isinstance(p, ParamValue) and isinstance(p, Param)
    assert p.type() == kind
    assert p.to_python() == value and type(p.to_python()) is type(value)
    assert p.is_value() and not p.is_node() and not p.is_array() and not p.is_null()


def test_param_value_conversions():
    assert ParamValue(5).as_double() == 5.0 and ParamValue(5).as_string() == "5"
    assert ParamValue(2.9).as_int() == 2 and ParamValue(2.0).as_uint() == 2
    assert ParamValue("42").as_int() == 42 and ParamValue("2.5").as_double() == 2.5
    assert ParamValue("3.0").as_uint() == 3
    assert ParamValue(True).as_string() == "true" and ParamValue(False).as_int() == 0
    assert ParamValue("true").as_bool() is True and ParamValue("0").as_bool() is False
    assert ParamValue(0.0).as_bool() is False and ParamValue(3).as_bool() is True
    with pytest.raises(ValueError):
        ParamValue(-1).as_uint()
    with pytest.raises(ValueError):
        ParamValue("maybe").as_bool()
    with pytest.raises(ValueError):
        ParamValue("abc").as_int()


def test_param_value_set_and_type_checks():
    p = ParamValue(1)
    p.set("now a string")
    assert p.type() == "string"
    with pytest.raises(TypeError):
        p.set([1])
    with pytest.raises(TypeError):
        ParamValue(None)  # type: ignore[arg-type]


def test_null_param():
    p = to_param(None)
    assert type(p) is Param and p.is_null() and p.to_python() is None
    assert p == Param() and p == None  # noqa: E711 - comparing with plain data is supported


def test_param_node_dict_like():
    node = ParamNode()
    assert node.add("a", 1) is True
    assert node.add("a", 2) is False  # add never replaces
    node["b"] = {"c": [1, 2]}
    node.replace("a", 3)
    assert node.count("a") == 1 and node.count("zzz") == 0
    assert "b" in node and "zzz" not in node and len(node) == 2
    assert node["a"].as_value().as_int() == 3
    assert isinstance(node["b"], ParamNode) and isinstance(node["b"]["c"], ParamArray)
    assert node.keys() == ["a", "b"] and list(node) == ["a", "b"]
    assert node.to_python() == {"a": 3, "b": {"c": [1, 2]}}
    removed = node.remove("a")
    assert removed.to_python() == 3 and node.remove("a") is None
    assert node.to_python() == {"b": {"c": [1, 2]}}
    with pytest.raises(TypeError):
        node[1] = "x"  # type: ignore[index]
    with pytest.raises(KeyError):
        node["missing"]


def test_param_node_merge_in_place():
    node = to_param({"mesh": {"broker": "a", "port": 1}, "list": [1, {"x": 1}], "s": "old"})
    node.merge({"mesh": {"broker": "b"}, "list": [None, {"y": 2}, 3], "s": "new", "n": 1})
    assert node.to_python() == {"mesh": {"broker": "b", "port": 1},
                                "list": [None, {"x": 1, "y": 2}, 3], "s": "new", "n": 1}


def test_param_array_list_like():
    arr = ParamArray()
    arr.push_back(1)
    arr.push_back("two")
    arr.push_back({"three": 3})
    arr.push_front(0)
    assert len(arr) == 4 and arr.size() == 4
    assert arr[1].as_value().as_int() == 1 and arr[-1]["three"].to_python() == 3
    arr[0] = None
    assert arr[0].is_null()
    assert arr.to_python() == [None, 1, "two", {"three": 3}]
    assert [p.to_python() for p in arr] == [None, 1, "two", {"three": 3}]


def test_kind_checks():
    with pytest.raises(TypeError):
        to_param([1]).as_node()
    assert to_param({"a": 1}).as_node().is_node()
    assert to_param([1]).as_array().is_array()


@pytest.mark.parametrize("bad", [(1, 2), {1, 2}, object(), b"bytes", {1: "int key"}, [(1,)]])
def test_to_param_rejects_other_types(bad):
    with pytest.raises(TypeError):
        to_param(bad)


def test_to_python_passes_plain_data_through_and_is_idempotent():
    data = {"a": [1, 2.5, None, {"b": True}]}
    assert to_python(data) is data
    assert to_python(5) == 5 and to_python(None) is None
    converted = to_python(to_param(data))
    assert converted == data and to_python(converted) == data
    assert to_param(to_param(data)).to_python() == data  # a Param is returned as it is


def test_equality_against_params_and_plain_data():
    assert to_param({"a": [1]}) == to_param({"a": [1]})
    assert to_param({"a": [1]}) == {"a": [1]}
    assert to_param([1, 2]) != [2, 1]


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20)


@given(json_like)
def test_to_param_to_python_round_trip(data):
    param = to_param(data)
    assert isinstance(param, Param)
    assert to_python(param) == data
    assert param.to_python() == data


# --- cancellation and verbosity --------------------------------------------------------------

class Worker(Cancelable):
    def __init__(self):
        super().__init__()
        self.codes: list[int] = []

    def do_cancellation(self, code: int) -> None:
        self.codes.append(code)


@pytest.fixture
def clean_handler():
    SignalHandler.reset()
    yield
    SignalHandler.reset()


def test_cancelable_cancel_and_reset():
    w = Worker()
    assert not w.is_canceled()
    w.cancel(3)
    assert w.is_canceled() and w.codes == [3]
    w.reset_cancel()
    assert not w.is_canceled()


def test_signal_handler_cancel_all_and_remove(clean_handler):
    a, b = Worker(), Worker()
    handler = SignalHandler()  # installs nothing; class and instance share the registry
    handler.add_cancelable(a)
    SignalHandler.add_cancelable(b)
    assert SignalHandler.has_cancelable(a)
    SignalHandler.remove_cancelable(b)
    SignalHandler.cancel_all(1)
    assert a.is_canceled() and a.codes == [1]
    assert not b.is_canceled()


def test_signal_handler_does_not_keep_objects_alive(clean_handler):
    w = Worker()
    SignalHandler.add_cancelable(w)
    del w
    gc.collect()
    SignalHandler.cancel_all()  # nothing left to cancel, nothing raised
    assert len(SignalHandler._cancelables) == 0


@pytest.mark.parametrize("name,level", [
    ("trace", 5), ("debug", logging.DEBUG), ("INFO", logging.INFO), ("prog", 25),
    ("warn", logging.WARNING), ("warning", logging.WARNING), ("error", logging.ERROR),
    ("fatal", logging.CRITICAL), (logging.ERROR, logging.ERROR), (0, 5),
])
def test_s2py_verbosity(name, level):
    assert s2py_verbosity(name) == level


def test_s2py_verbosity_accepts_enum_like_and_rejects_unknown():
    class Level:
        name = "debug"

    assert s2py_verbosity(Level()) == logging.DEBUG
    with pytest.raises(ValueError):
        s2py_verbosity("loud")
    with pytest.raises(ValueError):
        s2py_verbosity(True)


def test_public_names():
    assert set(scarab.__all__) >= {"VersionSemantic", "Param", "ParamNode", "ParamArray",
                                   "ParamValue", "to_param", "to_python", "SignalHandler",
                                   "Cancelable", "s2py_verbosity"}
