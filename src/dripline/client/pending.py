"""Requests awaiting replies: correlation, deadlines, broadcast collection (sans-I/O).

Every way a request can end is decided here, once, for every client (`AsyncInterface`, its
blocking face `Interface`, dl-agent, a service's own ``self.service.get()``): the first reply to
a correlation id, a broker "return" (nobody bound: 403), a publish the broker refused (403), an
undecodable or incomplete reply (402), a non-reply on the reply queue (402), the connection lost
(101), or the deadline (a timeout for a request; the end of the collection for a broadcast).

Why sans-I/O: no loop, timer, future or clock in here. The owner (`Core`) hands in the current
time as a number, arms one timer for `next_deadline()`, and is told through each request's
``on_done`` callback; so every rule is unit-tested with plain numbers, and a fix to timeouts or
to broadcast collection is made in one place.
"""
from __future__ import annotations

import heapq
from typing import Any, Callable, Iterator

from dripline.protocol.errors import DriplineError, TimeoutError_, UnableToSendError
from dripline.protocol.message import Message, MsgReply

__all__ = ["Pending", "PendingRequests"]


class Pending:
    """One request awaiting its reply (or, with `collect`, every reply until its deadline).

    Once `done`, exactly one of `reply` (a single request answered), `error` (failed) or
    `replies` (a broadcast collected) holds the outcome, and ``on_done(self)`` has been called.
    `token` is the owner's (Core keeps the caller's future there); the tracker never reads it.
    """

    __slots__ = ("correlation_id", "routing_key", "timeout_s", "deadline", "collect", "replies",
                 "reply", "error", "done", "on_done", "token")

    def __init__(self, correlation_id: str, routing_key: str, timeout_s: float | None,
                 deadline: float | None, collect: bool,
                 on_done: Callable[["Pending"], None] | None, token: Any = None) -> None:
        self.correlation_id = correlation_id
        self.routing_key = routing_key
        self.timeout_s = timeout_s
        self.deadline = deadline
        self.collect = collect
        self.replies: list[MsgReply] = []
        self.reply: MsgReply | None = None
        self.error: BaseException | None = None
        self.done = False
        self.on_done = on_done
        self.token = token

    def __repr__(self) -> str:
        state = "done" if self.done else "waiting"
        return f"<Pending {self.correlation_id} to {self.routing_key!r} ({state})>"


class PendingRequests:
    """The requests of one reply queue that wait for an answer, by correlation id."""

    def __init__(self) -> None:
        self._waiting: dict[str, Pending] = {}
        # (deadline, sequence, entry); entries already finished stay until popped or compacted
        self._deadlines: list[tuple[float, int, Pending]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, correlation_id: object) -> bool:
        return correlation_id in self._waiting

    def __iter__(self) -> Iterator[Pending]:
        return iter(list(self._waiting.values()))

    def get(self, correlation_id: Any) -> Pending | None:
        return self._waiting.get(correlation_id) if isinstance(correlation_id, str) else None

    # -------------------------------------------------------------------- starting and ending
    def add(self, correlation_id: str, routing_key: str, *, now: float,
            timeout_s: float | None, collect: bool = False,
            on_done: Callable[[Pending], None] | None = None, token: Any = None) -> Pending:
        """Track a request about to be sent. `timeout_s` None or 0: no deadline (a single
        request then waits until answered or failed; a broadcast needs a deadline to end)."""
        if correlation_id in self._waiting:
            raise DriplineError(f"a request with correlation id {correlation_id} is already "
                                "waiting for its reply", 400)
        deadline = now + timeout_s if timeout_s else None
        entry = Pending(correlation_id, routing_key, timeout_s, deadline, collect, on_done, token)
        self._waiting[correlation_id] = entry
        if deadline is not None:
            heap = self._deadlines
            while heap and heap[0][2].done:  # the oldest are usually answered already
                heapq.heappop(heap)
            self._seq += 1
            heapq.heappush(heap, (deadline, self._seq, entry))
            if len(heap) > 4 * len(self._waiting) + 1024:  # answered ones behind a long wait
                self._compact()
        return entry

    def discard(self, correlation_id: str) -> None:
        """Forget a request whose caller stopped waiting (cancelled); on_done is not called."""
        entry = self._waiting.pop(correlation_id, None)
        if entry is not None:
            entry.done = True

    def _finish(self, entry: Pending, reply: MsgReply | None = None,
                error: BaseException | None = None) -> None:
        if entry.done:
            return
        self._waiting.pop(entry.correlation_id, None)
        entry.done = True
        entry.reply, entry.error = reply, error
        if entry.on_done is not None:
            entry.on_done(entry)

    def _fail(self, entry: Pending | None, error: BaseException) -> bool:
        if entry is None or entry.done:
            return False
        self._finish(entry, error=error)
        return True

    # -------------------------------------------------------------------- what arrives
    def on_message(self, msg: Message) -> str:
        """A decoded message from the reply queue. Returns what became of it: "answered",
        "collected", "failed" (it ended its request with 402), "ignored" (a bad answer to a
        broadcast) or "unknown" (no request waits for its correlation id: late or foreign)."""
        entry = self._waiting.get(msg.correlation_id)
        if entry is None:
            return "unknown"
        if not msg.is_reply():
            self._finish(entry, error=DriplineError(
                f"a non-reply message ({msg.message_type.name}) arrived on the reply queue", 402))
            return "failed"
        assert isinstance(msg, MsgReply)
        if not msg.is_valid:
            if entry.collect:  # one bad answer to a broadcast does not end the collection
                return "ignored"
            self._finish(entry, error=DriplineError("the reply could not be decoded completely",
                                                    402, msg.payload))
            return "failed"
        if entry.collect:
            entry.replies.append(msg)
            return "collected"
        self._finish(entry, reply=msg)
        return "answered"

    def on_undecodable(self, correlation_id: Any, reason: str) -> str:
        """A reply that could not be decoded at all: its request fails at once with 402 (not at
        its timeout). Returns "failed", "ignored" (a broadcast goes on) or "unknown"."""
        entry = self.get(correlation_id)
        if entry is None:
            return "unknown"
        if entry.collect:
            return "ignored"
        self._finish(entry, error=DriplineError(f"malformed reply: {reason}", 402))
        return "failed"

    def on_incomplete(self, msg: Message, description: str) -> bool:
        """A chunked reply whose chunks did not all arrive: 402 for a single request."""
        entry = self._waiting.get(msg.correlation_id)
        if entry is None or entry.collect or not msg.is_reply():
            return False
        return self._fail(entry, DriplineError(f"incomplete reply: {description}", 402,
                                               msg.payload))

    def on_returned(self, correlation_id: Any, text: str) -> bool:
        """The broker returned the request: nobody is bound to its routing key (403)."""
        return self._fail(self.get(correlation_id),
                          UnableToSendError(f"request not delivered: {text}"))

    def on_refused(self, routing_key: str | None, text: str) -> int:
        """The broker refused a publish (permissions): the requests to `routing_key`, or every
        request when it is empty, fail at once with 403. Returns how many."""
        failed = 0
        for entry in list(self._waiting.values()):
            if routing_key and entry.routing_key != routing_key:
                continue
            failed += self._fail(entry, UnableToSendError(
                f"request to '{entry.routing_key}' not delivered: {text}"))
        return failed

    def fail_all(self, error: BaseException) -> int:
        """Every waiting request fails with `error` (connection lost, client closed)."""
        entries = list(self._waiting.values())
        for entry in entries:
            self._fail(entry, error)
        self._deadlines.clear()
        return len(entries)

    # -------------------------------------------------------------------- time
    def next_deadline(self) -> float | None:
        """The earliest deadline of a waiting request (None: nothing to wake up for)."""
        heap = self._deadlines
        while heap and heap[0][2].done:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def expire(self, now: float) -> int:
        """End every request whose deadline is at or before `now`: a single request fails
        with TimeoutError_; a broadcast ends with the replies collected. Returns how many."""
        heap = self._deadlines
        ended = 0
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)[2]
            if entry.done:
                continue
            ended += 1
            if entry.collect:
                self._finish(entry)
            else:
                self._finish(entry, error=TimeoutError_(
                    f"no reply from '{entry.routing_key}' within {entry.timeout_s:g} s"))
        return ended

    def _compact(self) -> None:
        self._deadlines = [item for item in self._deadlines if not item[2].done]
        heapq.heapify(self._deadlines)
