"""The one client pipeline against the real broker: AsyncInterface is the implementation, Interface
its blocking face over the bridge, and Core stamps what it sends with this process's identity."""
from __future__ import annotations

import asyncio
import re
import threading

import pytest

from dripline.client.identity import process_identity
from dripline.client.interface import AsyncInterface, Interface
from dripline.protocol.errors import TimeoutError_, UnableToSendError
from dripline.protocol.message import decode
from dripline.testing import test_mesh, unique_name

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Silent:
    """A key that is bound (requests are routable) but never answered: what it receives is kept."""

    def __init__(self) -> None:
        self.key = unique_name("silent")
        self.received: list = []
        self.arrived = threading.Event()

    def on_delivery(self, routing_key, body, properties, ack) -> None:
        self.received.append(decode(routing_key, body, properties))
        self.arrived.set()


@pytest.fixture
def silent():
    """A Silent key watched by an AsyncInterface of its own (as dl-mon watches), on a loop thread."""
    from dripline.transport.bridge import LoopThread
    thread = LoopThread("silent")
    watcher = AsyncInterface(dripline_mesh=test_mesh(), name="silent-watcher")
    s = Silent()
    queue = thread.run(watcher.watch(unique_name("monitor"), [f"{s.key}.#"], [], s.on_delivery))
    try:
        yield s
    finally:
        thread.run(watcher.unwatch(queue))
        thread.run(watcher.close())
        thread.stop()


def test_interface_settings_are_the_implementations_and_timeouts_come_from_the_tracker(silent):
    with Interface(dripline_mesh=test_mesh()) as dl:
        dl.timeout_s = 0.3  # changed after construction: still applies
        assert dl._async.timeout_s == 0.3
        with pytest.raises(TimeoutError_) as info:
            dl.get(silent.key)
        assert f"no reply from '{silent.key}' within 0.3 s" in str(info.value)
        assert info.value.return_code == 404
        assert len(dl.core._pending) == 0
        with pytest.raises(UnableToSendError):
            dl.get(unique_name("nobody"))


def test_what_a_client_sends_carries_this_process_and_the_time(silent):
    with Interface(dripline_mesh=test_mesh()) as dl:
        with pytest.raises(TimeoutError_):
            dl.cmd(silent.key, "anything", [1], timeout_s=0.2)
    assert silent.arrived.wait(10)
    request = silent.received[0]
    me = process_identity()
    assert request.sender_info["exe"] == me.exe and request.sender_info["hostname"] == me.hostname
    assert request.sender_info["service_name"] == "unknown"  # a client, not a service
    assert request.sender_info["versions"]["dripline"] == {"version": "3.0.0"}
    assert TIMESTAMP.match(request.timestamp)
    assert request.payload == {"values": [1]}


def test_a_cancelled_request_is_forgotten_and_a_late_reply_dropped(silent):
    async def go():
        async with AsyncInterface(dripline_mesh=test_mesh()) as dl:
            task = asyncio.ensure_future(dl.get(silent.key, timeout_s=0))  # no deadline at all
            while not silent.received:
                await asyncio.sleep(0.01)
            assert len(dl.core._pending) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            return len(dl.core._pending)
    assert asyncio.run(go()) == 0


def test_async_and_blocking_clients_read_the_same_endpoint_alike(dl_endpoint):
    ep = dl_endpoint("KeyValueStore", initial_value=2.5)

    async def read():
        async with AsyncInterface(dripline_mesh=test_mesh()) as dl:
            return await dl.get(ep.name), await dl.get("broadcast", specifier="name", timeout_s=1)
    value, everyone = asyncio.run(read())
    assert value == {"value_raw": 2.5}
    assert everyone[ep.service.name] == {"values": [ep.service.name]}
    with Interface(dripline_mesh=test_mesh()) as dl:
        assert dl.get(ep.name) == value
        assert dl.get("broadcast", specifier="name", timeout_s=1)[ep.service.name] == \
            {"values": [ep.service.name]}
