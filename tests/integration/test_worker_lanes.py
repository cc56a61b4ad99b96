"""Worker lanes (issue 9 item 5) through the real broker, without a timing assertion.

A Gate endpoint blocks its handler until the test releases it, with more requests queued behind
it than the prefetch window holds. With ``worker_lanes: per_endpoint`` a get to another endpoint
of the same service is answered while the gate is still closed; with the default (``single``,
the reference's behaviour) the service's requests are handled one at a time, in arrival order.
"""
from __future__ import annotations

import pytest

from dripline.core import Service
from dripline.implementations import KeyValueStore
from dripline.testing import test_mesh, unique_name

from .gates import Gate, RawRequests

FLOOD = 10
PREFETCH = 2  # far fewer than FLOOD: most of the flood waits in the broker


def lane_service(dl_service, **kwargs):
    svc = Service(unique_name("lanes"), dripline_mesh=test_mesh(), heartbeat_interval_s=0,
                  request_prefetch=PREFETCH, **kwargs)
    gate = Gate(name=unique_name("gate"))
    store = KeyValueStore(name=unique_name("store"), initial_value=7)
    svc.add_child(gate)
    svc.add_child(store)
    dl_service(svc)
    return svc, gate, store


@pytest.fixture
def raw():
    client = RawRequests()
    yield client
    client.close()


def test_per_endpoint_lanes_answer_another_endpoint_while_one_is_blocked(dl_service, dl_interface,
                                                                        raw):
    svc, gate, store = lane_service(dl_service, worker_lanes="per_endpoint")
    try:
        sent = [raw.cmd(gate.name, "wait", i) for i in range(FLOOD)]
        assert gate.entered.wait(30)
        # the gate holds its first request and the rest of the flood waits behind it
        assert dl_interface.get(store.name) == {"value_raw": 7}
        assert gate.seen == [0] and not gate.release.is_set()
    finally:
        gate.release.set()
    replies = raw.replies(FLOOD)
    assert [cid for cid, _, _ in replies] == sent  # one endpoint's requests: in arrival order
    assert [(code, payload) for _, code, payload in replies] == [(0, i) for i in range(FLOOD)]
    assert gate.seen == list(range(FLOOD)) and len(gate.threads) == 1


def test_single_lane_handles_the_services_requests_in_arrival_order(dl_service, raw):
    svc, gate, store = lane_service(dl_service)
    assert svc.worker_lanes == "single"
    try:
        sent = [raw.cmd(gate.name, "wait", i) for i in range(3)]
        sent.append(raw.get(store.name))  # behind the gate's requests, on the same lane
        assert gate.entered.wait(30)
    finally:
        gate.release.set()
    replies = raw.replies(4)
    assert [cid for cid, _, _ in replies] == sent
    assert [payload for _, _, payload in replies] == [0, 1, 2, {"value_raw": 7}]
