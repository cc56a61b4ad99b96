"""The request/reply hot path under pika: native asyncio I/O and a short path for the two
frame sequences every dripline message takes (basic.publish out, basic.deliver in).

Why this exists: bench/request_reply.py showed most of a service's time per request, and much
of a client's, inside pika's generic machinery rather than in dripline: pika's asyncio adapter
does its own socket reads and writes from Python (registering a writer and waiting a loop
iteration for every message sent), writes each frame of a message with its own syscall, and
takes every received frame through a general dispatcher (callback registry lookups, per-frame
objects, a content assembler) before the consumer sees the message. Here:

* `LoopIOServices` lets the event loop's own transport (uvloop's, written in C, or asyncio's)
  carry the connection: pika's streaming-connection interface is a subset of asyncio's
  Protocol/Transport, so the loop's ``create_connection(sock=...)`` is all it takes, TLS
  included;
* `FastConnection` writes a message's frames with one ``write``, and the messages that follow
  the first one in the same loop iteration with one more (bench/request_reply.py: a service's
  CPU per request with 64 in flight went from 87 to 67 us); publishes with a direct encoder of
  the method, header and body frames (byte-identical to pika's, tested); and decodes a complete
  basic.deliver sequence (method, header, body frames all in the buffer) in one step, calling
  the consumer exactly as pika's channel would. Every other frame, and a delivery that is not
  all there yet or whose consumer is being cancelled, goes through pika's own code.

It relies on a few of pika's private attributes (checked once, at import, against the installed
pika: `FAST_PATH`); if any is missing the connection behaves exactly as pika's AsyncioConnection.
"""
from __future__ import annotations

import logging
import struct
from typing import Any, Callable

from pika import spec
from pika.adapters import asyncio_connection
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel
from pika.connection import Connection as _PikaConnection
from pika.data import decode_short_string, encode_table

__all__ = ["FastConnection", "LoopIOServices", "FAST_PATH", "encode_publish"]

logger = logging.getLogger(__name__)

_FRAME_METHOD, _FRAME_HEADER, _FRAME_BODY = spec.FRAME_METHOD, spec.FRAME_HEADER, spec.FRAME_BODY
_FRAME_END = spec.FRAME_END
_FRAME_END_BYTE = bytes((_FRAME_END,))
_frame_head = struct.Struct(">BHI")
_unpack_head = _frame_head.unpack_from
_pack_head = _frame_head.pack
_unpack_Q = struct.Struct(">Q").unpack_from
_unpack_HHQ = struct.Struct(">HHQ").unpack_from
_pack_HHQH = struct.Struct(">HHQH").pack
_DELIVER_ID = spec.Basic.Deliver.INDEX  # (60 << 16) | 60
_unpack_I = struct.Struct(">I").unpack_from
_PUBLISH_HEAD = struct.pack(">IH", spec.Basic.Publish.INDEX, 0)  # method id, ticket
_BASIC_CLASS = spec.Basic.INDEX

_P = spec.BasicProperties
_FLAG_CONTENT_ENCODING = _P.FLAG_CONTENT_ENCODING
_FLAG_HEADERS = _P.FLAG_HEADERS
_FLAG_CORRELATION_ID = _P.FLAG_CORRELATION_ID
_FLAG_REPLY_TO = _P.FLAG_REPLY_TO
_FLAG_MESSAGE_ID = _P.FLAG_MESSAGE_ID


class LoopIOServices(asyncio_connection._AsyncioIOServicesAdapter):
    """pika's asyncio I/O services, with the loop's own transport for the stream (see above)."""

    def create_streaming_connection(self, protocol_factory: Callable[[], Any], sock: Any,
                                    on_done: Callable[[Any], None], ssl_context: Any = None,
                                    server_hostname: str | None = None) -> Any:
        coro = self._loop.create_connection(
            protocol_factory, sock=sock, ssl=ssl_context,
            server_hostname=server_hostname if ssl_context is not None else None)
        return self._schedule_and_wrap_in_io_ref(coro, on_done)


def _short(text: Any) -> bytes | None:
    """A shortstr field (length byte + UTF-8), or None when it does not fit one (pika decides)."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if len(data) > 255:
        return None
    return bytes((len(data),)) + data


def encode_publish(channel_number: int, exchange: str, routing_key: str, body: bytes,
                   properties: Any, mandatory: bool, body_max: int) -> bytes | None:
    """The frames of one basic.publish as bytes, the same bytes pika writes; None when a field
    needs pika's own checks (a name longer than a shortstr, a property this encoder leaves out).

    `properties` needs ``content_encoding``, ``correlation_id``, ``message_id``, ``reply_to`` and
    ``headers`` (None: absent, as in pika's BasicProperties).
    """
    ex = _short(exchange)
    rk = _short(routing_key)
    if ex is None or rk is None:
        return None
    method = b"".join((_PUBLISH_HEAD, ex, rk, b"\x01" if mandatory else b"\x00"))
    flags = 0
    fields: list[bytes] = []
    for flag, value in ((_FLAG_CONTENT_ENCODING, properties.content_encoding),  # wire order
                        (_FLAG_HEADERS, properties.headers),
                        (_FLAG_CORRELATION_ID, properties.correlation_id),
                        (_FLAG_REPLY_TO, properties.reply_to),
                        (_FLAG_MESSAGE_ID, properties.message_id)):
        if value is None:
            continue
        flags |= flag
        if flag == _FLAG_HEADERS:
            encode_table(fields, value)
            continue
        piece = _short(value)
        if piece is None:
            return None
        fields.append(piece)
    size = len(body)
    header = _pack_HHQH(_BASIC_CLASS, 0, size, flags) + b"".join(fields)
    out = [_pack_head(_FRAME_METHOD, channel_number, len(method)), method, _FRAME_END_BYTE,
           _pack_head(_FRAME_HEADER, channel_number, len(header)), header, _FRAME_END_BYTE]
    for start in range(0, size, body_max):
        piece = body[start:start + body_max]
        out += (_pack_head(_FRAME_BODY, channel_number, len(piece)), piece, _FRAME_END_BYTE)
    return b"".join(out)


class FastConnection(AsyncioConnection):
    """pika's AsyncioConnection with the short paths described in the module docstring."""

    #: data written after the first write of the current loop iteration, sent as one write when
    #: the iteration ends (None: nothing written yet in this iteration)
    _held: list[bytes] | None = None

    def _adapter_emit_data(self, data: bytes) -> None:
        """The first message of a loop iteration goes out at once (no added latency); the ones
        that follow it in the same iteration (replies of a busy service, a burst of requests)
        are joined into one write at the end of the iteration: one syscall instead of many."""
        held = self._held
        if held is not None:
            held.append(data)
            return
        self._held = []
        self._nbio.get_native_ioloop().call_soon(self._release_held)
        super()._adapter_emit_data(data)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held and self._transport is not None:
            super()._adapter_emit_data(held[0] if len(held) == 1 else b"".join(held))

    def _adapter_disconnect_stream(self) -> None:
        self._release_held()  # e.g. the Close-Ok answering the broker's Close
        super()._adapter_disconnect_stream()

    def _output_marshaled_frames(self, marshaled_frames: Any) -> None:
        data = marshaled_frames[0] if len(marshaled_frames) == 1 else b"".join(marshaled_frames)
        self.bytes_sent += len(data)
        self.frames_sent += len(marshaled_frames)
        self._adapter_emit_data(data)

    def publish(self, channel: Channel, exchange: str, routing_key: str, body: bytes,
                properties: Any, mandatory: bool) -> None:
        """basic.publish on `channel`; raises as pika's Channel.basic_publish does."""
        data = None
        body_max = getattr(self, "_body_max_length", 0)
        if FAST_PATH and body_max > 0 and channel.is_open and not self.is_closed \
                and isinstance(body, bytes):
            data = encode_publish(channel.channel_number, exchange, routing_key, body, properties,
                                  mandatory, body_max)
        if data is None:
            channel.basic_publish(exchange, routing_key, body, _P(
                content_encoding=properties.content_encoding,
                correlation_id=properties.correlation_id, message_id=properties.message_id,
                reply_to=properties.reply_to, headers=properties.headers), mandatory)
            return
        self.bytes_sent += len(data)
        self.frames_sent += 2 + -(-len(body) // body_max)
        self._adapter_emit_data(data)

    def _on_data_available(self, data_in: bytes) -> None:
        if not FAST_PATH:
            super()._on_data_available(data_in)
            return
        self._frame_buffer += data_in
        while self._frame_buffer:
            delivery = self._complete_delivery(self._frame_buffer)
            if delivery is not None:
                consumed, n_frames, consumer, args = delivery
                self._trim_frame_buffer(consumed)  # first, as pika does: a raising consumer
                self.frames_received += n_frames   # must not see the same delivery again
                consumer(*args)
                continue
            # anything else: pika's own path, one frame at a time (its _on_data_available)
            consumed, frame_value = self._read_frame()
            if not frame_value:
                return
            self._trim_frame_buffer(consumed)
            self._process_frame(frame_value)

    def _complete_delivery(self, buf: bytes
                           ) -> tuple[int, int, Callable[..., Any], tuple] | None:
        """A basic.deliver whose frames are all at the start of `buf`, decoded: (bytes and frames
        it takes, its consumer, the consumer's arguments as pika's channel passes them); None when
        pika must handle what is there."""
        end = len(buf)
        if end < 12 or buf[0] != _FRAME_METHOD:
            return None
        _, channel_number, size = _unpack_head(buf, 0)
        method_end = 7 + size
        if method_end + 8 > end or _unpack_I(buf, 7)[0] != _DELIVER_ID \
                or buf[method_end] != _FRAME_END:
            return None
        channel = self._channels.get(channel_number)
        if channel is None or channel._content_assembler._method_frame is not None:
            return None
        hpos = method_end + 1
        ftype, hchannel, hsize = _unpack_head(buf, hpos)
        hstart = hpos + 7
        hend = hstart + hsize
        if ftype != _FRAME_HEADER or hchannel != channel_number or hend >= end \
                or buf[hend] != _FRAME_END:
            return None
        body_size = _unpack_HHQ(buf, hstart)[2]
        pieces = []  # every body frame must be here already, else pika assembles them
        seen = 0
        bpos = hend + 1
        while seen < body_size:
            if bpos + 8 > end:
                return None
            ftype, bchannel, bsize = _unpack_head(buf, bpos)
            bend = bpos + 7 + bsize
            if ftype != _FRAME_BODY or bchannel != channel_number or bend >= end \
                    or buf[bend] != _FRAME_END:
                return None
            pieces.append(buf[bpos + 7:bend])
            seen += bsize
            bpos = bend + 1
        if seen != body_size:
            return None  # too long: pika raises its BodyTooLongError
        consumer_tag, offset = decode_short_string(buf, 11)
        consumer = channel._consumers.get(consumer_tag)
        if consumer is None or consumer_tag in channel._cancelled:
            return None  # pika rejects or logs it
        delivery_tag = _unpack_Q(buf, offset)[0]
        redelivered = bool(buf[offset + 8] & 1)
        exchange, offset = decode_short_string(buf, offset + 9)
        routing_key = decode_short_string(buf, offset)[0]
        properties = _P()
        properties.decode(buf, hstart + 12)
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        method = spec.Basic.Deliver(consumer_tag, delivery_tag, redelivered, exchange, routing_key)
        return bpos, 2 + len(pieces), consumer, (channel, method, properties, body)


def _has_private_api() -> bool:
    """Whether the installed pika has what the short paths use (else pika's own paths run)."""
    try:
        channel_names = Channel.__init__.__code__.co_names
        return (all(hasattr(_PikaConnection, name) for name in
                    ("_trim_frame_buffer", "_read_frame", "_process_frame", "_adapter_emit_data",
                     "_init_connection_state"))
                and "_frame_buffer" in _PikaConnection._init_connection_state.__code__.co_names
                and all(name in channel_names for name in
                        ("_content_assembler", "_consumers", "_cancelled"))
                and hasattr(asyncio_connection._AsyncioIOServicesAdapter,
                            "_schedule_and_wrap_in_io_ref"))
    except Exception:  # pragma: no cover - a pika we do not know
        return False


#: True when the short paths are in use (pika has the private attributes they rely on)
FAST_PATH = _has_private_api()
if not FAST_PATH:  # pragma: no cover
    logger.info("pika %s lacks what dripline's short frame paths use; using pika's own paths",
                getattr(__import__("pika"), "__version__", "?"))
