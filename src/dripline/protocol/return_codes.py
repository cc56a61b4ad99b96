"""Registry of dripline return codes: value, snake_case name and description.

Every reply carries a numeric return code. Code in a handler names codes by their snake_case name
(``ThrowReply('service_error_invalid_value', ...)``) or by a ``DL_*`` class, the wire carries the
number, and humans read the description. This module keeps the three together in one registry keyed
by value (values are unique, names need not be: that is how the reference behaves), plus the codes a
mesh adds from its configuration (``dripline_mesh.return_codes``).
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from dripline.protocol.errors import ConfigError, DriplineError, did_you_mean

__all__ = [
    "ReturnCode", "add_return_code", "check_and_add_return_code", "get_return_code_values",
    "get_return_codes_map", "get_return_codes_dict", "lookup_return_code", "register_return_codes",
    "code_value", "SERVICE_ERROR_VALUE", "STANDARD_VALUES",
]  # the DL_* classes are appended below, where they are defined

logger = logging.getLogger(__name__)

#: What an unknown code *name* resolves to (the reference falls back to ``service_error``).
SERVICE_ERROR_VALUE = 300

_registry: dict[int, "ReturnCode"] = {}
_lock = threading.Lock()  # add/check-and-add may race when services start in threads


# ---------------------------------------------------------------------------------------------
# validation helpers

_MAX_VALUE = 2**32 - 1  # return_code travels as an unsigned 32-bit header


def _check_value(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a return code value must be an int, not {type(value).__name__}")
    if not 0 <= value <= _MAX_VALUE:
        raise ValueError(f"a return code value must be between 0 and {_MAX_VALUE}, not {value}")
    return int(value)


def _check_text(text: Any, what: str, allow_empty: bool) -> str:
    if not isinstance(text, str):
        raise TypeError(f"a return code {what} must be a string, not {type(text).__name__}")
    if not allow_empty and not text:
        raise ValueError(f"a return code {what} must not be empty")
    return text


def _is_code_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, _StandardCode) and obj is not _StandardCode


class ReturnCode:
    """One return code. Immutable; two codes are equal when their values are equal.

    Equality (and hashing) by value lets ``reply.return_code == DL_Success()`` and
    ``DL_Success() == 0`` read naturally.
    """

    __slots__ = ("_value", "_name", "_description")

    def __init__(self, value: int, name: str, description: str):
        self._value = _check_value(value)
        self._name = _check_text(name, "name", allow_empty=False)
        self._description = _check_text(description, "description", allow_empty=True)

    @property
    def value(self) -> int:
        return self._value

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReturnCode):
            return self.value == other.value
        if isinstance(other, int) and not isinstance(other, bool):
            return self.value == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)

    def __int__(self) -> int:
        return self.value

    def __str__(self) -> str:
        # the text form used by dl-cpp's stream operator
        return f"{self.description}({self.value})"

    def __repr__(self) -> str:
        return f"ReturnCode({self.value!r}, {self.name!r}, {self.description!r})"


class _StandardCode(ReturnCode):
    """Base of the ``DL_*`` classes: the code lives in class attributes, so both ``DL_Success.value``
    and ``DL_Success().value`` work; defining a subclass registers its code."""

    __slots__ = ()
    value: int  # the class attributes of each subclass shadow the base-class properties
    name: str
    description: str

    def __init__(self) -> None:
        cls = type(self)
        ReturnCode.__init__(self, cls.value, cls.name, cls.description)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _registry[cls.value] = cls()
        __all__.append(cls.__name__)


# The standard table (reference §2.1). One line per code keeps it easy to compare with the spec.
# fmt: off
# ruff: noqa: E701, E702
class DL_Success(_StandardCode):                       __slots__ = (); value, name, description = 0, "success", "Success"
class DL_WarningNoActionTaken(_StandardCode):          __slots__ = (); value, name, description = 1, "warning_no_action_taken", "No Action Taken"
class DL_WarningDeprecatedFeature(_StandardCode):      __slots__ = (); value, name, description = 2, "warning_deprecated_feature", "Deprecated Feature"
class DL_WarningDryRun(_StandardCode):                 __slots__ = (); value, name, description = 3, "warning_dry_run", "Dry Run"
class DL_WarningOffline(_StandardCode):                __slots__ = (); value, name, description = 4, "warning_offline", "Offline"
class DL_WarningSubService(_StandardCode):             __slots__ = (); value, name, description = 5, "warning_sub_service", "Sub-Service Warning"
class DL_AmqpError(_StandardCode):                     __slots__ = (); value, name, description = 100, "amqp_error", "Generic AMQP Error"
class DL_AmqpErrorBrokerConnection(_StandardCode):     __slots__ = (); value, name, description = 101, "amqp_error_broker_connection", "AMQP Connection Error"
class DL_AmqpErrorRoutingkeyNotfound(_StandardCode):   __slots__ = (); value, name, description = 102, "amqp_error_routingkey_notfound", "Invalid AMQP Routing Key"
class DL_ResourceError(_StandardCode):                 __slots__ = (); value, name, description = 200, "resource_error", "Generic Resource Error"
class DL_ResourceErrorConnection(_StandardCode):       __slots__ = (); value, name, description = 201, "resource_error_connection", "Resource Connection Error"
class DL_ResourceErrorNoResponse(_StandardCode):       __slots__ = (); value, name, description = 202, "resource_error_no_response", "No Response Error"
class DL_ResourceErrorSubService(_StandardCode):       __slots__ = (); value, name, description = 203, "resource_error_sub_service", "Sub-Service Error"
class DL_ServiceError(_StandardCode):                  __slots__ = (); value, name, description = 300, "service_error", "Generic Service Error"
class DL_ServiceErrorNoEncoding(_StandardCode):        __slots__ = (); value, name, description = 301, "service_error_no_encoding", "Invalid Message Encoding"
class DL_ServiceErrorDecodingFail(_StandardCode):      __slots__ = (); value, name, description = 302, "service_error_decoding_fail", "Decoding Failed"
class DL_ServiceErrorBadPayload(_StandardCode):        __slots__ = (); value, name, description = 303, "service_error_bad_payload", "Invalid Payload"
class DL_ServiceErrorInvalidValue(_StandardCode):      __slots__ = (); value, name, description = 304, "service_error_invalid_value", "Invalid Value"
class DL_ServiceErrorTimeout(_StandardCode):           __slots__ = (); value, name, description = 305, "service_error_timeout", "Timeout Handling Message"
class DL_ServiceErrorInvalidMethod(_StandardCode):     __slots__ = (); value, name, description = 306, "service_error_invalid_method", "Invalid Command"
class DL_ServiceErrorAccessDenied(_StandardCode):      __slots__ = (); value, name, description = 307, "service_error_access_denied", "Access Denied"
class DL_ServiceErrorInvalidKey(_StandardCode):        __slots__ = (); value, name, description = 308, "service_error_invalid_key", "Invalid Lockout Key"
class DL_ServiceErrorInvalidSpecifier(_StandardCode):  __slots__ = (); value, name, description = 310, "service_error_invalid_specifier", "Invalid Specifier"
class DL_ClientError(_StandardCode):                   __slots__ = (); value, name, description = 400, "client_error", "Generic Client Error"
class DL_ClientErrorInvalidRequest(_StandardCode):     __slots__ = (); value, name, description = 401, "client_error_invalid_request", "Invalid Request"
class DL_ClientErrorHandlingReply(_StandardCode):      __slots__ = (); value, name, description = 402, "client_error_handling_reply", "Error Handling Reply"
class DL_ClientErrorUnableToSend(_StandardCode):       __slots__ = (); value, name, description = 403, "client_error_unable_to_send", "Unable to Send"
class DL_ClientErrorTimeout(_StandardCode):            __slots__ = (); value, name, description = 404, "client_error_timeout", "Client Timeout"
class DL_UnhandledException(_StandardCode):            __slots__ = (); value, name, description = 999, "unhandled_exception", "Unhandled Exception"
# fmt: on

#: The values of the built-in table, for code that must tell standard and custom codes apart.
STANDARD_VALUES = frozenset(_registry)


# ---------------------------------------------------------------------------------------------
# registry access


def add_return_code(value: int, name: str, description: str) -> ReturnCode:
    """Register a new code. Values are unique: a taken value raises DriplineError naming both the
    registered code and the rejected one."""
    code = ReturnCode(value, name, description)
    with _lock:
        existing = _registry.get(code.value)
        if existing is not None:
            raise DriplineError(
                f"return code value {code.value} is already registered as {existing.name!r}; "
                f"cannot add {code.name!r}")
        _registry[code.value] = code
    return code


def check_and_add_return_code(value: int, name: str, description: str) -> bool:
    """Like :func:`add_return_code` but returns False instead of raising when the value is taken."""
    code = ReturnCode(value, name, description)
    with _lock:
        if code.value in _registry:
            return False
        _registry[code.value] = code
    return True


def get_return_code_values() -> list[int]:
    """All registered values, ascending."""
    return sorted(_registry)


def get_return_codes_map() -> dict[int, ReturnCode]:
    """A snapshot ``{value: ReturnCode}`` (changing it does not change the registry)."""
    return dict(sorted(_registry.items()))


def get_return_codes_dict() -> dict[str, ReturnCode]:
    """A snapshot ``{name: ReturnCode}``; if two values share a name, the higher value wins
    (built in value order, as the reference does)."""
    return {code.name: code for _, code in sorted(_registry.items())}


def lookup_return_code(code: Any) -> ReturnCode:
    """The registered code for a value, a name, a ReturnCode or a ``DL_*`` class.

    Unknown names and values raise DriplineError (never KeyError), so callers need one except clause.
    """
    if _is_code_class(code) or isinstance(code, ReturnCode):
        value = code.value
    elif isinstance(code, int) and not isinstance(code, bool):
        value = code
    elif isinstance(code, str):
        found = get_return_codes_dict().get(code)
        if found is None:
            raise DriplineError(f"unknown return code name {code!r}")
        return found
    else:
        raise DriplineError(f"cannot look up a return code from {type(code).__name__} {code!r}")
    found = _registry.get(value)
    if found is None:
        raise DriplineError(f"unknown return code value {value}")
    return found


def code_value(code: Any) -> int:
    """The numeric value for an int, a name, a ReturnCode or a ``DL_*`` class.

    Ints are returned as they are (applications may reply with codes nobody registered); an unknown
    *name* gives 300 ``service_error`` like the reference, with a warning so the typo is visible.
    """
    if _is_code_class(code) or isinstance(code, ReturnCode):
        return code.value
    if isinstance(code, int) and not isinstance(code, bool):
        return _check_value(code)
    if isinstance(code, str):
        found = get_return_codes_dict().get(code)
        if found is None:
            logger.warning("unknown return code name %r; using %d (service_error)",
                           code, SERVICE_ERROR_VALUE)
            return SERVICE_ERROR_VALUE
        return found.value
    raise TypeError(f"a return code must be an int, a name or a ReturnCode, not "
                    f"{type(code).__name__}")


# ---------------------------------------------------------------------------------------------
# codes from configuration

_SPEC_KEYS = ("name", "value", "description")


def register_return_codes(spec: Any, source: str | None = None) -> list[ReturnCode]:
    """Register custom codes given as a list of ``{name, value, description}`` mappings.

    The whole spec is checked before anything is registered, so a bad entry leaves the registry
    untouched. Loading a code that is already registered with the same value and name is a no-op
    (configs are often processed more than once); the same value under a different name is a
    ConfigError naming both. Returns the codes of the spec. Reading a codes *file* is the settings
    layer's job (`dripline.settings.mesh.load_return_codes`): this module does no I/O.
    """
    where = source or "dripline_mesh.return_codes"
    if not isinstance(spec, list):
        raise ConfigError(f"{where} must be a list of {{name, value, description}} entries or the "
                          f"path of a YAML/JSON file, not {type(spec).__name__}")

    codes = [_code_from_entry(entry, i, where) for i, entry in enumerate(spec)]

    with _lock:
        seen: dict[int, ReturnCode] = {}
        for code in codes:
            other = seen.get(code.value) or _registry.get(code.value)
            if other is not None and other.name != code.name:
                raise ConfigError(f"return code value {code.value} in {where} is given as "
                                  f"{code.name!r} but is already {other.name!r}")
            seen[code.value] = code
        for code in codes:
            _registry.setdefault(code.value, code)
    return codes


def _code_from_entry(entry: Any, index: int, where: str) -> ReturnCode:
    label = f"entry {index} of {where}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{label} must be a mapping with keys name, value and description, "
                          f"not {type(entry).__name__}")
    for key in entry:
        if key not in _SPEC_KEYS:
            raise ConfigError(f"{label} has an unknown key {key!r}{did_you_mean(str(key), _SPEC_KEYS)}")
    missing = [k for k in _SPEC_KEYS if k not in entry]
    if missing:
        raise ConfigError(f"{label} is missing {', '.join(missing)} "
                          f"(each return code needs name, value and description)")
    try:
        return ReturnCode(entry["value"], entry["name"], entry["description"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{label}: {exc}") from None
