"""TLS to the broker and least-privilege broker users, against a private RabbitMQ node.

The node (never the shared broker on 5672) has an amqps listener that requires a client
certificate from a throwaway CA. The permission recipes are read from docs/security.md and
applied as written, so the page and the code cannot drift apart: each role works with its
recipe, and what the recipe forbids fails at once with an error that names the operation and
points to the page.
"""
from __future__ import annotations

import logging
import os
import secrets
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from dripline.core import Interface, Service
from dripline.protocol.errors import ConfigError, ConnectionError_, DriplineError, UnableToSendError
from dripline.testing import ServiceRunner
from dripline.testing.rabbitmq import RabbitNode, make_tls_files, rabbitmq_available

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("my_store", "sensor_data_logger", "operator", "monitor")


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitNode]:
    if not rabbitmq_available():  # an integration test fails, never skips
        pytest.fail("RabbitMQ (rabbitmq-server and erl) is not installed; no private node")
    with RabbitNode(tls=True, verify_peer=True, fail_if_no_peer_cert=True) as n:
        yield n


def tls_mesh(node: RabbitNode, **extra: Any) -> dict:
    files = node.tls_files
    assert files is not None
    mesh = {"broker": "127.0.0.1", "broker_port": node.tls_port, "broker_tls": True,
            "tls_ca_file": str(files.ca_cert), "tls_cert_file": str(files.client_cert),
            "tls_key_file": str(files.client_key), "max_connection_attempts": 1}
    mesh.update(extra)
    return {k: v for k, v in mesh.items() if v is not None}


# ------------------------------------------------------------------------------------------------
# TLS

def test_amqps_with_ca_and_client_certificate_serves_and_logs_no_secret(node: RabbitNode,
                                                                         caplog) -> None:
    caplog.set_level(logging.DEBUG)
    user, password = f"tls_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    node.add_user(user, password)
    key_text = node.tls_files.client_key.read_text().splitlines()[1]  # a line of the key itself
    svc = Service(f"tls_svc_{secrets.token_hex(4)}", dripline_mesh=tls_mesh(node),
                  username=user, password=password, heartbeat_interval_s=0,
                  endpoints=[{"name": f"tls_ep_{secrets.token_hex(4)}", "module": "KeyValueStore",
                              "initial_value": 4}])
    endpoint = next(iter(svc.sync_children))
    runner = ServiceRunner(svc).start()
    try:
        with Interface(dripline_mesh=tls_mesh(node), username=user, password=password) as dl:
            assert str(dl.core.connection.address).startswith(f"amqps://{user}@")
            assert dl.get(endpoint)["value_raw"] == 4
    finally:
        runner.stop()
    assert password not in caplog.text and key_text not in caplog.text


def test_no_client_certificate_is_refused_at_once_with_the_reason(node: RabbitNode) -> None:
    mesh = tls_mesh(node, tls_cert_file=None, tls_key_file=None, max_connection_attempts=10)
    with pytest.raises(ConnectionError_) as info:
        Interface(dripline_mesh=mesh)
    assert "client certificate" in info.value.message
    assert "attempt" not in info.value.message  # not retried: retrying cannot help


@pytest.mark.parametrize("case", ["other CA", "system CAs", "wrong name"])
def test_a_broker_certificate_that_cannot_be_verified_is_refused(node: RabbitNode, tmp_path,
                                                                  case: str) -> None:
    extra: dict[str, Any] = {
        "other CA": {"tls_ca_file": str(make_tls_files(tmp_path).ca_cert)},
        "system CAs": {"tls_ca_file": None},  # the default: verify against the system's store
        "wrong name": {"tls_server_hostname": "rabbit.wrong.example.org"},
    }[case]
    with pytest.raises(ConnectionError_) as info:
        Interface(dripline_mesh=tls_mesh(node, **extra))
    assert "certificate was not accepted" in info.value.message
    if case == "wrong name":
        assert "rabbit.wrong.example.org" in info.value.message


def test_the_broker_name_checked_defaults_to_the_broker_address(node: RabbitNode) -> None:
    # the certificate is issued to localhost and 127.0.0.1, not to 127.0.0.2
    with Interface(dripline_mesh=tls_mesh(node, broker="localhost")) as dl:
        assert dl.core.connection.address.host == "localhost"
    with Interface(dripline_mesh=tls_mesh(node, tls_server_hostname="localhost")):
        pass


def test_tls_verify_false_still_encrypts_without_a_ca(node: RabbitNode) -> None:
    with Interface(dripline_mesh=tls_mesh(node, tls_ca_file=None, tls_verify=False)) as dl:
        assert str(dl.core.connection.address).startswith("amqps://")


def test_tls_settings_are_checked_before_connecting(node: RabbitNode, tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        Interface(dripline_mesh={"broker": "127.0.0.1", "broker_port": node.port,
                                 "tls_ca_file": str(node.tls_files.ca_cert)})
    assert "broker_tls" in info.value.message
    with pytest.raises(ConfigError) as info:
        Interface(dripline_mesh=tls_mesh(node, tls_ca_file=str(tmp_path / "missing.pem")))
    assert "missing.pem" in info.value.message
    with pytest.raises(ConfigError) as info:  # a key that does not match the certificate
        Interface(dripline_mesh=tls_mesh(node, tls_key_file=str(node.tls_files.server_key)))
    assert "tls_cert_file" in info.value.message


# ------------------------------------------------------------------------------------------------
# least privilege: the recipes of docs/security.md

def doc_commands() -> list[list[str]]:
    """The `rabbitmqctl set_permissions` / `set_topic_permissions` commands of the page."""
    text = (ROOT / "docs" / "security.md").read_text().replace("\\\n", " ")
    return [shlex.split(line.strip()[2:]) for line in text.splitlines()
            if line.strip().startswith("$ rabbitmqctl set_")]


@pytest.fixture(scope="module")
def roles(node: RabbitNode) -> dict[str, str]:
    """The four users of the page, with its permissions and topic permissions; {user: password}."""
    passwords = {}
    for user in ROLES:
        passwords[user] = secrets.token_urlsafe(12)
        node.add_user(user, passwords[user], configure="", write="", read="")
    commands = doc_commands()
    assert {c[4] if c[2] == "-p" else c[2] for c in commands} >= set(ROLES), commands
    for command in commands:
        assert command[0] == "rabbitmqctl"
        node.ctl(*command[1:])
    return passwords


def as_user(node: RabbitNode, roles: dict[str, str], user: str) -> dict[str, Any]:
    return {"dripline_mesh": {"broker": "127.0.0.1", "broker_port": node.port,
                              "max_connection_attempts": 1},
            "username": user, "password": roles[user]}


@pytest.fixture(scope="module")
def my_store(node: RabbitNode, roles: dict[str, str]) -> Iterator[Service]:
    """The page's service `my_store` with its endpoints peaches, chips and waffles."""
    svc = Service("my_store", heartbeat_interval_s=0.2,
                  endpoints=[{"name": n, "module": "KeyValueStore", "initial_value": i}
                             for i, n in enumerate(("peaches", "chips", "waffles"))],
                  **as_user(node, roles, "my_store"))
    runner = ServiceRunner(svc).start()
    yield svc
    runner.stop()


def test_service_recipe_serves_heartbeats_and_its_own_values(node, roles, my_store) -> None:
    with Interface(**as_user(node, roles, "operator")) as dl:
        assert dl.get("peaches")["value_raw"] == 0
        dl.set("chips", 7)
        assert dl.get("chips")["value_raw"] == 7
    my_store.send_alert("sensor_value.peaches", {"value_raw": 1.0})
    time.sleep(0.5)  # heartbeats (every 0.2 s) go out meanwhile
    confirm(my_store)  # raises if the broker refused any of them
    assert my_store.core.connection.publishes_refused == 0


def confirm(service: Service) -> None:
    """Wait until the broker processed everything the service published so far."""
    import asyncio
    asyncio.run_coroutine_threadsafe(service.core.connection.confirm_published(10),
                                     service.loop).result(15)


def test_service_recipe_refuses_another_name_with_a_clear_error(node, roles) -> None:
    svc = Service("other_store", heartbeat_interval_s=0, **as_user(node, roles, "my_store"))
    with pytest.raises(DriplineError) as info:
        ServiceRunner(svc).start()
    text = info.value.message
    assert "declare the queue 'other_store'" in text and "ACCESS_REFUSED" in text
    assert "'my_store'" in text and "docs/security.md" in text


def test_a_refused_alert_of_a_service_is_reported_and_the_service_keeps_serving(
        node, roles, my_store, caplog) -> None:
    before = my_store.core.connection.publishes_refused
    my_store.send_alert("sensor_value.not_mine", {"value_raw": 1.0})  # not its endpoint
    deadline = time.monotonic() + 10
    while my_store.core.connection.publishes_refused == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert my_store.core.connection.publishes_refused == before + 1
    assert "sensor_value.not_mine" in caplog.text and "docs/security.md" in caplog.text
    with Interface(**as_user(node, roles, "operator")) as dl:
        assert dl.get("waffles")["value_raw"] == 2


def test_logger_recipe_stores_the_values_of_the_mesh(node, roles, my_store, tmp_path) -> None:
    from dripline.implementations.postgres_sensor_logger import PostgresSensorLogger
    db = tmp_path / "values.db"
    logger_svc = PostgresSensorLogger(
        name="sensor_data_logger", insertion_table_endpoint_name="values_table",
        database_url=f"sqlite:///{db}", durable_queue=True, heartbeat_interval_s=0.2,
        setup_sql="CREATE TABLE numeric_data (sensor_name text, timestamp text, value_raw real)",
        endpoints=[{"name": "values_table", "module": "SQLTable", "table_name": "numeric_data",
                    "required_insert_names": ["sensor_name", "timestamp", "value_raw"]}],
        **as_user(node, roles, "sensor_data_logger"))
    runner = ServiceRunner(logger_svc).start()
    try:
        my_store.send_alert("sensor_value.waffles", {"value_raw": 3.5})
        deadline = time.monotonic() + 20
        while logger_svc.counters["stored"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert logger_svc.counters["stored"] == 1
        assert logger_svc.core.connection.publishes_refused == 0
    finally:
        runner.stop()


def test_client_recipe_may_not_post_alerts_and_dl_agent_says_so(node, roles, tmp_path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text(roles["operator"])
    env = dict(os.environ, HOME=str(tmp_path))
    base = [sys.executable, "-m", "dripline.cli.agent", "-b", "127.0.0.1", "-p", str(node.port),
            "-u", "operator", "--password-file", str(password_file), "-t", "10"]
    ok = subprocess.run(base + ["get", "peaches"], env=env, capture_output=True, text=True,
                        timeout=60)
    refused = subprocess.run(base + ["alert", "sensor_value.peaches", "value_raw=9"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert refused.returncode == 4, (refused.returncode, refused.stderr)  # 403 // 100
    assert "refused" in refused.stderr and "docs/security.md" in refused.stderr
    assert roles["operator"] not in refused.stderr + refused.stdout


def test_a_request_refused_by_a_topic_permission_fails_at_once(node, roles, my_store) -> None:
    user, password = "operator_peaches", secrets.token_urlsafe(12)
    node.add_user(user, password, configure=r"^(requests|alerts|amq\.gen-.*)$",
                  write=r"^(requests|amq\.gen-.*)$", read=r"^(requests|amq\.gen-.*)$")
    node.ctl("set_topic_permissions", "-p", "/", user, "requests", r"^(peaches|my_store)$",
             r"^amq\.gen-.*$")
    mesh = as_user(node, {user: password}, user)
    with Interface(timeout_s=30, **mesh) as dl:
        assert dl.get("peaches")["value_raw"] == 0
        with pytest.raises(UnableToSendError) as info:  # not TimeoutError_ after 30 s
            dl.get("waffles")
        assert "'waffles'" in info.value.message and "docs/security.md" in info.value.message
        assert info.value.return_code == 403
        assert dl.get("peaches")["value_raw"] == 0  # the client goes on


def test_monitor_recipe_watches_but_cannot_send(node, roles, my_store, tmp_path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text(roles["monitor"])
    env = dict(os.environ, HOME=str(tmp_path))
    monitor = subprocess.Popen(
        [sys.executable, "-m", "dripline.cli.mon", "-b", "127.0.0.1", "-p", str(node.port),
         "-u", "monitor", "--password-file", str(password_file), "-r", "chips.#", "-a",
         "heartbeat.#", "-n", "2", "--json-print"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Interface(**as_user(node, roles, "operator")) as dl:
            deadline = time.monotonic() + 30
            while monitor.poll() is None and time.monotonic() < deadline:
                dl.get("chips")
                time.sleep(0.2)
        out, err = monitor.communicate(timeout=30)
    finally:
        if monitor.poll() is None:
            monitor.kill()
    assert monitor.returncode == 0, err
    assert len(out.splitlines()) == 2

    with Interface(timeout_s=30, **as_user(node, roles, "monitor")) as dl:
        with pytest.raises(UnableToSendError) as info:
            dl.get("chips")
    assert "refused" in info.value.message and info.value.return_code == 403
