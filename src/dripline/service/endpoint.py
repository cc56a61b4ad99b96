"""Endpoint: a named thing on the mesh that answers get / set / cmd requests.

An endpoint knows how to answer requests (`RequestHandler`) and which service owns it. The service
routes requests to it by name, sends its replies, and provides what an endpoint needs from the
outside world (alerts, scheduling, requests to other endpoints) through ``self.service``.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from dripline.protocol.errors import DriplineError
from dripline.protocol.throw_reply import ThrowReply
from dripline.service.context import ServiceContext
from dripline.service.dispatch import RequestHandler
from dripline.service.surface import is_plain_data

if TYPE_CHECKING:
    from dripline.protocol.message import MsgReply, MsgRequest

__all__ = ["Endpoint"]

logger = logging.getLogger(__name__)

_INVALID_VALUE = 304


def _is_number(value: Any) -> bool:
    """An int, or a finite float (NaN is within no limits)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _as_number(value: Any) -> float | int | None:
    """A number from a set's value: numbers, and numeric text (an HTTP form sends text)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return value if _is_number(value) else None  # ints compare exactly, however large


def _same_value(value: Any, allowed: Any) -> bool:
    """JSON equality: True is not 1, but 1 is 1.0."""
    if isinstance(value, bool) or isinstance(allowed, bool):
        return isinstance(value, bool) and isinstance(allowed, bool) and value is allowed
    return bool(value == allowed)


class Endpoint(RequestHandler):
    """A named request handler owned by a service.

    Keyword arguments the class does not use are ignored (logged at debug level), as in the
    reference: configuration files pass whole blocks of keywords down constructor chains, and
    ``dl-serve`` validates keywords on its own before anything is built.

    Args:
        name: the endpoint's name on the mesh (the first word of its routing key).
        units: the unit of the endpoint's value (e.g. "K"), shown by ``describe``.
        description: a sentence for people (user interfaces show it), shown by ``describe``.
        min: the smallest value a set without specifier accepts (a number).
        max: the largest value a set without specifier accepts (a number).
        allowed: the only values a set without specifier accepts (a list).

    ``units``, ``description``, ``min``, ``max`` and ``allowed`` may also be declared as class
    attributes by an author; a keyword given in YAML wins. They are read-only through requests.
    A set outside ``min``/``max``/``allowed`` is refused with 304 before ``on_set`` runs; the
    check is made on the value *as sent* (the raw value), not on a calibrated one, because that is
    the value ``on_set`` receives and the instrument is given.
    """

    #: unit of the value, for people and user interfaces (None: not declared)
    units: str | None = None
    #: a sentence about the endpoint, for people and user interfaces
    description: str | None = None
    #: smallest value a set (without specifier) accepts
    min: float | None = None
    #: largest value a set (without specifier) accepts
    max: float | None = None
    #: the only values a set (without specifier) accepts
    allowed: list[Any] | None = None

    __dripline_expose__: tuple[str, ...] = ("units", "description", "min", "max", "allowed")
    __dripline_readonly__: tuple[str, ...] = ("units", "description", "min", "max", "allowed")

    def __init__(self, name: str, units: str | None = None, description: str | None = None,
                 min: float | None = None, max: float | None = None,  # noqa: A002 (YAML names)
                 allowed: list[Any] | None = None, **kwargs: Any) -> None:
        if kwargs:
            logger.debug("%s %r ignores unused keyword arguments: %s", type(self).__name__, name,
                         ", ".join(sorted(kwargs)))
        self.name = name
        self._service: ServiceContext | None = None
        for key, value in (("units", units), ("description", description), ("min", min),
                           ("max", max), ("allowed", allowed)):
            if value is not None:
                setattr(self, key, value)
        self._check_limit_declarations()

    def _check_limit_declarations(self) -> None:
        """Refuse (ThrowReply 304, like Entity's options) limits that cannot be applied."""
        def refuse(text: str) -> ThrowReply:
            return ThrowReply(_INVALID_VALUE, f"endpoint {self.name}: {text}")
        for key in ("units", "description"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise refuse(f"{key} must be a string, got {value!r}")
        for key in ("min", "max"):
            value = getattr(self, key)
            if value is not None and not _is_number(value):
                raise refuse(f"{key} must be a number, got {value!r}")
        low, high, allowed = self.min, self.max, self.allowed
        if low is not None and high is not None and low > high:
            raise refuse(f"min ({low!r}) is greater than max ({high!r})")
        if allowed is not None:
            if isinstance(allowed, (str, bytes)) or not isinstance(allowed, (list, tuple)):
                raise refuse(f"allowed must be a list of values, got {allowed!r}")
            if not all(is_plain_data(v) and not isinstance(v, (list, tuple, dict))
                       for v in allowed):
                raise refuse(f"allowed must list numbers, strings, booleans or null, got "
                             f"{allowed!r}")
            if isinstance(allowed, tuple):
                self.allowed = list(allowed)

    def _check_set_limits(self, value: Any) -> None:
        low, high, allowed = self.min, self.max, self.allowed
        if allowed is not None and not any(_same_value(value, a) for a in allowed):
            shown = ", ".join(repr(a) for a in allowed[:20]) + (", ..." if len(allowed) > 20 else "")
            raise ThrowReply(_INVALID_VALUE, f"endpoint {self.name}: {value!r:.80} is not an "
                                             f"allowed value ({shown})")
        if low is None and high is None:
            return
        number = _as_number(value)
        if number is None:
            raise ThrowReply(_INVALID_VALUE, f"endpoint {self.name}: a set needs a number within "
                                             f"its limits, got {value!r:.80}")
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = (f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]")
            raise ThrowReply(_INVALID_VALUE, f"endpoint {self.name}: {value!r} is outside the "
                                             f"limits {bounds}")

    # the owning service -------------------------------------------------------------------

    @property
    def service(self) -> ServiceContext:
        """The service this endpoint belongs to, as `ServiceContext` describes what an endpoint
        may use of it; DriplineError before it has been attached."""
        service = getattr(self, "_service", None)
        if service is None:
            raise DriplineError(f"Endpoint {self.name} is not attached to a service")
        return service

    @service.setter
    def service(self, service: ServiceContext) -> None:
        self._service = service

    def _set_service(self, service: ServiceContext | None) -> None:
        """Attach (or, with None, detach) the owning service."""
        self._service = service

    @property
    def is_attached(self) -> bool:
        return getattr(self, "_service", None) is not None

    # reference API --------------------------------------------------------------------------

    def submit_request_message(self, request: MsgRequest) -> MsgReply:
        """Answer `request` and, when attached and a reply is wanted, send the reply.

        Returns the reply either way (the reference's direct-submission entry point, used by its
        tests); an unattached endpoint only logs that the reply was not sent.
        """
        reply = self.on_request_message(request)
        if getattr(request, "reply_to", ""):
            service = getattr(self, "_service", None)
            if service is None:
                logger.warning("Endpoint %s is not attached to a service: reply to %r not sent",
                               self.name, request.reply_to)
            else:
                try:
                    service.send(reply)
                except Exception:
                    logger.exception("Endpoint %s could not send its reply", self.name)
        return reply

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
