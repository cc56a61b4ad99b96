"""PostgresSensorLogger without a broker: rows from alerts, batching, bad alerts, outages, acks.

The logger runs in dry-run mode (make_connection=False) against an SQLite file; alerts are handed
to it as the service would hand them over from the broker connection.
"""
from __future__ import annotations

import asyncio
import logging
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from dripline.core import MsgAlert
from dripline.protocol.errors import ConfigError
from dripline.implementations import PostgresSensorLogger, SQLTable
from dripline.testing import MemoryChannel
from dripline.transport.connection import Ack

SETUP = """CREATE TABLE IF NOT EXISTS numeric_data (
    sensor_name TEXT NOT NULL,
    "timestamp" TEXT NOT NULL,
    value_raw DOUBLE PRECISION NOT NULL,
    value_cal DOUBLE PRECISION,
    source TEXT);
CREATE INDEX IF NOT EXISTS numeric_data_sensor ON numeric_data (sensor_name)"""

TABLE = {"name": "values_table", "module": "SQLTable", "table_name": "numeric_data",
         "required_insert_names": ["sensor_name", "timestamp", "value_raw"],
         "optional_insert_names": ["value_cal", "source"]}


def make_logger(tmp_path, **kwargs):
    kwargs.setdefault("name", "sensor_logger")
    kwargs.setdefault("database_url", f"sqlite:///{tmp_path / 'sensors.db'}")
    kwargs.setdefault("setup_sql", SETUP)
    kwargs.setdefault("endpoints", [dict(TABLE)])
    kwargs.setdefault("insertion_table_endpoint_name", "values_table")
    kwargs.setdefault("flush_interval_s", 0.01)
    logger = PostgresSensorLogger(make_connection=False, **kwargs)
    logger.on_start()  # what start() runs: setup_sql, the tables read
    return logger


def alert(routing_key, payload, timestamp="2024-05-06T07:08:09.000001Z"):
    msg = MsgAlert.create(payload=payload, routing_key=routing_key)
    msg.timestamp = timestamp
    return msg


def rows(logger, order="rowid"):
    with logger.engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT sensor_name, timestamp, value_raw, value_cal, source "
                                    f"FROM numeric_data ORDER BY {order}").fetchall()


@pytest.fixture
def running(tmp_path):
    loggers = []

    def start(**kwargs):
        lg = make_logger(tmp_path, **kwargs)
        lg.start_writer()
        loggers.append(lg)
        return lg

    yield start
    for lg in loggers:
        lg.stop_writer(timeout_s=2)
        lg.engine.dispose()


# ---------------------------------------------------------------------------------- configuration
def test_reference_defaults_for_keys_and_parser(tmp_path):
    lg = make_logger(tmp_path)
    assert lg.alert_keys == ["sensor_value.#"]
    assert lg.parse_routing_key("sensor_value.peaches") == {"sensor_name": "peaches"}
    assert lg.insertion_table_endpoint_name == "values_table"
    assert isinstance(lg.sync_children["values_table"], SQLTable)


def test_an_unknown_insertion_table_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="insertion_table_endpoint_name 'nope'"):
        make_logger(tmp_path, insertion_table_endpoint_name="nope")


@pytest.mark.parametrize("option", ["batch_size", "buffer_size"])
def test_sizes_must_be_positive(tmp_path, option):
    with pytest.raises(ConfigError, match=option):
        make_logger(tmp_path, **{option: 0})


def test_bad_setup_sql_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="setup_sql"):
        make_logger(tmp_path, setup_sql="CREATE TABLOID x")


# ---------------------------------------------------------------------------------- alerts -> rows
def test_each_alert_becomes_a_row_with_timestamp_key_data_and_payload(running):
    lg = running()
    lg._deliver_alert(alert("sensor_value.peaches", {"value_raw": 0.75, "value_cal": 1.5, "junk": 1}), ())
    lg._deliver_alert(alert("sensor_value.chips", {"value_raw": 2}, timestamp=""), ())
    # the payload wins over routing-key data, as in the reference
    lg._deliver_alert(alert("sensor_value.x", {"value_raw": 3, "sensor_name": "renamed"}), ())
    assert lg.flush()
    got = rows(lg)
    assert got[0] == ("peaches", "2024-05-06T07:08:09.000001Z", 0.75, 1.5, None)
    assert got[1][0] == "chips" and got[1][1].endswith("Z") and got[1][3] is None
    assert got[2][0] == "renamed"
    assert lg.on_get()["stored"] == 3


def test_process_payload_keeps_the_reference_signature(running):
    lg = running()
    from scarab import to_param
    lg.process_payload(to_param({"value_raw": 5}), {"sensor_name": "direct"}, "2024-01-01T00:00:00Z")
    assert lg.flush()
    assert rows(lg) == [("direct", "2024-01-01T00:00:00Z", 5.0, None, None)]


def test_malformed_alerts_are_skipped_and_logged_with_their_routing_key(running, caplog):
    lg = running(flush_interval_s=0.5)
    good = [alert(f"sensor_value.good{i}", {"value_raw": i}) for i in range(10)]
    bad = [alert("sensor_value.missing_raw", {"value_cal": 1.0}),
           alert("sensor_value.not_a_mapping", 42),
           alert("sensor_value.null_raw", {"value_raw": None}),
           alert("nothing_to_parse", {"value_raw": 1})]
    stream = good[:3] + bad[:2] + good[3:6] + bad[2:] + good[6:]
    with caplog.at_level(logging.ERROR):
        for msg in stream:
            lg._deliver_alert(msg, ())
        assert lg.flush()
    assert [r[0] for r in rows(lg)] == [f"good{i}" for i in range(10)]
    for key in ("missing_raw", "not_a_mapping", "null_raw", "nothing_to_parse"):
        assert key in caplog.text
    status = lg.on_get()
    assert (status["stored"], status["skipped"], status["received"]) == (10, 4, 14)


def test_rows_are_written_in_batches(running):
    lg = running(batch_size=100, flush_interval_s=0.5)
    for i in range(1000):
        lg._deliver_alert(alert("sensor_value.s", {"value_raw": i}), ())
    assert lg.flush()
    status = lg.on_get()
    assert status["stored"] == 1000
    assert status["batches"] <= 20  # 100 per batch, give or take a timer-cut batch
    assert [r[2] for r in rows(lg)] == [float(i) for i in range(1000)]


def test_batch_size_one_is_one_transaction_per_row(running):
    lg = running(batch_size=1)
    for i in range(20):
        lg._deliver_alert(alert("sensor_value.s", {"value_raw": i}), ())
    assert lg.flush()
    assert lg.on_get()["batches"] == 20


def test_rows_with_different_columns_share_a_batch(running):
    lg = running(flush_interval_s=0.5)
    lg._deliver_alert(alert("sensor_value.a", {"value_raw": 1}), ())
    lg._deliver_alert(alert("sensor_value.b", {"value_raw": 2, "value_cal": 4}), ())
    lg._deliver_alert(alert("sensor_value.c", {"value_raw": 3, "source": "test"}), ())
    assert lg.flush()
    assert rows(lg) == [("a", "2024-05-06T07:08:09.000001Z", 1.0, None, None),
                        ("b", "2024-05-06T07:08:09.000001Z", 2.0, 4.0, None),
                        ("c", "2024-05-06T07:08:09.000001Z", 3.0, None, "test")]
    assert lg.on_get()["batches"] == 1


# ---------------------------------------------------------------------------------- outages and limits
def test_rows_are_kept_and_retried_while_the_database_is_unavailable(running, caplog, monkeypatch):
    lg = running(retry_interval_s=0.05)
    table = lg.sync_children["values_table"]
    real = SQLTable.insert_rows
    failures = {"left": 3}

    def flaky(self, conn, values):
        if failures["left"]:
            failures["left"] -= 1
            raise sa_exc.OperationalError("INSERT", {}, Exception("server closed the connection"))
        return real(self, conn, values)

    monkeypatch.setattr(SQLTable, "insert_rows", flaky)
    with caplog.at_level(logging.WARNING):
        for i in range(50):
            lg._deliver_alert(alert("sensor_value.s", {"value_raw": i}), ())
        assert lg.flush()
    assert sorted(r[2] for r in rows(lg)) == [float(i) for i in range(50)]
    assert "database is unavailable" in caplog.text and "available again" in caplog.text
    assert table is lg.sync_children["values_table"]


def test_a_full_buffer_drops_the_oldest_with_a_warning(tmp_path, caplog):
    lg = make_logger(tmp_path, buffer_size=5)
    with caplog.at_level(logging.WARNING):
        for i in range(8):
            lg._deliver_alert(alert("sensor_value.s", {"value_raw": i}), ())
    assert "buffer is full" in caplog.text and "durable_queue" in caplog.text
    assert lg.on_get()["dropped"] == 3
    lg.start_writer()
    try:
        assert lg.flush()
        assert [r[2] for r in rows(lg)] == [3.0, 4.0, 5.0, 6.0, 7.0]
    finally:
        lg.stop_writer()


def test_stop_writes_what_is_queued(tmp_path):
    lg = make_logger(tmp_path, flush_interval_s=5)
    lg.start_writer()
    for i in range(10):
        lg._deliver_alert(alert("sensor_value.s", {"value_raw": i}), ())
    assert lg.stop_writer(timeout_s=5) == 0
    assert len(rows(lg)) == 10


def test_stop_gives_up_after_its_timeout_when_the_database_stays_away(tmp_path, monkeypatch, caplog):
    lg = make_logger(tmp_path, retry_interval_s=0.05)

    def down(self, conn, values):
        raise sa_exc.OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(SQLTable, "insert_rows", down)
    lg.start_writer()
    for i in range(5):
        lg._deliver_alert(alert("sensor_value.s", {"value_raw": i}), ())
    with caplog.at_level(logging.ERROR):
        assert lg.stop_writer(timeout_s=0.3) == 5
    assert "are lost" in caplog.text


# ---------------------------------------------------------------------------------- durable acknowledgements
async def test_durable_deliveries_are_acknowledged_only_after_commit(tmp_path, monkeypatch):
    lg = make_logger(tmp_path, durable_queue=True, flush_interval_s=0.2)
    lg.loop = asyncio.get_running_loop()
    committed = threading.Event()
    real = SQLTable.insert_rows

    def slow(self, conn, values):
        committed.wait(5)
        return real(self, conn, values)

    monkeypatch.setattr(SQLTable, "insert_rows", slow)
    ch = MemoryChannel()
    lg.start_writer()
    try:
        for tag in range(1, 6):
            delivery = lg._acks.add(Ack(ch, tag))
            payload = {"value_raw": tag} if tag != 3 else {"value_cal": 1}  # 3 is malformed
            lg._deliver_alert(alert("sensor_value.s", payload), [delivery])
        await asyncio.sleep(0.3)
        assert ch.acks == []  # nothing committed yet (3 alone is finished but not a prefix)
        committed.set()
        for _ in range(200):
            if ch.acks:
                break
            await asyncio.sleep(0.02)
        assert ch.acks == [(5, True)]
        assert len(lg._acks) == 0
    finally:
        committed.set()
        await asyncio.to_thread(lg.stop_writer, 2)
    assert [r[2] for r in rows(lg)] == [1.0, 2.0, 4.0, 5.0]


def test_durable_rows_are_never_dropped_when_the_buffer_is_full(tmp_path):
    lg = make_logger(tmp_path, durable_queue=True, buffer_size=2)
    ch = MemoryChannel()
    for tag in range(1, 5):
        lg._deliver_alert(alert("sensor_value.s", {"value_raw": tag}), [lg._acks.add(Ack(ch, tag))])
    assert lg.on_get()["dropped"] == 0 and lg.on_get()["waiting"] == 4
    assert lg.durable_prefetch == 2


# ---------------------------------------------------------------------------------- subclasses
class Tagged(PostgresSensorLogger):
    """A plugin-style subclass: adds a column, then calls the reference implementation."""

    def process_payload(self, a_payload, a_routing_key_data, a_message_timestamp, target_table=None):
        payload = a_payload.to_python()
        payload["source"] = "tagged"
        super().process_payload(payload, a_routing_key_data, a_message_timestamp, target_table)


def test_a_subclass_overriding_process_payload_still_gets_batched_inserts(tmp_path):
    lg = Tagged(make_connection=False, name="tagged", database_url=f"sqlite:///{tmp_path / 't.db'}",
                setup_sql=SETUP, endpoints=[dict(TABLE)], insertion_table_endpoint_name="values_table",
                flush_interval_s=0.01)
    lg.start_writer()
    try:
        lg._deliver_alert(alert("sensor_value.p", {"value_raw": 1}), ())
        lg._deliver_alert(alert("sensor_value.p", {"value_cal": 1}), ())  # logged by on_alert_message
        assert lg.flush()
        assert rows(lg) == [("p", "2024-05-06T07:08:09.000001Z", 1.0, None, "tagged")]
    finally:
        lg.stop_writer()


def test_the_database_file_is_created_by_setup_sql(tmp_path):
    lg = make_logger(tmp_path, database_url=f"sqlite:///{tmp_path / 'new.db'}")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'new.db'}")
    assert "numeric_data" in sa.inspect(engine).get_table_names()
    engine.dispose()
    lg.engine.dispose()
