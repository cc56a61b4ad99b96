"""dripline.testing.rabbitmq: private nodes start, serve, restart, die and clean up on their own."""
from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pika
import pytest

from dripline.testing import test_mesh
from dripline.testing.rabbitmq import RabbitCluster, RabbitError, RabbitNode, rabbitmq_available


@pytest.fixture(autouse=True)
def _installed():
    if not rabbitmq_available():
        pytest.fail("RabbitMQ (rabbitmq-server, erl) is not installed")


def _connect(port: int, user: str = "guest", password: str = "guest", **kw) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1" if "ssl_options" not in kw else "localhost", port,
        credentials=pika.PlainCredentials(user, password), connection_attempts=1,
        socket_timeout=5, **kw))


def _accepts(port: int) -> bool:
    try:
        _connect(port).close()
        return True
    except pika.exceptions.AMQPError:
        return False


def _shared_broker_serves() -> bool:
    mesh = test_mesh()
    try:
        pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", mesh["broker_port"], connection_attempts=1, socket_timeout=5)).close()
        return True
    except pika.exceptions.AMQPError:
        return False


def test_node_lifecycle_users_tls_and_clean_up():
    assert _shared_broker_serves()
    node = RabbitNode(tls=True, verify_peer=True, fail_if_no_peer_cert=True)
    assert node.port != test_mesh()["broker_port"] and node.tls_port not in (5671, node.port)
    try:
        node.start()
        # its own identity: the CLI reaches it by its own name, with its own config file
        status = node.ctl("status").stdout
        assert node.node_name in status and str(node.dir / "rabbitmq.conf") in status
        assert "rabbit@" not in node.node_name
        beam = node.beam_pid
        assert beam is not None and beam != os.getpid()

        # a durable queue with a persistent message survives a kill -9 and a restart
        queue = f"harness-{uuid.uuid4().hex[:8]}"
        conn = _connect(node.port)
        ch = conn.channel()
        ch.queue_declare(queue, durable=True)
        ch.confirm_delivery()  # the broker confirms a persistent message once it is on disk
        ch.basic_publish("", queue, b"kept", pika.BasicProperties(delivery_mode=2))
        conn.close()
        node.restart(hard=True)
        assert node.beam_pid not in (None, beam)  # a new VM
        assert _shared_broker_serves()            # the kill touched only this node
        conn = _connect(node.port)
        method, _, body = conn.channel().basic_get(queue, auto_ack=True)
        conn.close()
        assert method is not None and body == b"kept"
        assert [q["name"] for q in node.list_queues()] == [queue]

        # users: the password goes in on stdin; permissions are what was granted
        node.add_user("reader", "s3cret-pw", configure="", write="", read=".*")
        conn = _connect(node.port, "reader", "s3cret-pw")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            conn.channel().queue_declare("not-allowed")
        assert refused.value.reply_code == 403
        conn.close()
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            _connect(node.port, "reader", "wrong")
        with pytest.raises(RabbitError, match="add_user"):
            node.add_user("reader", "again")  # exists already: a clear error, not silence

        # TLS: the server proves itself with the CA's certificate, and wants a client certificate
        files = node.tls_files
        assert files is not None and files.ca_cert.exists() and files.client_key.exists()
        assert (files.client_key.stat().st_mode & 0o777) == 0o600
        conn = _connect(node.tls_port, ssl_options=pika.SSLOptions(files.client_context(),
                                                                   "localhost"))
        assert conn.is_open
        conn.close()
        with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
            _connect(node.tls_port, ssl_options=pika.SSLOptions(
                files.client_context(with_client_cert=False), "localhost"))
        untrusting = ssl.create_default_context()  # system CAs only: must not trust the test CA
        with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
            _connect(node.tls_port, ssl_options=pika.SSLOptions(untrusting, "localhost"))

        # graceful stop: gone, and a start brings back the same port
        node.stop()
        assert not node.running and node.beam_pid is None and not _accepts(node.port)
        node.start()
        assert _accepts(node.port)
    finally:
        node.close()
    assert not node.dir.exists()
    assert not _accepts(node.port)
    assert _shared_broker_serves()


def test_a_node_fails_to_start_with_a_clear_error():
    node = RabbitNode(config={"listeners.tcp.1": "not-an-address"}, start_timeout=120)
    try:
        with pytest.raises(RabbitError) as err:
            node.start()
        assert node.node_name in str(err.value) and "---" in str(err.value)  # with the log tail
        assert not node.running
    finally:
        node.close()
    assert not node.dir.exists()


def test_a_node_is_killed_and_removed_when_its_owner_dies(tmp_path):
    """The owner process is killed with SIGKILL (no atexit): the watchdog takes the node down."""
    report = tmp_path / "node.txt"
    script = textwrap.dedent(f"""
        import time
        from dripline.testing.rabbitmq import RabbitNode
        node = RabbitNode().start()
        open({str(report)!r}, "w").write(f"{{node.beam_pid}} {{node.port}} {{node.dir}}")
        time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not report.exists() or not report.read_text():
            assert owner.poll() is None, "the owner process died before its node started"
            assert time.monotonic() < deadline, "the node did not start"
            time.sleep(0.5)
        beam, port, folder = report.read_text().split()
        assert _accepts(int(port))
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(30)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{beam}").exists() or Path(folder).exists():
        assert time.monotonic() < deadline, "node still there after its owner died"
        time.sleep(0.2)
    assert not _accepts(int(port))
    assert _shared_broker_serves()


def test_three_nodes_form_one_cluster_and_a_node_rejoins_after_kill_9():
    with RabbitCluster(3) as cluster:
        names = {node.node_name for node in cluster}
        assert len(names) == 3 and set(cluster.running_nodes()) == names
        assert len({node.port for node in cluster}) == 3
        assert cluster.addresses == [f"127.0.0.1:{node.port}" for node in cluster]

        # one broker: a queue declared on node 0 receives what is published on node 1 and is
        # read on node 2
        queue = f"cluster-{uuid.uuid4().hex[:8]}"
        conns = [_connect(node.port) for node in cluster]
        try:
            conns[0].channel().queue_declare(queue, durable=True)
            conns[1].channel().basic_publish("", queue, b"across")
            method, _, body = conns[2].channel().basic_get(queue, auto_ack=True)
            assert method is not None and body == b"across"
        finally:
            for conn in conns:
                conn.close()

        cluster.kill(1)
        assert set(cluster.running_nodes()) == names - {cluster[1].node_name}
        cluster.start_node(1)
        assert set(cluster.running_nodes()) == names
    assert not any(node.dir.exists() for node in cluster)
    assert _shared_broker_serves()
