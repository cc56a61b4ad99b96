"""A sensor logger stopped while its database does not answer stops within stop_timeout_s.

The logger talks to the shared PostgreSQL through a TCP proxy owned by the test, which can
freeze: it keeps every connection open and accepts new ones but forwards nothing, as a hung
server or a network that swallows packets would. Nothing here touches the shared server itself.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
import sqlalchemy as sa

from dripline.client.interface import Interface
from dripline.testing import ServiceRunner, test_mesh, unique_name

pytestmark = pytest.mark.usefixtures("postgres")

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LOGGER = "dripline.implementations.postgres_sensor_logger"


class FreezingProxy:
    """Loopback TCP forwarder to PostgreSQL; `freeze()` stops all traffic without closing."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.port = 0
        self.frozen = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _thaw(self) -> None:
        while self.frozen.is_set():
            await asyncio.sleep(0.05)

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                await self._thaw()  # frozen: the bytes are held, the connection stays open
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader, client_writer) -> None:
        self._transports.add(client_writer.transport)
        await self._thaw()  # frozen: accepted, but the server is never reached
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self._transports.add(up_writer.transport)
        await asyncio.gather(self._pipe(client_reader, up_writer),
                             self._pipe(up_reader, client_writer))

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self._transports):
            transport.abort()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    def start(self) -> "FreezingProxy":
        self._call(self._listen())
        return self

    def freeze(self) -> None:
        self.frozen.set()

    def stop(self) -> None:
        self.frozen.clear()
        try:
            self._call(self._close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


@pytest.fixture
def table():
    name = unique_name("stop_rows")
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE {name} (sensor_name TEXT NOT NULL, '
                             f'"timestamp" TEXT NOT NULL, value_raw DOUBLE PRECISION NOT NULL)')
    yield name, engine
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    engine.dispose()


@pytest.fixture
def proxy():
    p = FreezingProxy().start()
    yield p
    p.stop()


def logger_service(table_name: str, port: int, sensor: str, **options):
    from dripline.assembly.objects import create_object
    config = {
        "name": unique_name("stop_logger"), "module": "PostgresSensorLogger",
        "dripline_mesh": test_mesh(), "heartbeat_interval_s": 0,
        "database_url": f"postgresql+psycopg://postgres@127.0.0.1:{port}/test",
        "insertion_table_endpoint_name": "rows", "alert_keys": [f"sensor_value.{sensor}"],
        "stop_timeout_s": 1.5,
        "endpoints": [{"name": unique_name("rows"), "module": "SQLTable", "table_name": table_name,
                       "required_insert_names": ["sensor_name", "timestamp", "value_raw"]}],
    }
    config["insertion_table_endpoint_name"] = config["endpoints"][0]["name"]
    config.update(options)
    return create_object(config, "Service")


def wait_for(predicate, what: str, limit_s: float = 30.0):
    """Poll until `predicate()` is truthy (a liveness bound, not a speed check)."""
    deadline = time.monotonic() + limit_s
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
    return result


def stored(engine, table_name: str) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table_name}").scalar()


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_stopping_while_the_database_hangs_mid_insert(table, proxy, caplog):
    table_name, engine = table
    sensor = unique_name("s")
    service = logger_service(table_name, proxy.port, sensor)
    runner = ServiceRunner(service).start()
    caplog.set_level(logging.INFO, logger=LOGGER)
    try:
        with Interface(dripline_mesh=test_mesh()) as dl:
            dl.send_alert(f"sensor_value.{sensor}", {"value_raw": 1.0})
            wait_for(lambda: stored(engine, table_name) == 1, "the first row")
            proxy.freeze()
            for i in range(5):
                dl.send_alert(f"sensor_value.{sensor}", {"value_raw": float(i)})
            wait_for(lambda: service.counters["received"] == 6, "the alerts to arrive")
            wait_for(lambda: service._in_flight == 5, "the writer to be inside the insert")
    finally:
        runner.stop(timeout=60)  # before the fix this never returned
    logged = messages(caplog)
    assert any("writing the 5 queued alerts for at most 1.5 s (stop_timeout_s)" in m for m in logged)
    assert any("did not finish within stop_timeout_s (1.5 s); aborting its connection" in m
               for m in logged)
    assert any(m.startswith(f"{service.name}: writer stopped after") for m in logged)
    assert any("5 alerts could not be stored before stopping and are lost" in m for m in logged)
    assert not service._writer.is_alive()
    proxy.frozen.clear()
    assert stored(engine, table_name) == 1  # the aborted transaction was not half committed


def test_stopping_while_the_database_never_answers_a_new_connection(table, proxy, caplog):
    table_name, engine = table
    sensor = unique_name("s")
    proxy.freeze()  # reachable by TCP, but the server never answers
    service = logger_service(table_name, proxy.port, sensor, stop_timeout_s=0.5)
    runner = ServiceRunner(service).start()
    caplog.set_level(logging.INFO, logger=LOGGER)
    try:
        with Interface(dripline_mesh=test_mesh()) as dl:
            for i in range(3):
                dl.send_alert(f"sensor_value.{sensor}", {"value_raw": float(i)})
            wait_for(lambda: service._in_flight == 3, "the writer to be connecting")
    finally:
        runner.stop(timeout=60)
    logged = messages(caplog)
    assert any("aborting its connection" in m for m in logged)
    assert any("still waiting for the database (connecting); stopping without it" in m
               for m in logged)
    assert any("3 alerts could not be stored before stopping and are lost" in m for m in logged)
    proxy.frozen.clear()
    assert stored(engine, table_name) == 0


def test_stopping_with_a_durable_queue_leaves_the_rows_in_the_broker(table, proxy, caplog):
    table_name, engine = table
    sensor = unique_name("s")
    service = logger_service(table_name, proxy.port, sensor, durable_queue=True)
    runner = ServiceRunner(service).start()
    caplog.set_level(logging.INFO, logger=LOGGER)
    try:
        with Interface(dripline_mesh=test_mesh()) as dl:
            dl.send_alert(f"sensor_value.{sensor}", {"value_raw": 1.0})
            wait_for(lambda: stored(engine, table_name) == 1, "the first row")
            proxy.freeze()
            for i in range(4):
                dl.send_alert(f"sensor_value.{sensor}", {"value_raw": float(i)})
            wait_for(lambda: service._in_flight == 4, "the writer to be inside the insert")
    finally:
        runner.stop(timeout=60)
        _delete_queue(service.durable_queue_name)
    logged = messages(caplog)
    assert any("aborting its connection" in m for m in logged)
    assert any("4 alerts not stored before stopping; they stay in the durable queue" in m
               for m in logged)


def _delete_queue(name: str) -> None:
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", test_mesh()["broker_port"]))
    try:
        conn.channel().queue_delete(name)
    finally:
        conn.close()
