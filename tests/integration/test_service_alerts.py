"""What a running service broadcasts (heartbeats, entity logs) and dl-serve's configuration paths."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pika
import pytest

from dripline.testing import unique_name

from .gates import take


class AlertTap:
    """A raw pika consumer bound to the alerts exchange, for looking at what services send."""

    def __init__(self, key: str) -> None:
        self.conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
        self.ch = self.conn.channel()
        self.ch.exchange_declare("alerts", exchange_type="topic")
        self.queue = self.ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self.ch.queue_bind(self.queue, "alerts", key)

    def collect(self, n: int, timeout: float) -> list[tuple[str, dict, object]]:
        return [(method.routing_key, json.loads(body), props)
                for method, props, body in take(self.conn, self.ch, self.queue, n, timeout)]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def tap():
    taps = []

    def make(key):
        t = AlertTap(key)
        taps.append(t)
        return t

    yield make
    for t in taps:
        t.close()


def test_heartbeat_alerts_carry_name_and_id(dl_service, tap):
    name = unique_name("hb")
    t = tap(f"heartbeat.{name}")
    svc = dl_service({"name": name, "heartbeat_interval_s": 0.3})
    alerts = t.collect(2, 5)
    assert len(alerts) == 2
    rk, payload, props = alerts[0]
    assert rk == f"heartbeat.{name}"
    assert payload == {"name": name, "id": str(svc.id)}
    assert props.headers["message_type"] == 4
    assert props.headers["sender_info"]["service_name"] == name


def test_entity_logs_on_its_interval_and_on_set(dl_service, dl_interface, tap):
    ep = unique_name("peaches")
    t = tap(f"sensor_value.{ep}")
    dl_service({"name": unique_name("store"), "heartbeat_interval_s": 0, "endpoints": [
        {"name": ep, "module": "KeyValueStore", "calibration": "2*{}", "initial_value": 0.75,
         "log_interval": 0.3, "log_on_set": True}]})
    (rk, payload, _), = t.collect(1, 5)
    assert rk == f"sensor_value.{ep}"
    assert payload == {"value_raw": 0.75, "value_cal": 1.5}
    dl_interface.set(ep, 2)
    later = t.collect(3, 5)
    assert {"value_raw": 2, "value_cal": 4} in [p for _, p, _ in later]


def test_alerts_survive_no_scheduling_warning_path(dl_service, tap):
    """With enable_scheduling false, scheduled logging does not run (the reference's semantics)."""
    ep = unique_name("quiet")
    t = tap(f"sensor_value.{ep}")
    dl_service({"name": unique_name("store"), "heartbeat_interval_s": 0, "enable_scheduling": False,
                "endpoints": [{"name": ep, "module": "KeyValueStore", "initial_value": 1,
                               "log_interval": 0.2}]})
    assert t.collect(1, 1.0) == []


def _serve(cfg_path, *extra):
    return subprocess.Popen([sys.executable, "-m", "dripline.cli.serve", "-c", str(cfg_path), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _agent(*args):
    return subprocess.run([sys.executable, "-m", "dripline.cli.agent", *args], capture_output=True,
                          text=True, timeout=60)


def _wait_for_get(ep, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = _agent("get", ep, "--json-print")
        if r.returncode == 0:
            return json.loads(r.stdout)["payload"]
        time.sleep(0.3)
    raise AssertionError(f"{ep} never answered: {r.stderr}")


def test_runtime_config_block_and_key_value_override_and_sigint(tmp_path):
    name, ep = unique_name("legacy"), unique_name("chips")
    cfg = tmp_path / "legacy.yaml"
    cfg.write_text(textwrap.dedent(f"""
        runtime-config:
          name: {name}
          heartbeat_interval_s: 0
          endpoints:
            - name: {ep}
              module: KeyValueStore
              initial_value: 1
    """))
    proc = _serve(cfg, "endpoints.0.initial_value=5")
    try:
        assert _wait_for_get(ep) == {"value_raw": 5}
        assert _agent("get", name, "-s", "name", "--json-print").returncode == 0  # the block's name
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert "runtime-config" in out and "deprecated" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_duplicate_service_via_dl_serve_exits_1_with_reason(tmp_path, dl_service):
    name = unique_name("taken")
    dl_service({"name": name, "heartbeat_interval_s": 0})
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(f"name: {name}\n")
    proc = _serve(cfg)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "already running" in out
