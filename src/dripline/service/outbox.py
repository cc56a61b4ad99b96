"""What a service publishes: replies, alerts and heartbeats, stamped with its sender info.

Why a piece of its own: alerts must survive a broker restart (a sensor value sent while the
broker is away is kept, bounded, and sent once the connection is restored), while a reply to a
request is worth nothing later and is dropped with a warning. Everything here runs on the event
loop thread; `Runtime.call_on_loop` brings other threads' messages there.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any

from dripline.protocol.errors import ConnectionError_
from dripline.protocol.message import Message, MsgAlert

if TYPE_CHECKING:
    from dripline.client.session import Core

__all__ = ["ALERT_BUFFER_SIZE", "Outbox"]

logger = logging.getLogger(__name__)

#: alerts kept while the broker is away (the oldest are dropped beyond it)
ALERT_BUFFER_SIZE = 10000


class Outbox:
    """Sends a service's messages through its Core; see the module docstring.

    `owner` is the service: its `name` and `sender_info` are read at each send, so a subclass
    that changes them is honoured.
    """

    def __init__(self, owner: Any, core: "Core", size: int = ALERT_BUFFER_SIZE) -> None:
        self._owner = owner
        self._core = core
        self.buffer: collections.deque[Message] = collections.deque(maxlen=size)

    def stamp(self, msg: Message) -> Message:
        msg.sender_info = self._owner.sender_info
        return msg

    def send_now(self, msg: Message) -> None:
        """Publish `msg` (on the loop thread); an alert waits in the buffer while disconnected."""
        try:
            self._core.send(msg)
        except ConnectionError_:
            if msg.is_alert():
                if len(self.buffer) == self.buffer.maxlen:
                    logger.warning("alert buffer full (%d): dropping the oldest alert",
                                   self.buffer.maxlen)
                self.buffer.append(msg)
            else:
                logger.warning("broker unavailable: %s to %s not sent",
                               "reply" if msg.is_reply() else "message", msg.routing_key)

    def flush(self) -> None:
        """Send the alerts kept while the broker was away (called when the connection is back)."""
        n = len(self.buffer)
        while self.buffer:
            msg = self.buffer.popleft()
            try:
                self._core.send(msg)
            except ConnectionError_:
                self.buffer.appendleft(msg)
                return
        if n:
            logger.info("service %s: sent %d alerts kept while the broker was away",
                        self._owner.name, n)

    async def heartbeats(self, interval_s: float) -> None:
        """Send ``<heartbeat key>.<service>`` every `interval_s` until cancelled."""
        owner = self._owner
        key = f"{self._core.heartbeat_routing_key}.{owner.name}"
        payload = {"name": owner.name, "id": str(owner.id)}
        while True:
            await asyncio.sleep(interval_s)
            self.send_now(self.stamp(MsgAlert.create(payload=payload, routing_key=key)))
