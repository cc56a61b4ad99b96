"""HeartbeatMonitor and HeartbeatTracker without a broker (clock passed in, alerts captured)."""
from __future__ import annotations

import time

import pytest

from dripline.core import MsgRequest, op_t
from dripline.protocol.errors import ConfigError
from dripline.implementations import HeartbeatMonitor, HeartbeatTracker

Status = HeartbeatTracker.Status


def monitor(**kwargs):
    kwargs.setdefault("name", "hbmon")
    kwargs.setdefault("warning_threshold_s", 10)
    kwargs.setdefault("critical_threshold_s", 30)
    mon = HeartbeatMonitor(make_connection=False, **kwargs)
    mon.sent = []
    mon.core.make_connection = True  # let status changes reach send_alert (captured below)
    mon.send_alert = lambda key, payload=None: mon.sent.append((key, payload))
    return mon


def beat(mon, service):
    from scarab import to_param
    mon.process_payload(to_param({"name": service, "id": "x"}),
                        mon.parse_routing_key(f"heartbeat.{service}"), "2024-01-01T00:00:00Z")


def test_defaults_bind_heartbeats_and_parse_the_service_name():
    mon = HeartbeatMonitor(name="hbmon", make_connection=False)
    assert mon.alert_keys == ["heartbeat.#"]
    assert mon.parse_routing_key("heartbeat.my-store") == {"service_name": "my-store"}
    assert (mon.time_between_checks_s, mon.warning_threshold_s, mon.critical_threshold_s) == (20, 120, 300)
    assert mon.endpoint_name_prefix == "hbmon_" and mon.add_unknown_heartbeats


@pytest.mark.parametrize("kwargs", [{"warning_threshold_s": 0}, {"time_between_checks_s": "x"},
                                    {"warning_threshold_s": 50, "critical_threshold_s": 40}])
def test_bad_thresholds_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        HeartbeatMonitor(name="hbmon", make_connection=False, **kwargs)


def test_configured_trackers_are_monitored_under_their_service_name():
    mon = monitor(endpoints=[{"name": "watch_store", "module": "HeartbeatTracker", "service_name": "my_store"}])
    assert mon.monitoring_names == {"my_store": "watch_store"}
    before = mon.sync_children["watch_store"].heartbeats
    beat(mon, "my_store")
    assert mon.sync_children["watch_store"].heartbeats == before + 1
    assert "hbmon_my_store" not in mon.sync_children


def test_an_unknown_service_gets_a_tracker_endpoint():
    mon = monitor()
    beat(mon, "newcomer")
    tracker = mon.sync_children["hbmon_newcomer"]
    assert isinstance(tracker, HeartbeatTracker) and tracker.service_name == "newcomer"
    assert tracker.heartbeats == 1
    assert mon.endpoint("hbmon_newcomer") is tracker


def test_unknown_services_are_ignored_when_not_wanted():
    mon = monitor(add_unknown_heartbeats=False)
    beat(mon, "stranger")
    assert not mon.sync_children


def test_a_heartbeat_without_a_service_name_is_ignored(caplog):
    mon = monitor(alert_key_parser_re=r"heartbeat\.(?P<other>.*)")
    mon.process_payload(None, {}, "")
    assert "without a service name" in caplog.text
    from scarab import to_param
    mon.process_payload(to_param({"name": "from_payload"}), {}, "")
    assert "hbmon_from_payload" in mon.sync_children


def test_tracker_rates_the_age_of_the_last_heartbeat():
    mon = monitor(endpoints=[{"name": "t", "module": "HeartbeatTracker", "service_name": "s"}])
    t = mon.sync_children["t"]
    t.last_timestamp = 1000.0
    assert t.check_delay(now=1005)["status"] is Status.OK
    assert t.check_delay(now=1015)["status"] is Status.WARNING
    assert t.check_delay(now=1031) == {"status": Status.CRITICAL, "time_since_last_hb": 31}
    t.on_set("false")
    assert t.check_delay(now=1031)["status"] is Status.UNKNOWN and t.is_active is False


def test_every_status_change_is_sent_as_a_status_message():
    mon = monitor(endpoints=[{"name": "t", "module": "HeartbeatTracker", "service_name": "s"}])
    t = mon.sync_children["t"]
    mon.run_checks()
    assert mon.sent[-1][0] == "status_message.hbmon.ok"
    mon.run_checks()
    assert len(mon.sent) == 1  # no change, no message
    t.last_timestamp = time.time() - 15
    mon.run_checks()
    t.last_timestamp = time.time() - 60
    report = mon.run_checks()
    assert [k for k, _ in mon.sent] == ["status_message.hbmon.ok", "status_message.hbmon.warning",
                                       "status_message.hbmon.critical"]
    assert "s: heartbeat status CRITICAL (was WARNING)" in mon.sent[-1][1]
    assert [e["name"] for e in report[Status.CRITICAL]] == ["t"]
    t.process_heartbeat("2024-01-01T00:00:00Z")
    mon.run_checks()
    assert mon.sent[-1][0] == "status_message.hbmon.ok"


def test_get_on_the_monitor_returns_the_report_as_plain_data():
    mon = monitor(endpoints=[{"name": "a", "module": "HeartbeatTracker", "service_name": "sa"},
                             {"name": "b", "module": "HeartbeatTracker", "service_name": "sb"}])
    mon.sync_children["b"].last_timestamp = time.time() - 100
    reply = mon.on_request_message(MsgRequest.create(payload=None, msg_op=op_t.get, routing_key="hbmon"))
    assert reply.return_code == 0
    assert [e["service_name"] for e in reply.payload["OK"]] == ["sa"]
    assert [e["service_name"] for e in reply.payload["CRITICAL"]] == ["sb"]
    assert reply.payload["WARNING"] == [] and reply.payload["UNKNOWN"] == []


def test_get_on_a_tracker_returns_its_state():
    mon = monitor()
    beat(mon, "svc")
    tracker = mon.sync_children["hbmon_svc"]
    mon.run_checks()
    reply = tracker.on_request_message(MsgRequest.create(payload=None, msg_op=op_t.get,
                                                         routing_key="hbmon_svc"))
    assert reply.payload["service_name"] == "svc" and reply.payload["status"] == "OK"
    assert reply.payload["heartbeats"] == 1 and reply.payload["last_heartbeat"]


def test_a_failing_check_does_not_stop_the_others(caplog):
    mon = monitor(endpoints=[{"name": "a", "module": "HeartbeatTracker", "service_name": "sa"},
                             {"name": "b", "module": "HeartbeatTracker", "service_name": "sb"}])
    mon.sync_children["a"].last_timestamp = "broken"
    report = mon.run_checks()
    assert [e["name"] for e in report[Status.OK]] == ["b"]
    assert "cannot rate" in caplog.text


def test_monitor_once_logs_problems(caplog):
    mon = monitor(endpoints=[{"name": "a", "module": "HeartbeatTracker", "service_name": "sa"}])
    mon.sync_children["a"].last_timestamp = time.time() - 100
    mon.monitor_once()
    assert "services with CRITICAL status: sa" in caplog.text
