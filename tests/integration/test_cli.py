"""dl-agent, dl-mon and dl-serve as a user runs them (subprocesses against the real broker)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

from dripline.testing import unique_name

from .endpoints import dl


def test_agent_set_get_cmd(served):
    _, ep = served
    r = dl("agent", "set", ep, "0.25")
    assert r.returncode == 0, r.stderr
    r = dl("agent", "get", ep)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("0 (success)")
    assert json.loads("\n".join(r.stdout.splitlines()[2:])) == {"value": 0.25}
    r = dl("agent", "cmd", ep, "-s", "add", "2", "-3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "-1"


def test_agent_keyword_arguments_reach_the_method(served):
    _, ep = served
    r = dl("agent", "cmd", ep, "-s", "echo", "1", "mode=fast", "--json-print")
    assert r.returncode == 0, r.stderr
    msg = json.loads(r.stdout)
    assert msg["payload"] == {"args": [1], "kwargs": {"mode": "fast"}}
    assert msg["return_code"] == 0


def test_agent_exit_status_is_return_code_over_100(served):
    _, ep = served
    r = dl("agent", "cmd", ep, "-s", "refuse")
    assert r.returncode == 2
    assert r.stdout.startswith("202 (resource_error_no_response)")
    r = dl("agent", "cmd", ep, "-s", "no_such_method")
    assert r.returncode == 3


def test_agent_unroutable_and_timeout_exit_4(served):
    _, ep = served
    r = dl("agent", "get", unique_name("nobody"))
    assert r.returncode == 4 and "no queue is bound" in r.stderr  # 403, not a 404 timeout
    r = dl("agent", "cmd", ep, "-s", "sleep", "1", "-t", "0.3")
    assert r.returncode == 4 and "no reply" in r.stderr
    time.sleep(1)


def test_agent_wrong_password_exits_1_without_echoing_it(served):
    _, ep = served
    r = dl("agent", "get", ep, "-u", "guest", "--password", "s3cr3t-wrong")
    assert r.returncode == 1
    assert "refused the credentials" in r.stderr
    assert "s3cr3t-wrong" not in r.stderr + r.stdout


def test_agent_unreachable_broker_exits_1():
    r = dl("agent", "get", "x", "-p", "1", "--max-connection-attempts", "1")
    assert r.returncode == 1
    assert "cannot connect" in r.stderr


def test_agent_dry_run_prints_without_sending():
    r = dl("agent", "set", "anything", "5", "--dry-run-msg", "--pretty-print")
    assert r.returncode == 0
    assert json.loads(r.stdout)["payload"] == {"values": [5]}


def test_mon_prints_alerts_as_json(served):
    key = unique_name("sensor_value.t")
    mon = subprocess.Popen([sys.executable, "-m", "dripline.cli.mon", "-a", key, "--json-print", "-n", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        # wait until dl-mon is bound (it says so on stderr)
        line = mon.stderr.readline()
        assert "watching" in line
        r = dl("agent", "alert", key, "value=3")
        assert r.returncode == 0, r.stderr
        out, err = mon.communicate(timeout=max(1, deadline - time.monotonic()))
        msg = json.loads(out.strip().splitlines()[0])
        assert msg["routing_key"] == key and msg["payload"] == {"value": 3}
        assert mon.returncode == 0
    finally:
        if mon.poll() is None:
            mon.kill()


def test_mon_without_keys_exits_1():
    r = dl("mon")
    assert r.returncode == 1 and "no keys" in r.stderr


def test_serve_runs_a_yaml_file_and_stops_cleanly_on_sigterm(tmp_path):
    name, ep = unique_name("store"), unique_name("peaches")
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(textwrap.dedent(f"""
        name: {name}
        heartbeat_interval_s: 1
        endpoints:
          - name: {ep}
            module: KeyValueStore
            calibration: '2*{{}}'
            initial_value: 0.75
    """))
    proc = subprocess.Popen([sys.executable, "-m", "dripline.cli.serve", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = dl("agent", "get", ep, "--json-print")
            if r.returncode == 0:
                break
            time.sleep(0.3)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["payload"] == {"value_raw": 0.75, "value_cal": 1.5}
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
    r = dl("agent", "get", ep)
    assert r.returncode == 4  # queue deleted: unroutable


def test_serve_rejects_unknown_endpoint_keyword_before_connecting(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: s\nendpoints:\n  - name: p\n    module: KeyValueStore\n    initial_valeu: 3\n")
    r = dl("serve", "-c", str(cfg), "-p", "1")
    assert r.returncode == 2
    assert str(cfg) in r.stderr and "'initial_valeu'" in r.stderr and "initial_value" in r.stderr


def test_serve_check_and_service_level_typo_warning(tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("name: s\nauths_file: x.json\nendpoints:\n  - name: p\n    module: KeyValueStore\n")
    r = dl("serve", "--check", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "auths_file" in r.stderr and "auth_file" in r.stderr
    r = dl("serve", "--check", "--strict", "-c", str(cfg))
    assert r.returncode == 2


def test_serve_unknown_module_names_near_matches(tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text("name: s\nendpoints:\n  - name: p\n    module: KeyValueStor\n")
    r = dl("serve", "--check", "-c", str(cfg))
    assert r.returncode == 2
    assert "KeyValueStore" in r.stderr
