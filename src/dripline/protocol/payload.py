"""Message payloads as plain Python data that also answer the reference's Param-style calls.

In the reference a payload is a ``scarab.Param`` tree, and code written for it asks the payload
what it is and converts it: ``payload.is_node()``, ``payload.to_python()``,
``reply.payload.as_value().as_double()``, ``payload.count("values")``. Here payloads are plain
data, so that new code uses them as the dict, list, str or number they are. The view types below
bridge the two: each *is* the plain type (a subclass: ``==``, ``isinstance``, JSON and arithmetic
behave as usual) and adds the Param calls.

================  ====================  ==============================================
payload           view                  Param calls that answer True / work
================  ====================  ==============================================
object            `PayloadDict`         is_node, as_node, count/has/add/replace/...
array             `PayloadList`         is_array, as_array, push_back/size/...
string            `PayloadStr`          is_value, as_value, as_string/as_int/...
integer           `PayloadInt`          is_value, as_value, as_int/as_double/...
float             `PayloadFloat`        is_value, as_value, as_double/...
boolean           `PayloadBool`         is_value, as_value, as_bool/...
null              `PayloadNull`         is_null
================  ====================  ==============================================

``bool`` and ``None`` cannot be subclassed, so `PayloadBool` and `PayloadNull` are stand-ins
that compare equal to ``True``/``False`` and ``None``. They are used only where the reference's
API creates messages (``create()`` factories, ``request.reply()``, a ``scarab`` Param given as
payload), never for payloads decoded from the wire, so that ``payload is None`` keeps meaning
"no payload" for code written against this package. `PayloadNull` also behaves as an empty,
read-only mapping, the way a missing payload is treated when arguments are read from it.
Views are top level only: values inside a `PayloadDict` are plain data.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

__all__ = ["PayloadDict", "PayloadList", "PayloadStr", "PayloadInt", "PayloadFloat",
           "PayloadBool", "PayloadNull", "NULL_PAYLOAD", "view", "reference_view", "plain"]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0", "")


def plain(value: Any) -> Any:
    """The plain Python data of a payload (views, scarab Params); anything else unchanged."""
    to_python = getattr(value, "to_python", None)
    if to_python is not None and callable(to_python) and not isinstance(value, type):
        return to_python()
    return value


def _not_a(what: str, value: Any) -> NoReturn:
    raise TypeError(f"the payload is {_kind(value)}, not {what}")


def _kind(value: Any) -> str:
    if value.is_null():
        return "null"
    return "a node (object)" if value.is_node() else "an array" if value.is_array() \
        else "a value"


class _ParamCalls:
    """The questions every payload answers, whatever its type (the reference's Param API)."""

    __slots__ = ()

    def is_null(self) -> bool:
        return False

    def is_value(self) -> bool:
        return False

    def is_node(self) -> bool:
        return False

    def is_array(self) -> bool:
        return False

    def as_value(self) -> Any:
        _not_a("a value", self)

    def as_node(self) -> Any:
        _not_a("a node", self)

    def as_array(self) -> Any:
        _not_a("an array", self)

    def to_python(self) -> Any:  # pragma: no cover - every view overrides it
        raise NotImplementedError


class _ValueCalls(_ParamCalls):
    """What a single value (ParamValue) answers: conversions as scarab makes them."""

    __slots__ = ()

    def is_value(self) -> bool:
        return True

    def as_value(self) -> Any:
        return self

    def type(self) -> str:
        """'bool', 'uint' (int >= 0), 'int' (negative), 'double' or 'string' (scarab's names)."""
        value = self.to_python()
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int):
            return "uint" if value >= 0 else "int"
        if isinstance(value, float):
            return "double"
        return "string"

    def as_bool(self) -> bool:
        value = self.to_python()
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE or lowered in _FALSE:
                return lowered in _TRUE
            raise ValueError(f"cannot read {value!r} as a bool")
        return bool(value)

    def as_int(self) -> int:
        value = self.to_python()
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return int(float(value))  # "2.0"; ValueError for text that is no number
        return int(value)

    def as_uint(self) -> int:
        number = self.as_int()
        if number < 0:
            raise ValueError(f"{self.to_python()!r} is negative, not a uint")
        return number

    def as_double(self) -> float:
        return float(self.to_python())

    def as_string(self) -> str:
        value = self.to_python()
        if isinstance(value, bool):
            return "true" if value else "false"  # scarab's spelling
        return str(value)


class PayloadStr(_ValueCalls, str):
    """A string payload."""

    __slots__ = ()

    def to_python(self) -> str:
        return str.__str__(self)


class PayloadInt(_ValueCalls, int):
    """An integer payload."""

    __slots__ = ()

    def to_python(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return int.__repr__(self)


class PayloadFloat(_ValueCalls, float):
    """A floating-point payload."""

    __slots__ = ()

    def to_python(self) -> float:
        return float(self)

    def __repr__(self) -> str:
        return float.__repr__(self)


class PayloadBool(_ValueCalls):
    """A boolean payload: equal to True or False, truthy as they are (``bool`` has no subclasses)."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = bool(value)

    def to_python(self) -> bool:
        return self._value

    def __bool__(self) -> bool:
        return self._value

    def __eq__(self, other: object) -> bool:
        return self._value == plain(other)

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return repr(self._value)

    __str__ = __repr__


class PayloadNull(_ParamCalls, Mapping):
    """The null payload: equal to None, falsy, and an empty read-only mapping."""

    __slots__ = ()
    _instance: "PayloadNull | None" = None

    def __new__(cls) -> "PayloadNull":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def is_null(self) -> bool:
        return True

    def to_python(self) -> None:
        return None

    def __getitem__(self, key: Any) -> NoReturn:
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, PayloadNull) or \
            (getattr(other, "is_null", None) is not None and _null_param(other))

    def __hash__(self) -> int:
        return hash(None)

    def __repr__(self) -> str:
        return "PayloadNull()"

    def __str__(self) -> str:
        return "null"


def _null_param(other: Any) -> bool:
    try:
        return bool(other.is_null())
    except Exception:
        return False


NULL_PAYLOAD = PayloadNull()


class PayloadDict(_ParamCalls, dict):
    """An object payload: a plain dict that also answers as a scarab ParamNode.

    Reference-era code calls ``payload.to_python()`` on what it is handed (a ParamNode there),
    e.g. ``insert_data.update(a_payload.to_python())``, or builds on it with ``add``.
    """

    __slots__ = ()

    def is_node(self) -> bool:
        return True

    def as_node(self) -> "PayloadDict":
        return self

    def to_python(self) -> dict:
        return dict(self)

    def count(self, key: str) -> int:
        return 1 if key in self else 0

    def has(self, key: str) -> bool:
        return key in self

    def add(self, key: str, value: Any = None) -> bool:
        """Insert `key` if it is absent (False, and nothing changes, when it is present)."""
        if key in self:
            return False
        self[key] = plain(value)
        return True

    def replace(self, key: str, value: Any = None) -> None:
        self[key] = plain(value)

    def remove(self, key: str) -> Any:
        """Remove `key`; its value, or None when it was absent."""
        return self.pop(key, None)

    def size(self) -> int:
        return len(self)

    def empty(self) -> bool:
        return not self


class PayloadList(_ParamCalls, list):
    """An array payload: a plain list that also answers as a scarab ParamArray."""

    __slots__ = ()

    def is_array(self) -> bool:
        return True

    def as_array(self) -> "PayloadList":
        return self

    def to_python(self) -> list:
        return list(self)

    def push_back(self, value: Any) -> None:
        self.append(plain(value))

    def push_front(self, value: Any) -> None:
        self.insert(0, plain(value))

    def size(self) -> int:
        return len(self)

    def empty(self) -> bool:
        return not self


_VIEWS: dict[type, type] = {dict: PayloadDict, list: PayloadList, str: PayloadStr,
                            int: PayloadInt, float: PayloadFloat}


def view(payload: Any) -> Any:
    """A decoded or constructed payload as its view; None and bool stay plain (see module doc).

    Only the exact plain types are wrapped: a view, or an object of the caller's own class, is
    returned unchanged.
    """
    cls = _VIEWS.get(type(payload))
    return payload if cls is None else cls(payload)


def reference_view(payload: Any) -> Any:
    """The payload as the reference's API hands it back: every type a view, null included.

    For payloads given to ``create()`` factories and ``reply()``: None or a null scarab Param
    becomes `NULL_PAYLOAD`, a bool `PayloadBool`, a Param tree its plain data's view.
    """
    payload = plain(payload)
    if payload is None:
        return NULL_PAYLOAD
    if isinstance(payload, bool):
        return PayloadBool(payload)
    return view(payload)
