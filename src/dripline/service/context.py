"""What an endpoint sees of its service: the typed contract behind ``self.service``.

Why a Protocol: an endpoint needs a handful of things from the outside world (send an alert, ask
another endpoint, schedule a periodic action, know the mesh's exchange names), not the service's
connection, loop or lifecycle. Naming them here lets an endpoint be written and type-checked
against the contract, and lets anything that provides it stand in for a Service: the in-memory
harness of `dripline.testing.memory` does, so a test needs no broker and no fake of its own.

Reference-era plugins use exactly these: ``self.service.get(...)``, ``self.service.send_alert``,
``self.service.name``, ``self.service.schedule``. Code that needs more of a particular service
(an SCPI entity calling ``send_to_device``) narrows the type itself.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Protocol, runtime_checkable

from dripline.protocol.message import Message, MsgReply, MsgRequest

__all__ = ["ServiceContext"]


@runtime_checkable
class ServiceContext(Protocol):
    """The service an endpoint belongs to, as the endpoint may use it."""

    @property
    def name(self) -> str:
        """The service's name on the mesh."""
        ...

    @property
    def alerts_exchange(self) -> str:
        """The exchange alerts are published on (``alerts`` unless the mesh says otherwise)."""
        ...

    @property
    def requests_exchange(self) -> str:
        """The exchange requests are published on (``requests`` unless the mesh says otherwise)."""
        ...

    # ---- asking the mesh (blocking: call from a handler, never from the event loop) ------------
    def get(self, endpoint: str, specifier: str | None = None, lockout_key: Any = None,
            timeout_s: float | None = None) -> Any:
        """The value of another endpoint (the reply's payload)."""
        ...

    def set(self, endpoint: str, value: Any, specifier: str | None = None,
            lockout_key: Any = None, timeout_s: float | None = None) -> Any:
        """Set another endpoint; the reply's payload."""
        ...

    def cmd(self, endpoint: str, specifier: str, ordered_args: Any = None,
            keyed_args: dict | None = None, lockout_key: Any = None,
            timeout_s: float | None = None) -> Any:
        """Run a command of another endpoint; the reply's payload."""
        ...

    def send_request(self, request: MsgRequest, timeout_s: float | None = None) -> MsgReply:
        """Send a request and wait for its whole reply (the return code is not checked)."""
        ...

    # ---- telling the mesh ---------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Publish a reply or alert built by the caller (from any thread)."""
        ...

    def send_alert(self, routing_key: str, payload: Any = None) -> None:
        """Publish an alert with `routing_key` (from any thread)."""
        ...

    # ---- time --------------------------------------------------------------------------------
    def schedule(self, action: Callable[[], Any], when: Any = None,
                 start: datetime | None = None) -> int:
        """Run `action` once at a datetime, or every `when` (timedelta or seconds); an id."""
        ...

    def unschedule(self, event_id: int) -> bool:
        """Cancel a scheduled action; False when the id is unknown."""
        ...
