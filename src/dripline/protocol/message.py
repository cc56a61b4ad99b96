"""Dripline messages and their wire codec (sans-I/O: bytes and property objects in, bytes out).

This module turns `MsgRequest` / `MsgReply` / `MsgAlert` objects into AMQP bodies + properties
exactly as dripline-cpp 2.10 writes them, and back. It never imports the AMQP library and never
does I/O, so every wire rule can be unit- and property-tested without a broker; the transport
maps `Properties` onto pika and writes `UInt32` header values as AMQP ``i`` (unsigned 32). It
reads no clock, host name, passwd entry or version registry either: the sender hands in its
``sender_info`` and the ``timestamp`` (`dripline.client.identity`), so the same message encodes
to the same bytes, and building one never imports a plugin.

Wire layout (see reference §1.5-§1.10):

* properties: ``content_encoding='application/json'``, ``correlation_id``, ``reply_to`` ('' when
  none), ``message_id = <uuid>/<chunk>/<total>`` on every chunk;
* headers: ``message_type`` (UInt32), ``specifier``, ``timestamp`` (UTC, microseconds, ``Z``),
  ``sender_info`` (one nested table), plus ``message_operation`` (UInt32) + ``lockout_key`` on
  requests and ``return_code`` (UInt32) + ``return_message`` on replies;
* body: compact JSON with sorted keys (``null`` when there is no payload), cut into byte slices of
  ``max_payload_size``; only requests are published mandatory.

Deliberate deviations from the reference implementation (mostly on the reading side, where being
lenient costs nothing and the reference's strictness makes requesters hang until timeout):

* A message id without ``/`` is accepted as a single-chunk message (the protocol spec allows it;
  dl-cpp rejects it).
* A missing or incomplete ``sender_info`` is filled with defaults ("unknown", no versions) instead
  of silently dropping the message.
* A ``lockout_key`` header of a non-string type marks the key invalid (-> 308 reply) instead of
  dropping the message; every other undecodable message raises `DecodeError` that carries
  ``routing_key``, ``reply_to``, ``correlation_id`` and ``message_type`` (None when unknown) so the
  caller can answer 301/302 rather than stay silent.
* Integer headers: any integer type is accepted; a negative 32-bit ``message_type`` or
  ``message_operation`` is wrapped as a C cast would (a signed writer's -1 is "unknown");
  a negative ``return_code`` and values that fit in neither int32 nor uint32 are rejected
  (return codes are unsigned: -5 must not arrive as 4294967291).
* Reassembly of chunked messages lives in `dripline.protocol.chunks` (bounded; no ``#`` padding).
* Payload values JSON cannot represent are replaced by ``str(value)`` one *value* at a time (the
  reference stringifies the whole result); numpy scalars/arrays, datetimes, UUIDs, enums and
  dataclasses are converted natively; NaN/inf become ``null``.
* `Message.encode_full_message` is not truncated unless ``max_size`` is given (the reference cuts
  at 4000 characters, which yields invalid JSON).
"""
from __future__ import annotations

import json as _json
import logging
import math
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum
from typing import Any, ClassVar

import orjson

from dripline.protocol.errors import DecodeError, DriplineError
from dripline.protocol.payload import NULL_PAYLOAD, PayloadDict, PayloadList, reference_view, view
from dripline.protocol.specifier import Specifier

__all__ = [
    "op_t", "msg_t", "to_uint", "to_string", "to_op_t", "to_msg_t", "UInt32", "Properties",
    "WireMessage", "Message", "MsgRequest", "MsgReply", "MsgAlert", "unknown_sender_info",
    "format_timestamp", "new_id",
    "decode", "dumps_payload", "loads_payload", "JSON_ENCODING",
    "DEFAULT_MAX_PAYLOAD_SIZE", "NIL_UUID", "PayloadDict", "PayloadList",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD_SIZE = 10000
_UINT32_MAX = 0xFFFFFFFF
_APP_JSON = "application/json"
NIL_UUID = uuid.UUID(int=0)
_NIL_STR = str(NIL_UUID)
_uuid4 = uuid.uuid4
_urandom = os.urandom

_INVALID_BODY_ERROR = "Message body could not be parsed; skipping request"


# --------------------------------------------------------------------------------------------
# Constants: operations and message types
# --------------------------------------------------------------------------------------------

class _WireEnum(IntEnum):
    """Shared behaviour of op_t / msg_t: uint32 values, lossless for values outside the enum.

    The reference stores whatever number arrived (a C++ enum cast), e.g. so that a 306 reply can
    say "Unrecognized message operation: <5>". Values not named in the enum therefore become
    unnamed members carrying the number instead of raising.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if type(value) is int and 0 <= value <= _UINT32_MAX:
            member = int.__new__(cls, value)
            member._name_ = f"unrecognized_{value}"
            member._value_ = value
            return member
        return None

    @classmethod
    def _check(cls, value: Any, helper: str) -> None:
        if isinstance(value, _WireEnum) and not isinstance(value, cls):
            raise TypeError(f"{cls.__name__}.{helper}() got a {type(value).__name__}, "
                            f"expected {cls.__name__}")

    @classmethod
    def to_uint(cls, value: Any) -> int:
        """The numeric value that goes on the wire."""
        cls._check(value, "to_uint")
        return int(cls._coerce(value))

    @classmethod
    def to_string(cls, value: Any) -> str:
        """The lowercase name (``"get"``); DriplineError for a number the enum does not name."""
        cls._check(value, "to_string")
        member = cls._coerce(value)
        if member._name_ not in cls.__members__:
            raise DriplineError(f"{cls.__name__} value <{int(member)}> not recognized")
        return member._name_

    @classmethod
    def _coerce(cls, value: Any) -> Any:
        if isinstance(value, cls):
            return value
        cls._check(value, "conversion")
        if isinstance(value, bool):
            raise TypeError(f"{cls.__name__}: a bool is not an operation/type value")
        if isinstance(value, int):
            if not 0 <= value <= _UINT32_MAX:
                raise DriplineError(f"{cls.__name__} value <{value}> is not a uint32")
            return cls(int(value))
        if isinstance(value, (str, bytes)):
            text = value.decode() if isinstance(value, bytes) else value
            member = cls.__members__.get(text)
            if member is None:
                raise DriplineError(f"unable to map <{text}> to a {cls.__name__} value")
            return member
        raise TypeError(f"cannot convert {type(value).__name__} to {cls.__name__}")


class op_t(_WireEnum):
    """Request operations (the `message_operation` header)."""

    set = 0
    get = 1
    config = 6  # deprecated since dripline 2; kept so such numbers keep their reference name
    send = 7
    run = 8
    cmd = 9
    unknown = _UINT32_MAX

    @classmethod
    def to_op_t(cls, value: Any) -> op_t:
        """op_t from a number or a name (``"get"``); unknown names raise DriplineError."""
        return cls._coerce(value)


class msg_t(_WireEnum):
    """Message types (the `message_type` header)."""

    reply = 2
    request = 3
    alert = 4
    unknown = _UINT32_MAX

    @classmethod
    def to_msg_t(cls, value: Any) -> msg_t:
        """msg_t from a number or a name (``"reply"``); unknown names raise DriplineError."""
        return cls._coerce(value)


def to_op_t(value: Any) -> op_t:
    return op_t.to_op_t(value)


def to_msg_t(value: Any) -> msg_t:
    return msg_t.to_msg_t(value)


def to_uint(value: op_t | msg_t) -> int:
    if isinstance(value, _WireEnum):
        return int(value)
    raise TypeError(f"to_uint() expects an op_t or msg_t, got {type(value).__name__}")


def to_string(value: op_t | msg_t) -> str:
    if isinstance(value, _WireEnum):
        return type(value).to_string(value)
    raise TypeError(f"to_string() expects an op_t or msg_t, got {type(value).__name__}")


class UInt32(int):
    """An int that must be written to an AMQP table as ``i`` (unsigned 32-bit).

    dl-cpp <= 2.10.3 and >= 2.10.6 only interoperate when `message_type`, `message_operation` and
    `return_code` are unsigned 32-bit fields, while pika would write small ints as signed ``I``.
    The codec marks those values with this type and the AMQP layer honours the mark.
    """

    __slots__ = ()

    def __new__(cls, value: Any = 0) -> UInt32:
        self = int.__new__(cls, value)
        if not 0 <= self <= _UINT32_MAX:
            raise ValueError(f"{int(self)} does not fit in an unsigned 32-bit header field")
        return self

    def __repr__(self) -> str:
        return f"UInt32({int(self)})"


_MSG_T_U32 = {t: UInt32(t.value) for t in msg_t}
_OP_T_U32 = {o: UInt32(o.value) for o in op_t}
_RC_U32 = {v: UInt32(v) for v in range(1000)}


class _Encoding(str):
    """'application/json' that also answers ``.name == "json"`` like the reference's enum."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return "json" if self == _APP_JSON else str.__str__(self)


JSON_ENCODING = _Encoding(_APP_JSON)


# --------------------------------------------------------------------------------------------
# Transport-neutral envelope
# --------------------------------------------------------------------------------------------

@dataclass(slots=True)
class Properties:
    """The AMQP basic properties dripline uses (names identical to pika.BasicProperties)."""

    content_encoding: str | None = None
    correlation_id: str | None = None
    message_id: str | None = None
    reply_to: str | None = None
    headers: dict[str, Any] | None = None


@dataclass(slots=True)
class WireMessage:
    """One AMQP message to publish: a chunk of a dripline message."""

    routing_key: str
    body: bytes
    properties: Properties
    mandatory: bool = False


# --------------------------------------------------------------------------------------------
# sender_info and timestamps
# --------------------------------------------------------------------------------------------

def unknown_sender_info(service_name: str = "unknown") -> dict[str, Any]:
    """A complete `sender_info` that names nobody: what a message holds until its sender stamps
    its own (`dripline.client.identity`; a Core does it when it publishes).

    A new dict each time, so that changing one message's sender_info changes no other.
    """
    return {"exe": "unknown", "hostname": "unknown", "username": "unknown",
            "service_name": str(service_name), "versions": {}}


_ts_cache: tuple[int, str] = (-1, "")


def format_timestamp(time_ns: int) -> str:
    """The ``timestamp`` header for a UTC time given in nanoseconds since the epoch:
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. The caller reads the clock; the date part of the last second
    formatted is remembered (a message rate of thousands per second formats it once)."""
    global _ts_cache
    sec, ns = divmod(int(time_ns), 1_000_000_000)
    cached = _ts_cache
    if cached[0] != sec:
        cached = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
        _ts_cache = cached
    return f"{cached[1]}.{ns // 1000:06d}Z"


# --------------------------------------------------------------------------------------------
# Payload <-> JSON
# --------------------------------------------------------------------------------------------

_DUMP_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
# For large bodies, mapping every digit to b"0" and searching for 19 of them in a row is ~7x
# faster than the regex.
_DIGIT_MASK = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_NINETEEN_DIGITS = b"0" * 19


def _has_long_digit_run(body: bytes) -> bool:
    """True when the body may hold an integer beyond 64 bits (a run of >= 19 digits)."""
    if len(body) < 512:
        return _LONG_DIGITS.search(body) is not None
    return body.translate(_DIGIT_MASK).find(_NINETEEN_DIGITS) >= 0


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        try:
            return object.__repr__(value)
        except Exception:
            return "<unprintable>"


def _unconvertible(value: Any) -> str:
    logger.warning("payload value of type %s cannot be represented in JSON; sending str(value)",
                   type(value).__name__)
    return _safe_str(value)


def _orjson_default(value: Any) -> Any:
    to_python = getattr(value, "to_python", None)
    if to_python is not None and callable(to_python):
        return to_python()  # scarab Param
    if isinstance(value, timedelta):  # a duration goes out as seconds, the unit of YAML intervals
        return value.total_seconds()
    return _unconvertible(value)


def _plain_key(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return int.__repr__(int(key))
    if isinstance(key, float):
        return float.__repr__(float(key))
    return _safe_str(key)


def _to_plain(value: Any) -> Any:
    """Convert to JSON-representable plain data (slow path: only used when orjson refuses)."""
    t = type(value)
    if value is None or t is str or t is bool or t is int:
        return value
    if t is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_plain_key(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return str.__str__(value)
    to_python = getattr(value, "to_python", None)
    if to_python is not None and callable(to_python):
        return _to_plain(to_python())
    if isinstance(value, timedelta):
        return value.total_seconds()
    try:  # whatever orjson knows natively (datetime, UUID, enum, dataclass, numpy)
        return orjson.loads(orjson.dumps(value, option=_DUMP_OPTS))
    except (TypeError, ValueError):
        return _unconvertible(value)


def _json_text_bytes(plain: Any) -> bytes:
    text = _json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                       allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escape them instead of emitting bad UTF-8
        return _json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                           allow_nan=False).encode("ascii")


def dumps_payload(value: Any) -> bytes:
    """Compact, key-sorted JSON bytes of a payload (what rapidjson writes in the reference).

    Fast path: orjson. Fallback (ints beyond 64 bits, non-str dict keys, deep nesting, lone
    surrogates): a plain-data conversion and the stdlib encoder. Raises DriplineError only when
    the value cannot be serialised at all (e.g. circular).
    """
    try:
        return orjson.dumps(value, default=_orjson_default, option=_DUMP_OPTS)
    except TypeError:
        pass
    try:
        return _json_text_bytes(_to_plain(value))
    except (RecursionError, ValueError, TypeError) as exc:
        logger.warning("payload cannot be encoded as JSON (%s); sending str(payload)", exc)
        try:
            return _json_text_bytes(_safe_str(value))
        except Exception as exc2:  # pragma: no cover - str() itself recursing too deep
            raise DriplineError(f"payload could not be encoded as JSON: {exc2}") from exc
    except Exception as exc:
        raise DriplineError(f"payload could not be encoded as JSON: {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_payload(body: bytes) -> Any:
    """Parse a complete JSON body; raises ValueError/RecursionError when it is not valid JSON.

    orjson silently turns integers beyond 64 bits into floats, so bodies with long digit runs go
    through the stdlib parser, which keeps them exact.
    """
    if len(body) >= 19 and _has_long_digit_run(body):
        return _json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        # e.g. escaped lone surrogates, numbers beyond double range: the stdlib accepts them
        return _json.loads(body.decode("utf-8"), parse_constant=_reject_constant)


_payload_view = view


def _parse_body(body: bytes) -> tuple[Any, bool]:
    try:
        return _payload_view(loads_payload(body)), True
    except (ValueError, RecursionError, TypeError, MemoryError):
        return PayloadDict(invalid=body.decode("utf-8", "replace"),
                           error=_INVALID_BODY_ERROR), False


def _plain_payload(payload: Any) -> Any:
    t = type(payload)
    if payload is None or t is dict or t is list or t is str or t is int or t is float \
            or t is bool:
        return payload
    to_python = getattr(payload, "to_python", None)
    if to_python is not None and callable(to_python):
        return _payload_view(to_python())  # a scarab Param: reference-era code
    return payload


def _spec_text(spec: Specifier) -> str:
    """The specifier's text; a re-parsed Specifier (reference-style ``spec.parse(s)``) included."""
    return str.__str__(spec) if type(spec) is Specifier else spec.to_string()


_NO_PAYLOAD: Any = object()  # reply() called without a payload


# --------------------------------------------------------------------------------------------
# Lockout keys
# --------------------------------------------------------------------------------------------

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


def _parse_uuid_text(text: str) -> uuid.UUID | None:
    """Parse the forms dl-cpp accepts: hyphenated, 32 hex digits, either one in braces."""
    if not text or text == _NIL_STR:
        return NIL_UUID
    if len(text) in (34, 38) and text[0] == "{" and text[-1] == "}":
        text = text[1:-1]
    if len(text) == 36:
        if text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
            return None
        hexdigits = text[:8] + text[9:13] + text[14:18] + text[19:23] + text[24:]
    elif len(text) == 32:
        hexdigits = text
    else:
        return None
    if _HEX32.fullmatch(hexdigits) is None:
        return None
    return uuid.UUID(int=int(hexdigits, 16))


def _coerce_lockout_key(value: Any) -> uuid.UUID:
    """Setter semantics: UUID or str; anything unparsable raises DriplineError."""
    if value is None:
        return NIL_UUID
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        key = _parse_uuid_text(value)
        if key is not None:
            return key
    raise DriplineError(f"Lockout key [{value}] is not uuid format compliant.", 400)


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------

def new_id(entropy: bytes | None = None) -> str:
    """A version-4 UUID as text, made from 16 bytes of `entropy` (random bytes when None).

    str(uuid.uuid4()) in less than half the time (no UUID object); two per request. Ids are the
    one thing this module makes itself, and only when none is handed in: the reference's
    factories give every new request and alert a correlation id, and every sent message an id.
    Pass them (``correlation_id=``, ``encode(message_id=...)``) for reproducible messages.
    """
    b = bytearray(_urandom(16) if entropy is None else entropy[:16])
    if len(b) != 16:
        raise DriplineError(f"an id needs 16 bytes of entropy, got {len(b)}")
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _coerce_return_code(code: Any) -> int:
    if isinstance(code, int) and not isinstance(code, bool):
        value = int(code)
    elif hasattr(code, "value") and isinstance(getattr(code, "value"), int):
        value = int(code.value)  # ReturnCode object or DL_* class
    elif isinstance(code, str):
        from dripline.protocol.return_codes import code_value  # deferred: only for reference-era names
        value = int(code_value(code))
    else:
        raise DriplineError(f"return code must be an int or a ReturnCode, got {code!r}")
    if not 0 <= value <= _UINT32_MAX:
        raise DriplineError(f"return code {value} does not fit in an unsigned 32-bit field")
    return value


def _check_encoding(encoding: Any) -> None:
    if encoding is None:
        return
    name = getattr(encoding, "name", encoding)
    if name not in ("json", _APP_JSON):
        raise DriplineError(f"unsupported message encoding <{encoding}>; only JSON is supported")


class Message:
    """Fields common to requests, replies and alerts; payload is plain Python data.

    Payloads of decoded messages, of replies, and of messages created from a scarab Param are
    views (`dripline.protocol.payload`): the plain dict, list, str, int or float, also answering
    the reference's Param calls (``is_node()``, ``to_python()`` ...). Messages made by the
    reference's factories (``create()``, ``request.reply()``) answer them for every type, null
    and booleans included; a request or alert built with the constructor keeps the payload
    object it was given.

    `message_id` holds only the uuid part (no ``/i/N``); it is generated on the first `encode` when
    empty. `is_valid` is False when the body could not be parsed or chunks were missing (the
    payload then says why, as in the reference). Use the subclasses; a bare Message cannot be
    encoded.
    """

    __slots__ = ("routing_key", "correlation_id", "message_id", "reply_to", "timestamp",
                 "_specifier", "sender_info", "payload", "is_valid", "__weakref__")

    message_type: ClassVar[msg_t] = msg_t.unknown
    encoding: ClassVar[_Encoding] = JSON_ENCODING

    def __init__(self, payload: Any = None, routing_key: str = "", specifier: Any = "", *,
                 correlation_id: str = "", reply_to: str = "", message_id: str = "",
                 timestamp: str = "", sender_info: dict[str, Any] | None = None,
                 is_valid: bool = True) -> None:
        self._init_common(payload, routing_key, specifier, reply_to, correlation_id, message_id,
                          timestamp, sender_info, is_valid)

    def _init_common(self, payload: Any, routing_key: str, specifier: Any, reply_to: str,
                     correlation_id: str, message_id: str, timestamp: str,
                     sender_info: dict[str, Any] | None, is_valid: bool) -> None:
        self.routing_key = "" if routing_key is None else str(routing_key)
        self._specifier = Specifier(specifier)
        self.reply_to = "" if reply_to is None else str(reply_to)
        self.correlation_id = "" if correlation_id is None else str(correlation_id)
        self.message_id = message_id or ""
        self.timestamp = timestamp or ""
        self.sender_info = unknown_sender_info() if sender_info is None else sender_info
        self.payload = _plain_payload(payload)
        self.is_valid = bool(is_valid)

    # -- reference-style accessors -------------------------------------------------------
    @property
    def specifier(self) -> Specifier:
        return self._specifier

    @specifier.setter
    def specifier(self, value: Any) -> None:
        self._specifier = Specifier(value)

    def is_request(self) -> bool:
        return False

    def is_reply(self) -> bool:
        return False

    def is_alert(self) -> bool:
        return False

    # -- encoding -------------------------------------------------------------------------
    def _extra_headers(self, headers: dict[str, Any]) -> None:
        pass

    def _extra_fields(self, fields: dict[str, Any]) -> None:
        pass

    def encode(self, max_payload_size: int | None = DEFAULT_MAX_PAYLOAD_SIZE, *,
               timestamp: str | None = None, message_id: str | None = None
               ) -> list[WireMessage]:
        """The AMQP messages (one per chunk, in order) that carry this message.

        Writes what the message holds: its `sender_info` and `timestamp`, or the `timestamp` and
        `message_id` handed in here, which are then kept on the message (the sender, not the
        codec, reads the clock: `dripline.client.identity.now_timestamp`). A message without a
        `message_id` gets a new random one, as the reference gives every sent message.
        """
        mtype = self.message_type
        if mtype is msg_t.unknown:
            raise DriplineError("a plain Message cannot be sent; use MsgRequest/MsgReply/MsgAlert")
        if max_payload_size is not None:
            max_payload_size = int(max_payload_size)
            if max_payload_size < 1:
                raise DriplineError(f"max_payload_size must be positive, got {max_payload_size}")
        body = dumps_payload(self.payload)
        if message_id is not None:
            self.message_id = str(message_id)
        base_id = self.message_id
        if not base_id:
            base_id = self.message_id = new_id()
        if timestamp is not None:
            self.timestamp = str(timestamp)
        timestamp = self.timestamp
        sender_info = self.sender_info
        if sender_info is None:
            sender_info = self.sender_info = unknown_sender_info()
        headers = {
            "message_type": _MSG_T_U32[mtype],
            "specifier": _spec_text(self._specifier),
            "timestamp": timestamp,
            "sender_info": sender_info,
        }
        self._extra_headers(headers)
        routing_key = self.routing_key
        correlation_id = self.correlation_id or ""
        reply_to = self.reply_to or ""
        mandatory = mtype is msg_t.request
        size = len(body)
        if max_payload_size is None or size <= max_payload_size:
            return [WireMessage(routing_key, body,
                                Properties(_APP_JSON, correlation_id, base_id + "/0/1", reply_to,
                                           headers), mandatory)]
        n_chunks = -(-size // max_payload_size)
        suffix = f"/{n_chunks}"
        prefix = base_id + "/"
        return [WireMessage(routing_key, body[i * max_payload_size:(i + 1) * max_payload_size],
                            Properties(_APP_JSON, correlation_id, f"{prefix}{i}{suffix}",
                                       reply_to, headers), mandatory)
                for i in range(n_chunks)]

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain data (the reference's message param)."""
        fields = {
            "routing_key": self.routing_key,
            "specifier": _spec_text(self._specifier),
            "correlation_id": self.correlation_id,
            "message_id": self.message_id,
            "reply_to": self.reply_to,
            "message_type": int(self.message_type),
            "encoding": _APP_JSON,
            "timestamp": self.timestamp,
            "sender_info": self.sender_info,
            "payload": self.payload,
        }
        self._extra_fields(fields)
        return fields

    def encode_full_message(self, max_size: int | None = None) -> str:
        """The whole message as compact JSON (what `dl-agent --json-print` shows)."""
        text = dumps_payload(self.to_dict()).decode("utf-8")
        if max_size is not None and len(text) > max_size:
            text = text[:max_size]
        return text

    def __repr__(self) -> str:
        payload = repr(self.payload)
        if len(payload) > 200:
            payload = payload[:200] + "..."
        return (f"{type(self).__name__}(routing_key={self.routing_key!r}, "
                f"specifier={str(self._specifier)!r}, correlation_id={self.correlation_id!r}"
                f"{self._repr_extra()}, payload={payload})")

    def _repr_extra(self) -> str:
        return ""


class MsgRequest(Message):
    """A get/set/cmd request. `lockout_key` is a uuid.UUID (nil when none)."""

    __slots__ = ("message_operation", "_lockout_key", "lockout_key_valid")

    message_type: ClassVar[msg_t] = msg_t.request

    def __init__(self, payload: Any = None, message_operation: Any = op_t.unknown,
                 routing_key: str = "", specifier: Any = "", reply_to: str = "", *,
                 lockout_key: Any = None, correlation_id: str | None = None,
                 message_id: str = "", timestamp: str = "",
                 sender_info: dict[str, Any] | None = None, is_valid: bool = True) -> None:
        self._init_common(payload, routing_key, specifier, reply_to,
                          new_id() if correlation_id is None else correlation_id,
                          message_id, timestamp, sender_info, is_valid)
        self.message_operation = (message_operation if type(message_operation) is op_t
                                  else op_t.to_op_t(message_operation))
        self._lockout_key = NIL_UUID if lockout_key is None else _coerce_lockout_key(lockout_key)
        self.lockout_key_valid = True

    @classmethod
    def create(cls, payload: Any = None, msg_op: Any = op_t.unknown, routing_key: str = "",
               specifier: Any = "", reply_to: str = "", encoding: Any = None, *,
               lockout_key: Any = None, correlation_id: str | None = None,
               sender_info: dict[str, Any] | None = None) -> MsgRequest:
        """Reference-compatible factory (positional order as in dripline-python)."""
        _check_encoding(encoding)
        request = cls(payload, msg_op, routing_key, specifier, reply_to, lockout_key=lockout_key,
                      correlation_id=correlation_id, sender_info=sender_info)
        request.payload = reference_view(request.payload)
        return request

    @property
    def lockout_key(self) -> uuid.UUID:
        return self._lockout_key

    @lockout_key.setter
    def lockout_key(self, value: Any) -> None:
        self._lockout_key = _coerce_lockout_key(value)
        self.lockout_key_valid = True

    def is_request(self) -> bool:
        return True

    def reply(self, return_code: Any = 0, return_message: str = "",
              payload: Any = _NO_PAYLOAD) -> MsgReply:
        """The reply to this request: routed to its reply_to, same correlation id.

        Without a payload (the reference's default, a null Param) the reply's payload is the
        null view, which answers ``is_null()``; an explicit None stays None.
        """
        reply = MsgReply(return_code, return_message,
                         None if payload is _NO_PAYLOAD else payload, self.reply_to, "",
                         correlation_id=self.correlation_id)
        if payload is _NO_PAYLOAD:
            reply.payload = NULL_PAYLOAD
        return reply

    def _extra_headers(self, headers: dict[str, Any]) -> None:
        op = self.message_operation
        u32 = _OP_T_U32.get(op)
        headers["message_operation"] = u32 if u32 is not None else UInt32(op)
        key = self._lockout_key
        headers["lockout_key"] = _NIL_STR if key is NIL_UUID else str(key)

    def _extra_fields(self, fields: dict[str, Any]) -> None:
        fields["message_operation"] = int(self.message_operation)
        fields["lockout_key"] = str(self._lockout_key)

    def _repr_extra(self) -> str:
        return f", message_operation={self.message_operation.name}"


class MsgReply(Message):
    """A reply: return code + message + payload, routed to the request's reply_to."""

    __slots__ = ("return_code", "return_message")

    message_type: ClassVar[msg_t] = msg_t.reply

    def __init__(self, return_code: Any = 0, return_message: str = "", payload: Any = None,
                 routing_key: str = "", specifier: Any = "", *, correlation_id: str = "",
                 reply_to: str = "", message_id: str = "", timestamp: str = "",
                 sender_info: dict[str, Any] | None = None, is_valid: bool = True) -> None:
        self._init_common(payload, routing_key, specifier, reply_to, correlation_id,
                          message_id, timestamp, sender_info, is_valid)
        self.payload = _payload_view(self.payload)  # reply.payload.to_python(), as in reference
        self.return_code = _coerce_return_code(return_code)
        self.return_message = "" if return_message is None else str(return_message)

    @classmethod
    def create(cls, return_code: Any = 0, return_message: str = "", payload: Any = None,
               routing_key: Any = "", specifier: Any = "", encoding: Any = None, *,
               msg_request: MsgRequest | None = None, correlation_id: str = "",
               sender_info: dict[str, Any] | None = None) -> MsgReply:
        """Reference-compatible factory.

        ``create(code, message, payload, routing_key="", specifier="")`` or
        ``create(code, message, payload, msg_request)``: the second form answers `msg_request`
        (routing key = its reply_to, correlation id copied, empty specifier).
        """
        _check_encoding(encoding)
        if isinstance(routing_key, MsgRequest):
            msg_request, routing_key = routing_key, ""
        if msg_request is not None:
            reply = cls(return_code, return_message, payload, msg_request.reply_to, "",
                        correlation_id=msg_request.correlation_id, sender_info=sender_info)
        else:
            reply = cls(return_code, return_message, payload, routing_key, specifier,
                        correlation_id=correlation_id, sender_info=sender_info)
        reply.payload = reference_view(reply.payload)
        return reply

    def is_reply(self) -> bool:
        return True

    def _extra_headers(self, headers: dict[str, Any]) -> None:
        code = self.return_code
        u32 = _RC_U32.get(code)
        headers["return_code"] = u32 if u32 is not None else UInt32(code)
        headers["return_message"] = self.return_message

    def _extra_fields(self, fields: dict[str, Any]) -> None:
        fields["return_code"] = self.return_code
        fields["return_message"] = self.return_message

    def _repr_extra(self) -> str:
        return f", return_code={self.return_code}, return_message={self.return_message!r}"


class MsgAlert(Message):
    """A broadcast alert (sensor values, heartbeats, status messages)."""

    __slots__ = ()

    message_type: ClassVar[msg_t] = msg_t.alert

    def __init__(self, payload: Any = None, routing_key: str = "", specifier: Any = "", *,
                 correlation_id: str | None = None, reply_to: str = "", message_id: str = "",
                 timestamp: str = "", sender_info: dict[str, Any] | None = None,
                 is_valid: bool = True) -> None:
        self._init_common(payload, routing_key, specifier, reply_to,
                          new_id() if correlation_id is None else correlation_id,
                          message_id, timestamp, sender_info, is_valid)

    @classmethod
    def create(cls, payload: Any = None, routing_key: str = "", specifier: Any = "",
               encoding: Any = None, *, sender_info: dict[str, Any] | None = None) -> MsgAlert:
        """Reference-compatible factory."""
        _check_encoding(encoding)
        alert = cls(payload, routing_key, specifier, sender_info=sender_info)
        alert.payload = reference_view(alert.payload)
        return alert

    def is_alert(self) -> bool:
        return True


_CLASS_FOR_TYPE: dict[msg_t, type[Message]] = {
    msg_t.request: MsgRequest, msg_t.reply: MsgReply, msg_t.alert: MsgAlert,
}
_MSG_T_BY_VALUE: dict[int, msg_t] = {int(t): t for t in _CLASS_FOR_TYPE}
_OP_T_BY_VALUE: dict[int, op_t] = {int(o): o for o in op_t}
_EMPTY_SPECIFIER = Specifier("")
_str_new = str.__new__


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

_Context = tuple  # (routing_key, reply_to, correlation_id, message_type | None)


def _decode_error(message: str, return_code: int, ctx: _Context | None) -> DecodeError:
    error = DecodeError(message, return_code)
    routing_key, reply_to, correlation_id, message_type = ctx or (None, None, None, None)
    error.routing_key = routing_key
    error.reply_to = reply_to
    error.correlation_id = correlation_id
    error.message_type = message_type
    return error


def _loose_text(value: Any, default: str = "") -> str:
    """Text from an AMQP property or informational field: bytes decoded, other types str()'d."""
    if value is None:
        return default
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return _safe_str(value)


def _header_text(headers: dict[str, Any], key: str, ctx: _Context) -> str:
    value = headers.get(key)
    if value is None:
        return ""
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    raise _decode_error(f"header '{key}' must be a string, got {type(value).__name__}", 302, ctx)


def _header_uint(headers: dict[str, Any], key: str, default: int, ctx: _Context,
                 signed_ok: bool = True) -> int:
    value = headers.get(key)
    if value is None:
        return default
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _decode_error(f"header '{key}' must be an integer, got "
                                f"{type(value).__name__}", 302, ctx)
        value = int(value)
    if 0 <= value <= _UINT32_MAX:
        return value
    if signed_ok and -0x80000000 <= value < 0:  # a signed 32-bit writer (dl-cpp 2.10.4/5)
        return value + 0x100000000
    if value < 0:
        raise _decode_error(f"header '{key}' value {value} is negative; it is an unsigned "
                            f"32-bit field (0 to {_UINT32_MAX})", 302, ctx)
    raise _decode_error(f"header '{key}' value {value} does not fit in 32 bits", 302, ctx)


def _version_entry(entry: Any) -> dict[str, str] | None:
    if isinstance(entry, dict):
        out = {"version": _loose_text(entry.get("version"))}
        for key in ("commit", "package"):
            value = entry.get(key)
            if value is not None and value != "":
                out[key] = _loose_text(value)
        return out
    if isinstance(entry, (str, bytes, bytearray)):
        return {"version": _loose_text(entry)}
    return None


def _sender_info_from(value: Any) -> dict[str, Any]:
    """sender_info as a complete dict; missing pieces are filled in (the reference drops the
    whole message instead)."""
    if type(value) is dict:
        versions = value.get("versions")
        if (type(value.get("exe")) is str and type(value.get("hostname")) is str
                and type(value.get("username")) is str and type(value.get("service_name")) is str
                and type(versions) is dict):
            for entry in versions.values():
                if type(entry) is not dict or type(entry.get("version")) is not str:
                    break
            else:
                return value
    if not isinstance(value, dict):
        if value is not None:
            logger.debug("sender_info is a %s, not a table; using defaults", type(value).__name__)
        value = {}
    info: dict[str, Any] = {key: _loose_text(value.get(key), "unknown")
                            for key in ("exe", "hostname", "username", "service_name")}
    versions_out: dict[str, dict[str, str]] = {}
    versions = value.get("versions")
    if isinstance(versions, dict):
        for name, entry in versions.items():
            converted = _version_entry(entry)
            if converted is not None:
                versions_out[_loose_text(name)] = converted
    info["versions"] = versions_out
    return info


def _timestamp_header(headers: dict[str, Any], ctx: _Context) -> str:
    value = headers.get("timestamp")
    if type(value) is str:
        return value
    if value is not None and hasattr(value, "strftime") and not isinstance(value, str):
        try:  # an AMQP timestamp field from a foreign writer
            return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except Exception:
            pass
    return _header_text(headers, "timestamp", ctx)


def _lockout_from_header(value: Any) -> tuple[uuid.UUID, bool]:
    if value is None:
        return NIL_UUID, True
    if type(value) is not str:
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value).decode("utf-8", "replace")
        elif isinstance(value, str):
            value = str.__str__(value)
        else:
            return NIL_UUID, False
    key = _parse_uuid_text(value)
    if key is None:
        return NIL_UUID, False
    return key, True


def _decode_envelope(routing_key: Any, properties: Any) -> Message:
    """Everything but the payload, from the properties of a (first) chunk."""
    if type(routing_key) is not str:
        routing_key = _loose_text(routing_key)
    reply_to = getattr(properties, "reply_to", None)
    if type(reply_to) is not str:
        reply_to = _loose_text(reply_to)
    correlation_id = getattr(properties, "correlation_id", None)
    if type(correlation_id) is not str:
        correlation_id = _loose_text(correlation_id)
    headers = getattr(properties, "headers", None)
    if headers is None:
        headers = {}
    elif not isinstance(headers, dict):
        raise _decode_error(f"message headers must be a table, got {type(headers).__name__}",
                            302, (routing_key, reply_to, correlation_id, None))

    type_error: DecodeError | None = None
    mtype: msg_t | None = None
    try:
        raw_type = _header_uint(headers, "message_type", _UINT32_MAX,
                                (routing_key, reply_to, correlation_id, None))
        mtype = _MSG_T_BY_VALUE.get(raw_type)
        if mtype is None:
            type_error = _decode_error(
                "message_type header missing" if "message_type" not in headers
                else f"Message received with unhandled type: {raw_type}",
                302, (routing_key, reply_to, correlation_id, None))
    except DecodeError as exc:
        type_error = exc
    ctx = (routing_key, reply_to, correlation_id, mtype)

    encoding = getattr(properties, "content_encoding", None)
    if encoding != _APP_JSON:
        encoding_text = _loose_text(encoding)
        if encoding_text.strip().lower() != _APP_JSON:
            raise _decode_error(f"Unable to parse message with content encoding "
                                f"<{encoding_text}>", 301, ctx)
    if type_error is not None:
        type_error.message_type = mtype
        raise type_error

    cls = _CLASS_FOR_TYPE[mtype]  # type: ignore[index]
    msg = cls.__new__(cls)
    msg.routing_key = routing_key
    msg.reply_to = reply_to
    msg.correlation_id = correlation_id
    message_id = getattr(properties, "message_id", None)
    if type(message_id) is not str:
        message_id = _loose_text(message_id)
    msg.message_id = message_id.partition("/")[0]
    specifier = headers.get("specifier")
    if type(specifier) is not str:
        specifier = _header_text(headers, "specifier", ctx)
    msg._specifier = _EMPTY_SPECIFIER if not specifier else _str_new(Specifier, specifier)
    msg.timestamp = _timestamp_header(headers, ctx)
    msg.sender_info = _sender_info_from(headers.get("sender_info"))
    msg.payload = None
    msg.is_valid = True
    if isinstance(msg, MsgRequest):
        op_value = _header_uint(headers, "message_operation", _UINT32_MAX, ctx)
        operation = _OP_T_BY_VALUE.get(op_value)
        msg.message_operation = op_t(op_value) if operation is None else operation
        msg._lockout_key, msg.lockout_key_valid = _lockout_from_header(headers.get("lockout_key"))
    elif isinstance(msg, MsgReply):
        msg.return_code = _header_uint(headers, "return_code", 999, ctx, signed_ok=False)
        msg.return_message = _header_text(headers, "return_message", ctx)
    return msg


def _body_bytes(body: Any) -> bytes:
    if type(body) is bytes:
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    if body is None:
        return b""
    raise TypeError(f"message body must be bytes, got {type(body).__name__}")


def _context_of(routing_key: Any, properties: Any) -> _Context:
    """Best-effort reply information for an error raised outside _decode_envelope."""
    try:
        headers = getattr(properties, "headers", None)
        mtype = None
        if isinstance(headers, dict):
            raw = headers.get("message_type")
            if type(raw) is int and raw in _CLASS_FOR_TYPE:
                mtype = msg_t(raw)
        return (_loose_text(routing_key), _loose_text(getattr(properties, "reply_to", None)),
                _loose_text(getattr(properties, "correlation_id", None)), mtype)
    except Exception:
        return (None, None, None, None)


def _wrap_unexpected(exc: Exception, routing_key: Any, properties: Any) -> DecodeError:
    logger.debug("unexpected error while decoding a message", exc_info=True)
    return _decode_error(f"Unable to decode message: {type(exc).__name__}: {exc}", 302,
                         _context_of(routing_key, properties))


def decode(routing_key: Any, body: Any, properties: Any) -> Message:
    """Decode one complete message (single chunk or reassembled body).

    Raises only DecodeError (with `.reply_to`, `.correlation_id`, `.message_type`,
    `.routing_key` set as far as they could be read). A body that is not valid JSON is *not* an
    error: the message comes back with ``is_valid=False`` and the reference's error payload.
    """
    try:
        msg = _decode_envelope(routing_key, properties)
        msg.payload, msg.is_valid = _parse_body(_body_bytes(body))
        return msg
    except DecodeError:
        raise
    except Exception as exc:
        raise _wrap_unexpected(exc, routing_key, properties) from exc
