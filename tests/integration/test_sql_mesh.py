"""SQL tables and the sensor logger with the real RabbitMQ and PostgreSQL.

Every test works in database ``test`` on a table of its own (dropped afterwards) and with service
and routing-key names of its own. A database outage is simulated with a TCP proxy in front of
PostgreSQL that the test cuts and restores, so the real server stays up for everyone else.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import sqlalchemy as sa

from dripline.core import Service
from dripline.protocol.errors import DriplineError
from dripline.client.interface import Interface
from dripline.implementations import PostgreSQLInterface
from dripline.testing import test_mesh, unique_name

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

pytestmark = pytest.mark.usefixtures("postgres")


# ---------------------------------------------------------------------------------- helpers
@pytest.fixture
def engine(postgres):
    eng = sa.create_engine(PG_URL)
    yield eng
    eng.dispose()


@pytest.fixture
def table(engine):
    name = unique_name("numeric_data")
    with engine.begin() as conn:
        conn.exec_driver_sql(f'''CREATE TABLE {name} (
            id serial PRIMARY KEY,
            sensor_name text NOT NULL,
            "timestamp" timestamp with time zone NOT NULL,
            value_raw double precision NOT NULL,
            value_cal double precision,
            stored_at timestamp with time zone DEFAULT clock_timestamp())''')
    yield name
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")


def table_endpoint(table_name, name=None, **kwargs):
    # a name of its own: the first-mesh example serves `values_table` on the same broker
    conf = {"name": name or unique_name("values_table"), "module": "SQLTable", "table_name": table_name,
            "required_insert_names": ["sensor_name", "timestamp", "value_raw"],
            "optional_insert_names": ["value_cal"]}
    conf.update(kwargs)
    return conf


def logger_config(table_name, sensor, **kwargs):
    conf = {"name": unique_name("sensor_logger"), "module": "PostgresSensorLogger",
            "heartbeat_interval_s": 0,
            "alert_keys": [f"sensor_value.{sensor}"],
            "alert_key_parser_re": r"sensor_value\.(?P<sensor_name>\w+)",
            "database_name": "test", "database_server": "127.0.0.1",
            "retry_interval_s": 0.2, "endpoints": [table_endpoint(table_name, name=unique_name("values"))]}
    conf["insertion_table_endpoint_name"] = conf["endpoints"][0]["name"]
    conf.update(kwargs)
    return conf


def count(engine, table_name, sensor=None):
    where = f" WHERE sensor_name = '{sensor}'" if sensor else ""
    with engine.connect() as conn:
        total, distinct = conn.exec_driver_sql(
            f"SELECT count(*), count(DISTINCT value_raw) FROM {table_name}{where}").one()
    return total, distinct


def wait_for_rows(engine, table_name, n, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        total, distinct = count(engine, table_name)
        if distinct >= n:
            return total, distinct
        time.sleep(0.1)
    return count(engine, table_name)


def stored_values(engine, table_name):
    with engine.connect() as conn:
        return {r[0] for r in conn.exec_driver_sql(f"SELECT value_raw FROM {table_name}")}


class Stream:
    """Publishes alerts value_raw = 0, 1, 2, ... at a steady rate from a thread of its own."""

    def __init__(self, sensor, n, rate_hz=200):
        self.sensor, self.n, self.period = sensor, n, 1.0 / rate_hz
        self.sent = 0
        self.error = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            with Interface(dripline_mesh=test_mesh()) as dl:
                start = time.monotonic()
                for i in range(self.n):
                    delay = start + i * self.period - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    self._send(dl, {"value_raw": i, "value_cal": 2 * i})
                    self.sent = i + 1
        except BaseException as err:  # surfaced by join()
            self.error = err

    def _send(self, dl, payload):
        # another suite's test may force-close every broker connection: resend once reconnected
        deadline = time.monotonic() + 30
        while True:
            try:
                return dl.send_alert(f"sensor_value.{self.sensor}", payload)
            except DriplineError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def start(self):
        self._thread.start()
        return self

    def wait_sent(self, k, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while self.sent < k and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.01)

    def join(self, timeout_s=60):
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the alert stream did not finish"
        if self.error:
            raise self.error


class TcpProxy:
    """A loopback TCP forwarder to PostgreSQL that can be cut (connections dropped, new ones
    refused) and restored on the same port."""

    def __init__(self, target_port=5432):
        self.target_port = target_port
        self.port = None
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._writers = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, up_writer}
        await asyncio.gather(self._pipe(client_reader, up_writer), self._pipe(up_reader, client_writer))
        self._writers -= {client_writer, up_writer}

    async def _listen(self):
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port or 0,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self):
        self._server.close()
        # connections first: from Python 3.12 on, wait_closed() also waits for them to end
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    def start(self):
        self._call(self._listen())
        return self

    def cut(self):
        self._call(self._cut())

    def restore(self):
        self._call(self._listen())

    def stop(self):
        try:
            self._call(self._cut())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def wait_until_served(dl, name, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return dl.get(name, timeout_s=2)
        except DriplineError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# ---------------------------------------------------------------------------------- SQLTable
class RunTables(Service, PostgreSQLInterface):
    """A service with SQL tables, built the way the reference's documentation says."""

    def __init__(self, **kwargs):
        Service.__init__(self, add_endpoints_now=False, **kwargs)
        PostgreSQLInterface.__init__(self, **kwargs)
        self.connect_to_db(self.auth)
        self.add_endpoints_from_config()

    def add_child(self, endpoint):
        Service.add_child(self, endpoint)
        self.add_child_table(endpoint)


def test_sql_table_insert_and_select_through_the_broker(dl_service, dl_interface, table):
    ep = unique_name("runs")
    svc = RunTables(name=unique_name("tables"), dripline_mesh=test_mesh(), heartbeat_interval_s=0,
                    database_name="test", database_server="127.0.0.1:5432",
                    endpoints=[table_endpoint(table, name=ep, return_col_names=["id", "sensor_name"],
                                              default_insert_values={"value_cal": -1.0},
                                              required_insert_names=[
                                                  {"column": "sensor_name", "payload_key": "sensor"},
                                                  "timestamp", "value_raw"])])
    dl_service(svc)
    first = dl_interface.cmd(ep, "do_insert", keyed_args={"sensor": "peaches", "value_raw": 0.75,
                                                         "timestamp": "2024-01-01T00:00:00Z"})
    second = dl_interface.cmd(ep, "do_insert", keyed_args={"sensor": "chips", "value_raw": 1.75,
                                                          "value_cal": 5.25, "timestamp": "2024-01-01T00:00:01Z",
                                                          "ignored": True})
    assert first == {"id": 1, "sensor_name": "peaches"} and second == {"id": 2, "sensor_name": "chips"}
    names, rows = dl_interface.cmd(ep, "do_select", keyed_args={
        "return_cols": ["sensor_name", "value_cal", "timestamp"], "where_gt_dict": {"value_raw": 0.5}})
    assert names == ["sensor_name", "value_cal", "timestamp"]
    assert [r[:2] for r in rows] == [["peaches", -1.0], ["chips", 5.25]]
    assert rows[0][2].startswith("2024-01-01T00:00:00")

    with pytest.raises(DriplineError) as info:
        dl_interface.cmd(ep, "do_insert", keyed_args={"sensor": "x", "timestamp": "2024-01-01T00:00:00Z"})
    assert info.value.return_code == 304 and "value_raw" in info.value.message
    with pytest.raises(DriplineError) as info:
        dl_interface.cmd(ep, "do_insert", keyed_args={"sensor": "x", "value_raw": "not a number",
                                                     "timestamp": "2024-01-01T00:00:00Z"})
    assert info.value.return_code == 304 and "double precision" in info.value.message
    with pytest.raises(DriplineError) as info:
        dl_interface.cmd(ep, "do_select", keyed_args={"return_cols": ["no_such_column"]})
    assert info.value.return_code == 304


# ---------------------------------------------------------------------------------- the logger
def test_logger_stores_each_alert_with_its_sensor_name_and_timestamp(dl_service, engine, table):
    sensor = unique_name("peaches")
    conf = logger_config(table, sensor)
    svc = dl_service(conf)
    with Interface(dripline_mesh=test_mesh()) as dl:
        for i in range(20):
            dl.send_alert(f"sensor_value.{sensor}", {"value_raw": i, "value_cal": 2 * i})
        total, distinct = wait_for_rows(engine, table, 20)
        status = dl.get(conf["name"])
    assert (total, distinct) == (20, 20)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT sensor_name, value_raw, value_cal, timestamp FROM {table} "
                                    "ORDER BY value_raw").fetchall()
    assert {r[0] for r in rows} == {sensor}
    assert [(r[1], r[2]) for r in rows] == [(float(i), 2.0 * i) for i in range(20)]
    assert all(r[3].tzinfo is not None for r in rows)
    assert status["stored"] == 20 and status["skipped"] == 0 and status["database"] == "available"
    assert svc.sync_children[conf["insertion_table_endpoint_name"]]._copy is True  # the COPY path


def test_logger_writes_through_a_view_with_insert(dl_service, engine, table):
    # COPY is used for plain tables only; a view (or a table with rules) gets INSERTs
    view = unique_name("numeric_view")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE VIEW {view} AS SELECT sensor_name, timestamp, value_raw, value_cal "
                             f"FROM {table}")
    try:
        sensor = unique_name("viewed")
        conf = logger_config(view, sensor)
        svc = dl_service(conf)
        with Interface(dripline_mesh=test_mesh()) as dl:
            for i in range(30):
                dl.send_alert(f"sensor_value.{sensor}", {"value_raw": i})
            total, distinct = wait_for_rows(engine, table, 30)
        assert (total, distinct) == (30, 30)
        assert svc.sync_children[conf["insertion_table_endpoint_name"]]._copy is False
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP VIEW IF EXISTS {view}")


def test_malformed_alerts_in_the_middle_are_skipped_and_the_logger_goes_on(dl_service, engine, table):
    sensor = unique_name("mixed")
    conf = logger_config(table, sensor, batch_size=50, flush_interval_s=0.3)
    dl_service(conf)
    bad = [{"value_cal": 1.0},                 # required value missing
           {"value_raw": "not a number"},      # the column refuses it
           [1, 2, 3],                          # not a mapping
           {"value_raw": {"nested": True}}]    # the driver cannot send it
    with Interface(dripline_mesh=test_mesh()) as dl:
        for i in range(40):
            dl.send_alert(f"sensor_value.{sensor}", {"value_raw": i})
            if i % 10 == 5:
                dl.send_alert(f"sensor_value.{sensor}", bad[i // 10])
        total, distinct = wait_for_rows(engine, table, 40)
        deadline = time.monotonic() + 10
        while (status := dl.get(conf["name"]))["skipped"] < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        dl.send_alert(f"sensor_value.{sensor}", {"value_raw": 1000})
        wait_for_rows(engine, table, 41)
    assert (total, distinct) == (40, 40)
    assert stored_values(engine, table) == {float(i) for i in range(40)} | {1000.0}
    assert status["skipped"] == 4 and status["stored"] == 40


def test_database_outage_under_a_steady_stream_loses_nothing(dl_service, engine, table):
    sensor = unique_name("outage")
    proxy = TcpProxy().start()
    try:
        conf = logger_config(table, sensor, database_name=None, database_server=None,
                             database_url=f"postgresql://127.0.0.1:{proxy.port}/test")
        dl_service(conf)
        n = 800
        stream = Stream(sensor, n, rate_hz=200).start()
        stream.wait_sent(200)
        proxy.cut()
        stream.wait_sent(500)  # ~1.5 s of alerts while the database is unreachable
        with Interface(dripline_mesh=test_mesh()) as dl:
            during = dl.get(conf["name"])
        proxy.restore()
        stream.join()
        total, distinct = wait_for_rows(engine, table, n)
    finally:
        proxy.stop()
    assert distinct == n, f"{n - distinct} alerts lost"
    assert stored_values(engine, table) == {float(i) for i in range(n)}
    assert total >= n  # a commit cut mid-way may be repeated (at-least-once)
    assert during["database"] == "unavailable" and during["dropped"] == 0


def test_logger_started_while_the_database_is_down_stores_everything_later(dl_service, engine, table):
    sensor = unique_name("late")
    proxy = TcpProxy().start()
    try:
        proxy.cut()
        conf = logger_config(table, sensor, database_name=None, database_server=None,
                             database_url=f"postgresql://127.0.0.1:{proxy.port}/test")
        dl_service(conf)
        with Interface(dripline_mesh=test_mesh()) as dl:
            for i in range(50):
                dl.send_alert(f"sensor_value.{sensor}", {"value_raw": i})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                status = dl.get(conf["name"])
                if status["waiting"] == 50 and status["database"] == "unavailable":
                    break
                time.sleep(0.1)
            proxy.restore()
            total, distinct = wait_for_rows(engine, table, 50)
    finally:
        proxy.stop()
    assert status["database"] == "unavailable" and status["waiting"] == 50
    assert distinct == 50 and stored_values(engine, table) == {float(i) for i in range(50)}


def _write_yaml(path, conf):
    import yaml
    path.write_text(yaml.safe_dump(conf))
    return path


def _serve(config_path, log_path):
    log = open(log_path, "ab")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "dripline.cli.serve", "-c", str(config_path)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def _delete_queue(name):
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", test_mesh()["broker_port"]))
    try:
        conn.channel().queue_delete(name)
    finally:
        conn.close()


def test_logger_killed_and_restarted_with_durable_queue_loses_nothing(engine, table, tmp_path):
    sensor = unique_name("durable")
    conf = logger_config(table, sensor, durable_queue=True, dripline_mesh=test_mesh())
    config_path = _write_yaml(tmp_path / "logger.yaml", conf)
    log_path = tmp_path / "logger.log"
    procs = []
    try:
        procs.append(_serve(config_path, log_path))
        with Interface(dripline_mesh=test_mesh()) as dl:
            wait_until_served(dl, conf["name"])
        n = 1000
        stream = Stream(sensor, n, rate_hz=250).start()
        stream.wait_sent(300)
        procs[-1].kill()  # SIGKILL: no chance to flush or acknowledge anything
        procs[-1].wait(10)
        stream.wait_sent(600)  # these wait in the durable queue
        procs.append(_serve(config_path, log_path))
        stream.join()
        total, distinct = wait_for_rows(engine, table, n)
        with Interface(dripline_mesh=test_mesh()) as dl:
            status = wait_until_served(dl, conf["name"])
        procs[-1].send_signal(signal.SIGINT)
        assert procs[-1].wait(30) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        _delete_queue(f"{conf['name']}.alerts")
    assert distinct == n, f"{n - distinct} alerts lost; log:\n{log_path.read_text()[-3000:]}"
    assert stored_values(engine, table) == {float(i) for i in range(n)}
    assert total >= n
    assert status["dropped"] == 0


def test_a_clean_restart_with_durable_queue_keeps_alerts_sent_meanwhile(engine, table, tmp_path):
    sensor = unique_name("restart")
    conf = logger_config(table, sensor, durable_queue=True, dripline_mesh=test_mesh())
    config_path = _write_yaml(tmp_path / "logger.yaml", conf)
    log_path = tmp_path / "logger.log"
    procs = []
    try:
        procs.append(_serve(config_path, log_path))
        with Interface(dripline_mesh=test_mesh()) as dl:
            wait_until_served(dl, conf["name"])
            for i in range(100):
                dl.send_alert(f"sensor_value.{sensor}", {"value_raw": i})
            procs[-1].send_signal(signal.SIGTERM)
            assert procs[-1].wait(30) == 0
            for i in range(100, 200):  # nobody is consuming: they wait in the durable queue
                dl.send_alert(f"sensor_value.{sensor}", {"value_raw": i})
            procs.append(_serve(config_path, log_path))
            total, distinct = wait_for_rows(engine, table, 200)
        procs[-1].send_signal(signal.SIGTERM)
        assert procs[-1].wait(30) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        _delete_queue(f"{conf['name']}.alerts")
    assert (total, distinct) == (200, 200), log_path.read_text()[-3000:]


def test_dl_serve_logger_writes_to_sqlite_with_setup_sql(tmp_path):
    sensor = unique_name("lite")
    db = tmp_path / "sensors.db"
    values = unique_name("values_table")
    conf = {"name": unique_name("lite_logger"), "module": "PostgresSensorLogger",
            "insertion_table_endpoint_name": values, "heartbeat_interval_s": 0,
            "alert_keys": [f"sensor_value.{sensor}"], "database_url": f"sqlite:///{db}",
            "dripline_mesh": test_mesh(),
            "setup_sql": textwrap.dedent("""\
                CREATE TABLE IF NOT EXISTS numeric_data (
                    sensor_name TEXT NOT NULL, "timestamp" TEXT NOT NULL,
                    value_raw REAL NOT NULL, value_cal REAL)"""),
            "endpoints": [table_endpoint("numeric_data", name=values)]}
    config_path = _write_yaml(tmp_path / "logger.yaml", conf)
    proc = _serve(config_path, tmp_path / "logger.log")
    try:
        with Interface(dripline_mesh=test_mesh()) as dl:
            wait_until_served(dl, conf["name"])
            for i in range(10):
                dl.send_alert(f"sensor_value.{sensor}", {"value_raw": i})
            deadline = time.monotonic() + 20
            while dl.get(conf["name"])["stored"] < 10 and time.monotonic() < deadline:
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.connect() as conn:
        rows = conn.exec_driver_sql("SELECT sensor_name, value_raw FROM numeric_data ORDER BY value_raw").fetchall()
    eng.dispose()
    assert rows == [(sensor, float(i)) for i in range(10)]
