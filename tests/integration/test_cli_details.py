"""Details of the command-line tools as a user sees them (subprocesses, the real broker): one line
per failure instead of pika's log flood, argument errors, dl-mon's header, dl-plugin and
dl-sim-scpi errors."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

from dripline.testing import unique_name

from .endpoints import dl


def test_unreachable_broker_is_one_stderr_line():
    r = dl("agent", "get", "peaches", "-p", "1", "--max-connection-attempts", "1")
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("dl-agent: cannot connect to the broker") and "pika" not in r.stderr


def test_pika_is_heard_with_vv():
    r = dl("agent", "get", "peaches", "-p", "1", "--max-connection-attempts", "1", "-vv")
    assert r.returncode == 1
    assert "pika" in r.stderr


def test_wrong_password_is_one_stderr_line(served):
    _, ep = served
    r = dl("agent", "get", ep, "--password", "s3cr3t-wrong")
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert "refused the credentials" in r.stderr and "s3cr3t-wrong" not in r.stderr


def test_serve_retries_without_pika_errors(tmp_path):
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(f"name: {unique_name('svc')}\nendpoints: []\n")
    r = dl("serve", "-c", str(cfg), "-p", "1", "--max-connection-attempts", "2")
    assert r.returncode != 0
    assert "pika" not in r.stderr and "[ERROR]" not in r.stderr, r.stderr
    assert "cannot connect to the broker" in r.stderr


def test_bad_lockout_key_exits_4_and_sends_nothing(served):
    _, ep = served
    r = dl("agent", "set", ep, "1", "-k", "notauuid", "--json-print")
    assert r.returncode == 4
    assert r.stdout == ""
    assert r.stderr.splitlines() == ["dl-agent: Lockout key [notauuid] is not uuid format compliant "
                                     "(expected a UUID such as 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0)"]
    r = dl("agent", "get", ep, "--json-print")  # the set never arrived
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["payload"] != {"value": 1}


def test_negative_timeout_is_a_usage_error():
    r = dl("agent", "get", "x", "-t", "-1")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == \
        "dl-agent: error: argument -t/--timeout: timeout must be >= 0 seconds; 0 waits forever"


def test_missing_routing_key_names_only_it():
    r = dl("agent", "get")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "dl-agent: error: the following arguments are required: routing_key"


def test_help_has_one_example_per_line():
    r = dl("agent", "-h")
    assert r.returncode == 0
    examples = r.stdout.split("examples:\n", 1)[1].splitlines()
    assert [line.split()[:2] for line in examples if line.strip()] == [
        ["dl-agent", "get"], ["dl-agent", "set"], ["dl-agent", "cmd"], ["dl-agent", "cmd"],
        ["dl-agent", "set"], ["dl-agent", "cmd"], ["dl-agent", "get"], ["dl-agent", "describe"]]


def test_mon_header_names_the_alert_keys_and_the_broker(served):
    key = unique_name("sensor_value.t")
    mon = subprocess.Popen([sys.executable, "-m", "dripline.cli.mon", "-a", key, "-n", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = mon.stderr.readline().rstrip("\n")
        assert line.startswith(f"dl-mon: watching alerts '{key}' on amqp://guest@")
        assert line.endswith(" (Ctrl-C to stop)") and "requests" not in line
        r = dl("agent", "alert", key, "value=3")
        assert r.returncode == 0, r.stderr
        mon.communicate(timeout=20)
        assert mon.returncode == 0
    finally:
        if mon.poll() is None:
            mon.kill()
            mon.wait()


def test_mon_header_with_both_kinds(served):
    keys = [unique_name("a"), unique_name("b")]
    mon = subprocess.Popen([sys.executable, "-m", "dripline.cli.mon", "-r", *keys, "-a", "#"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = mon.stderr.readline()
        assert f"dl-mon: watching requests '{keys[0]}', '{keys[1]}' and alerts '#' on amqp://" in line
    finally:
        mon.terminate()
        mon.communicate(timeout=20)


def test_plugin_errors_are_one_line(tmp_path):
    r = dl("plugin", "new", "json", "--dir", str(tmp_path / "p"))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "standard-library" in r.stderr
    r = dl("plugin", "new", "pika", "--dir", str(tmp_path / "p"))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    r = dl("plugin", "new", "myplug", "--dir", "/proc/nope")
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("dl-plugin: cannot write the plugin to /proc/nope")
    r = dl("plugin", "-V")
    assert r.returncode == 0 and r.stdout.startswith("dl-plugin ")


def test_sim_taken_port_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "dripline.implementations.sim", "--port", str(port)],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert f"port {port}" in r.stderr and "--port" in r.stderr
    r = subprocess.run([sys.executable, "-m", "dripline.implementations.sim", "-V"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("dl-sim-scpi ")


def test_misspelt_auth_item_stops_the_agent(tmp_path, served):
    _, ep = served
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"dripline": {"username": "guest", "pasword": "guest-typo-secret"},
                                "other_tool": {"token": "t"}}))
    r = dl("agent", "get", ep, "--auth-file", str(path))
    assert r.returncode != 0
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert str(path) in r.stderr and "'dripline'" in r.stderr and "'pasword'" in r.stderr
    assert "did you mean 'password'" in r.stderr and "guest-typo-secret" not in r.stderr
    path.write_text(json.dumps({"dripline": {"username": "guest", "password": "guest"},
                                "other_tool": {"tokn": "t"}}))
    r = dl("agent", "get", ep, "--auth-file", str(path))
    assert r.returncode == 0, r.stderr
