"""dl-agent and dl-mon at the terminal, as a newcomer meets them (issue 10, item 7)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from .endpoints import dl


def _agent(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dripline.cli.agent", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until(predicate, limit_s: float = 30) -> None:
    end = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# an unreachable broker: one line, within the request's timeout

def test_unreachable_broker_gives_up_within_the_request_timeout():
    r = dl("agent", "get", "x", "-p", "1", "-t", "1")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1, r.stderr  # one line, no retry lines
    assert "cannot connect to the broker at amqp://guest@localhost:1/" in r.stderr
    assert "within 1 s" in r.stderr


def test_a_host_name_that_does_not_resolve_fails_at_the_first_attempt():
    r = dl("agent", "get", "x", "-b", "no-such-host.invalid", "-t", "30", "-v")
    assert r.returncode == 1
    assert "the host name 'no-such-host.invalid' does not resolve" in r.stderr
    assert "retrying" not in r.stderr  # not one retry, even with -v


def test_quiet_and_verbose_change_the_log_lines_not_the_report():
    loud = dl("agent", "get", "x", "-p", "1", "-t", "1", "-v")
    assert "connection attempt 1" in loud.stderr and "retrying" in loud.stderr
    quiet = dl("agent", "get", "x", "-p", "1", "-t", "1", "-q")
    assert quiet.returncode == loud.returncode == 1
    assert quiet.stderr.splitlines() == [loud.stderr.splitlines()[-1]]  # the report stays


# ---------------------------------------------------------------------------------------------
# Ctrl-C

def test_ctrl_c_while_waiting_for_a_reply_exits_130_with_one_line(served):
    svc, ep = served
    endpoint = svc.endpoint(ep)
    proc = _agent("cmd", ep, "-s", "sleep", "3", "-t", "0")
    try:
        _wait_until(lambda: endpoint.active > 0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert out == ""
    assert err == "dl-agent: interrupted\n"


def test_ctrl_c_while_connecting_exits_130(tmp_path):
    proc = _agent("get", "x", "-p", "1", "-t", "0", "-v")  # no deadline: ten back-off rounds
    try:
        _wait_until(lambda: proc.poll() is not None or _log_has_retry(proc))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.splitlines()[-1] == "dl-agent: interrupted"
    assert "Traceback" not in err


def _log_has_retry(proc: subprocess.Popen) -> bool:
    line = proc.stderr.readline()
    return "retrying" in line


# ---------------------------------------------------------------------------------------------
# who sent it: ping names the program; dl-mon names a client sender

def test_ping_reply_names_the_program_not_the_interpreter(served):
    svc, _ = served
    r = dl("agent", "cmd", svc.name, "-s", "ping")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first == "0 (success): Hello, dl-agent"  # `python -m dripline.cli.agent`: the name
    assert "python" not in first


def test_mon_names_the_sender_of_a_request(served):
    svc, ep = served
    mon = subprocess.Popen([sys.executable, "-m", "dripline.cli.mon", "-r", ep, "-n", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until(lambda: "watching" in mon.stderr.readline())
        r = dl("agent", "get", ep)
        assert r.returncode == 0, r.stderr
        out, _ = mon.communicate(timeout=30)
    finally:
        if mon.poll() is None:
            mon.kill()
    line = out.strip()
    assert f"request {ep} get" in line.replace("  ", " ")
    assert " from dl-agent (" in line and "@" in line.split(" from ")[1]
    assert "from unknown" not in line


def test_agent_output_to_a_closed_pipe_is_no_error(served):
    _, ep = served
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: `| head -0`
    try:
        r = subprocess.run([sys.executable, "-m", "dripline.cli.agent", "get", ep], stdout=write,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert r.returncode == 0
    assert r.stderr == ""  # no BrokenPipeError, no "Exception ignored" line

