"""ThrowReply: the exception a handler raises to answer a request with a chosen code.

Raising is the natural way for handler code deep in a call stack to say "reply with this": the
request dispatcher catches the exception and turns it into exactly one reply. Unlike the reference
(which parks the values in a thread-local cache for the C++ side), everything travels on the
exception object itself, and the payload may be plain Python data.
"""
from __future__ import annotations

import logging
from typing import Any

from dripline.protocol import return_codes
from dripline.protocol.errors import DriplineError

__all__ = ["ThrowReply"]

logger = logging.getLogger(__name__)


class ThrowReply(Exception):
    """Answer the current request with `return_code`, `message` and `payload`.

    `return_code` is an int, a snake_case name (``'service_error_invalid_value'``), a ReturnCode or
    a ``DL_*`` class. An unknown name becomes 300 (service_error), keeps the message, and is logged
    as a warning, as in the reference. When `message` is None the code's description is used.
    `payload` is plain Python data; a ``scarab.Param`` is converted to it.
    """

    def __init__(self, return_code: Any = "success", message: str | None = None,
                 payload: Any = None):
        self.return_code: int = return_codes.code_value(return_code)
        if message is None:
            message = _description(self.return_code)
        self.return_message: str = str(message)
        self.return_payload: Any = _plain(payload)
        super().__init__(self.return_message)

    # the reference's spelling of the same values (settable, so subclasses may assign them)
    @property
    def message(self) -> str:
        return self.return_message

    @message.setter
    def message(self, value: str) -> None:
        self.return_message = str(value)

    @property
    def payload(self) -> Any:
        return self.return_payload

    @payload.setter
    def payload(self, value: Any) -> None:
        self.return_payload = _plain(value)

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuild without calling __init__, so the code survives pickling (e.g. to a process pool)
        # also for subclasses whose constructors take other arguments
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    def __repr__(self) -> str:
        return f"ThrowReply({self.return_code!r}, {self.return_message!r}, {self.return_payload!r})"


def _rebuild(cls: type[ThrowReply], args: tuple[Any, ...], state: dict[str, Any]) -> ThrowReply:
    exc = cls.__new__(cls, *args)
    exc.__dict__.update(state)
    return exc


def _description(value: int) -> str:
    try:
        return return_codes.lookup_return_code(value).description
    except DriplineError:  # an application code nobody registered
        return ""


def _plain(payload: Any) -> Any:
    from scarab import Param, to_python  # lazy: most ThrowReplies carry no Param

    return to_python(payload) if isinstance(payload, Param) else payload
