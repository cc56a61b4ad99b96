"""Chunk reassembly on the event loop: the one timer every consumer of dripline messages needs.

`dripline.protocol.chunks.Reassembler` is sans-I/O and reads no clock; this class feeds it
deliveries on the running loop and arms a timer, so that a message whose chunks never all arrive is
handed to `on_incomplete` (as an `Incomplete`) after `wait_s`, or at once when a limit gave it up.
Services, the client's reply queue, durable alert queues and dl-mon all use it.

Memory held by incomplete messages is capped per process: receivers configured with the same
``max_pending_bytes`` share one `PendingBudget` (`process_budget`), so a service's request queue,
its reply queue and any `Interface` in the same process cannot together hold more than that.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable

from dripline.protocol.chunks import (DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_PENDING_BYTES, Incomplete,
                                      PendingBudget, Reassembler)
from dripline.protocol.message import Message
from dripline.transport.ratelimit import LimitedLog

__all__ = ["ChunkReceiver", "process_budget", "Incomplete"]

logger = logging.getLogger(__name__)
_log = LimitedLog(logger)

_budgets: dict[int, PendingBudget] = {}
_budgets_lock = threading.Lock()


def process_budget(max_pending_bytes: int | None = None) -> PendingBudget:
    """This process's budget for incomplete messages with that limit (None: the default)."""
    limit = DEFAULT_MAX_PENDING_BYTES if max_pending_bytes is None else int(max_pending_bytes)
    with _budgets_lock:
        budget = _budgets.get(limit)
        if budget is None:
            budget = _budgets[limit] = PendingBudget(limit)
        return budget


class ChunkReceiver:
    """Reassembles deliveries; `on_incomplete(incomplete)` receives messages given up on.

    `label` names the receiver in log lines (e.g. ``"service my_store"``).
    """

    def __init__(self, on_incomplete: Callable[[Incomplete], None], wait_s: float = 1.0, *,
                 max_message_size: int | None = None, max_pending_bytes: int | None = None,
                 label: str = "") -> None:
        self.assembler = Reassembler(
            wait_s=wait_s,
            max_message_size=DEFAULT_MAX_MESSAGE_SIZE if max_message_size is None else max_message_size,
            budget=process_budget(max_pending_bytes))
        self._on_incomplete = on_incomplete
        self._label = label
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0

    def feed(self, routing_key: str, body: bytes, properties: Any) -> Message | None:
        """The complete message, or None while chunks are missing; raises DecodeError.

        Must be called on the event loop's thread.
        """
        try:
            return self.assembler.feed(routing_key, body, properties, time.monotonic())
        finally:
            self._arm()

    def holds(self, base_id: str) -> bool:
        """True while chunks of the message `base_id` (uuid part of its id) are being kept."""
        return self.assembler.is_pending(base_id)

    def _arm(self) -> None:
        deadline = self.assembler.next_deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_due <= deadline:
                return
            self._timer.cancel()
        now = time.monotonic()
        delay = max(0.0, deadline - now)
        self._timer_due = now + delay
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        for incomplete in self.assembler.expire(time.monotonic()):
            msg = incomplete.message
            _log.warning(("incomplete", self._label, incomplete.reason.split(":")[0]),
                         "%s%s message %s (routing key %r): %s", self._label,
                         ":" if self._label else "", msg.message_id, msg.routing_key[:100],
                         incomplete.description)
            try:
                self._on_incomplete(incomplete)
            except Exception:
                _log.exception("%s: error while handling an incomplete message", self._label)
        self._arm()

    def close(self) -> None:
        """Stop the timer and give the bytes still held back to the process budget."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.assembler.clear()
