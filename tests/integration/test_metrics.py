"""Prometheus metrics of a service and of the sensor logger, scraped over HTTP (shared broker,
unique names). Off by default, and never imported by dl-agent."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest

from dripline.core import Interface, Service
from dripline.protocol.errors import ConfigError, DriplineError
from dripline.testing import ServiceRunner, test_mesh, unique_name

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    for (sample, sample_labels), v in samples.items():
        if sample == name and set(labels.items()) <= sample_labels:
            return v
    return None


def test_requests_latency_and_connection_are_counted(tmp_path) -> None:
    name, ep = unique_name("metrics_svc"), unique_name("peaches")
    svc = Service(name, dripline_mesh=test_mesh(), heartbeat_interval_s=0, metrics_port=0,
                  metrics_address="127.0.0.1",
                  endpoints=[{"name": ep, "module": "KeyValueStore", "initial_value": 1}])
    runner = ServiceRunner(svc).start()
    try:
        with Interface(dripline_mesh=test_mesh(), timeout_s=10) as dl:
            for _ in range(3):
                dl.get(ep)
            dl.set(ep, 2)
            svc.metrics.interval_s = 0.1
            with pytest.raises(DriplineError) as info:
                dl.get(ep, specifier="no_such_setting")
            code = str(info.value.return_code)
        deadline = time.monotonic() + 30  # the queue is looked at every interval_s
        samples = scrape(svc.metrics.port)
        while value(samples, "dripline_queue_messages", service=name, queue=name) is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
            samples = scrape(svc.metrics.port)
    finally:
        runner.stop()
    assert value(samples, "dripline_requests_total", service=name, endpoint=ep, operation="get",
                 code="0") == 3
    assert value(samples, "dripline_requests_total", service=name, endpoint=ep, operation="set",
                 code="0") == 1
    assert value(samples, "dripline_requests_total", service=name, endpoint=ep, operation="get",
                 code=code) == 1
    assert value(samples, "dripline_request_handler_seconds_count", service=name, endpoint=ep) == 5
    assert value(samples, "dripline_broker_connected", service=name) == 1
    assert value(samples, "dripline_broker_reconnects_total", service=name) == 0
    assert value(samples, "dripline_publishes_refused_total", service=name) == 0
    assert value(samples, "dripline_queue_messages", service=name, queue=name) == 0


def test_logger_counts_alerts_stored_held_and_its_queue(tmp_path) -> None:
    from dripline.implementations.postgres_sensor_logger import PostgresSensorLogger
    name, key, table = unique_name("metrics_logger"), unique_name("mval"), unique_name("values")
    logger = PostgresSensorLogger(
        name=name, dripline_mesh=test_mesh(), heartbeat_interval_s=0, metrics_port=0,
        metrics_address="127.0.0.1", insertion_table_endpoint_name=table,
        database_url=f"sqlite:///{tmp_path / 'v.db'}", durable_queue=True,
        alert_keys=[f"{key}.#"], alert_key_parser_re=rf"{key}\.(?P<sensor_name>[^.]+)",
        setup_sql="CREATE TABLE t (sensor_name text, timestamp text, value_raw real)",
        endpoints=[{"name": table, "module": "SQLTable", "table_name": "t",
                    "required_insert_names": ["sensor_name", "timestamp", "value_raw"]}])
    runner = ServiceRunner(logger).start()
    try:
        logger.metrics.interval_s = 0.2  # look at the queue often (default every 5 s)
        with Interface(dripline_mesh=test_mesh()) as dl:
            for i in range(5):
                dl.send_alert(f"{key}.t", {"value_raw": float(i)})
        deadline = time.monotonic() + 30
        samples: dict = {}
        while time.monotonic() < deadline:
            samples = scrape(logger.metrics.port)
            if value(samples, "dripline_alerts_stored_total", service=name) == 5 and \
                    value(samples, "dripline_queue_messages", service=name,
                          queue=f"{name}.alerts") is not None:
                break
            time.sleep(0.2)
    finally:
        runner.stop()
    assert value(samples, "dripline_alerts_stored_total", service=name) == 5
    assert value(samples, "dripline_alerts_received_total", service=name) == 5
    assert value(samples, "dripline_alerts_held", service=name) == 0
    assert value(samples, "dripline_queue_messages", service=name, queue=f"{name}.alerts") == 0
    _delete_queue(f"{name}.alerts")


def _delete_queue(name: str) -> None:
    import asyncio

    from dripline.client.session import Core

    async def go() -> None:
        core = Core(test_mesh())
        await core.start()
        try:
            q = await core.connection.declare_queue(name, exclusive=False, auto_delete=False,
                                                    durable=True)
            await core.connection.delete_queue(q)
        finally:
            await core.close()
    asyncio.run(go())


def test_metrics_are_off_by_default_and_a_bad_port_is_refused() -> None:
    svc = Service(unique_name("plain"), make_connection=False)
    assert svc.metrics_port is None and svc.metrics is None
    with pytest.raises(ConfigError):
        Service(unique_name("bad"), make_connection=False, metrics_port="eighty")


def test_dl_agent_does_not_import_prometheus_client() -> None:
    """Neither dl-agent's start-up nor a client's whole path (session, connection, Interface)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "dripline.cli.agent", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "dripline.cli.common" in out.stderr and "prometheus" not in out.stderr
    code = ("import sys, dripline.cli.agent, dripline.client.session, dripline.client.interface, "
            "dripline.transport.connection; print(sorted(m for m in sys.modules if 'prometheus' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
