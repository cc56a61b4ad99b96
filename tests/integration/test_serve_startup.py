"""dl-serve start-up against the real broker: a name or an endpoint name already served, build
errors as one line, timing options from strings, and a failed start leaving nothing behind."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pika
import pytest

from dripline.core import Service
from dripline.client.session import Core
from dripline.protocol.errors import DriplineError
from dripline.protocol.message import MsgRequest, op_t
from dripline.transport.bridge import new_event_loop
from dripline.implementations import KeyValueStore
from dripline.testing import test_mesh, unique_name


def serve(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "dev", "-m", "dripline.cli.serve", *args],
                          capture_output=True, text=True, timeout=timeout, **kw)


def marker_service(tmp_path, name: str, endpoints: str = "") -> tuple:
    """A YAML file whose service class leaves a file behind when it is constructed."""
    marker = tmp_path / "built"
    (tmp_path / "marked.py").write_text(textwrap.dedent(f"""
        from dripline.core import Service

        class MarkedService(Service):
            def __init__(self, **kwargs):
                open({str(marker)!r}, "w").close()
                super().__init__(**kwargs)
    """))
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(f"name: {name}\nmodule: MarkedService\nmodule_path: marked.py\n"
                   f"heartbeat_interval_s: 0\n{endpoints}")
    return cfg, marker


def run_async(coro):
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# ---------------------------------------------------------------------------------------------
# item 2: the service name is checked before anything is built

def test_second_serve_with_a_running_name_exits_1_before_building(dl_service, tmp_path):
    name = unique_name("taken")
    dl_service(Service(name, dripline_mesh=test_mesh(), heartbeat_interval_s=0))
    cfg, marker = marker_service(tmp_path, name)
    r = serve("-c", str(cfg))
    assert r.returncode == 1, r.stderr
    assert r.stderr == (f"dl-serve: cannot start service '{name}': a service with that name is "
                        "already running on this mesh\n")
    assert not marker.exists()


def test_name_check_with_the_broker_unreachable_is_one_line_exit_1(tmp_path):
    cfg, marker = marker_service(tmp_path, unique_name("nobroker"))
    r = serve("-c", str(cfg), "-p", "1", "--max-connection-attempts", "1")
    assert r.returncode == 1
    assert r.stderr.startswith("dl-serve: cannot connect to the broker") and r.stderr.count("\n") == 1
    assert not marker.exists()


def test_free_name_serves_and_stops_cleanly(tmp_path):
    name, ep = unique_name("free"), unique_name("peaches")
    cfg, marker = marker_service(tmp_path, name, f"endpoints:\n  - name: {ep}\n    module: KeyValueStore\n"
                                                 "    initial_value: 3\n")
    proc = subprocess.Popen([sys.executable, "-X", "dev", "-m", "dripline.cli.serve", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = subprocess.run([sys.executable, "-m", "dripline.cli.agent", "get", ep],
                               capture_output=True, text=True, timeout=30)
            if r.returncode == 0:
                break
            time.sleep(0.2)
        assert r.returncode == 0, r.stderr
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert "Task was destroyed" not in out and "Traceback" not in out
        assert marker.exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_queue_exists_tells_locked_from_free_and_keeps_the_connection_usable(dl_service):
    name = unique_name("held")
    ep = unique_name("echo")
    svc = Service(name, dripline_mesh=test_mesh(), heartbeat_interval_s=0)
    svc.add_child(KeyValueStore(name=ep, initial_value=5))
    dl_service(svc)

    async def go():
        core = Core(test_mesh(), service_name=unique_name("probe"))
        await core.start()
        try:
            locked = await core.connection.queue_exists(name)
            free = await core.connection.queue_exists(unique_name("nobody"))
            from dripline.protocol.message import MsgRequest, op_t
            reply = await core.request(MsgRequest.create(msg_op=op_t.get, routing_key=ep), 10)
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            return locked, free, reply, pending
        finally:
            await core.close()

    locked, free, reply, _ = run_async(go())
    assert locked is True and free is False
    assert reply.return_code == 0 and reply.payload["value_raw"] == 5


def test_failed_start_leaves_no_task_and_closes_its_connection(dl_service):
    name = unique_name("twice")
    dl_service(Service(name, dripline_mesh=test_mesh(), heartbeat_interval_s=0))
    second = Service(name, dripline_mesh=test_mesh(), heartbeat_interval_s=0)

    async def go():
        with pytest.raises(DriplineError, match="already running"):
            await second.start()
        await asyncio.sleep(0.05)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert run_async(go()) == []
    assert not second.core.connection.is_open


# ---------------------------------------------------------------------------------------------
# item 6: an endpoint name another service serves

def test_endpoint_served_by_another_service_is_refused(dl_service, tmp_path):
    owner, ep = unique_name("jstore"), unique_name("peaches")
    svc = Service(owner, dripline_mesh=test_mesh(), heartbeat_interval_s=0)
    svc.add_child(KeyValueStore(name=ep, initial_value=1))
    dl_service(svc)
    other = unique_name("second")
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(f"name: {other}\nheartbeat_interval_s: 0\nendpoints:\n"
                   f"  - name: {unique_name('free')}\n    module: KeyValueStore\n"
                   f"  - name: {ep}\n    module: KeyValueStore\n")
    r = serve("-c", str(cfg))
    assert r.returncode == 1, r.stderr
    assert (f"dl-serve: endpoint '{ep}' is already served by service '{owner}' on this mesh; "
            "endpoint names must be unique") in r.stderr
    assert "Traceback" not in r.stderr and "Task was destroyed" not in r.stderr
    # the refused service left nothing bound: its name is free again
    probe = subprocess.run([sys.executable, "-m", "dripline.cli.agent", "get", other],
                           capture_output=True, text=True, timeout=30)
    assert probe.returncode == 4


def test_endpoint_bound_by_something_silent_counts_as_free(caplog):
    ep = unique_name("watched")
    conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    try:
        ch = conn.channel()
        ch.exchange_declare("requests", exchange_type="topic")
        q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(q, "requests", f"{ep}.#")  # a listener that never answers (like dl-mon)
        svc = Service(unique_name("svc"), dripline_mesh=test_mesh(), heartbeat_interval_s=0)
        svc.add_child(KeyValueStore(name=ep, initial_value=1))

        async def go():
            await svc.start()
            try:  # started: the silent listener did not make the name count as served
                reply = await svc.core.request(MsgRequest.create(
                    payload={}, msg_op=op_t.cmd, routing_key=ep, specifier="ping"), 10)
                return reply.return_code, reply.sender_info["service_name"]
            finally:
                await svc.stop_async()

        with caplog.at_level(logging.DEBUG, logger="dripline.service.topology"):
            assert run_async(go()) == (0, svc.name)
        assert f"'{ep}.#' is bound on the mesh but nothing answered a ping" in caplog.text
    finally:
        conn.close()


def test_probing_free_endpoint_names_does_not_refuse():
    svc = Service(unique_name("quick"), dripline_mesh=test_mesh(), heartbeat_interval_s=0)
    for _ in range(5):
        svc.add_child(KeyValueStore(name=unique_name("ep"), initial_value=0))

    async def go():
        await svc.core.start()
        try:
            await svc.runtime.topology.refuse_served_endpoints()
            await svc.runtime.topology.refuse_served_endpoints()  # probing twice is harmless
            return True
        finally:
            await svc.core.close()

    assert run_async(go()) is True


# ---------------------------------------------------------------------------------------------
# items 1 and 3: options and build errors through dl-serve

def test_build_errors_are_one_line_exit_2_and_traceback_with_v(tmp_path):
    name = unique_name("store")
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(f"name: {name}\nheartbeat_interval_s: 0\nendpoints:\n"
                   f"  - name: {unique_name('peaches')}\n    module: KeyValueStore\n"
                   "    log_interval: 10\n")
    r = serve("-c", str(cfg), "endpoints.0.log_interval=abc")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"cannot build service '{name}': endpoint 'peaches_" in r.stderr
    assert "ThrowReply: log_interval must be" in r.stderr
    r = serve("-c", str(cfg), "endpoints.0.log_interval=abc", "-v")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_negative_heartbeat_interval_option_is_refused(tmp_path):
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(f"name: {unique_name('hb')}\n")
    r = serve("-c", str(cfg), "--heartbeat-interval-s", "-5")
    assert r.returncode == 2
    assert "heartbeat_interval_s must be" in r.stderr and "-5" in r.stderr


def test_heartbeat_interval_from_an_environment_string(tmp_path):
    name = unique_name("hbenv")
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(f"name: {name}\nheartbeat_interval_s: ENV{{DL_TEST_HB}}\n")
    conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    ch = conn.channel()
    ch.exchange_declare("alerts", exchange_type="topic")
    q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
    ch.queue_bind(q, "alerts", f"heartbeat.{name}")
    proc = subprocess.Popen([sys.executable, "-m", "dripline.cli.serve", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "DL_TEST_HB": "0.2"})
    try:
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:
            method, _, body = ch.basic_get(q, auto_ack=True)
            if method is None:
                conn.process_data_events(0.05)
                continue
            got.append(json.loads(body))
        assert len(got) == 2, proc.poll()
        assert got[0]["name"] == name
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        conn.close()
    assert "TypeError" not in out
