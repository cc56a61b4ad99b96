"""HeartbeatMonitor on the real broker: trackers appear for new services, statuses change when a
service stops beating, and every change is announced as a status_message alert."""
from __future__ import annotations

import threading
import time

from dripline.core import AlertConsumer, Service
from dripline.implementations import HeartbeatMonitor
from dripline.testing import test_mesh, unique_name


class Collector(AlertConsumer):
    """Collects (routing key, payload) of the alerts it is bound to."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.received = []
        self._lock = threading.Lock()

    def on_alert_message(self, alert):
        with self._lock:
            self.received.append((alert.routing_key, alert.payload))

    def keys(self):
        with self._lock:
            return [k for k, _ in self.received]


def eventually(check, timeout_s=20, interval_s=0.05):
    """Poll `check` until it returns something truthy; returns the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval_s)


def test_monitor_tracks_new_services_and_announces_status_changes(dl_service, dl_interface):
    monitor_name = unique_name("hbmon")
    watched = unique_name("beating")
    quiet = unique_name("configured")
    collector = Collector(name=unique_name("collector"), dripline_mesh=test_mesh(), heartbeat_interval_s=0,
                          alert_keys=[f"status_message.{monitor_name}.#"])
    dl_service(collector)
    monitor = HeartbeatMonitor(name=monitor_name, dripline_mesh=test_mesh(), heartbeat_interval_s=0,
                               time_between_checks_s=0.1, warning_threshold_s=1.0,
                               critical_threshold_s=2.5,
                               endpoints=[{"name": f"watch_{quiet}", "module": "HeartbeatTracker",
                                           "service_name": quiet}])
    dl_service(monitor)
    service = Service(watched, dripline_mesh=test_mesh(), heartbeat_interval_s=0.1)
    dl_service(service)

    tracker = f"hbmon_{watched}"
    assert eventually(lambda: tracker in monitor.sync_children)
    # the new tracker is reachable on the mesh while the monitor runs
    state = eventually(lambda: (s := _try_get(dl_interface, tracker)) and s["status"] == "OK" and s)
    assert state and state["service_name"] == watched and state["heartbeats"] >= 1

    report = dl_interface.get(monitor_name)
    assert watched in [e["service_name"] for e in report["OK"]]

    # the configured service never beats: WARNING, then CRITICAL
    assert eventually(lambda: f"status_message.{monitor_name}.critical" in collector.keys())
    texts = [p for k, p in collector.received]
    assert any(quiet in t and "CRITICAL" in t for t in texts)
    assert any(quiet in t and "WARNING" in t for t in texts)

    # the beating service stops: its status follows
    service.cancel()
    assert eventually(lambda: (r := dl_interface.get(monitor_name)) and
                      watched in [e["service_name"] for e in r["CRITICAL"]])
    assert eventually(lambda: any(watched in p and "CRITICAL" in p for _, p in collector.received))
    order = [p.split("heartbeat status ")[1].split(" ")[0] for _, p in collector.received if watched in p]
    assert order[-2:] == ["WARNING", "CRITICAL"]


def _try_get(dl, name):
    from dripline.protocol.errors import DriplineError
    try:
        return dl.get(name, timeout_s=2)
    except DriplineError:
        return None
