"""Where the reassembly limits come from (keyword < mesh < defaults), and the per-process budget."""
from __future__ import annotations

import asyncio

import pytest

from dripline.client.session import Core
from dripline.core import Service
from dripline.protocol.chunks import DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_PENDING_BYTES, PACK_OVERHEAD
from dripline.protocol.errors import ConfigError, DecodeError
from dripline.protocol.message import MsgRequest, Properties, op_t
from dripline.settings.mesh import mesh_config
from dripline.transport.receiver import ChunkReceiver, process_budget


def test_defaults():
    core = Core(make_connection=False)
    assembler = core._replies.assembler
    assert assembler.max_message_size == DEFAULT_MAX_MESSAGE_SIZE
    assert assembler.budget is process_budget() and assembler.budget.limit == DEFAULT_MAX_PENDING_BYTES


def test_mesh_block_sets_the_limits():
    core = Core({"max_message_size": 5000, "max_pending_bytes": "900000"}, make_connection=False)
    assembler = core._replies.assembler
    assert assembler.max_message_size == 5000 and assembler.budget.limit == 900_000


def test_mesh_limits_are_checked():
    with pytest.raises(ConfigError, match="max_pending_bytes"):
        mesh_config({"max_pending_bytes": 0})


def test_service_keywords_override_the_mesh_and_reach_every_receiver():
    svc = Service("dry", make_connection=False, max_message_size=7000, max_pending_bytes=800_000,
                  dripline_mesh={"max_message_size": 5000})
    for assembler in (svc.runtime.receiver.assembler, svc.core._replies.assembler):
        assert assembler.max_message_size == 7000
        assert assembler.budget is process_budget(800_000)  # one budget for the whole process
    with pytest.raises(ConfigError, match="max_pending_bytes"):
        Service("dry", make_connection=False, max_pending_bytes="lots")


async def test_receiver_hands_over_what_it_gives_up_and_releases_it():
    given_up = []
    receiver = ChunkReceiver(given_up.append, wait_s=0.01, max_pending_bytes=10 ** 6)
    req = MsgRequest.create("x" * 50, op_t.set, "svc", "", "rq")
    first = req.encode(20)[0]
    assert receiver.feed(first.routing_key, first.body, first.properties) is None
    assert receiver.assembler.held_bytes == 20 + PACK_OVERHEAD
    for _ in range(200):
        if given_up:
            break
        await asyncio.sleep(0.01)
    (incomplete,) = given_up
    assert incomplete.message.correlation_id == req.correlation_id and incomplete.missing == "1-2"
    assert receiver.assembler.held_bytes == 0
    # a refused chunk: DecodeError to the caller, nothing held, the timer still works afterwards
    with pytest.raises(DecodeError):
        receiver.feed("svc", b"", Properties("application/json", "c", "m/0/4294967296", "rq", {}))
    receiver.close()


def test_close_gives_the_bytes_back():
    budget = process_budget(123_457)
    receiver = ChunkReceiver(lambda inc: None, max_pending_bytes=123_457)
    req = MsgRequest.create("y" * 50, op_t.set, "svc", "", "rq")
    first = req.encode(20)[0]

    async def feed():
        receiver.feed(first.routing_key, first.body, first.properties)
    asyncio.run(feed())
    assert budget.held == 20 + PACK_OVERHEAD
    receiver.close()
    assert budget.held == 0
