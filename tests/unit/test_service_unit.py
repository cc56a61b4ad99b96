"""Service pieces that need no broker: lifecycle methods out of reach, scheduler semantics."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest

from dripline.core import Service
from dripline.protocol.message import MsgRequest, op_t
from dripline.service.scheduler import Scheduler
from dripline.assembly.validation import accepted_keywords, check_service_config


def _cmd(rk, spec, payload=None):
    return MsgRequest.create(payload=payload, msg_op=op_t.cmd, routing_key=rk, specifier=spec,
                             reply_to="r")


@pytest.mark.parametrize("method", ["run", "cancel", "stop", "start", "get", "send_alert"])
def test_lifecycle_methods_are_not_reachable_by_request(method):
    svc = Service("dry", make_connection=False)
    reply = svc.on_request_message(_cmd("dry", method))
    assert reply.return_code == 306
    assert not svc.is_canceled()


def test_public_service_attribute_still_reachable():
    svc = Service("dry", make_connection=False, heartbeat_interval_s=7)
    req = MsgRequest.create(msg_op=op_t.get, routing_key="dry", specifier="heartbeat_interval_s", reply_to="r")
    assert svc.on_request_message(req).payload == {"values": [7]}


def test_dry_run_alert_raises_thrown_alert():
    svc = Service("dry", make_connection=False)
    with pytest.raises(RuntimeError, match="Thrown alert"):
        svc.send_alert("sensor_value.x", {"value_raw": 5})


async def _run_scheduler(s: Scheduler, seconds: float) -> None:
    s.start(asyncio.get_running_loop())
    await asyncio.sleep(seconds)
    s.stop()


def test_repeating_event_does_not_burst_after_a_late_start():
    runs = []
    s = Scheduler()
    # first run was due 1 s ago: it runs once, then keeps a 0.2 s rhythm (no catch-up burst)
    s.schedule(lambda: runs.append(time.monotonic()), 0.2, start=datetime.now() - timedelta(seconds=1))
    asyncio.run(_run_scheduler(s, 0.5))
    assert 2 <= len(runs) <= 4
    gaps = [b - a for a, b in zip(runs, runs[1:])]
    assert all(g > 0.1 for g in gaps)


def test_exception_in_action_keeps_the_event_scheduled():
    calls = []

    def boom():
        calls.append(1)
        raise ValueError("instrument offline")

    s = Scheduler()
    s.schedule(boom, 0.1)
    asyncio.run(_run_scheduler(s, 0.45))
    assert len(calls) >= 3


def test_async_actions_are_awaited():
    done = []

    async def action():
        done.append(True)

    s = Scheduler()
    s.schedule(action, 0.1)
    asyncio.run(_run_scheduler(s, 0.25))
    assert done


def test_unschedule_unknown_id_is_false_and_too_short_interval_refused():
    s = Scheduler()
    assert s.unschedule(12345) is False
    with pytest.raises(ValueError, match="minimum"):
        s.schedule(lambda: None, 0.01)
    one_off = s.schedule(lambda: None, datetime.now() + timedelta(seconds=5))
    assert s.unschedule(one_off) is True


def test_accepted_keywords_follow_kwargs_up_the_bases():
    from dripline.implementations import KeyValueStore
    names = accepted_keywords(KeyValueStore)
    assert {"initial_value", "calibration", "log_interval", "name"} <= names


def test_check_service_config_reports_endpoint_typo_with_suggestion():
    problems = check_service_config({"name": "s", "endpoints": [
        {"name": "p", "module": "KeyValueStore", "initial_valeu": 1}]}, "f.yaml")
    (p,) = problems
    assert p.fatal and p.key == "initial_valeu" and "initial_value" in p.suggestions
    assert str(p).startswith("f.yaml: endpoint 'p'")
