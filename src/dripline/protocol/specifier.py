"""The `specifier` of a dripline message: the dotted path *inside* an endpoint (`attr`, `ch1.volt`).

On the wire the specifier travels in its own header (never taken from the routing key), and an
endpoint looks only at its first token to decide what to do (an attribute name, a method name, or
a built-in such as `lock`/`ping`/`is-locked`), passing the rest on. So the object we need is a
string that can also be viewed as tokens.

We make it a ``str`` subclass so that everything that already treats the specifier as text keeps
working (`spec == "a.b"`, `if spec:`, f-strings, header encoding) at zero cost.

Deviation from the reference: the reference `Specifier` is mutable (`spec.parse(s)` re-targets it
in place). A ``str`` cannot change, so here `parse` is a class method that *returns* a new
Specifier (calling it on an instance also works, but only the return value carries the new text);
`reparse()` returns the specifier itself.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Specifier"]


class Specifier(str):
    """A dotted specifier string; tokens are the pieces between the dots.

    ``Specifier("a.b.c").tokens == ["a", "b", "c"]``; the empty specifier has no tokens.
    Empty tokens are kept (``"1."`` -> ``["1", ""]``) so that the token view and the text view
    always describe the same thing.
    """

    __slots__ = ()

    def __new__(cls, unparsed: Any = "") -> Specifier:
        kind = type(unparsed)
        if kind is str:
            return str.__new__(cls, unparsed)
        if kind is cls:
            return unparsed
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

    @classmethod
    def parse(cls, s: Any = "") -> Specifier:
        """Build a Specifier from text (the reference's spelling of the constructor)."""
        return cls(s)

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
