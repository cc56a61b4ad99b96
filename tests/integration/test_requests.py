"""Requests through the real broker: Interface, AsyncInterface, services, errors, chunking."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dripline.core import Service
from dripline.protocol.errors import ConnectionError_, DriplineError, TimeoutError_, UnableToSendError
from dripline.client.interface import AsyncInterface, Interface
from dripline.testing import test_mesh, unique_name

from .gates import Gate, RawRequests, wait_for
from .endpoints import AsyncEcho, Echo


def make_service(name=None, **kwargs):
    svc = Service(name or unique_name("svc"), dripline_mesh=test_mesh(), heartbeat_interval_s=0, **kwargs)
    return svc


@pytest.fixture
def echo_service(dl_service):
    svc = make_service()
    ep = Echo(name=unique_name("echo"))
    svc.add_child(ep)
    svc.add_async_child(AsyncEcho(name=unique_name("aecho")))
    dl_service(svc)
    return svc, ep.name


def test_get_set_cmd_round_trip(echo_service, dl_interface):
    svc, ep = echo_service
    assert dl_interface.set(ep, 0.5) == {"value": 0.5}
    assert dl_interface.get(ep) == {"value": 0.5}
    assert dl_interface.get(ep, specifier="value") == {"values": [0.5]}
    assert dl_interface.cmd(ep, "add", [2, 3]) == 5
    assert dl_interface.cmd(ep, "echo", [1, "x"], {"k": None}) == {"args": [1, "x"], "kwargs": {"k": None}}


def test_service_itself_answers_ping_and_specifier(echo_service, dl_interface):
    svc, _ = echo_service
    assert dl_interface.get(svc.name, specifier="name") == {"values": [svc.name]}
    reply = dl_interface.send_request(_request("cmd", svc.name, "ping"), 5)
    assert reply.return_code == 0 and reply.return_message.startswith("Hello, ")


def _request(op, rk, spec=None, payload=None):
    from dripline.client.request_sender import build_request
    from dripline.protocol.message import op_t
    return build_request(op_t[op], rk, spec, payload)


async def test_async_interface_round_trip(echo_service):
    svc, ep = echo_service
    async with AsyncInterface(dripline_mesh=test_mesh()) as dl:
        await dl.set(ep, "hello")
        assert await dl.get(ep) == {"value": "hello"}
        results = await asyncio.gather(*(dl.cmd(ep, "add", [i, i]) for i in range(20)))
        assert results == [2 * i for i in range(20)]


def test_async_child_and_async_handler(echo_service, dl_interface):
    svc, _ = echo_service
    (name,) = svc.async_children
    assert dl_interface.get(name) == {"async": True}


def test_confirm_retcodes_raises_with_code_message_payload(echo_service, dl_interface):
    _, ep = echo_service
    with pytest.raises(DriplineError) as info:
        dl_interface.cmd(ep, "refuse")
    assert info.value.return_code == 202
    assert "did not answer" in info.value.message
    assert info.value.payload == {"tries": 3}


def test_confirm_retcodes_off_returns_payload(echo_service):
    _, ep = echo_service
    with Interface(dripline_mesh=test_mesh(), confirm_retcodes=False) as iface:
        assert iface.cmd(ep, "refuse") == {"tries": 3}


def test_handler_exception_gives_999_and_service_keeps_serving(echo_service, dl_interface):
    _, ep = echo_service
    with pytest.raises(DriplineError) as info:
        dl_interface.cmd(ep, "fail")
    assert info.value.return_code == 999
    assert "ValueError" in info.value.message and "always fails" in info.value.message
    assert dl_interface.cmd(ep, "add", [1, 1]) == 2


def test_one_megabyte_payload_travels_in_chunks(echo_service, dl_interface):
    _, ep = echo_service
    big = "x" * 1_000_000 + "é"
    assert dl_interface.set(ep, big) == {"value": big}
    assert dl_interface.get(ep) == {"value": big}


def test_unroutable_request_fails_at_once(dl_interface):
    with pytest.raises(UnableToSendError) as info:  # the broker's return, not a 404 timeout
        dl_interface.get(unique_name("nobody"), timeout_s=60)
    assert info.value.return_code == 403
    assert "no queue is bound" in info.value.message


def test_timeout_is_a_clear_error(echo_service, dl_interface):
    _, ep = echo_service
    with pytest.raises(TimeoutError_) as info:
        dl_interface.cmd(ep, "sleep", [1.5], timeout_s=0.3)
    assert "within 0.3 s" in info.value.message
    assert info.value.return_code == 404
    time.sleep(1.3)  # let the slow request finish before the service is stopped


def test_requests_to_one_service_are_serialised(echo_service):
    svc, ep = echo_service
    errors = []

    def client():
        try:
            with Interface(dripline_mesh=test_mesh()) as iface:
                iface.cmd(ep, "sleep", [0.05])
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert svc.sync_children[ep].max_active == 1


def test_handler_may_call_another_endpoint(dl_service, dl_interface):
    svc = make_service()
    a, b = Echo(name=unique_name("a")), Echo(name=unique_name("b"))
    b.value = 42
    svc.add_child(a)
    other = make_service()
    other.add_child(b)
    dl_service(svc)
    dl_service(other)
    assert dl_interface.cmd(a.name, "ask", [b.name]) == {"value": 42}


def test_broadcast_returns_every_reply(dl_service, dl_interface):
    names = []
    for _ in range(2):
        svc = make_service()
        dl_service(svc)
        names.append(svc.name)
    replies = dl_interface.get("broadcast", specifier="name", timeout_s=1)
    for name in names:
        assert replies[name] == {"values": [name]}


def test_duplicate_service_name_fails_with_a_clear_message(dl_service):
    name = unique_name("dup")
    dl_service(make_service(name))
    with pytest.raises(DriplineError) as info:
        dl_service(make_service(name))
    assert "already running" in info.value.message


def test_wrong_password_is_a_clear_error():
    with pytest.raises(ConnectionError_) as info:
        Interface(dripline_mesh=test_mesh(), username="guest", password="definitely-wrong")
    assert "refused the credentials" in info.value.message
    assert "definitely-wrong" not in info.value.message


def test_unreachable_broker_fails_after_bounded_attempts():
    mesh = dict(test_mesh(), broker_port=1, max_connection_attempts=2)
    with pytest.raises(ConnectionError_) as info:
        Interface(dripline_mesh=mesh)
    assert "after 2 attempt" in info.value.message


def test_prefetch_window_leaves_a_flood_queued_in_the_broker(dl_service):
    """With request_prefetch=2 the service holds few requests; the rest wait in RabbitMQ.

    The handler blocks on an event, so the service reaches a known state: the window lets it
    take 2 requests acknowledged plus 2 unacknowledged, then the broker stops delivering. The
    queue depth is read with a passive queue_declare on the service's own connection (its queue
    is exclusive to it).
    """
    prefetch, n = 2, 30
    svc = make_service(request_prefetch=prefetch)
    gate = Gate(name=unique_name("gate"))
    svc.add_child(gate)
    dl_service(svc)
    raw = RawRequests()
    try:
        sent = [raw.cmd(gate.name, "wait", i) for i in range(n)]  # confirmed: all in the queue
        assert gate.entered.wait(30)
        assert wait_for(lambda: svc.runtime.window.busy == 2 * prefetch)
        depth = asyncio.run_coroutine_threadsafe(svc.core.connection.queue_depth(svc.name),
                                                 svc.loop).result(30)
        assert depth is not None
        ready, consumers = depth
        assert ready == n - 2 * prefetch and consumers == 1
        assert gate.seen == [0]
        gate.release.set()
        replies = raw.replies(n)
    finally:
        gate.release.set()
        raw.close()
    assert [(cid, code, payload) for cid, code, payload in replies] == \
        [(cid, 0, i) for i, cid in enumerate(sent)]
    assert len(gate.threads) == 1


class AsyncInterface_sync_sender:
    """Fire-and-collect requests from a background loop (many in flight, no waiting per request)."""

    def __enter__(self):
        from dripline.transport.bridge import LoopThread
        self.thread = LoopThread("flood")
        self.iface = AsyncInterface(dripline_mesh=test_mesh())
        self.thread.run(self.iface.start())
        self.futures = []
        return self

    def __call__(self, ep, method, args):
        from dripline.client.request_sender import build_request, cmd_payload
        from dripline.protocol.message import op_t
        req = build_request(op_t.cmd, ep, method, cmd_payload(args))
        self.futures.append(asyncio.run_coroutine_threadsafe(self.iface.send_request(req, 30),
                                                             self.thread.loop))

    def collect(self, n, timeout):
        return [f.result(timeout) for f in self.futures[:n]]

    def __exit__(self, *exc):
        self.thread.run(self.iface.close())
        self.thread.stop()
