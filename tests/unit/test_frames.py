"""transport/frames.py: the short publish and deliver paths agree with pika's own code.

* `encode_publish` writes the bytes pika's Channel.basic_publish writes (same frames, same
  splitting of large bodies), or None where pika must decide (names too long for a shortstr).
* `FastConnection._on_data_available` hands every delivery to its consumer exactly as pika's own
  path does (same routing key, tags, properties, body), whatever the way the byte stream is cut
  into reads, with other frames (heartbeats, method replies, returns) mixed in; a delivery whose
  consumer is being cancelled or that is not complete yet takes pika's path; byte and frame
  counters (pika's heartbeat checker reads them) advance as pika's do.
"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pika import frame, spec
from pika.channel import Channel

import dripline.transport.connection  # noqa: F401 - installs dripline's table codec as in use
from dripline.transport import frames
from dripline.transport.frames import FastConnection, encode_publish

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pytestmark = pytest.mark.skipif(not frames.FAST_PATH, reason="pika lacks the private API")

short_text = st.text(max_size=40)
header_values = st.recursive(
    st.one_of(st.text(max_size=20), st.integers(-2**31, 2**31 - 1), st.booleans(), st.none()),
    lambda children: st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4),
    max_leaves=10)
properties_st = st.builds(
    SimpleNamespace,
    content_encoding=st.one_of(st.none(), st.just("application/json"), short_text),
    correlation_id=st.one_of(st.none(), short_text),
    message_id=st.one_of(st.none(), short_text),
    reply_to=st.one_of(st.none(), short_text),
    headers=st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=12), header_values,
                                                 max_size=6)))


class _Recorder:
    """A stand-in transport: collects what is written."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def _pika_publish_bytes(channel_number: int, exchange: str, routing_key: str, body: bytes,
                        props: Any, mandatory: bool, body_max: int) -> bytes:
    """What pika's own Connection._send_message writes for this publish."""
    conn = FastConnection.__new__(FastConnection)
    conn._body_max_length = body_max
    conn.bytes_sent = conn.frames_sent = 0
    out: list[bytes] = []
    conn._adapter_emit_data = out.append  # type: ignore[method-assign]
    pika.connection.Connection._send_message(
        conn, channel_number, spec.Basic.Publish(exchange=exchange, routing_key=routing_key,
                                                 mandatory=mandatory),
        (pika.BasicProperties(content_encoding=props.content_encoding,
                              correlation_id=props.correlation_id, message_id=props.message_id,
                              reply_to=props.reply_to, headers=props.headers), body))
    return b"".join(out)


@FAST
@given(channel_number=st.integers(1, 2047), exchange=short_text, routing_key=short_text,
       body=st.binary(max_size=300), props=properties_st, mandatory=st.booleans(),
       body_max=st.sampled_from([1, 7, 64, 131064]))
def test_publish_frames_are_the_bytes_pika_writes(channel_number, exchange, routing_key, body,
                                                 props, mandatory, body_max):
    ours = encode_publish(channel_number, exchange, routing_key, body, props, mandatory, body_max)
    assert ours == _pika_publish_bytes(channel_number, exchange, routing_key, body, props,
                                       mandatory, body_max)


def test_names_longer_than_a_shortstr_are_left_to_pika():
    props = SimpleNamespace(content_encoding=None, correlation_id="c", message_id=None,
                            reply_to=None, headers=None)
    assert encode_publish(1, "", "k" * 256, b"", props, False, 1000) is None
    assert encode_publish(1, "é" * 128, "k", b"", props, False, 1000) is None  # 256 bytes
    assert encode_publish(1, "", "k" * 255, b"", props, False, 1000) is not None
    props.reply_to = "r" * 300
    assert encode_publish(1, "", "k", b"", props, False, 1000) is None


# ------------------------------------------------------------------------------ receiving
def _marshal_delivery(channel_number: int, tag: str, delivery_tag: int, routing_key: str,
                      props: Any, body: bytes, body_max: int, redelivered: bool = False) -> bytes:
    method = frame.Method(channel_number, spec.Basic.Deliver(tag, delivery_tag, redelivered,
                                                             "requests", routing_key))
    header = frame.Header(channel_number, len(body), pika.BasicProperties(
        content_encoding=props.content_encoding, correlation_id=props.correlation_id,
        message_id=props.message_id, reply_to=props.reply_to, headers=props.headers))
    out = [method.marshal(), header.marshal()]
    for start in range(0, len(body), body_max):
        out.append(frame.Body(channel_number, body[start:start + body_max]).marshal())
    return b"".join(out)


def _connection(fast: bool, consumers: dict[int, str], seen: list) -> FastConnection:
    """A FastConnection (or, fast=False, one that takes pika's path) with open channels whose
    consumers record what they receive; no socket."""
    conn = FastConnection.__new__(FastConnection)
    conn._frame_buffer = b""
    conn.bytes_received = conn.frames_received = 0
    conn._heartbeat_checker = None
    conn._channels = {}
    for number, tag in consumers.items():
        channel = Channel.__new__(Channel)
        channel.channel_number = number
        channel._content_assembler = pika.channel.ContentFrameAssembler()
        channel._cancelled = set()
        channel._consumers_with_noack = set()
        channel._consumers = {tag: (lambda ch, method, properties, body, n=number: seen.append(
            (n, method.consumer_tag, method.delivery_tag, method.redelivered, method.exchange,
             method.routing_key, properties.correlation_id, properties.reply_to,
             properties.message_id, properties.content_encoding, properties.headers, body)))}
        conn._channels[number] = channel
    if not fast:
        conn._complete_delivery = lambda buf: None  # type: ignore[method-assign]
    conn._process_callbacks = lambda frame_value: False  # type: ignore[method-assign]
    return conn


deliveries_st = st.lists(
    st.tuples(st.sampled_from([1, 2]), st.integers(1, 2**40), short_text, properties_st,
              st.binary(max_size=200), st.booleans()),
    min_size=1, max_size=6)


@FAST
@given(deliveries=deliveries_st, body_max=st.sampled_from([3, 50, 131064]),
       cuts=st.lists(st.integers(1, 400), max_size=8), heartbeats=st.booleans())
def test_deliveries_reach_the_consumer_as_pika_hands_them(deliveries, body_max, cuts, heartbeats):
    stream = b""
    for number, delivery_tag, routing_key, props, body, redelivered in deliveries:
        stream += _marshal_delivery(number, f"ctag{number}", delivery_tag, routing_key, props,
                                    body, body_max, redelivered)
        if heartbeats:
            stream += frame.Heartbeat().marshal()
    results = []
    for fast in (True, False):
        seen: list = []
        conn = _connection(fast, {1: "ctag1", 2: "ctag2"}, seen)
        conn._heartbeat_checker = SimpleNamespace(received=lambda: None)
        pos = 0
        for cut in cuts + [len(stream)]:  # the stream as several reads
            if pos >= len(stream):
                break
            conn._on_data_available(stream[pos:pos + cut])
            pos += cut
        if pos < len(stream):
            conn._on_data_available(stream[pos:])
        assert conn._frame_buffer == b""
        assert conn.bytes_received == len(stream)
        results.append((seen, conn.frames_received))
    assert results[0] == results[1]
    assert len(results[0][0]) == len(deliveries)


def test_a_delivery_for_a_cancelled_consumer_takes_pikas_path():
    seen: list = []
    conn = _connection(True, {1: "ctag1"}, seen)
    channel = conn._channels[1]
    rejected = []
    channel.basic_reject = lambda tag: rejected.append(tag)  # type: ignore[method-assign]
    channel._state = Channel.OPEN
    channel._cancelled.add("ctag1")
    props = SimpleNamespace(content_encoding=None, correlation_id="c", message_id=None,
                            reply_to=None, headers=None)
    conn._on_data_available(_marshal_delivery(1, "ctag1", 7, "k", props, b"{}", 100))
    assert seen == [] and rejected == [7]


def test_a_raising_consumer_does_not_see_the_same_delivery_again():
    seen: list = []
    conn = _connection(True, {1: "ctag1"}, seen)
    calls = []

    def consumer(ch, method, properties, body):
        calls.append(method.delivery_tag)
        raise RuntimeError("consumer failed")
    conn._channels[1]._consumers["ctag1"] = consumer
    props = SimpleNamespace(content_encoding=None, correlation_id="c", message_id=None,
                            reply_to=None, headers=None)
    data = _marshal_delivery(1, "ctag1", 1, "k", props, b"{}", 100) + \
        _marshal_delivery(1, "ctag1", 2, "k", props, b"{}", 100)
    with pytest.raises(RuntimeError):
        conn._on_data_available(data)
    assert calls == [1]
    with pytest.raises(RuntimeError):
        conn._on_data_available(b"")
    assert calls == [1, 2] and conn._frame_buffer == b""


async def test_the_loop_transport_carries_a_connection_to_a_stream_server():
    """LoopIOServices hands pika's protocol the loop's own transport."""
    received = asyncio.get_running_loop().create_future()

    async def serve(reader, writer):
        received.set_result(await reader.readexactly(5))
        writer.write(b"world")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    import socket
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    got: list = []
    done = asyncio.get_running_loop().create_future()

    class Proto(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(b"hello")

        def data_received(self, data):
            got.append(data)

        def eof_received(self):
            return False

        def connection_lost(self, exc):
            done.set_result(exc)

    services = frames.LoopIOServices(asyncio.get_running_loop())
    opened = asyncio.get_running_loop().create_future()
    services.create_streaming_connection(Proto, sock, opened.set_result)
    transport, protocol = await opened
    assert isinstance(protocol, Proto) and transport.get_protocol() is protocol
    assert await received == b"hello"
    assert await done is None and b"".join(got) == b"world"
    server.close()
    await server.wait_closed()


# ------------------------------------------------------------------------------ writing
async def test_the_first_write_of_a_loop_iteration_goes_out_at_once_and_the_rest_together():
    """One write per loop iteration at most two syscalls: the first message at once (no latency
    added), the others of the same iteration joined when it ends (a busy service's replies)."""
    loop = asyncio.get_running_loop()
    writes: list[bytes] = []
    conn = FastConnection.__new__(FastConnection)
    conn._nbio = frames.LoopIOServices(loop)
    conn._transport = SimpleNamespace(write=writes.append)
    conn._adapter_emit_data(b"a")
    assert writes == [b"a"]
    conn._adapter_emit_data(b"b")
    conn._adapter_emit_data(b"c")
    assert writes == [b"a"]
    await asyncio.sleep(0)  # the iteration ends
    assert writes == [b"a", b"bc"]
    await asyncio.sleep(0)
    conn._adapter_emit_data(b"d")  # a new iteration: at once again
    assert writes == [b"a", b"bc", b"d"]
    conn._adapter_emit_data(b"e")
    aborted = []
    conn._transport.abort = lambda: aborted.append(list(writes))
    conn._opened = True
    conn._adapter_disconnect_stream()  # what is held goes out before the stream is cut
    assert aborted == [[b"a", b"bc", b"d", b"e"]]
    await asyncio.sleep(0)
    assert writes == [b"a", b"bc", b"d", b"e"]
