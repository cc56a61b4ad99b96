"""KeyValueStore: an entity that simply remembers the last value set (a software set-point).

Useful on its own (configuration values, flags shared on the mesh) and as the base class of
simulated or derived sensors: a plugin can override `on_get` (keeping ``@calibrate``) and read
``self._value``, as the jitter example of the plugin guide does.
"""
from __future__ import annotations

from typing import Any

from dripline.service.calibrate import calibrate
from dripline.service.entity import Entity
from dripline.protocol.throw_reply import ThrowReply

__all__ = ["KeyValueStore"]


class KeyValueStore(Entity):
    """Stores one value; get answers ``{"value_raw": v[, "value_cal": c]}``.

    `initial_value` is what a get returns before any set; every other keyword is an Entity /
    Endpoint option (``name``, ``calibration``, ``log_interval`` ...).
    """

    def __init__(self, initial_value: Any = None, **kwargs: Any) -> None:
        Entity.__init__(self, **kwargs)
        self._value = initial_value

    @calibrate()
    def on_get(self) -> Any:
        return self._value

    def on_set(self, new_value: Any) -> None:
        self._value = new_value

    def throw_something(self) -> None:
        """A cmd that always fails with resource_error (200), for exercising error paths."""
        raise ThrowReply("resource_error", "in throw_something method, rasing resource_error")
