"""The ack window: how many requests a service holds at once (the prefetch window).

A service's queues are consumed with manual acknowledgement and a basic.qos prefetch of `size`.
Deliveries are acknowledged as they arrive while fewer than `size` requests are being handled;
beyond that acknowledgements wait until handlers finish, so the broker keeps the rest of a flood
queued instead of pushing it all into this process's memory.

Acknowledgements are never written ahead of a reply, and never one per request: while the window
has room they go out as one `multiple` ack ACK_DELAY_S after the first of them, or as soon as half
the window waits; once deliveries are held back, every finishing handler releases them at once.
An ack on the latency path costs the broker work before it routes the reply, and per-message acks
cost it measurable CPU under load (bench/request_reply.py). Nothing is lost by the delay: the
request queues are the service's own (exclusive, auto-delete), so an unacknowledged request is
never handed to anyone else; durable alert queues acknowledge on their own (alert_consumer.py).

One window per channel, shared by every queue of the service (its own and its children's): the
window releases acknowledgements in delivery order, which is what makes a `multiple` ack safe.
`multiple` covers every earlier delivery on the channel, so a service that also consumes a queue
whose messages must be acknowledged later (a durable alert queue) sets `multiple_ok = False` and
each delivery is acknowledged on its own.
"""
from __future__ import annotations

import asyncio
import collections
from typing import Any, Callable

__all__ = ["AckWindow", "ACK_DELAY_S"]

ACK_DELAY_S = 0.005  # longest wait of an acknowledgement that no finishing handler carries

Ack = Callable[..., Any]


class AckWindow:
    """Bounds the requests held in memory; see the module docstring."""

    __slots__ = ("size", "busy", "held", "ready", "multiple_ok", "_timer")

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self.busy = 0
        self.held: collections.deque[Ack] = collections.deque()
        self.ready: list[Ack] = []
        self.multiple_ok = True
        self._timer: asyncio.TimerHandle | None = None

    def received(self, ack: Ack | None) -> None:
        """A delivery arrived (on the loop thread); `ack` is None for auto-ack consumers."""
        if ack is None:
            return
        if self.busy < self.size and not self.held:
            self._ready(ack)
        else:
            self.held.append(ack)

    def started(self) -> None:
        """A handler was started for a delivery."""
        self.busy += 1

    def finished(self) -> None:
        """A handler finished (its reply sent): release what the window now allows.

        Held deliveries are acknowledged at once (the broker waits for them); the others wait
        for the timer armed when they arrived, so a steady trickle of requests costs one
        `multiple` ack per ACK_DELAY_S instead of one per request.
        """
        self.busy -= 1
        if self.held:
            while self.held and self.busy < self.size:
                self.ready.append(self.held.popleft())
            self.flush()

    def _ready(self, ack: Ack) -> None:
        self.ready.append(ack)
        if len(self.ready) * 2 >= self.size:  # do not let the broker stall on a full window
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(ACK_DELAY_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ready, self.ready = self.ready, []
        if not ready:
            return
        if self.multiple_ok:
            ready[-1](multiple=True)
        else:
            for ack in ready:
                ack()
