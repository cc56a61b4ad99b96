"""The stop path of PostgresSensorLogger without a database server (SQLite and a stand-in)."""
from __future__ import annotations

import logging
import socket
import threading
from types import SimpleNamespace

from dripline.implementations import PostgresSensorLogger

LOGGER = "dripline.implementations.postgres_sensor_logger"
TABLE = {"name": "values_table", "module": "SQLTable", "table_name": "numeric_data",
         "required_insert_names": ["sensor_name", "timestamp", "value_raw"]}
SETUP = ('CREATE TABLE IF NOT EXISTS numeric_data (sensor_name TEXT NOT NULL, '
         '"timestamp" TEXT NOT NULL, value_raw DOUBLE PRECISION NOT NULL)')


def make_logger(tmp_path, **kwargs) -> PostgresSensorLogger:
    return PostgresSensorLogger(make_connection=False, name="stopper",
                                database_url=f"sqlite:///{tmp_path / 'rows.db'}", setup_sql=SETUP,
                                endpoints=[dict(TABLE)], insertion_table_endpoint_name="values_table",
                                flush_interval_s=0.01, **kwargs)


def test_stop_with_a_healthy_database_writes_everything_and_logs_it(tmp_path, caplog):
    lg = make_logger(tmp_path, stop_timeout_s=7)
    lg.start_writer()
    caplog.set_level(logging.INFO, logger=LOGGER)
    for i in range(3):
        lg.process_payload({"value_raw": i}, {"sensor_name": "a"}, "2024-01-01T00:00:00Z")
    assert lg.stop_writer() == 0
    logged = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert any("for at most 7 s (stop_timeout_s)" in m for m in logged)
    assert any(m.startswith("stopper: writer stopped after") for m in logged)
    assert not any("aborting" in m for m in logged)
    assert lg.counters["stored"] == 3
    lg.engine.dispose()


def test_abort_shuts_down_the_socket_a_blocked_driver_call_waits_on(tmp_path):
    lg = make_logger(tmp_path)
    ours, theirs = socket.socketpair()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(ours.recv(10)), daemon=True)
    reader.start()  # stands in for the writer, blocked inside the driver
    lg._db_conn = SimpleNamespace(closed=False, invalidated=False, connection=SimpleNamespace(
        dbapi_connection=SimpleNamespace(fileno=ours.fileno)))
    try:
        assert lg._abort_db_connection() is True
        reader.join(30)
        assert got == [b""]  # the blocked call returned: the connection reads as closed
    finally:
        lg._db_conn = None
        ours.close()
        theirs.close()
        lg.engine.dispose()


def test_abort_leaves_drivers_without_a_socket_and_closed_connections_alone(tmp_path):
    lg = make_logger(tmp_path)
    assert lg._abort_db_connection() is False  # no connection at all
    lg._db_conn = SimpleNamespace(closed=False, invalidated=False, connection=SimpleNamespace(
        dbapi_connection=object()))  # SQLite: no fileno()
    assert lg._abort_db_connection() is False
    lg._db_conn = SimpleNamespace(closed=True, invalidated=False, connection=None)
    assert lg._abort_db_connection() is False
    lg._db_conn = None
    lg.engine.dispose()
