"""Specifier: a str that can also be read as dot-separated tokens (reference §10.1 test_specifier)."""
from __future__ import annotations

import pytest

from dripline.protocol.specifier import Specifier

REFERENCE_STRINGS = ["hi", "he-llo", ".", "1.", "5.6.7", ""]


@pytest.mark.parametrize("text", REFERENCE_STRINGS)
def test_constructor_preserves_text(text):
    spec = Specifier(text)
    assert spec.to_string() == text
    assert spec == text
    assert isinstance(spec, str)
    assert type(spec.to_string()) is str


def test_default_is_empty_and_falsy():
    spec = Specifier()
    assert spec.to_string() == ""
    assert not spec
    assert spec.tokens == []
    assert spec.first is None
    assert spec.rest == ""


@pytest.mark.parametrize("text", REFERENCE_STRINGS)
def test_parse_and_reparse_preserve_text(text):
    parsed = Specifier.parse(text)
    assert isinstance(parsed, Specifier)
    assert parsed.to_string() == text
    assert parsed.reparse().to_string() == text
    # calling parse on an instance returns the new specifier (a str cannot change in place)
    assert Specifier("other").parse(text) == text


def test_tokens_first_rest():
    spec = Specifier("path.to.target")
    assert spec.tokens == ["path", "to", "target"]
    assert spec.first == "path"
    rest = spec.rest
    assert isinstance(rest, Specifier)
    assert rest == "to.target"
    assert rest.rest == "target"
    assert rest.rest.rest == ""
    assert rest.rest.rest.first is None


def test_empty_tokens_are_kept():
    assert Specifier("1.").tokens == ["1", ""]
    assert Specifier(".").tokens == ["", ""]
    assert Specifier(".").first == ""
    assert Specifier("a..b").tokens == ["a", "", "b"]


def test_single_token():
    spec = Specifier("ping")
    assert spec.tokens == ["ping"]
    assert spec.first == "ping"
    assert spec.rest == "" and not spec.rest


def test_str_behaviour_hash_and_repr():
    spec = Specifier("a.b")
    assert hash(spec) == hash("a.b")
    assert {"a.b": 1}[spec] == 1
    assert f"{spec}" == "a.b"
    assert repr(spec) == "Specifier('a.b')"
    assert spec.unparsed == "a.b"


def test_construction_from_other_types():
    assert Specifier(None) == ""
    assert Specifier(b"x.y") == "x.y"
    assert Specifier(["a", "b"]) == "a.b"
    same = Specifier("q")
    assert Specifier(same) is same
