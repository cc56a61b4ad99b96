"""Cancelable and SignalHandler: stand-ins for scarab's cancellation machinery.

Reference-era code registers its services with ``scarab.SignalHandler`` and tests cancel them with
``SignalHandler.cancel_all()``. Our services handle signals themselves (asyncio), so these classes
install no OS signal handlers: they only keep the registry and forward ``cancel`` calls.
"""
from __future__ import annotations

import weakref
from typing import Any, ClassVar

__all__ = ["Cancelable", "SignalHandler"]


class Cancelable:
    """Something that can be asked to stop; subclasses react in :meth:`do_cancellation`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)  # cooperative: Cancelable is used as a mix-in
        self._canceled = False

    def cancel(self, code: int = 0) -> None:
        self._canceled = True
        self.do_cancellation(code)

    def do_cancellation(self, code: int) -> None:
        """Hook for subclasses; the base does nothing."""

    def reset_cancel(self) -> None:
        self._canceled = False

    def is_canceled(self) -> bool:
        return getattr(self, "_canceled", False)


class SignalHandler:
    """A process-wide registry of cancelables; ``cancel_all`` cancels each of them.

    Methods work on the class and on instances alike (``SignalHandler.cancel_all()`` or
    ``SignalHandler().cancel_all()``). Entries are weak, so registering never keeps an object alive.
    """

    _cancelables: ClassVar[weakref.WeakSet[Any]] = weakref.WeakSet()

    def __init__(self, *args: Any, **kwargs: Any):
        pass  # no OS handlers are installed

    @classmethod
    def add_cancelable(cls, cancelable: Any) -> None:
        SignalHandler._cancelables.add(cancelable)

    @classmethod
    def remove_cancelable(cls, cancelable: Any) -> None:
        SignalHandler._cancelables.discard(cancelable)

    @classmethod
    def has_cancelable(cls, cancelable: Any) -> bool:
        return cancelable in SignalHandler._cancelables

    @classmethod
    def cancel_all(cls, code: int = 0) -> None:
        for cancelable in list(SignalHandler._cancelables):
            cancelable.cancel(code)

    @classmethod
    def reset(cls) -> None:
        """Forget every registered cancelable."""
        SignalHandler._cancelables.clear()
