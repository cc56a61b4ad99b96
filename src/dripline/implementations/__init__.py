"""dripline.implementations: ready-made services and endpoints, loaded lazily.

Names resolve on first access (PEP 562), so importing the package does not pull in, e.g., the SQL
stack for a service that only needs a KeyValueStore; ``from dripline.implementations import
KeyValueStore`` works as with the reference.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule of dripline.implementations that defines it
_EXPORTS: dict[str, str] = {
    "KeyValueStore": "key_value_store",
    # --- the entries below live in modules that are not written yet --------------------------
    "EthernetSCPIService": "ethernet_scpi_service",
    "SimpleSCPIEntity": "entity_endpoints",
    "SimpleSCPIGetEntity": "entity_endpoints",
    "SimpleSCPISetEntity": "entity_endpoints",
    "FormatEntity": "entity_endpoints",
    "HeartbeatMonitor": "heartbeat_monitor",
    "HeartbeatTracker": "heartbeat_monitor",
    "PostgreSQLInterface": "postgres_interface",
    "SQLTable": "postgres_interface",
    "PostgresSensorLogger": "postgres_sensor_logger",
    "BaseAddAuthSpec": "base_add_auth_spec",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dripline.implementations' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = list(_EXPORTS)
