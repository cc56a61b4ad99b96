"""Endpoint: a named thing on the mesh that answers get / set / cmd requests.

An endpoint knows how to answer requests (`RequestHandler`) and which service owns it. The service
routes requests to it by name, sends its replies, and provides what an endpoint needs from the
outside world (alerts, scheduling, requests to other endpoints) through ``self.service``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dripline.protocol.errors import DriplineError
from dripline.service.dispatch import RequestHandler

if TYPE_CHECKING:
    from dripline.protocol.message import MsgReply, MsgRequest

__all__ = ["Endpoint"]

logger = logging.getLogger(__name__)


class Endpoint(RequestHandler):
    """A named request handler owned by a service.

    Keyword arguments the class does not use are ignored (logged at debug level), as in the
    reference: configuration files pass whole blocks of keywords down constructor chains, and
    ``dl-serve`` validates keywords on its own before anything is built.
    """

    def __init__(self, name: str, **kwargs: Any) -> None:
        if kwargs:
            logger.debug("%s %r ignores unused keyword arguments: %s", type(self).__name__, name,
                         ", ".join(sorted(kwargs)))
        self.name = name
        self._service: Any = None

    # the owning service -------------------------------------------------------------------

    @property
    def service(self) -> Any:
        """The Service this endpoint belongs to; DriplineError before it has been attached."""
        service = getattr(self, "_service", None)
        if service is None:
            raise DriplineError(f"Endpoint {self.name} is not attached to a service")
        return service

    @service.setter
    def service(self, service: Any) -> None:
        self._service = service

    def _set_service(self, service: Any) -> None:
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
