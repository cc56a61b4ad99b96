"""Reassembly of chunked messages (dripline.protocol.chunks): reference §1.10, bounded.

Sans-I/O: time is a number handed in; memory is checked on the reassembler's own accounting
(`held_bytes`, the budget's `held`), never on the process's RSS. Includes the regressions of
issue 9 item 2 (a huge announced chunk count, tiny first chunks announcing a million chunks,
incomplete 100 kB chunks that must be released after expiry).
"""
from __future__ import annotations

import gc
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dripline.protocol.chunks import (INCOMPLETE_ERROR, PACK_OVERHEAD, Incomplete, PendingBudget,
                                      Reassembler, missing_ranges, parse_message_id)
from dripline.protocol.errors import DecodeError
from dripline.protocol.message import (MsgAlert, MsgRequest, Properties, UInt32, dumps_payload,
                                       op_t)

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NIL = str(uuid.UUID(int=0))


def headers(**overrides):
    h = {"message_type": UInt32(3), "specifier": "", "timestamp": "2024-02-06T02:08:38.525721Z",
         "sender_info": {"exe": "/x", "hostname": "h", "username": "u", "service_name": "s",
                         "versions": {"dripline": {"version": "3.0.0"}}},
         "message_operation": UInt32(1), "lockout_key": NIL}
    h.update(overrides)
    return h


def props(message_id="mid/0/1", **kw):
    base = dict(content_encoding="application/json", correlation_id="cid", message_id=message_id,
                reply_to="rq", headers=headers())
    base.update(kw)
    return Properties(**base)


def feed_all(reasm, chunks, now=0.0):
    return [out for c in chunks if (out := reasm.feed(c.routing_key, c.body, c.properties, now))]


def reply_size(incomplete: Incomplete) -> int:
    """Bytes of the 302 a service sends for it: return message + payload (headers are fixed)."""
    return len(incomplete.description.encode()) + len(dumps_payload(incomplete.message.payload))


# ------------------------------------------------------------------------------------------
# message ids and ranges
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("u/0/1", ("u", 0, 1)), ("u/4/5", ("u", 4, 5)), ("plain", ("plain", 0, 1)),
    ("a/b/0/2", None), ("u/x/2", None), ("u/1", None), ("u/0/0", None), ("u/2/2", None),
    ("u/-1/2", None), ("u/1/2x", None), ("u//2", None), ("u/1/" + "9" * 11, None), ("u/٣/5", None),
    ("u/0/4294967296", ("u", 0, 4294967296)),
])
def test_parse_message_id(text, expected):
    assert parse_message_id(text) == expected


def test_missing_ranges_is_bounded_and_exact():
    assert missing_ranges([0, 5, 6, 9], 12) == "1-4, 7-8, 10-11"
    assert missing_ranges([], 3) == "0-2"
    assert missing_ranges([1], 2) == "0"
    assert missing_ranges([0], 4294967296) == "1-4294967295"
    text = missing_ranges(range(0, 200_000, 2), 200_000)
    assert len(text) < 200 and text.endswith("more ranges)") and text.startswith("1, 3, 5")


# ------------------------------------------------------------------------------------------
# reassembly (moved from test_message.py, adapted to the bounded reassembler)
# ------------------------------------------------------------------------------------------

def test_reassembly_shuffled_with_duplicates():
    payload = {"items": [{"w": "βeta" * (i % 7), "n": i} for i in range(20_000)]}
    req = MsgRequest.create(payload, op_t.set, "store", "spec", "rq")
    req.lockout_key = uuid.uuid4()
    chunks = req.encode(10000)
    assert len(chunks) > 20
    order = list(chunks) + random.Random(7).sample(chunks, 10)
    random.Random(3).shuffle(order)
    order[:0] = [chunks[5], chunks[5]]  # a duplicate certainly arrives before completion
    reasm = Reassembler(wait_s=1.0)
    results = [out for i, c in enumerate(order)
               if (out := reasm.feed(c.routing_key, c.body, c.properties, now=0.001 * i))]
    assert len(results) == 1
    msg = results[0]
    assert msg.is_valid and msg.payload == payload and msg.to_dict() == req.to_dict()
    assert reasm.stats["duplicates"] >= 1
    # chunks arriving after completion are ignored, as in the reference: nothing is held for them
    ignored = reasm.stats["ignored"]
    assert reasm.feed(chunks[0].routing_key, chunks[0].body, chunks[0].properties, 1.0) is None
    assert reasm.stats["ignored"] == ignored + 1
    assert reasm.expire(now=100.0) == []
    assert len(reasm) == 0 and reasm.next_deadline() is None and reasm.held_bytes == 0


def test_single_chunk_returned_at_once():
    reasm = Reassembler()
    (w,) = MsgAlert.create({"a": 1}, "k").encode()
    msg = reasm.feed(w.routing_key, w.body, w.properties, now=5.0)
    assert isinstance(msg, MsgAlert) and msg.payload == {"a": 1}
    assert len(reasm) == 0 and reasm.next_deadline() is None and reasm.expire(1e9) == []
    assert reasm.feed("t", b"1", props(message_id="plain-uuid"), 0.0).payload == 1


def test_expiry_reports_missing_chunks_without_padding():
    alert = MsgAlert.create("abcdefghij" * 10, "k")  # 102-byte body
    chunks = alert.encode(30)  # 30, 30, 30, 12
    reasm = Reassembler(wait_s=2.0)
    for c in (chunks[0], chunks[3], chunks[2]):
        assert reasm.feed(c.routing_key, c.body, c.properties, now=10.0) is None
    assert len(reasm) == 1 and reasm.held_bytes == 72 + PACK_OVERHEAD
    assert reasm.next_deadline() == pytest.approx(12.0)
    assert reasm.expire(11.999) == []
    (inc,) = reasm.expire(12.0)
    msg = inc.message
    assert isinstance(msg, MsgAlert) and msg.is_valid is False
    assert msg.payload == {"error": INCOMPLETE_ERROR, "missing_chunks": "1",
                           "chunks_received": 3, "chunks_total": 4}
    assert (inc.received, inc.total, inc.missing) == (3, 4, "1")
    assert inc.description == (f"{INCOMPLETE_ERROR}: 3 of 4 chunks received (timed out after "
                               "2 s); missing chunks 1")
    assert msg.routing_key == "k" and msg.correlation_id == alert.correlation_id
    assert len(reasm) == 0 and reasm.next_deadline() is None and reasm.held_bytes == 0
    assert reasm.stats["expired"] == 1


def test_expired_request_keeps_reply_information():
    req = MsgRequest.create("z" * 100, op_t.set, "svc", "", "rq")
    chunks = req.encode(40)
    reasm = Reassembler(wait_s=0.5)
    reasm.feed("svc", chunks[1].body, chunks[1].properties, now=0.0)
    (inc,) = reasm.expire(0.5)
    msg = inc.message
    assert isinstance(msg, MsgRequest) and not msg.is_valid
    assert msg.reply_to == "rq" and msg.correlation_id == req.correlation_id
    assert msg.message_operation is op_t.set and inc.missing == "0, 2"


@pytest.mark.parametrize("message_id", ["abc/x/2", "abc/1", "abc/0/0", "abc/2/2", "abc/-1/2",
                                        "abc/1/2x", "a/b/0/2", "abc//2", "abc/1/" + "9" * 11,
                                        "abc/٣/5"])
def test_bad_chunk_ids_raise_decode_error(message_id):
    reasm = Reassembler()
    with pytest.raises(DecodeError) as info:
        reasm.feed("k", b"[1", props(message_id=message_id), now=0.0)
    assert info.value.reply_to == "rq" and info.value.return_code == 302
    assert len(reasm) == 0


def test_inconsistent_chunk_count_raises():
    reasm = Reassembler()
    assert reasm.feed("k", b"[1", props(message_id="abc/0/3"), now=0.0) is None
    with pytest.raises(DecodeError):
        reasm.feed("k", b",2", props(message_id="abc/1/4"), now=0.0)
    assert reasm.feed("k", b",2", props(message_id="abc/1/3"), now=0.0) is None
    msg = reasm.feed("k", b"]", props(message_id="abc/2/3"), now=0.0)
    assert msg.payload == [1, 2] and msg.message_id == "abc" and reasm.held_bytes == 0


def test_bad_headers_on_first_chunk_reported_once():
    reasm = Reassembler()
    with pytest.raises(DecodeError) as info:
        reasm.feed("k", b"[1", props(content_encoding="text/plain", message_id="abc/0/2"), now=0.0)
    assert info.value.return_code == 301
    assert reasm.feed("k", b"]", props(content_encoding="text/plain", message_id="abc/1/2"),
                      now=0.0) is None
    assert len(reasm) == 0 and reasm.stats["refused"] == 1


def test_pending_limit_gives_up_oldest_first():
    reasm = Reassembler(wait_s=10.0, max_pending=3)
    for i in range(3):
        assert reasm.feed("k", b"[1", props(message_id=f"m{i}/0/2"), now=float(i)) is None
    assert reasm.next_deadline() == pytest.approx(10.0)
    reasm.feed("k", b"[1", props(message_id="m3/0/2"), now=3.0)
    assert len(reasm) == 3
    assert reasm.next_deadline() <= 3.0  # the message given up is due now
    (inc,) = reasm.expire(3.0)
    assert inc.message.message_id == "m0" and not inc.message.is_valid
    assert "more than 3 incomplete messages" in inc.reason
    assert reasm.next_deadline() == pytest.approx(11.0)
    assert reasm.held_bytes == 3 * (2 + PACK_OVERHEAD)


def test_message_size_limit():
    reasm = Reassembler(max_message_size=100)
    with pytest.raises(DecodeError):  # 10 chunks of 20 bytes announced: at least 181 bytes
        reasm.feed("k", b"x" * 20, props(message_id="a/0/10"), now=0.0)
    assert reasm.feed("k", b"x" * 40, props(message_id="b/0/3"), now=0.0) is None
    assert reasm.feed("k", b"x" * 40, props(message_id="b/1/3"), now=0.0) is None
    with pytest.raises(DecodeError) as info:
        reasm.feed("k", b"x" * 40, props(message_id="b/2/3"), now=0.0)
    assert "max_message_size" in info.value.message and info.value.correlation_id == "cid"
    # the message is dropped at once (its bytes released), later chunks of it are ignored
    assert len(reasm) == 0 and reasm.held_bytes == 0
    assert reasm.feed("k", b"x", props(message_id="b/2/3"), now=0.0) is None
    assert reasm.held_bytes == 0 and reasm.stats["ignored"] == 1


# ------------------------------------------------------------------------------------------
# issue 9, item 2: chunk abuse
# ------------------------------------------------------------------------------------------

def test_empty_chunk_announcing_2_to_the_32_chunks_is_refused_at_once():
    """One empty chunk with id <uuid>/0/4294967296 once blocked the loop and ate GBs."""
    reasm = Reassembler(wait_s=1.0)
    with pytest.raises(DecodeError) as info:
        reasm.feed("svc", b"", props(message_id=f"{uuid.uuid4()}/0/4294967296"), now=0.0)
    err = info.value
    assert err.return_code == 302 and err.reply_to == "rq" and err.correlation_id == "cid"
    assert "4294967296 chunks" in err.message and "max_message_size" in err.message
    assert len(reasm) == 0 and reasm.held_bytes == 0 and reasm.expire(1e9) == []


@pytest.mark.parametrize("size", [0, 1, 10, 10_000])
def test_announced_count_is_checked_whatever_the_chunk_size(size):
    reasm = Reassembler(max_message_size=1_000_000)
    with pytest.raises(DecodeError):
        reasm.feed("svc", b"x" * size, props(message_id="a/3/1000001"), now=0.0)
    assert reasm.held_bytes == 0


def test_expiry_costs_chunks_received_not_chunks_announced():
    """A limit large enough to accept 4e9 announced chunks: expiry must not walk them."""
    budget = PendingBudget(2 ** 50)
    reasm = Reassembler(wait_s=1.0, max_message_size=2 ** 45, budget=budget)
    reasm.feed("svc", b"0123456789", props(message_id="big/7/4000000000"), now=0.0)
    (inc,) = reasm.expire(1.0)
    assert inc.missing == "0-6, 8-3999999999" and inc.total == 4_000_000_000
    assert reply_size(inc) < 1024
    assert budget.held == 0


def test_tiny_first_chunks_announcing_a_million_chunks_give_small_answers():
    """10-byte first chunks announcing 1,000,000 chunks: each answer stays below 1 KB (it once
    was a 10 MB padded payload), and what is held stays bounded by the limits."""
    budget = PendingBudget(16 * 1024 * 1024)
    reasm = Reassembler(wait_s=1.0, budget=budget, max_pending=500)
    given_up = []
    peak = 0
    for i in range(5_000):
        p = props(message_id=f"{uuid.uuid4()}/0/1000000", correlation_id=f"c{i}")
        assert reasm.feed("svc", b"0123456789", p, now=i * 1e-4) is None
        peak = max(peak, budget.held)
        given_up.extend(reasm.expire(i * 1e-4))
    given_up.extend(reasm.expire(1e9))
    assert len(given_up) == 5_000
    assert peak <= budget.limit and len(reasm) == 0 and budget.held == 0
    request_bytes = 10 + 1024  # body + a generous allowance for the request's own headers
    assert max(reply_size(inc) for inc in given_up) <= request_bytes + 1024
    assert all(inc.missing == "1-999999" for inc in given_up)


def test_incomplete_100kB_chunks_are_released_after_expiry():
    budget = PendingBudget(64 * 1024 * 1024)
    reasm = Reassembler(wait_s=1.0, budget=budget)
    chunk = b"y" * 100_000
    for i in range(300):
        reasm.feed("svc", chunk, props(message_id=f"m{i}/0/3"), now=0.0)
    assert reasm.held_bytes == budget.held == 300 * (100_000 + PACK_OVERHEAD)
    expired = reasm.expire(1.0)
    assert len(expired) == 300 and reasm.held_bytes == 0 and budget.held == 0
    assert all(len(dumps_payload(inc.message.payload)) < 200 for inc in expired)
    assert not reasm._pending and not reasm._ready


def test_budget_full_gives_up_the_oldest_first():
    budget = PendingBudget(10 * (1000 + PACK_OVERHEAD))
    reasm = Reassembler(wait_s=100.0, budget=budget)
    for i in range(15):
        reasm.feed("svc", b"z" * 1000, props(message_id=f"m{i}/0/2"), now=float(i))
        assert budget.held <= budget.limit
    assert len(reasm) == 10
    given_up = reasm.expire(15.0)  # nothing timed out yet: these were dropped for room
    assert [inc.message.message_id for inc in given_up] == [f"m{i}" for i in range(5)]
    assert all("max_pending_bytes" in inc.reason for inc in given_up)
    assert reasm.stats["evicted"] == 5


def test_shared_budget_refuses_what_cannot_fit():
    budget = PendingBudget(4 * (1000 + PACK_OVERHEAD))
    first, second = Reassembler(budget=budget), Reassembler(budget=budget)
    for i in range(4):
        first.feed("svc", b"z" * 1000, props(message_id=f"a{i}/0/2"), now=0.0)
    with pytest.raises(DecodeError) as info:  # `second` holds nothing it could give up
        second.feed("svc", b"z" * 1000, props(message_id="b0/0/2"), now=0.0)
    assert info.value.return_code == 302 and "max_pending_bytes" in info.value.message
    assert second.held_bytes == 0 and first.held_bytes == budget.held
    first.clear()
    assert budget.held == 0
    assert second.feed("svc", b"z" * 1000, props(message_id="b1/0/2"), now=0.0) is None


def test_a_growing_message_that_no_longer_fits_is_dropped():
    budget = PendingBudget(10_000 + 2 * PACK_OVERHEAD)
    reasm, other = Reassembler(budget=budget), Reassembler(budget=budget)
    reasm.feed("svc", b"z" * 1000, props(message_id="a/0/3"), now=0.0)
    other.feed("svc", b"z" * 8500, props(message_id="b/0/2"), now=0.0)
    with pytest.raises(DecodeError) as info:
        reasm.feed("svc", b"z" * 1000, props(message_id="a/1/3"), now=0.0)
    assert "max_pending_bytes" in info.value.message
    assert len(reasm) == 0 and reasm.held_bytes == 0 and budget.held == other.held_bytes


def test_collected_reassembler_gives_its_bytes_back():
    budget = PendingBudget(10 ** 6)
    reasm = Reassembler(budget=budget)
    reasm.feed("svc", b"z" * 1000, props(message_id="a/0/2"), now=0.0)
    assert budget.held == 1000 + PACK_OVERHEAD
    del reasm
    gc.collect()
    assert budget.held == 0


def test_remembered_ids_are_bounded():
    reasm = Reassembler(max_message_size=100)
    for i in range(20_000):
        with pytest.raises(DecodeError):
            reasm.feed("svc", b"", props(message_id=f"x{i}/0/1000"), now=0.0)
    assert len(reasm._finished) <= reasm._finished_cap


# ------------------------------------------------------------------------------------------
# property tests
# ------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30)


@FAST
@given(payload=json_values, size=st.integers(min_value=1, max_value=64),
       seed=st.integers(0, 2 ** 32))
def test_property_chunked_round_trip_any_order(payload, size, seed):
    chunks = MsgAlert.create(payload, "k").encode(size)
    random.Random(seed).shuffle(chunks)
    reasm = Reassembler()
    results = feed_all(reasm, chunks)
    assert len(results) == 1 and results[0].payload == payload and results[0].is_valid
    assert len(reasm) == 0 and reasm.held_bytes == 0


@FAST
@given(data=st.data(), size=st.integers(1, 20), n_ops=st.integers(0, 30))
def test_property_random_truncated_or_reordered_chunks(data, size, n_ops):
    payload = data.draw(json_values)
    msg = MsgRequest.create(payload, op_t.cmd, "svc", "x", "rq")
    chunks = msg.encode(size)
    budget = PendingBudget(data.draw(st.sampled_from([10 ** 7, 3 * PACK_OVERHEAD])))
    reasm = Reassembler(wait_s=1.0, max_pending=4, max_message_size=10_000, budget=budget)
    now = 0.0
    delivered = []
    for _ in range(n_ops):
        chunk = data.draw(st.sampled_from(chunks))
        kind = data.draw(st.integers(0, 4))
        properties, body = chunk.properties, chunk.body
        if kind == 1:  # corrupt the message id
            properties = Properties(properties.content_encoding, properties.correlation_id,
                                    data.draw(st.text(max_size=15)), properties.reply_to,
                                    properties.headers)
        elif kind == 2:  # truncate the body
            body = body[:data.draw(st.integers(0, len(body)))]
        elif kind == 3:  # another message id with a random chunk count
            base = data.draw(st.sampled_from(["a", "b", msg.message_id]))
            properties = Properties(properties.content_encoding, properties.correlation_id,
                                    f"{base}/{data.draw(st.integers(0, 5))}/"
                                    f"{data.draw(st.integers(0, 2 ** 33))}",
                                    properties.reply_to, properties.headers)
        now += data.draw(st.sampled_from([0.0, 0.3, 1.5]))
        try:
            out = reasm.feed("svc", body, properties, now)
        except DecodeError as err:
            assert err.return_code == 302 and err.reply_to == "rq"
            continue
        finally:
            assert 0 <= reasm.held_bytes == budget.held <= budget.limit
        if out is not None:
            delivered.append(out)
        delivered.extend(inc.message for inc in reasm.expire(now))
    delivered.extend(inc.message for inc in reasm.expire(now + 100))
    assert len(reasm) == 0 and reasm.next_deadline() is None and budget.held == 0
    for out in delivered:
        assert isinstance(out, MsgRequest)
        assert out.reply_to == "rq" and out.correlation_id == msg.correlation_id
        if not out.is_valid:
            assert out.payload["error"] in (INCOMPLETE_ERROR,
                                            "Message body could not be parsed; skipping request")
            assert len(dumps_payload(out.payload)) < 1024 or "invalid" in out.payload
