"""AMQP header tables as dripline writes them: unsigned 32-bit integers, and a faster codec.

dripline-cpp reads ``message_type``, ``message_operation`` and ``return_code`` as unsigned 32-bit
header fields, where pika writes Python ints as signed; the codec marks those ints as ``UInt32``
and the encoder below writes them as AMQP ``i``. Importing this module installs the codec into
pika (idempotently: the originals are kept once, on ``pika.data``); `dripline.transport.connection`
imports it, so every process that talks to a broker uses it.
"""
from __future__ import annotations

import struct
from typing import Any

import pika.data

from dripline.protocol.message import UInt32

__all__ = ["install"]


#
# Besides writing UInt32 as AMQP ``i``, these replacements of pika's table functions exist for
# speed: bench/request_reply.py showed pika's table codec as the largest single cost of a dripline
# message on both ends (every header value goes through a chain of isinstance tests, and the
# nested 11-key sender_info table is encoded for every message sent and decoded for every message
# received). The output is byte-identical to pika's and the decoded values are identical: the
# common field types (str, nested table, uint32) are handled directly, every other type by pika's
# own functions. In addition:
# * a nested table that is sent again and again as the *same dict object* (a service's
#   sender_info) is encoded once; it is encoded afresh when its content was changed in place;
# * a nested table received again with the same bytes (a peer's sender_info) is decoded once and
#   handed out as a fresh copy each time.
_originals = getattr(pika.data, "_dripline_originals", None)
if _originals is None:  # keep pika's functions even if this module is imported twice
    _originals = (pika.data.encode_value, pika.data.encode_table, pika.data.decode_table,
                  pika.data.decode_value)
    pika.data._dripline_originals = _originals
_pika_encode_value, _pika_encode_table, _pika_decode_table, _pika_decode_value = _originals

_pack_B = struct.Struct("B").pack
_pack_I = struct.Struct(">I").pack
_pack_cI = struct.Struct(">cI").pack
_unpack_B = struct.Struct("B").unpack_from
_unpack_I = struct.Struct(">I").unpack_from

_TABLE_CACHE_SIZE = 32
_encoded_tables: dict[int, tuple[dict, dict, bytes]] = {}  # id -> (table, snapshot, b"F"+table)
_seen_tables: dict[int, dict] = {}  # id -> table sent once (cached when sent a second time)
_decoded_tables: dict[bytes, dict] = {}  # encoded nested table -> decoded (never handed out)
_IMMUTABLE_LEAVES = frozenset((str, bytes, int, bool, type(None)))
_TEXT_LEAVES = frozenset((str, type(None)))  # == between these implies the same encoding


def _encode_value(pieces: list, value: Any) -> int:
    t = type(value)
    if t is str:
        data = value.encode("UTF-8")
        pieces.append(_pack_cI(b"S", len(data)))
        pieces.append(data)
        return 5 + len(data)
    if t is UInt32:
        pieces.append(_pack_cI(b"i", value))
        return 5
    if t is dict:
        return _encode_nested_table(pieces, value)
    return _pika_encode_value(pieces, value)


def _encode_table(pieces: list, table: Any) -> int:
    table = table or {}
    length_index = len(pieces)
    pieces.append(None)
    size = 0
    for key, value in table.items():
        data = key if isinstance(key, bytes) else key.encode("UTF-8")
        n = len(data)
        if n > 255:
            raise pika.exceptions.ShortStringTooLong(data)
        pieces.append(_pack_B(n))
        pieces.append(data)
        size += 1 + n + _encode_value(pieces, value)
    pieces[length_index] = _pack_I(size)
    return size + 4


def _plain_table(table: dict, leaves: frozenset) -> bool:
    """Only str keys, leaves of the given types and nested plain dicts of the same kind.

    With text leaves (str, None), equality with a snapshot proves that a table would encode to
    the same bytes (unlike e.g. 1 == True == 1.0); with immutable leaves a copy of the nesting
    is a complete copy.
    """
    for key, value in table.items():
        if type(key) is not str:
            return False
        if type(value) is dict:
            if not _plain_table(value, leaves):
                return False
        elif type(value) not in leaves:
            return False
    return True


def _copy_table(table: dict) -> dict:
    return {k: (_copy_table(v) if type(v) is dict else v) for k, v in table.items()}


def _encode_nested_table(pieces: list, table: dict) -> int:
    key = id(table)
    hit = _encoded_tables.get(key)
    if hit is not None and hit[0] is table and table == hit[1]:
        pieces.append(hit[2])
        return len(hit[2])
    sub: list = [b"F"]
    _encode_table(sub, table)
    data = b"".join(sub)
    if (hit is not None and hit[0] is table) or _seen_tables.get(key) is table:
        if _plain_table(table, _TEXT_LEAVES):  # equality then detects every change
            if len(_encoded_tables) >= _TABLE_CACHE_SIZE:
                _encoded_tables.clear()
            _encoded_tables[key] = (table, _copy_table(table), data)
    else:
        if len(_seen_tables) >= _TABLE_CACHE_SIZE:
            _seen_tables.clear()
        _seen_tables[key] = table
    pieces.append(data)
    return len(data)


def _decode_table(encoded: bytes, offset: int) -> tuple[dict, int]:
    result: dict = {}
    key: Any
    value: Any
    tablesize = _unpack_I(encoded, offset)[0]
    offset += 4
    limit = offset + tablesize
    while offset < limit:
        length = _unpack_B(encoded, offset)[0]
        offset += 1
        key = encoded[offset:offset + length]
        try:
            key = key.decode("utf8")
        except UnicodeDecodeError:
            pass
        offset += length
        kind = encoded[offset:offset + 1]
        if kind == b"S":
            length = _unpack_I(encoded, offset + 1)[0]
            offset += 5
            value = encoded[offset:offset + length]
            try:
                value = value.decode("utf8")
            except UnicodeDecodeError:
                pass
            offset += length
        elif kind == b"i":
            value = _unpack_I(encoded, offset + 1)[0]
            offset += 5
        elif kind == b"F":
            start = offset + 1
            end = start + 4 + _unpack_I(encoded, start)[0]
            raw = encoded[start:end]
            known = _decoded_tables.get(raw)
            if known is not None:
                value, offset = _copy_table(known), end
            else:
                value, offset = _decode_table(encoded, start)
                if offset == end and _plain_table(value, _IMMUTABLE_LEAVES):
                    if len(_decoded_tables) >= _TABLE_CACHE_SIZE:
                        _decoded_tables.clear()
                    _decoded_tables[raw] = _copy_table(value)
        else:
            value, offset = _pika_decode_value(encoded, offset)
        result[key] = value
    return result, offset




def install() -> None:
    """Make pika use this module's table codec (done at import; calling again changes nothing)."""
    pika.data.encode_value = _encode_value
    pika.data.encode_table = _encode_table
    pika.data.decode_table = _decode_table


install()
