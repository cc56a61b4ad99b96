"""dripline.core: the public names plugins import, loaded lazily.

Names are resolved on first access (PEP 562) so that `dl-agent` does not pay for the service,
calibration or SQL machinery it never uses; `from dripline.core import Entity` works as before.
"""
# no `from __future__ import annotations` and only underscored imports: every name this module
# holds is one a user may import (dir(dripline.core) lists nothing else)
import importlib as _importlib

# public name -> submodule of dripline.core that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "DriplineError": "exceptions", "DecodeError": "exceptions", "ConfigError": "exceptions",
    "UnableToSendError": "exceptions", "TimeoutError_": "exceptions",
    "ConnectionError_": "exceptions", "throw_dripline_error": "exceptions",
    "throw_message": "exceptions",
    # return codes
    "ReturnCode": "return_codes", "add_return_code": "return_codes",
    "get_return_code_values": "return_codes", "get_return_codes_map": "return_codes",
    "get_return_codes_dict": "return_codes", "lookup_return_code": "return_codes",
    # messages
    "op_t": "message", "msg_t": "message", "Message": "message", "MsgRequest": "message",
    "MsgReply": "message", "MsgAlert": "message", "Specifier": "specifier",
    # versions
    "add_version": "version", "get_version": "version", "get_versions": "version",
    # config
    "DriplineConfig": "config", "Authentication": "config",
    # transport and clients
    "Core": "core", "AsyncInterface": "interface", "Interface": "interface",
    "RequestSender": "interface",
    # server side
    "ThrowReply": "throw_reply", "Endpoint": "endpoint", "RequestHandler": "request_handler",
    "Service": "service", "Entity": "entity", "calibrate": "calibrate",
    "AlertConsumer": "alert_consumer", "ObjectCreator": "object_creator",
    "create_object": "object_creator", "Scheduler": "scheduler",
    # what requests may reach (decorators for authors, the table dispatch uses)
    "expose": "surface", "hide": "surface", "RequestSurface": "surface",
}


def _return_code_class_names() -> list[str]:
    from . import return_codes
    return [n for n in dir(return_codes) if n.startswith("DL_")]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None and name.startswith("DL_"):
        module = "return_codes"
    if module is None:
        raise AttributeError(f"module 'dripline.core' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names only (not this module's helpers, nor its submodules)."""
    return sorted(set(_EXPORTS) | set(_return_code_class_names()))


__all__ = list(_EXPORTS)
