"""The names users import from dripline.core (issue 10, item 6)."""
from __future__ import annotations

import pickle

import pytest

import dripline.core


def test_the_error_types_the_readme_names_import_from_core():
    from dripline.core import (ConnectionError_, DecodeError, DriplineError, TimeoutError_,
                               UnableToSendError)
    for cls in (ConnectionError_, DecodeError, TimeoutError_, UnableToSendError):
        assert issubclass(cls, DriplineError)


@pytest.mark.parametrize("name, builtin, code", [("TimeoutError_", TimeoutError, 404),
                                                 ("ConnectionError_", ConnectionError, 101)])
def test_client_errors_are_also_the_matching_builtins(name, builtin, code):
    cls = getattr(dripline.core, name)
    err = cls("no reply from 'peaches' within 1 s")
    with pytest.raises(builtin) as info:
        raise err
    assert info.value.return_code == code
    assert str(err) == err.message == "no reply from 'peaches' within 1 s"
    assert err.args == ("no reply from 'peaches' within 1 s",)
    assert err.errno is None  # not mistaken for an OSError with an errno
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is cls and again.message == err.message
    with_payload = cls("m", code, {"tries": 3})
    assert (str(with_payload), with_payload.payload) == ("m", {"tries": 3})


def test_core_lists_only_public_names():
    names = dir(dripline.core)
    for stray in ("Any", "annotations", "importlib"):
        assert stray not in names
    assert all(not n.startswith("_") for n in names)
    assert {"Entity", "Interface", "TimeoutError_", "ConnectionError_"} <= set(names)


def test_every_listed_name_resolves():
    for name in dripline.core.__all__:
        assert getattr(dripline.core, name) is not None, name
