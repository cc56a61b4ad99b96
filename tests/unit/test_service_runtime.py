"""The composed pieces of a Service (issue 11 item 3, issue 9 item 5), without a broker:
worker lanes, queue bindings per lane policy, the ack window, scheduled actions on their
endpoint's lane, the service context, and endpoint building left to dripline.assembly."""
from __future__ import annotations

import asyncio
import threading

import pytest

from dripline.core import Endpoint, Service
from dripline.implementations import KeyValueStore
from dripline.protocol.errors import ConfigError, DriplineError
from dripline.service import children
from dripline.service.acks import ACK_DELAY_S, AckWindow
from dripline.service.context import ServiceContext
from dripline.service.lanes import Lanes


def dry(**kwargs) -> Service:
    return Service("svc", make_connection=False, heartbeat_interval_s=0, **kwargs)


class Where(Endpoint):
    """Records the thread its scheduled action ran on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ran_on = None
        self.done = threading.Event()

    def tick(self):
        self.ran_on = threading.current_thread().name
        self.done.set()


# ---------------------------------------------------------------------------------- lanes
def test_single_lane_is_shared_by_the_service_and_its_children_but_not_async_children():
    lanes = Lanes("svc")
    lanes.dedicate("own")
    lanes.start()
    try:
        assert lanes.for_endpoint("svc") is lanes.main
        assert lanes.for_endpoint("a") is lanes.main and lanes.for_endpoint("b") is lanes.main
        assert lanes.for_endpoint("own") is not lanes.main
        assert lanes.for_endpoint("own") is lanes.for_endpoint("own")
    finally:
        lanes.shutdown()


def test_per_endpoint_lanes_give_every_child_a_thread_of_its_own():
    lanes = Lanes("svc", "per_endpoint")
    lanes.start()
    try:
        a, b = lanes.for_endpoint("a"), lanes.for_endpoint("b")
        assert len({id(lanes.main), id(a), id(b)}) == 3
        assert lanes.for_endpoint("a") is a and lanes.for_endpoint("svc") is lanes.main
    finally:
        lanes.shutdown()


def test_no_lane_before_start():
    assert Lanes("svc", "per_endpoint").for_endpoint("a") is None


def test_worker_lanes_keyword_is_checked_and_read_only():
    assert dry().worker_lanes == "single"
    with pytest.raises(ConfigError, match="worker_lanes must be one of single, per_endpoint"):
        dry(worker_lanes="many")
    svc = dry(worker_lanes="per_endpoint")
    from dripline.protocol.message import MsgRequest, op_t
    reply = svc.on_request_message(MsgRequest.create(payload={"values": ["single"]},
                                                     msg_op=op_t.set, routing_key="svc",
                                                     specifier="worker_lanes", reply_to="r"))
    assert reply.return_code != 0 and svc.worker_lanes == "per_endpoint"


# ---------------------------------------------------------------------------------- topology
def test_children_with_a_lane_of_their_own_get_a_queue_of_their_own():
    single = dry()
    single.add_child(KeyValueStore(name="a"))
    single.add_async_child(KeyValueStore(name="b"))
    assert single.runtime.topology.binding_keys() == ["svc.#", "broadcast.#", "a.#"]
    per = dry(worker_lanes="per_endpoint")
    per.add_child(KeyValueStore(name="a"))
    assert per.runtime.topology.binding_keys() == ["svc.#", "broadcast.#"]


# ---------------------------------------------------------------------------------- ack window
async def test_ack_window_holds_acknowledgements_beyond_its_size_in_order():
    acks = []
    window = AckWindow(2)

    def ack(tag):
        return lambda multiple=False: acks.append((tag, multiple))

    for tag in (1, 2, 3, 4):
        window.received(ack(tag))
        window.started()
    assert acks == [(1, True), (2, True)] and window.busy == 4 and len(window.held) == 2
    window.finished()
    window.finished()  # busy 2: still at the window's size
    assert acks == [(1, True), (2, True)]
    window.finished()  # below the size: what was held goes, in one frame covering 3 and 4
    assert acks == [(1, True), (2, True), (4, True)] and not window.held


async def test_ack_window_batches_a_trickle_of_requests_into_one_timed_ack():
    acks = []
    window = AckWindow(100)
    for tag in (1, 2, 3):  # one request at a time, each finished before the next arrives
        window.received(lambda multiple=False, tag=tag: acks.append((tag, multiple)))
        window.started()
        window.finished()
    assert acks == []  # nothing held: the acknowledgements wait for the timer
    await asyncio.sleep(ACK_DELAY_S * 4)
    assert acks == [(3, True)] and window.ready == [] and window.busy == 0


# ---------------------------------------------------------------------------------- scheduling
async def test_an_endpoints_scheduled_action_runs_on_its_own_lane():
    svc = Service("svc", make_connection=False, heartbeat_interval_s=0, enable_scheduling=True,
                  worker_lanes="per_endpoint")
    where = Where(name="where")
    svc.add_child(where)
    runtime = svc.runtime
    runtime.loop = asyncio.get_running_loop()
    runtime.lanes.start()
    try:
        job = svc.schedule(where.tick, 60)
        action, _ = runtime.scheduler.jobs()[job]
        runtime.scheduler._run(action)  # what the timer does when the job is due
        assert await asyncio.to_thread(where.done.wait, 30)
        assert where.ran_on == "where-worker_0"
    finally:
        runtime.lanes.shutdown()


# ---------------------------------------------------------------------------------- context, building
def test_a_service_is_the_context_its_endpoints_see():
    svc = dry()
    ep = KeyValueStore(name="p")
    svc.add_child(ep)
    assert isinstance(svc, ServiceContext) and ep.service is svc


def test_endpoint_objects_are_attached_without_the_assembly(monkeypatch):
    monkeypatch.setattr(children, "_builder", None)
    svc = dry(endpoints=[KeyValueStore(name="obj")])
    assert list(svc.sync_children) == ["obj"]
    with pytest.raises(ConfigError, match="built by dripline.assembly"):
        dry(endpoints=[{"name": "p", "module": "KeyValueStore"}])


def test_endpoint_mappings_are_built_by_the_assembly_and_a_failure_names_the_endpoint():
    from dripline.assembly.objects import failing_endpoint
    svc = dry(endpoints=[{"name": "p", "module": "KeyValueStore", "initial_value": 3}])
    assert svc.sync_children["p"].on_get() == {"value_raw": 3}
    with pytest.raises(Exception) as info:
        dry(endpoints=[{"name": "bad", "module": "KeyValueStore", "log_interval": "abc"}])
    assert failing_endpoint(info.value) == "bad"


def test_child_names_are_checked():
    svc = dry()
    svc.add_child(KeyValueStore(name="p"))
    for bad in ("p", "svc", "a.b", ""):
        with pytest.raises(DriplineError):
            svc.add_child(KeyValueStore(name=bad))
