"""A mesh spread over a private 3-node RabbitMQ cluster (never the shared broker on 5672).

What an operator of a multi-machine mesh counts on: a service, a client and dl-mon keep working
when the node they are connected to dies (they go to another node, declare their exchanges and
queues again and re-bind); alerts waiting for a logger in a quorum queue survive the loss of a
node and are stored once each; several loggers share one durable queue. Bounds on waiting are
hang guards, never timing assertions.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from dripline.core import Interface, Service
from dripline.protocol.errors import DriplineError
from dripline.testing import ServiceRunner
from dripline.testing.rabbitmq import RabbitCluster, free_port, rabbitmq_available

pytestmark = pytest.mark.integration

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RECOVER_S = 60.0  # hang guard: how long a process may take to come back before the test fails


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    if not rabbitmq_available():  # an integration test fails, never skips
        pytest.fail("RabbitMQ (rabbitmq-server and erl) is not installed; no private cluster")
    with RabbitCluster(3) as c:
        yield c


@pytest.fixture()
def all_nodes_up(cluster: RabbitCluster) -> Iterator[RabbitCluster]:
    """Every node running before and after the test (a test that kills one brings it back)."""
    for i, node in enumerate(cluster):
        if not node.running:
            cluster.start_node(i)
    yield cluster
    for i, node in enumerate(cluster):
        if not node.running:
            cluster.start_node(i)


def mesh_for(cluster: RabbitCluster, first: int = 0, **extra: Any) -> dict:
    """All nodes, node `first` listed first (the one connected to)."""
    addresses = cluster.addresses[first:] + cluster.addresses[:first]
    return {"broker": ",".join(addresses), **extra}


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def eventually(check: Callable[[], Any], timeout: float = RECOVER_S, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as err:  # noqa: BLE001 - retried until the deadline
            last = err
        else:
            if result:
                return result
        time.sleep(0.1)
    pytest.fail(f"{what or 'condition'} not reached within {timeout:g} s (last error: {last!r})")


def node_port(service: Any) -> int:
    return service.core.connection.address.port


# ------------------------------------------------------------------------------------------------

def test_the_first_node_that_answers_is_used(all_nodes_up: RabbitCluster) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    mesh = {"broker": [dead, *all_nodes_up.addresses], "max_connection_attempts": 1}
    with Interface(dripline_mesh=mesh, timeout_s=5) as dl:
        assert dl.core.connection.address.port == all_nodes_up[0].port


def test_no_node_answering_is_one_clear_error(all_nodes_up: RabbitCluster) -> None:
    mesh = {"broker": f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}",
            "max_connection_attempts": 1}
    with pytest.raises(DriplineError) as info:
        Interface(dripline_mesh=mesh, timeout_s=5)
    assert "every node" in info.value.message and info.value.return_code == 101


def test_service_client_and_monitor_survive_the_loss_of_their_node(all_nodes_up: RabbitCluster,
                                                                   tmp_path) -> None:
    cluster = all_nodes_up
    svc_name, ep = name("svc"), name("peaches")
    service = Service(svc_name, dripline_mesh=mesh_for(cluster, 0), heartbeat_interval_s=0,
                      metrics_port=0, metrics_address="127.0.0.1",
                      endpoints=[{"name": ep, "module": "KeyValueStore", "initial_value": 1.5}])
    runner = ServiceRunner(service).start()
    env = dict(os.environ, HOME=str(tmp_path))  # no ~/.dripline_mesh.yaml of the machine
    monitor = subprocess.Popen([sys.executable, "-m", "dripline.cli.mon", "-b", cluster.broker,
                                "-r", f"{ep}.#", "--json-print"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    seen: list[dict] = []
    reader = threading.Thread(target=lambda: [seen.append(json.loads(line))
                                              for line in monitor.stdout], daemon=True)
    reader.start()
    try:
        with Interface(dripline_mesh=mesh_for(cluster, 0), timeout_s=3) as dl:
            eventually(lambda: dl.get(ep) and any(m.get("routing_key") == ep for m in seen),
                       what="dl-mon seeing a request")
            assert node_port(service) == cluster[0].port
            assert dl.core.connection.address.port == cluster[0].port

            cluster.kill(0)

            # each comes back on another node, with its queue and bindings
            eventually(lambda: dl.get(ep)["value_raw"] == 1.5, what="the service answering again")
            assert node_port(service) != cluster[0].port
            assert dl.core.connection.address.port != cluster[0].port
            dl.set(ep, 2.5)
            assert dl.get(ep)["value_raw"] == 2.5
            sets = 1

            def monitor_sees_a_set() -> bool:
                # dl-mon may re-bind after the service did: a set sent before its binding is back
                # is not routed to it, so send one on each try until it sees one
                nonlocal sets
                if any((m.get("payload") or {}).get("values") == [2.5] for m in seen):
                    return True
                dl.set(ep, 2.5)
                sets += 1
                return False

            eventually(monitor_sees_a_set,
                       what=f"dl-mon seeing requests after the node loss (saw {len(seen)})")
            assert monitor.poll() is None

            text = eventually(lambda: _scrape(service.metrics.port), what="metrics")
            assert _sample(text, "dripline_broker_reconnects_total", service=svc_name) == 1.0
            assert _sample(text, "dripline_broker_connected", service=svc_name) == 1.0
            ok_sets = _sample(text, "dripline_requests_total", service=svc_name, endpoint=ep,
                              operation="set", code="0")
            assert ok_sets == float(sets)

            cluster.start_node(0)  # the node rejoins; nothing moves back, nothing breaks
            assert dl.get(ep)["value_raw"] == 2.5
    finally:
        monitor.terminate()
        monitor.wait(15)
        runner.stop()


class FrozenHost:
    """A loopback TCP forwarder to a node; `freeze()` stops every byte without closing anything:
    what a client sees when the broker's host loses power or its network."""

    def __init__(self, target_port: int) -> None:
        import asyncio
        self.target_port = target_port
        self.port = 0
        self.frozen = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._writers: list[Any] = []
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    async def _listen(self) -> None:
        import asyncio
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: Any, writer: Any) -> None:
        import asyncio
        try:
            while data := await reader.read(65536):
                while self.frozen.is_set():
                    await asyncio.sleep(0.05)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    async def _handle(self, reader: Any, writer: Any) -> None:
        import asyncio
        if self.frozen.is_set():
            return  # accepted, never answered, never closed
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def close(self) -> None:
        import asyncio

        async def stop() -> None:
            self._server.close()
            for writer in self._writers:
                writer.transport.abort()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def test_a_vanished_broker_host_is_noticed_by_heartbeats(all_nodes_up: RabbitCluster) -> None:
    """No reset arrives from a host that is gone: broker_heartbeat_s bounds how long a service
    keeps waiting on it before it moves to another node (its exclusive queue on the lost node is
    released when the broker, too, misses the heartbeats)."""
    cluster = all_nodes_up
    host = FrozenHost(cluster[0].port)
    svc_name, ep = name("svc"), name("apples")
    mesh = {"broker": [f"127.0.0.1:{host.port}", *cluster.addresses[1:]], "broker_heartbeat_s": 2}
    service = Service(svc_name, dripline_mesh=mesh, heartbeat_interval_s=0,
                      endpoints=[{"name": ep, "module": "KeyValueStore", "initial_value": 3}])
    runner = ServiceRunner(service).start()
    try:
        assert node_port(service) == host.port
        with Interface(dripline_mesh=mesh_for(cluster, 1), timeout_s=2) as dl:
            assert dl.get(ep)["value_raw"] == 3
            host.frozen.set()
            eventually(lambda: dl.get(ep)["value_raw"] == 3, what="the service answering again")
            assert node_port(service) in (cluster[1].port, cluster[2].port)
    finally:
        runner.stop()
        host.close()


# ------------------------------------------------------------------------------------------------
# loggers on a quorum queue

@pytest.fixture()
def pg_table() -> Iterator[str]:
    """A fresh table with a unique message_id column in the shared database `test`."""
    table = name("cluster_values")
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} (id serial PRIMARY KEY, sensor_name text, "
                             "timestamp timestamptz, value_raw double precision, "
                             "message_id text UNIQUE)")
    try:
        yield table
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        engine.dispose()


def logger_service(cluster: RabbitCluster, first: int, table: str, queue: str, svc: str | None = None,
                   endpoint: str | None = None, **extra: Any) -> Any:
    from dripline.implementations.postgres_sensor_logger import PostgresSensorLogger
    endpoint = endpoint or name("values")
    return PostgresSensorLogger(
        name=svc or name("logger"), dripline_mesh=mesh_for(cluster, first), heartbeat_interval_s=0,
        insertion_table_endpoint_name=endpoint, database_url=PG_URL, durable_queue=queue,
        queue_type="quorum", deduplicate=True, alert_keys=[f"{queue}.#"],
        alert_key_parser_re=rf"{queue}\.(?P<sensor_name>[^.]+)", flush_interval_s=0.02,
        endpoints=[{"name": endpoint, "module": "SQLTable", "table_name": table,
                    "required_insert_names": ["sensor_name", "timestamp", "value_raw"]}], **extra)


def stored_ids(table: str) -> list[str]:
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql(f"SELECT message_id FROM {table}")]
    finally:
        engine.dispose()


def send_alerts(dl: Interface, key: str, n: int, start: int = 0) -> list[Any]:
    from dripline.protocol.message import MsgAlert
    sent = []
    for i in range(start, start + n):
        alert = MsgAlert.create(payload={"value_raw": float(i)}, routing_key=key)
        dl_send(dl, alert)
        sent.append(alert)
    return sent


def dl_send(dl: Interface, alert: Any) -> None:
    """Send and wait until the broker took it (a publish on the client's loop)."""
    dl._thread.run(dl.core.send_confirmed(alert, 10))


def test_alerts_in_a_quorum_queue_survive_the_loss_of_a_node_and_are_stored_once(
        all_nodes_up: RabbitCluster, pg_table: str) -> None:
    cluster = all_nodes_up
    queue = name("alerts_q")
    key = f"{queue}.thermo"
    svc = name("logger")
    logger = logger_service(cluster, 0, pg_table, queue, svc=svc)
    runner = ServiceRunner(logger).start()
    with Interface(dripline_mesh=mesh_for(cluster, 1), timeout_s=5) as dl:
        first = send_alerts(dl, key, 20)
        eventually(lambda: len(stored_ids(pg_table)) == 20, what="20 rows stored")
        runner.stop()  # the quorum queue stays; alerts now wait in it
        later = send_alerts(dl, key, 30, start=20)
        def waiting() -> dict:  # the broker's queue statistics lag by a few seconds
            found = {q["name"]: q for q in cluster[1].list_queues("name", "type", "messages")}
            return found[queue] if found[queue]["messages"] == 30 else {}
        assert eventually(waiting, what="30 alerts waiting in the queue")["type"] == "quorum"

        cluster.kill(0)  # the node the logger had declared the queue on

        logger2 = logger_service(cluster, 0, pg_table, queue, svc=svc)  # node 0 first: it is dead
        runner2 = ServiceRunner(logger2).start()
        try:
            eventually(lambda: len(stored_ids(pg_table)) == 50, what="the 30 waiting alerts stored")
            dl_send(dl, first[0])  # the same alert again (same message id): not stored twice
            dl_send(dl, later[-1])
            eventually(lambda: logger2.counters["received"] == 32, what="the repeats received")
            assert logger2.flush(10)
        finally:
            runner2.stop()
    ids = stored_ids(pg_table)
    assert sorted(ids) == sorted(a.message_id for a in first + later)  # none lost, none twice


def test_loggers_share_one_durable_queue_as_competing_consumers(all_nodes_up: RabbitCluster,
                                                                pg_table: str) -> None:
    cluster = all_nodes_up
    queue = name("shared_q")
    loggers = [logger_service(cluster, i, pg_table, queue, durable_prefetch=5) for i in (0, 1)]
    runners = [ServiceRunner(lg).start() for lg in loggers]
    try:
        with Interface(dripline_mesh=mesh_for(cluster, 2), timeout_s=5) as dl:
            sent = send_alerts(dl, f"{queue}.pressure", 200)
        eventually(lambda: len(stored_ids(pg_table)) == 200, what="200 rows stored")
    finally:
        for runner in runners:
            runner.stop()
    assert sorted(stored_ids(pg_table)) == sorted(a.message_id for a in sent)
    received = [lg.counters["received"] for lg in loggers]
    assert sum(received) == 200 and all(n > 0 for n in received), received


def test_queue_type_unset_leaves_the_type_to_the_broker_and_a_mismatch_is_explained(
        all_nodes_up: RabbitCluster, pg_table: str) -> None:
    from dripline.protocol.errors import ConfigError
    cluster = all_nodes_up
    queue = name("plain_q")
    logger = logger_service(cluster, 0, pg_table, queue)
    logger.queue_type = None  # as if the file did not set it
    ServiceRunner(logger).start().stop()
    types = {q["name"]: q["type"] for q in cluster[0].list_queues("name", "type", "arguments")}
    assert types[queue] == "classic"
    args = {q["name"]: q["arguments"] for q in cluster[0].list_queues("name", "arguments")}
    assert "x-queue-type" not in (args[queue] or {})

    quorum = logger_service(cluster, 0, pg_table, queue)  # asks for quorum: the queue is classic
    with pytest.raises(ConfigError) as info:
        ServiceRunner(quorum).start()
    assert queue in info.value.message and "queue_type" in info.value.message
    cluster[0].ctl("delete_queue", queue)


# ------------------------------------------------------------------------------------------------

def _scrape(port: int) -> str:
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _sample(text: str, metric: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None
