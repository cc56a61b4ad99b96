"""examples/first-mesh end to end, run the way its README says, with dl-serve and dl-agent.

Names are made unique on the command line (service names, the endpoint names, the table) so that
the test cannot meet another run; the table is created in database ``test`` from the example's own
SQL script and dropped afterwards.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dripline.protocol.errors import DriplineError
from dripline.client.interface import Interface
from dripline.testing import test_mesh, unique_name

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "first-mesh"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def serve(config: Path, *words: str, log: Path) -> subprocess.Popen:
    mesh = test_mesh()
    return subprocess.Popen([sys.executable, "-m", "dripline.cli.serve", "-c", str(config),
                             "-b", mesh["broker"], "-p", str(mesh["broker_port"]), *words],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def agent(*args: str) -> subprocess.CompletedProcess:
    mesh = test_mesh()
    return subprocess.run([sys.executable, "-m", "dripline.cli.agent", "-b", mesh["broker"],
                           "-p", str(mesh["broker_port"]), *args],
                          capture_output=True, text=True, timeout=60)


def wait_served(names: list[str], procs: list[subprocess.Popen], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    with Interface(dripline_mesh=test_mesh()) as dl:
        for name in names:
            while True:
                assert all(p.poll() is None for p in procs), "a service exited during start-up"
                try:
                    dl.cmd(name, "ping", timeout_s=2)
                    break
                except DriplineError:
                    assert time.monotonic() < deadline, f"{name} did not come up"
                    time.sleep(0.2)


def stop(procs: list[subprocess.Popen]) -> list[int]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(30))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait(10))
    return codes


def kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def unique_names() -> dict[str, str]:
    return {"store": unique_name("my_store"), "peaches": unique_name("peaches"),
            "chips": unique_name("chips"), "waffles": unique_name("waffles"),
            "logger": unique_name("sensor_data_logger"), "values": unique_name("values_table")}


def store_words(n: dict[str, str]) -> list[str]:
    return [f"name={n['store']}", f"endpoints.0.name={n['peaches']}", f"endpoints.1.name={n['chips']}",
            f"endpoints.2.name={n['waffles']}"]


def test_first_mesh_with_postgresql(postgres, tmp_path):
    n = unique_names()
    table = unique_name("numeric_data")
    engine = sa.create_engine(PG_URL)
    script = (EXAMPLE / "postgres_init.d" / "10_numeric_data.sql").read_text()
    with engine.begin() as conn:
        conn.exec_driver_sql(script.replace("numeric_data", table))  # the script as psql runs it
    procs: list[subprocess.Popen] = []
    try:
        procs.append(serve(EXAMPLE / "key-value-store.yaml", *store_words(n), log=tmp_path / "store.log"))
        procs.append(serve(EXAMPLE / "sensor-logger.yaml", f"name={n['logger']}",
                           f"endpoints.0.name={n['values']}", f"insertion_table_endpoint_name={n['values']}",
                           "database_name=test", "database_server=127.0.0.1",
                           f"endpoints.0.table_name={table}", log=tmp_path / "logger.log"))
        wait_served([n["store"], n["logger"]], procs)

        result = agent("set", n["peaches"], "0.9")
        assert result.returncode == 0, result.stderr
        # the new row appears within the log interval (10 s; log_on_set stores it at once)
        deadline = time.monotonic() + 20
        row = None
        while row is None and time.monotonic() < deadline:
            with engine.connect() as conn:
                row = conn.exec_driver_sql(
                    f"SELECT value_raw, value_cal, timestamp FROM {table} "
                    f"WHERE sensor_name = '{n['peaches']}' AND value_raw = 0.9").first()
            if row is None:
                time.sleep(0.2)
        assert row is not None, (tmp_path / "logger.log").read_text()[-3000:]
        assert row[1] == pytest.approx(1.8) and row[2].tzinfo is not None

        names, rows = Interface(dripline_mesh=test_mesh()).cmd(
            n["values"], "do_select", keyed_args={"return_cols": ["value_raw"],
                                                  "where_eq_dict": {"sensor_name": n["peaches"]}})
        assert [0.9] in rows
        codes = stop(procs)
        assert codes == [0, 0], [(tmp_path / f).read_text()[-2000:] for f in ("store.log", "logger.log")]
    finally:
        kill(procs)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        engine.dispose()


def test_first_mesh_with_sqlite(tmp_path):
    n = unique_names()
    db = tmp_path / "sensor_data.db"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(serve(EXAMPLE / "key-value-store.yaml", *store_words(n), log=tmp_path / "store.log"))
        procs.append(serve(EXAMPLE / "sensor-logger-sqlite.yaml", f"name={n['logger']}",
                           f"endpoints.0.name={n['values']}", f"insertion_table_endpoint_name={n['values']}",
                           f"database_url=sqlite:///{db}", log=tmp_path / "logger.log"))
        wait_served([n["store"], n["logger"]], procs)
        result = agent("set", n["peaches"], "0.9")
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 20
        with Interface(dripline_mesh=test_mesh()) as dl:
            while time.monotonic() < deadline:
                _, rows = dl.cmd(n["values"], "do_select", keyed_args={
                    "return_cols": ["value_raw", "value_cal"], "where_eq_dict": {"sensor_name": n["peaches"]}})
                if [0.9, 1.8] in rows:
                    break
                time.sleep(0.2)
        assert [0.9, 1.8] in rows, (tmp_path / "logger.log").read_text()[-3000:]
        assert stop(procs) == [0, 0]
    finally:
        kill(procs)
