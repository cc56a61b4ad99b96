"""The speed-ups of the request path behave exactly as the code they replace.

* transport/tables.py replaces pika's header-table codec: the bytes must equal those of pika's own
  functions (plus dripline's UInt32 rule) and the decoded values must be equal and of the same
  types, also for tables that are cached (sent again as the same object, received again with the
  same bytes) and then changed.
* service/lanes.py's `Worker` replaces a one-thread ThreadPoolExecutor: serial order, `submit`
  futures, shutdown cancelling what has not started.
* transport/bridge.py's `block_on` (the one loop<->thread bridge) keeps
  run_coroutine_threadsafe's contract, also for a callable whose future it waits for.
* `dripline.__version__` is read without importlib.metadata but must agree with it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import struct
import threading
import time

import pika.data
import pika.frame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dripline.transport import tables
from dripline.protocol.message import UInt32

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_orig_encode_value, _orig_encode_table, _orig_decode_table, _orig_decode_value = tables._originals


def _reference_encode_value(pieces, value):
    """What dripline did before the fast codec: pika's encoder plus the UInt32 rule."""
    if type(value) is UInt32:
        pieces.append(struct.pack(">cI", b"i", value))
        return 5
    return _orig_encode_value(pieces, value)


def _encode(table):
    pieces: list = []
    pika.data.encode_table(pieces, table)
    return b"".join(pieces)


def _decode(data):
    value, offset = pika.data.decode_table(data, 0)
    assert offset == len(data)
    return value


def _same(a, b):
    """Equal and of identical types all the way down (str vs bytes, int vs long, ...)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b


keys = st.text(max_size=12).filter(lambda k: len(k.encode("utf-8", "surrogatepass")) <= 255)
leaves = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=10), st.booleans(), st.none(),
    st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.integers(min_value=0, max_value=2**32 - 1).map(UInt32),
    st.decimals(allow_nan=False, allow_infinity=False, places=2,
                min_value=-1000, max_value=1000),
    st.datetimes(min_value=datetime.datetime(1971, 1, 1),
                 max_value=datetime.datetime(2100, 1, 1)).map(
        lambda d: d.replace(microsecond=0, tzinfo=datetime.timezone.utc)),
)
tables = st.recursive(
    leaves,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
).map(lambda v: v if isinstance(v, dict) else {"v": v})


def _encodable(table) -> bool:
    try:
        _encode(table)
        return True
    except (UnicodeEncodeError, struct.error):
        return False


@FAST
@given(tables)
def test_tables_encode_and_decode_as_pika_does(table):
    if not _encodable(table):
        return
    data = _encode(table)
    assert data == _encode(table)  # a second and third time (cache paths): the same bytes
    assert data == _encode(table)
    reference = _run_reference(_encode, table)
    assert data == reference
    _same(_decode(data), _run_reference(_decode, data))
    _same(_decode(data), _run_reference(_decode, data))  # decode cache: same result again


def _run_reference(fn, *args):
    saved = (pika.data.encode_value, pika.data.encode_table, pika.data.decode_table)
    pika.data.encode_value = _reference_encode_value
    pika.data.encode_table = _orig_encode_table
    pika.data.decode_table = _orig_decode_table
    try:
        return fn(*args)
    finally:
        pika.data.encode_value, pika.data.encode_table, pika.data.decode_table = saved


def _sender_info():
    return {"exe": "/usr/bin/python3", "hostname": "host", "username": "me",
            "service_name": "svc", "versions": {"dripline": {"version": "3.0.0"},
                                                "dripline-python": {"version": "5.2.0",
                                                                    "commit": "na"}}}


def test_a_table_sent_repeatedly_is_re_encoded_after_a_change_in_place():
    info = _sender_info()
    headers = {"message_type": UInt32(3), "sender_info": info}
    first = [_encode(headers) for _ in range(3)]  # seen, cached, hit
    assert first[0] == first[1] == first[2] == _run_reference(_encode, headers)
    info["versions"]["plugin"] = {"version": "1.0"}  # nested change
    assert _encode(headers) == _run_reference(_encode, headers)
    info["hostname"] = "other"
    assert _encode(headers) == _run_reference(_encode, headers)
    info["hostname"] = 5  # a different type: no longer a cacheable table, still exact
    assert _encode(headers) == _run_reference(_encode, headers)
    assert _decode(_encode(headers))["sender_info"]["hostname"] == 5


@pytest.mark.parametrize("before, after", [(1, True), (True, 1), (0, False), (1, 1.0),
                                           (b"a", bytearray(b"a")), ("a", "a")])
def test_equal_values_of_another_type_are_not_taken_from_the_cache(before, after):
    table = {"k": before, "n": {"x": "y"}}
    headers = {"t": table}
    for _ in range(3):
        assert _encode(headers) == _run_reference(_encode, headers)
    table["k"] = after
    try:
        expected = _run_reference(_encode, headers)
    except Exception as err:  # pika refuses floats and bytearrays: so must we
        with pytest.raises(type(err)):
            _encode(headers)
    else:
        assert _encode(headers) == expected


def test_a_decoded_cached_table_is_a_fresh_object_every_time():
    data = _encode({"sender_info": _sender_info()})
    a = _decode(data)
    a["sender_info"]["versions"]["dripline"]["version"] = "changed"
    a["sender_info"]["hostname"] = "changed"
    b = _decode(data)
    assert b == {"sender_info": _sender_info()}
    assert b["sender_info"] is not a["sender_info"]
    assert b["sender_info"]["versions"] is not _decode(data)["sender_info"]["versions"]


def test_unusual_field_types_decode_as_pika_decodes_them():
    # types dripline never writes but other clients may: short/long ints, floats, arrays, void
    body = (b"\x01a" + b"b" + struct.pack(">b", -3)
            + b"\x01b" + b"U" + struct.pack(">h", -300)
            + b"\x01c" + b"f" + struct.pack(">f", 2.5)
            + b"\x01d" + b"d" + struct.pack(">d", 7.25)
            + b"\x01e" + b"A" + struct.pack(">I", 6) + b"t\x01" + b"b\x05" + b"V" + b"V"
            + b"\x01f" + b"S" + struct.pack(">I", 2) + b"\xff\xfe"  # not UTF-8: stays bytes
            + b"\x01g" + b"F" + struct.pack(">I", 0))
    data = struct.pack(">I", len(body)) + body
    _same(_decode(data), _run_reference(_decode, data))


def test_basic_properties_round_trip_identically():
    headers = {"message_type": UInt32(2), "return_code": UInt32(0), "return_message": "",
               "specifier": "", "timestamp": "2024-01-01T00:00:00.000000Z",
               "sender_info": _sender_info()}
    props = pika.BasicProperties(content_encoding="application/json", correlation_id="c",
                                 message_id="m/0/1", reply_to="r", headers=headers)
    frame = pika.frame.Header(1, 10, props).marshal()
    assert frame == _run_reference(lambda: pika.frame.Header(1, 10, props).marshal())
    ours = pika.frame.decode_frame(frame)[1].properties
    ref = _run_reference(pika.frame.decode_frame, frame)[1].properties
    _same(ours.headers, ref.headers)
    assert (ours.correlation_id, ours.reply_to, ours.message_id) == ("c", "r", "m/0/1")


def test_too_long_keys_fail_as_in_pika():
    with pytest.raises(pika.exceptions.ShortStringTooLong):
        _encode({"k" * 256: 1})


# ----------------------------------------------------------------------------- service worker
def test_worker_runs_jobs_one_at_a_time_in_order():
    from dripline.service.lanes import Worker as _Worker
    worker = _Worker("t-worker")
    seen: list[int] = []
    running = [0]
    overlap = []

    def job(i):
        running[0] += 1
        overlap.append(running[0])
        time.sleep(0.001)
        seen.append(i)
        running[0] -= 1
        return i * 2

    futures = [worker.submit(job, i) for i in range(20)]
    assert [f.result(5) for f in futures] == [i * 2 for i in range(20)]
    assert seen == list(range(20)) and max(overlap) == 1
    assert worker.executor is worker
    assert worker.thread_ident is not None and worker.thread_ident != threading.get_ident()
    worker.shutdown()


def test_worker_call_reports_result_or_error_on_the_loop():
    from dripline.service.lanes import Worker as _Worker
    worker = _Worker("t-worker")
    loop = asyncio.new_event_loop()
    try:
        async def go():
            results = []
            done = asyncio.Event()

            def record(result, error):
                results.append((result, type(error).__name__ if error else None,
                                threading.get_ident()))
                if len(results) == 2:
                    done.set()

            def fail():
                raise ValueError("no")
            worker.call(loop, lambda x: x + 1, (1,), record)
            worker.call(loop, fail, (), record)
            await asyncio.wait_for(done.wait(), 5)
            return results
        results = loop.run_until_complete(go())
        assert [r[:2] for r in results] == [(2, None), (None, "ValueError")]
        assert all(r[2] == threading.get_ident() for r in results)  # on the loop's thread
        # run_in_executor still works with the worker as executor
        assert loop.run_until_complete(loop.run_in_executor(worker.executor, lambda: 7)) == 7
    finally:
        worker.shutdown()
        loop.close()


def test_worker_shutdown_cancels_what_has_not_started():
    from dripline.service.lanes import Worker as _Worker
    worker = _Worker("t-worker")
    gate = threading.Event()
    first = worker.submit(gate.wait, 5)
    time.sleep(0.05)
    queued = worker.submit(lambda: "never")
    worker.shutdown()
    gate.set()
    assert first.result(5) is True
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        worker.submit(lambda: None)


# ----------------------------------------------------------------------------- LoopThread.run
def test_loop_thread_run_keeps_the_run_coroutine_threadsafe_contract():
    from dripline.transport.bridge import LoopThread
    lt = LoopThread("t-loop")
    try:
        async def value():
            return 42

        async def boom():
            raise KeyError("x")

        async def slow():
            await asyncio.sleep(10)

        async def cancelled():
            asyncio.current_task().cancel()
            await asyncio.sleep(1)

        assert lt.run(value()) == 42
        with pytest.raises(KeyError):
            lt.run(boom())
        with pytest.raises(concurrent.futures.TimeoutError):
            lt.run(slow(), timeout=0.1)
        with pytest.raises(concurrent.futures.CancelledError):
            lt.run(cancelled())
        with pytest.raises(TypeError):
            lt.run(lambda: None)  # type: ignore[arg-type]
    finally:
        lt.stop()


# ----------------------------------------------------------------------------- version
def test_version_agrees_with_importlib_metadata():
    from importlib import metadata

    import dripline
    try:
        expected = metadata.version("dripline")
    except metadata.PackageNotFoundError:
        expected = "0.0.0"
    assert dripline._read_version() == expected
    assert dripline.__version__ == dripline.version == expected


def test_block_on_a_callable_waits_for_the_future_it_returns():
    """The one bridge: a callable run on the loop whose future is awaited without a task."""
    from dripline.transport.bridge import LoopThread
    lt = LoopThread("t-loop")
    tasks_seen = []
    try:
        def resolved_later(value, error=None):
            fut = lt.loop.create_future()
            tasks_seen.append(asyncio.current_task(lt.loop))
            if error is None:
                lt.loop.call_later(0.01, fut.set_result, value)
            else:
                lt.loop.call_later(0.01, fut.set_exception, error)
            return fut
        assert lt.run(resolved_later, 42) == 42
        assert tasks_seen == [None]  # run as a plain callback, no task made for it
        with pytest.raises(KeyError):
            lt.run(resolved_later, None, KeyError("k"))

        def raises():
            raise ValueError("before any future")
        with pytest.raises(ValueError):
            lt.run(raises)

        def cancelled():
            fut = lt.loop.create_future()
            fut.cancel()
            return fut
        with pytest.raises(concurrent.futures.CancelledError):
            lt.run(cancelled)
        with pytest.raises(concurrent.futures.CancelledError):
            lt.run(resolved_later, None, asyncio.CancelledError())

        abandoned = []

        def never():
            fut = lt.loop.create_future()
            abandoned.append(fut)
            return fut
        with pytest.raises(concurrent.futures.TimeoutError):
            lt.run(never, timeout=0.05)
        assert lt.run(asyncio.sleep, 0.01) is None  # a coroutine function: run as a task
        assert abandoned[0].cancelled()  # the caller gave up: the future was cancelled
        with pytest.raises(RuntimeError):
            lt.run(_block_from_loop(lt))
        with pytest.raises(TypeError):
            lt.run(42)  # type: ignore[arg-type]
    finally:
        lt.stop()
    with pytest.raises(RuntimeError, match="not running"):
        lt.run(lambda: None)


def test_call_in_thread_brings_the_outcome_back_to_the_loop():
    import queue
    from dripline.transport.bridge import LoopThread, call_in_thread
    jobs: "queue.SimpleQueue" = queue.SimpleQueue()
    worker = threading.Thread(target=lambda: [job() for job in iter(jobs.get, None)], daemon=True)
    worker.start()
    lt = LoopThread("t-loop")
    try:
        async def ask(fn, *args):
            fut = asyncio.get_running_loop().create_future()

            def done(result, error):
                assert threading.current_thread() is lt.thread  # back on the loop
                fut.set_result((result, error))
            call_in_thread(jobs.put, asyncio.get_running_loop(), fn, args, done)
            return await fut
        seen = []
        result, error = lt.run(ask(lambda a: seen.append(threading.current_thread()) or a + 1, 41))
        assert (result, error) == (42, None) and seen == [worker]
        result, error = lt.run(ask(lambda: {}["missing"]))
        assert result is None and isinstance(error, KeyError)
    finally:
        lt.stop()
        jobs.put(None)
    closed = asyncio.new_event_loop()
    closed.close()
    call_in_thread(lambda item: item(), closed, lambda: 1, (), lambda r, e: None)  # dropped, no error


async def _block_from_loop(lt):
    lt.run(asyncio.sleep, 0)


def _core_without_broker(monkeypatch):
    from dripline.client.session import Core
    from dripline.testing import test_mesh
    core = Core(test_mesh(), make_connection=False)
    monkeypatch.setattr(core, "_publish", lambda exchange, msg: None)  # sent into the void
    return core


def test_core_request_times_out_through_the_tracker(monkeypatch):
    from dripline.protocol.errors import TimeoutError_
    from dripline.protocol.message import op_t
    from dripline.client.request_sender import build_request
    core = _core_without_broker(monkeypatch)
    loop = asyncio.new_event_loop()
    try:
        core.loop = loop

        async def go():
            request = build_request(op_t.get, "nobody")
            with pytest.raises(TimeoutError_) as info:
                await core.request(request, 0.05)
            assert request.correlation_id not in core._pending
            return info.value
        err = loop.run_until_complete(go())
        assert "no reply from 'nobody' within 0.05 s" in str(err) and err.return_code == 404
    finally:
        loop.close()


def test_core_begin_request_delivers_the_reply_to_its_future(monkeypatch):
    from dripline.protocol.message import MsgReply, op_t
    from dripline.client.request_sender import build_request
    core = _core_without_broker(monkeypatch)
    loop = asyncio.new_event_loop()
    try:
        core.loop = loop

        async def go():
            request = build_request(op_t.get, "somebody")
            fut = core.begin_request(request, 5, convert=lambda reply: reply.payload)
            reply = MsgReply(0, "", {"value_raw": 1}, correlation_id=request.correlation_id)
            core._deliver_reply(reply)
            return await fut, request
        value, request = loop.run_until_complete(go())
        assert value == {"value_raw": 1}
        assert request.correlation_id not in core._pending
    finally:
        loop.close()
