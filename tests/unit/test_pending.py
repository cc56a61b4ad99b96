"""The sans-I/O tracker of requests awaiting replies (dripline.client.pending): every way a request
ends, with time given as plain numbers (no loop, no clock, no broker)."""
from __future__ import annotations

import pytest

from dripline.client.pending import PendingRequests
from dripline.protocol.errors import DriplineError, TimeoutError_, UnableToSendError
from dripline.protocol.message import MsgAlert, MsgReply


def reply(cid: str, code: int = 0, payload=None, valid: bool = True, name: str = "svc") -> MsgReply:
    msg = MsgReply(code, "", payload, correlation_id=cid, is_valid=valid)
    msg.sender_info = {"exe": "x", "hostname": "h", "username": "u", "service_name": name,
                       "versions": {}}
    return msg


@pytest.fixture
def tracker():
    ended = []
    t = PendingRequests()
    t.ended = ended  # type: ignore[attr-defined]

    def add(cid, key="ep", now=0.0, timeout_s=1.0, collect=False):
        return t.add(cid, key, now=now, timeout_s=timeout_s, collect=collect, on_done=ended.append)
    t.track = add  # type: ignore[attr-defined]
    return t


def test_the_first_reply_answers_and_later_ones_are_unknown(tracker):
    entry = tracker.track("a")
    assert "a" in tracker and len(tracker) == 1
    assert tracker.on_message(reply("a", payload=1)) == "answered"
    assert tracker.ended == [entry] and entry.done and entry.reply.payload == 1
    assert entry.error is None and "a" not in tracker
    assert tracker.on_message(reply("a", payload=2)) == "unknown"  # duplicate or late
    assert tracker.on_message(reply("zzz")) == "unknown"
    assert tracker.ended == [entry]  # on_done exactly once


def test_deadline_fails_a_request_with_a_timeout_and_ends_a_collection(tracker):
    single = tracker.track("s", key="peaches", now=10.0, timeout_s=2.5)
    broadcast = tracker.track("b", key="broadcast.ping", now=10.0, timeout_s=1.0, collect=True)
    assert tracker.next_deadline() == 11.0
    assert tracker.on_message(reply("b", payload="one", name="x")) == "collected"
    assert tracker.on_message(reply("b", payload="two", name="y")) == "collected"
    assert tracker.expire(10.99) == 0 and not broadcast.done
    assert tracker.expire(11.0) == 1
    assert broadcast.done and broadcast.error is None
    assert [r.payload for r in broadcast.replies] == ["one", "two"]
    assert tracker.next_deadline() == 12.5
    assert tracker.expire(13.0) == 1
    assert isinstance(single.error, TimeoutError_) and single.error.return_code == 404
    assert str(single.error).startswith("no reply from 'peaches' within 2.5 s")
    assert tracker.next_deadline() is None and len(tracker) == 0


def test_no_timeout_means_no_deadline(tracker):
    entry = tracker.track("f", timeout_s=None)
    assert tracker.next_deadline() is None
    assert tracker.expire(1e12) == 0 and not entry.done
    tracker.track("g", timeout_s=0)
    assert tracker.next_deadline() is None


def test_a_finished_request_does_not_wake_the_owner(tracker):
    tracker.track("a", now=0.0, timeout_s=1.0)
    tracker.track("b", now=0.0, timeout_s=5.0)
    tracker.on_message(reply("a"))
    assert tracker.next_deadline() == 5.0  # a's deadline is gone with it
    assert tracker.expire(2.0) == 0


def test_malformed_and_incomplete_replies_fail_at_once_with_402(tracker):
    a = tracker.track("a")
    assert tracker.on_undecodable("a", "bad header") == "failed"
    assert a.error.return_code == 402 and "malformed reply: bad header" in str(a.error)
    assert tracker.on_undecodable("a", "again") == "unknown"
    assert tracker.on_undecodable(None, "no id") == "unknown"
    b = tracker.track("b")
    assert tracker.on_message(reply("b", valid=False, payload="why")) == "failed"
    assert b.error.return_code == 402 and b.error.payload == "why"
    c = tracker.track("c")
    assert tracker.on_incomplete(reply("c", payload={"missing": 1}), "2 of 3 chunks") is True
    assert c.error.return_code == 402 and "incomplete reply: 2 of 3 chunks" in str(c.error)
    d = tracker.track("d")
    alert = MsgAlert(1, "k", correlation_id="d")
    assert tracker.on_message(alert) == "failed"
    assert d.error.return_code == 402 and "non-reply" in str(d.error)


def test_bad_answers_to_a_broadcast_do_not_end_the_collection(tracker):
    b = tracker.track("b", collect=True)
    assert tracker.on_undecodable("b", "garbage") == "ignored"
    assert tracker.on_message(reply("b", valid=False)) == "ignored"
    assert tracker.on_incomplete(reply("b"), "1 of 2 chunks") is False
    assert tracker.on_message(reply("b", payload=7)) == "collected"
    assert not b.done
    tracker.expire(5.0)
    assert [r.payload for r in b.replies] == [7] and b.error is None


def test_returned_and_refused_requests_fail_with_403(tracker):
    a = tracker.track("a", key="nobody")
    assert tracker.on_returned("a", "NO_ROUTE") is True
    assert isinstance(a.error, UnableToSendError) and a.error.return_code == 403
    assert tracker.on_returned("a", "NO_ROUTE") is False
    x = tracker.track("x", key="locked_down")
    y = tracker.track("y", key="fine")
    assert tracker.on_refused("locked_down", "ACCESS_REFUSED") == 1
    assert isinstance(x.error, UnableToSendError) and "locked_down" in str(x.error)
    assert not y.done
    z = tracker.track("z", key="other")
    assert tracker.on_refused("", "exchange refused") == 2  # every waiting request
    assert y.error.return_code == 403 and z.error.return_code == 403


def test_fail_all_and_discard(tracker):
    a = tracker.track("a")
    b = tracker.track("b", collect=True)
    gone = tracker.track("gone")
    tracker.discard("gone")
    assert gone.done and gone not in tracker.ended  # the caller stopped waiting: no callback
    lost = DriplineError("connection lost", 101)
    assert tracker.fail_all(lost) == 2
    assert a.error is lost and b.error is lost and len(tracker) == 0
    assert tracker.next_deadline() is None


def test_a_correlation_id_is_tracked_once(tracker):
    tracker.track("a")
    with pytest.raises(DriplineError):
        tracker.track("a")


def test_finished_deadlines_are_compacted_away(tracker):
    slow = tracker.track("slow", now=0.0, timeout_s=1e6)  # stays on top of the heap meanwhile
    for i in range(5000):
        tracker.track(str(i), now=float(i), timeout_s=10.0)
        tracker.on_message(reply(str(i)))
    assert len(tracker) == 1 and len(tracker._deadlines) <= 4 + 1024 + 1
    assert tracker.next_deadline() == slow.deadline
    tracker.on_message(reply("slow"))
    for i in range(1000):
        tracker.track(str(i), now=float(i), timeout_s=10.0)
        tracker.on_message(reply(str(i)))
    assert len(tracker) == 0
    assert len(tracker._deadlines) <= 1  # not one stale entry per request ever sent
    assert tracker.next_deadline() is None
