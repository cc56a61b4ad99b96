"""Reference-era module paths stay importable and are the very modules of the new layout."""
from __future__ import annotations

import importlib

import pytest

MOVED = {
    "dripline.core.exceptions": "dripline.protocol.errors",
    "dripline.core.message": "dripline.protocol.message",
    "dripline.core.return_codes": "dripline.protocol.return_codes",
    "dripline.core.specifier": "dripline.protocol.specifier",
    "dripline.core.throw_reply": "dripline.protocol.throw_reply",
    "dripline.core.version": "dripline.client.identity",
    "dripline.core.interface": "dripline.client.interface",
    "dripline.core.service": "dripline.service.service",
    "dripline.core.endpoint": "dripline.service.endpoint",
    "dripline.core.entity": "dripline.service.entity",
    "dripline.core.calibrate": "dripline.service.calibrate",
    "dripline.core.alert_consumer": "dripline.service.alert_consumer",
    "dripline.core.config": "dripline.assembly.config",
    "dripline.core.object_creator": "dripline.assembly.objects",
    "dripline.plugins": "dripline.assembly.plugins",
}


@pytest.mark.parametrize("old,new", sorted(MOVED.items()))
def test_old_path_is_the_new_module(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


def test_reference_imports_of_a_plugin() -> None:
    from dripline.core import Entity, Service, ThrowReply, calibrate
    from dripline.core.calibrate import calibrate as calibrate_from_module
    from dripline.implementations import KeyValueStore

    assert issubclass(KeyValueStore, Entity)
    assert callable(calibrate) and callable(calibrate_from_module)
    assert issubclass(ThrowReply, Exception)
    assert Service.__module__ == "dripline.service.service"
