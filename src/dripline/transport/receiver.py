"""Chunk reassembly on the event loop: the one timer every consumer of dripline messages needs.

`message.Reassembler` is sans-I/O and knows no clock of its own; this class feeds it deliveries on
the running loop and arms a timer so that a message whose chunks never all arrive is still handed
on (marked invalid) after `wait_s`, as the reference does. Services, the client's reply queue,
durable alert queues and dl-mon all use it.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from dripline.protocol.message import Message, Reassembler

__all__ = ["ChunkReceiver"]


class ChunkReceiver:
    """Reassembles deliveries; `on_expired(msg)` receives incomplete messages after `wait_s`."""

    def __init__(self, on_expired: Callable[[Message], None], wait_s: float = 1.0) -> None:
        self.assembler = Reassembler(wait_s=wait_s)
        self._on_expired = on_expired
        self._timer: asyncio.TimerHandle | None = None

    def feed(self, routing_key: str, body: bytes, properties: Any) -> Message | None:
        """The complete message, or None while chunks are missing; raises DecodeError.

        Must be called on the event loop's thread.
        """
        msg = self.assembler.feed(routing_key, body, properties, time.monotonic())
        if msg is None:
            self._arm()
        return msg

    def _arm(self) -> None:
        if self._timer is not None:
            return
        deadline = self.assembler.next_deadline()
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, deadline - time.monotonic()), self._expire)

    def _expire(self) -> None:
        self._timer = None
        for msg in self.assembler.expire(time.monotonic()):
            self._on_expired(msg)
        if self.assembler.next_deadline() is not None:
            self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
