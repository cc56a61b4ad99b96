"""Reassembly of chunked dripline messages, bounded in memory and in work (sans-I/O).

A dripline message longer than ``max_payload_size`` travels as chunks with message ids
``<uuid>/<i>/<N>`` (reference §1.10); `Message.encode` cuts them. `Reassembler` puts them back
together. It is the one place where a single AMQP message from anybody on the mesh makes this
process hold memory for later, so every cost here is bounded by what was *received*, never by what
a chunk *announces*:

* a chunk count whose smallest possible message exceeds `max_message_size` is refused at once
  (`DecodeError` 302, answered by the service), whatever the size of the announcing chunk;
* the bytes held by incomplete messages are charged to a `PendingBudget` (one per process, see
  `dripline.transport.receiver`); when it is full the oldest incomplete messages are given up
  first, and a message that still does not fit is refused at once;
* giving up on a message costs O(chunks received): it is reported as an `Incomplete` whose
  message carries a short description of the missing chunks (as ranges, bounded length) instead
  of the reference's payload padded with ``#`` to the announced size;
* chunks of a message that was completed, given up or refused are ignored (as the reference
  ignores chunks "arriving after processing started"), with a bounded memory of such ids.

No clock is read here: every call that needs the time is handed ``now`` (one monotonic clock), and
nothing is logged per chunk; what happened is counted in `stats` and returned to the caller, which
decides what to log (rate-limited) and what to answer.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

from dripline.protocol.errors import DecodeError
from dripline.protocol.message import (Message, PayloadDict, _body_bytes, _context_of, _decode_envelope,
                                       _decode_error, _loose_text, _parse_body, _wrap_unexpected, decode)

__all__ = ["Reassembler", "Incomplete", "PendingBudget", "parse_message_id", "missing_ranges",
           "DEFAULT_MAX_MESSAGE_SIZE", "DEFAULT_MAX_PENDING_BYTES", "DEFAULT_MAX_PENDING",
           "PACK_OVERHEAD", "INCOMPLETE_ERROR"]

#: Largest reassembled message accepted, in bytes (setting ``max_message_size``).
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
#: Bytes all incomplete messages of one process may hold (setting ``max_pending_bytes``).
DEFAULT_MAX_PENDING_BYTES = 128 * 1024 * 1024
#: Incomplete messages one reassembler keeps at most (each costs its headers besides its bytes).
DEFAULT_MAX_PENDING = 1000
#: Bytes charged per incomplete message for its decoded headers and bookkeeping (an estimate of
#: the Python objects behind one envelope), so that many tiny first chunks are bounded too.
PACK_OVERHEAD = 2048
#: The reference's text for a message whose chunks did not all arrive.
INCOMPLETE_ERROR = "Entire message was not available"

_MISSING_TEXT_LIMIT = 120  # characters of chunk ranges in a description
_MAX_ID_DIGITS = 10        # a chunk index or count has at most 10 digits (uint32)


def parse_message_id(message_id: str) -> tuple[str, int, int] | None:
    """``uuid/i/N`` -> (uuid, i, N); an id without ``/`` is a whole message (i=0, N=1).

    Returns None when the id is malformed (caller raises with its context).
    """
    first = message_id.find("/")
    if first < 0:
        return message_id, 0, 1
    last = message_id.rfind("/")
    index_text = message_id[first + 1:last]
    total_text = message_id[last + 1:]
    if (first == last or not index_text.isascii() or not index_text.isdigit()
            or not total_text.isascii() or not total_text.isdigit()
            or len(index_text) > _MAX_ID_DIGITS or len(total_text) > _MAX_ID_DIGITS):
        return None
    index, total = int(index_text), int(total_text)
    if total < 1 or index >= total:
        return None
    return message_id[:first], index, total


def missing_ranges(received: Any, total: int, limit: int = _MISSING_TEXT_LIMIT) -> str:
    """The chunk indices in ``range(total)`` not in `received`, as ``"0, 2-5, 9-999999"``.

    Costs O(len(received)) (plus sorting them) whatever `total` is; the text is cut after about
    `limit` characters with a count of the ranges left out.
    """
    parts: list[str] = []
    length = 0
    left_out = 0
    previous = -1
    for index in [*sorted(received), total]:
        if index > previous + 1:
            low, high = previous + 1, index - 1
            if length > limit:
                left_out += 1
            else:
                part = str(low) if low == high else f"{low}-{high}"
                parts.append(part)
                length += len(part) + 2
        previous = index
    text = ", ".join(parts)
    if left_out:
        text += f", ... ({left_out} more ranges)"
    return text


class PendingBudget:
    """Bytes held by incomplete messages, shared by the reassemblers of a process (thread-safe).

    Reassemblers on different threads (a service's loop, an `Interface`'s loop thread) may share
    one budget; each charges and releases only its own bytes.
    """

    __slots__ = ("limit", "_held", "_lock", "__weakref__")

    def __init__(self, limit: int = DEFAULT_MAX_PENDING_BYTES) -> None:
        if int(limit) < 1:
            raise ValueError(f"max_pending_bytes must be positive, got {limit}")
        self.limit = int(limit)
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def try_charge(self, nbytes: int) -> bool:
        with self._lock:
            if self._held + nbytes > self.limit:
                return False
            self._held += nbytes
            return True

    def release(self, nbytes: int) -> None:
        with self._lock:
            self._held -= nbytes


def _release_account(budget: PendingBudget, account: list[int]) -> None:
    """Give back what a reassembler still held when it was closed or collected."""
    if account[0]:
        budget.release(account[0])
        account[0] = 0


@dataclass(slots=True)
class Incomplete:
    """A message given up on before all of its chunks arrived.

    `message` is the message as far as known (headers of its first chunk), marked invalid, with a
    small payload ``{"error", "missing_chunks", "chunks_received", "chunks_total"}``; `reason` says
    why it was given up ("timed out", or which limit made room).
    """

    message: Message
    received: int
    total: int
    missing: str
    reason: str

    @property
    def description(self) -> str:
        """One bounded line for a reply's return_message or a log."""
        return (f"{INCOMPLETE_ERROR}: {self.received} of {self.total} chunks received "
                f"({self.reason}); missing chunks {self.missing}")


class _Pack:
    __slots__ = ("total", "chunks", "nbytes", "deadline", "envelope")

    def __init__(self, total: int, deadline: float, envelope: Message) -> None:
        self.total = total
        self.chunks: dict[int, bytes] = {}
        self.nbytes = PACK_OVERHEAD  # what this pack has charged to the budget
        self.deadline = deadline
        self.envelope = envelope


def _envelope_ctx(msg: Message) -> tuple:
    return (msg.routing_key, msg.reply_to, msg.correlation_id, msg.message_type)


class Reassembler:
    """Collects the chunks of split messages (any order) and hands out whole messages.

    `feed` returns a message as soon as it is complete (at once for single-chunk messages) and
    raises `DecodeError` for a chunk that is refused (bad id, undecodable first chunk, a message
    that cannot fit). Incomplete messages come out of `expire` as `Incomplete` once `wait_s` has
    passed since their first chunk, or at the next call when a limit gave them up early.

    Limits: `max_message_size` bytes per message; `budget` (a `PendingBudget`, by default a
    private one of `DEFAULT_MAX_PENDING_BYTES`) for all incomplete messages; at most `max_pending`
    incomplete messages. `held_bytes` is this reassembler's charge to the budget (chunk bytes plus
    `PACK_OVERHEAD` per incomplete message); it returns to 0 when nothing is pending.
    """

    def __init__(self, wait_s: float = 1.0, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 budget: PendingBudget | None = None, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if int(max_message_size) < 1:
            raise ValueError(f"max_message_size must be positive, got {max_message_size}")
        self.wait_s = float(wait_s)
        self.budget = budget if budget is not None else PendingBudget()
        self.max_message_size = max(1, min(int(max_message_size), self.budget.limit - PACK_OVERHEAD))
        self.max_pending = max(1, int(max_pending))
        self._pending: dict[str, _Pack] = {}   # insertion order == deadline order
        self._ready: list[Incomplete] = []      # given up early, due at the next expire()
        self._finished: dict[str, None] = {}   # ids completed, given up or refused (bounded)
        self._finished_cap = max(4096, 4 * self.max_pending)
        self._account = [0]
        self._finalizer = weakref.finalize(self, _release_account, self.budget, self._account)
        #: what happened so far (for benches, tests and a service's status)
        self.stats = {"completed": 0, "expired": 0, "evicted": 0, "refused": 0, "duplicates": 0,
                      "ignored": 0}

    def __len__(self) -> int:
        """Number of incomplete messages waiting for chunks."""
        return len(self._pending)

    @property
    def held_bytes(self) -> int:
        return self._account[0]

    def is_pending(self, base_id: str) -> bool:
        """True while chunks of message `base_id` (the uuid part of its id) are being held."""
        return base_id in self._pending

    # ------------------------------------------------------------------------------ feeding
    def feed(self, routing_key: Any, body: Any, properties: Any, now: float) -> Message | None:
        """Add one AMQP message; returns the whole dripline message when it is complete."""
        try:
            return self._feed(routing_key, body, properties, now)
        except DecodeError:
            raise
        except Exception as exc:
            raise _wrap_unexpected(exc, routing_key, properties) from exc

    def _feed(self, routing_key: Any, body: Any, properties: Any, now: float) -> Message | None:
        message_id = getattr(properties, "message_id", None)
        if type(message_id) is not str:
            message_id = _loose_text(message_id)
        if message_id[-4:] == "/0/1" and message_id.find("/") == len(message_id) - 4:
            return decode(routing_key, body, properties)  # the common, unsplit case
        parsed = parse_message_id(message_id)
        if parsed is None:
            raise _decode_error(f"Message ID is not formatted correctly (expected <uuid>/<chunk>/"
                                f"<total chunks>, chunk < total): {message_id[:80]!r}", 302,
                                _context_of(routing_key, properties))
        base_id, index, total = parsed
        if total == 1:
            return decode(routing_key, body, properties)
        body = _body_bytes(body)
        size = len(body)
        pack = self._pending.get(base_id)
        if pack is None:
            if base_id in self._finished:
                self.stats["ignored"] += 1
                return None
            least = (total - 1) * max(size, 1) + 1  # the smallest message these chunks can make
            if least > self.max_message_size:
                self._refuse(base_id)
                raise _decode_error(
                    f"message {base_id[:40]} announces {total} chunks of {size} bytes: at least "
                    f"{least} bytes, over the {self.max_message_size} bytes allowed "
                    f"(max_message_size)", 302, _context_of(routing_key, properties))
            try:
                envelope = _decode_envelope(routing_key, properties)
            except DecodeError:
                self._refuse(base_id)
                raise
            while len(self._pending) >= self.max_pending:
                self._give_up_oldest(f"dropped: more than {self.max_pending} incomplete messages")
            if not self._reserve(PACK_OVERHEAD + size, None):
                self._refuse(base_id)
                raise _decode_error(f"message {base_id[:40]} refused: incomplete messages already "
                                    f"hold {self.budget.limit} bytes (max_pending_bytes)", 302,
                                    _envelope_ctx(envelope))
            pack = _Pack(total, now + self.wait_s, envelope)
            pack.nbytes += size
            self._pending[base_id] = pack
        else:
            if total != pack.total:
                raise _decode_error(f"chunk {index}/{total} of message {base_id[:40]} disagrees "
                                    f"with the {pack.total} chunks announced earlier", 302,
                                    _envelope_ctx(pack.envelope))
            if index in pack.chunks:
                self.stats["duplicates"] += 1
                return None
            least = max((total - 1) * max(size, 1) + 1, pack.nbytes - PACK_OVERHEAD + size)
            if least > self.max_message_size:
                self._drop(base_id, pack)
                raise _decode_error(f"message {base_id[:40]} exceeds the {self.max_message_size} "
                                    f"bytes allowed (max_message_size); dropped", 302,
                                    _envelope_ctx(pack.envelope))
            if not self._reserve(size, base_id):
                self._drop(base_id, pack)
                raise _decode_error(f"message {base_id[:40]} dropped: incomplete messages hold "
                                    f"{self.budget.limit} bytes (max_pending_bytes)", 302,
                                    _envelope_ctx(pack.envelope))
            pack.nbytes += size
        pack.chunks[index] = body
        if len(pack.chunks) < pack.total:
            return None
        self._drop(base_id, pack)
        self.stats["completed"] += 1
        msg = pack.envelope
        msg.payload, msg.is_valid = _parse_body(b"".join([pack.chunks[i] for i in range(total)]))
        return msg

    # ------------------------------------------------------------------------------ bounds
    def _reserve(self, nbytes: int, keep: str | None) -> bool:
        """Charge `nbytes`, giving up this reassembler's oldest messages (not `keep`) for room."""
        while not self.budget.try_charge(nbytes):
            victim = next((k for k in self._pending if k != keep), None)
            if victim is None:
                return False
            self._give_up(victim, "dropped: incomplete messages reached max_pending_bytes "
                                  f"({self.budget.limit} bytes)")
        self._account[0] += nbytes
        return True

    def _give_up_oldest(self, reason: str) -> None:
        self._give_up(next(iter(self._pending)), reason)

    def _give_up(self, base_id: str, reason: str) -> None:
        pack = self._pending[base_id]
        self._drop(base_id, pack)
        self.stats["evicted"] += 1
        self._ready.append(self._incomplete(pack, reason))

    def _drop(self, base_id: str, pack: _Pack) -> None:
        """Forget a pack and give its bytes back (chunks arriving later are ignored)."""
        del self._pending[base_id]
        self._account[0] -= pack.nbytes
        self.budget.release(pack.nbytes)
        self._remember(base_id)

    def _refuse(self, base_id: str) -> None:
        self.stats["refused"] += 1
        self._remember(base_id)

    def _remember(self, base_id: str) -> None:
        finished = self._finished
        finished[base_id] = None
        if len(finished) > self._finished_cap:
            del finished[next(iter(finished))]

    @staticmethod
    def _incomplete(pack: _Pack, reason: str) -> Incomplete:
        received = len(pack.chunks)
        missing = missing_ranges(pack.chunks, pack.total)
        pack.chunks = {}  # the bytes go now, not when the caller lets go of the message
        msg = pack.envelope
        msg.payload = PayloadDict(error=INCOMPLETE_ERROR, missing_chunks=missing,
                                  chunks_received=received, chunks_total=pack.total)
        msg.is_valid = False
        return Incomplete(msg, received, pack.total, missing, reason)

    # ------------------------------------------------------------------------------ time
    def expire(self, now: float) -> list[Incomplete]:
        """Messages given up on: those whose wait is over, and any dropped early for room."""
        out, self._ready = self._ready, []
        pending = self._pending
        wait = f"timed out after {self.wait_s:g} s"
        while pending:
            base_id = next(iter(pending))
            pack = pending[base_id]
            if pack.deadline > now:
                break
            self._drop(base_id, pack)
            self.stats["expired"] += 1
            out.append(self._incomplete(pack, wait))
        return out

    def next_deadline(self) -> float | None:
        """When `expire` next has something to return (-inf: at once; None: nothing pending)."""
        if self._ready:
            return float("-inf")
        if self._pending:
            return self._pending[next(iter(self._pending))].deadline
        return None

    def clear(self) -> None:
        """Forget everything pending and give its bytes back to the budget."""
        for base_id, pack in list(self._pending.items()):
            self._drop(base_id, pack)
        self._ready = []
        _release_account(self.budget, self._account)
