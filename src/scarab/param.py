"""The Param family: scarab's tree of null / value / node / array, as a thin layer over Python data.

The reference carried payloads as ``scarab.Param`` trees; our payloads are plain Python data.
These classes exist so that code written for the reference (``to_param(x)``, ``node.add(k, v)``,
``value.as_double()``, ``p.to_python()``) keeps working, and :func:`to_python` converts back.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["Param", "ParamValue", "ParamNode", "ParamArray", "to_param", "to_python"]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0", "")


class Param:
    """The null param; also the base class of the other kinds."""

    __hash__ = None  # type: ignore[assignment]  # mutable containers

    def is_null(self) -> bool:
        return type(self) is Param

    def is_value(self) -> bool:
        return isinstance(self, ParamValue)

    def is_node(self) -> bool:
        return isinstance(self, ParamNode)

    def is_array(self) -> bool:
        return isinstance(self, ParamArray)

    def as_value(self) -> ParamValue:
        return _expect(self, ParamValue)

    def as_node(self) -> ParamNode:
        return _expect(self, ParamNode)

    def as_array(self) -> ParamArray:
        return _expect(self, ParamArray)

    def to_python(self) -> Any:
        """The plain Python equivalent (None, bool/int/float/str, dict or list)."""
        return None

    def __eq__(self, other: object) -> bool:
        other_plain = other.to_python() if isinstance(other, Param) else other
        return self.to_python() == other_plain

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_python()!r})"


def _expect(param: Param, kind: type) -> Any:
    if not isinstance(param, kind):
        raise TypeError(f"{type(param).__name__} is not a {kind.__name__}")
    return param


class ParamValue(Param):
    """A single bool, int, float or str."""

    def __init__(self, value: bool | int | float | str):
        self._value = _check_scalar(value)

    def type(self) -> str:
        """'bool', 'uint' (int >= 0), 'int' (negative), 'double' or 'string'."""
        value = self._value
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int):
            return "uint" if value >= 0 else "int"
        if isinstance(value, float):
            return "double"
        return "string"

    def set(self, value: bool | int | float | str) -> None:
        self._value = _check_scalar(value)

    def as_bool(self) -> bool:
        value = self._value
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE or lowered in _FALSE:
                return lowered in _TRUE
            raise ValueError(f"cannot read {value!r} as a bool")
        return bool(value)

    def as_int(self) -> int:
        value = self._value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return int(float(value))  # "2.0"; raises ValueError for non-numbers
        return int(value)

    def as_uint(self) -> int:
        number = self.as_int()
        if number < 0:
            raise ValueError(f"{self._value!r} is negative, not a uint")
        return number

    def as_double(self) -> float:
        return float(self._value)

    def as_string(self) -> str:
        value = self._value
        if isinstance(value, bool):
            return "true" if value else "false"  # scarab's spelling
        return str(value)

    def to_python(self) -> bool | int | float | str:
        return self._value


def _check_scalar(value: Any) -> bool | int | float | str:
    if not isinstance(value, (bool, int, float, str)):
        raise TypeError(f"ParamValue holds bool, int, float or str, not {type(value).__name__}")
    return value


class ParamNode(Param):
    """A mapping of string keys to Params (dict-like)."""

    def __init__(self, items: dict[str, Any] | None = None):
        self._items: dict[str, Param] = {}
        for key, value in (items or {}).items():
            self[key] = value

    def add(self, key: str, value: Any = None) -> bool:
        """Insert `key` if it is absent (returns False and changes nothing if present)."""
        if key in self._items:
            return False
        self[key] = value
        return True

    def replace(self, key: str, value: Any = None) -> None:
        self[key] = value

    def remove(self, key: str) -> Param | None:
        """Remove `key` and return its Param (None if it was absent)."""
        return self._items.pop(key, None)

    def count(self, key: str) -> int:
        return 1 if key in self._items else 0

    def has(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def merge(self, other: ParamNode | dict[str, Any]) -> None:
        """Merge `other` into this node in place: nodes recursively, arrays element by element,
        everything else replaced."""
        for key, value in to_param(other).as_node().items():
            current = self._items.get(key)
            if isinstance(current, ParamNode) and isinstance(value, ParamNode):
                current.merge(value)
            elif isinstance(current, ParamArray) and isinstance(value, ParamArray):
                current.merge(value)
            else:
                self._items[key] = value

    def keys(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, Param]]:
        return list(self._items.items())

    def values(self) -> list[Param]:
        return list(self._items.values())

    def size(self) -> int:
        return len(self._items)

    def __getitem__(self, key: str) -> Param:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ParamNode keys must be strings, not {type(key).__name__}")
        self._items[key] = to_param(value)

    def __delitem__(self, key: str) -> None:
        del self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def to_python(self) -> dict[str, Any]:
        return {key: value.to_python() for key, value in self._items.items()}


class ParamArray(Param):
    """A list of Params (list-like)."""

    def __init__(self, items: list[Any] | None = None):
        self._items: list[Param] = [to_param(v) for v in (items or [])]

    def push_back(self, value: Any) -> None:
        self._items.append(to_param(value))

    def push_front(self, value: Any) -> None:
        self._items.insert(0, to_param(value))

    append = push_back

    def merge(self, other: ParamArray | list[Any]) -> None:
        """Merge element by element; extra elements of `other` are appended."""
        for i, value in enumerate(to_param(other).as_array()):
            if i >= len(self._items):
                self._items.append(value)
            elif isinstance(current := self._items[i], ParamNode) and isinstance(value, ParamNode):
                current.merge(value)
            else:
                self._items[i] = value

    def size(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Param:
        return self._items[index]

    def __setitem__(self, index: int, value: Any) -> None:
        self._items[index] = to_param(value)

    def __iter__(self) -> Iterator[Param]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def to_python(self) -> list[Any]:
        return [value.to_python() for value in self._items]


def to_param(obj: Any) -> Param:
    """Plain Python data as a Param tree (a Param is returned as it is).

    None -> Param, bool/int/float/str -> ParamValue, list -> ParamArray, dict (str keys) ->
    ParamNode; an object with ``to_python()`` (a message payload view) by its plain data.
    Tuples, sets and other objects raise TypeError: silently turning them into lists would hide
    bugs in payload construction.
    """
    if isinstance(obj, Param):
        return obj
    if obj is None:
        return Param()
    if isinstance(obj, (bool, int, float, str)):
        return ParamValue(obj)
    if isinstance(obj, list):
        return ParamArray(obj)
    if isinstance(obj, dict):
        return ParamNode(obj)
    to_python = getattr(obj, "to_python", None)
    if callable(to_python) and not isinstance(obj, type):
        return to_param(to_python())  # a payload view (PayloadNull, PayloadBool ...)
    raise TypeError(f"cannot convert {type(obj).__name__} to a scarab Param "
                    f"(use None, bool, int, float, str, list or dict)")


def to_python(obj: Any) -> Any:
    """The plain Python data of a Param; anything that is not a Param is returned unchanged, so
    calling this on an already-plain payload is harmless."""
    return obj.to_python() if isinstance(obj, Param) else obj
