"""The `specifier` of a dripline message: the dotted path *inside* an endpoint (`attr`, `ch1.volt`).

On the wire the specifier travels in its own header (never taken from the routing key), and an
endpoint looks only at its first token to decide what to do (an attribute name, a method name, or
a built-in such as `lock`/`ping`/`is-locked`), passing the rest on. So the object we need is a
string that can also be viewed as tokens.

We make it a ``str`` subclass so that everything that already treats the specifier as text keeps
working (`spec == "a.b"`, `if spec:`, f-strings, header encoding) at zero cost.

The reference's `Specifier` is mutable: ``spec.parse(s)`` re-targets it in place, and reference
code (and its unit tests) do ``item = Specifier(); item.parse("a.b"); item.to_string()``. A
``str`` cannot change its characters, so an instance that is re-parsed switches to a subclass
that keeps the new text beside the old characters and answers every question from the new text
(`to_string`, `tokens`, ``==``, ``str()``, f-strings, ``len``, the ``str`` methods). Specifiers
that are never re-parsed -- all of them on the request path -- stay plain ``str`` objects at no
cost. `Specifier.parse(s)` called on the class builds a new one; `reparse()` returns the
specifier itself (the tokens are always derived from the text). Only functions that read a
string's characters directly (``str.__str__(spec)``, C code given the object) would still see
the old text; the message codec asks `to_string()`.
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["Specifier"]


class _ParseMethod:
    """``Specifier.parse(s)`` builds a Specifier; ``spec.parse(s)`` re-targets `spec` in place."""

    def __get__(self, instance: Any, owner: type) -> Callable[..., "Specifier"]:
        if instance is None:
            return lambda s="": owner(s)
        return lambda s="": _retarget(instance, s)


def _retarget(spec: "Specifier", s: Any) -> "Specifier":
    spec.__dict__["_text"] = Specifier(s).to_string()
    if type(spec) is not _Reparsed:
        spec.__class__ = _Reparsed
    return spec


class Specifier(str):
    """A dotted specifier string; tokens are the pieces between the dots.

    ``Specifier("a.b.c").tokens == ["a", "b", "c"]``; the empty specifier has no tokens.
    Empty tokens are kept (``"1."`` -> ``["1", ""]``) so that the token view and the text view
    always describe the same thing.
    """

    # no __slots__: a re-parsed instance keeps its new text in its __dict__ (allocated only then)

    def __new__(cls, unparsed: Any = "") -> Specifier:
        kind = type(unparsed)
        if kind is str:
            return str.__new__(cls, unparsed)
        if kind is cls:
            return unparsed
        if isinstance(unparsed, Specifier):  # a re-parsed one: its current text
            unparsed = unparsed.to_string()
        if unparsed is None:
            unparsed = ""
        elif isinstance(unparsed, (bytes, bytearray)):
            unparsed = bytes(unparsed).decode("utf-8", "replace")
        elif not isinstance(unparsed, str):
            # e.g. a list of tokens
            if isinstance(unparsed, (list, tuple)):
                unparsed = ".".join(str(t) for t in unparsed)
            else:
                unparsed = str(unparsed)
        return str.__new__(cls, unparsed)

    parse = _ParseMethod()

    def reparse(self) -> Specifier:
        """Reference-era no-op: the token view is always derived from the text."""
        return self

    def to_string(self) -> str:
        """The specifier as a plain ``str`` (what goes into the `specifier` header)."""
        return str.__str__(self)

    @property
    def unparsed(self) -> str:
        return str.__str__(self)

    @property
    def tokens(self) -> list[str]:
        """The dot-separated tokens; ``[]`` for the empty specifier."""
        return self.split(".") if self else []

    @property
    def first(self) -> str | None:
        """The first token (what an endpoint dispatches on), or None when empty."""
        if not self:
            return None
        return self.partition(".")[0]

    @property
    def rest(self) -> Specifier:
        """The specifier without its first token (what is handed on after dispatch)."""
        return Specifier(self.partition(".")[2])

    def __repr__(self) -> str:
        return f"Specifier({str.__repr__(self)})"


_STR_METHODS = frozenset(name for name in dir(str) if not name.startswith("_"))


class _Reparsed(Specifier):
    """A Specifier whose `parse` was called: everything answers from the new text."""

    def __getattribute__(self, name: str) -> Any:
        if name in _STR_METHODS:  # split, partition, startswith, ...: on the current text
            return getattr(object.__getattribute__(self, "__dict__")["_text"], name)
        return object.__getattribute__(self, name)

    def to_string(self) -> str:
        return self.__dict__["_text"]

    @property
    def unparsed(self) -> str:
        return self.__dict__["_text"]

    @property
    def tokens(self) -> list[str]:
        text = self.__dict__["_text"]
        return text.split(".") if text else []

    @property
    def first(self) -> str | None:
        text = self.__dict__["_text"]
        return text.partition(".")[0] if text else None

    @property
    def rest(self) -> Specifier:
        return Specifier(self.__dict__["_text"].partition(".")[2])

    def __str__(self) -> str:
        return self.__dict__["_text"]

    def __repr__(self) -> str:
        return f"Specifier({self.__dict__['_text']!r})"

    def __format__(self, spec: str) -> str:
        return format(self.__dict__["_text"], spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Specifier):
            other = other.to_string()
        return self.__dict__["_text"] == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.__dict__["_text"])

    def __len__(self) -> int:
        return len(self.__dict__["_text"])

    def __bool__(self) -> bool:
        return bool(self.__dict__["_text"])

    def __contains__(self, item: object) -> bool:
        return item in self.__dict__["_text"]

    def __getitem__(self, index: Any) -> str:
        return self.__dict__["_text"][index]

    def __iter__(self) -> Any:
        return iter(self.__dict__["_text"])

    def __add__(self, other: Any) -> str:
        return self.__dict__["_text"] + other

    def __radd__(self, other: Any) -> str:
        return other + self.__dict__["_text"]
