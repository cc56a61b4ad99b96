"""Several broker nodes, TLS settings, refusal messages, deduplicating storage: the parts that need
no broker (the integration tests run them against private RabbitMQ nodes)."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from dripline.client.broker import broker_addresses
from dripline.core import MsgAlert
from dripline.protocol.errors import ConfigError, ConnectionError_, DriplineError
from dripline.settings.mesh import broker_nodes, mesh_config, tls_settings
from dripline.transport.connection import (AccessRefused, BrokerAddress, Connection, PublishRefused,
                                           TLSOptions)
from dripline.testing.rabbitmq import make_tls_files


# ------------------------------------------------------------------------------------ broker list

@pytest.mark.parametrize("given, nodes", [
    ("localhost", [("localhost", 5672)]),
    ("a,b:5673", [("a", 5672), ("b", 5673)]),
    (" a , b ", [("a", 5672), ("b", 5672)]),
    (["a:1", "b"], [("a", 1), ("b", 5672)]),
    ("[::1]:5671,h", [("::1", 5671), ("h", 5672)]),
    ("fd00::1", [("fd00::1", 5672)]),
])
def test_broker_takes_one_node_a_list_or_a_comma_separated_string(tmp_path, given, nodes):
    mesh = mesh_config({"broker": given}, home=tmp_path)
    assert isinstance(mesh["broker"], str)  # one form for every reader of the block
    assert broker_nodes(mesh) == nodes


def test_a_node_without_port_takes_broker_port(tmp_path):
    mesh = mesh_config({"broker": "a,b:7", "broker_port": 5999}, home=tmp_path)
    assert broker_nodes(mesh) == [("a", 5999), ("b", 7)]


@pytest.mark.parametrize("bad, words", [
    ("a,,b", "empty entry"), ("a:x", "port"), ("a:0", "port"), ("a:70000", "port"),
    (["a", 5], "non-empty string"), ("", "non-empty string"),
])
def test_bad_broker_lists_are_refused_with_the_reason(tmp_path, bad, words):
    with pytest.raises(ConfigError) as info:
        mesh_config({"broker": bad}, home=tmp_path, source="svc.yaml")
    assert words in info.value.message and "svc.yaml" in info.value.message


def test_every_node_gets_the_credentials_and_tls(tmp_path):
    files = make_tls_files(tmp_path)
    mesh = mesh_config({"broker": "a,b", "broker_tls": True, "tls_ca_file": str(files.ca_cert)},
                       home=tmp_path)
    addresses = broker_addresses(mesh, "svc", "secret-pw")
    assert [(a.host, a.port, a.username) for a in addresses] == [("a", 5672, "svc"),
                                                                 ("b", 5672, "svc")]
    assert all(a.tls is not None and a.tls.verify and a.tls.ca_file == str(files.ca_cert)
               for a in addresses)
    assert str(addresses[0]) == "amqps://svc@a:5672/"
    assert "secret-pw" not in repr(addresses) + str(addresses[1])


# ------------------------------------------------------------------------------------ TLS settings

def test_tls_is_off_unless_asked_and_its_keys_need_it(tmp_path):
    assert tls_settings(mesh_config({}, home=tmp_path)) is None
    with pytest.raises(ConfigError) as info:
        tls_settings(mesh_config({"tls_verify": False}, home=tmp_path))
    assert "broker_tls" in info.value.message


def test_tls_defaults_verify_with_system_cas_and_the_broker_name(tmp_path):
    settings = tls_settings(mesh_config({"broker_tls": True}, home=tmp_path))
    assert settings == {"ca_file": None, "cert_file": None, "key_file": None, "verify": True,
                        "server_hostname": None}
    ctx = TLSOptions(**settings).context()
    assert ctx.check_hostname and ctx.verify_mode.name == "CERT_REQUIRED"
    assert ctx.cert_store_stats()["x509_ca"] > 0 or ctx.get_ca_certs() is not None


def test_tls_files_are_checked_before_connecting(tmp_path):
    files = make_tls_files(tmp_path)
    with pytest.raises(ConfigError) as info:
        tls_settings(mesh_config({"broker_tls": True, "tls_ca_file": str(tmp_path / "no.pem")},
                                 home=tmp_path))
    assert "no.pem" in info.value.message
    with pytest.raises(ConfigError) as info:
        tls_settings(mesh_config({"broker_tls": True, "tls_key_file": str(files.client_key)},
                                 home=tmp_path))
    assert "tls_cert_file" in info.value.message
    options = TLSOptions(cert_file=str(files.client_cert), key_file=str(files.server_key))
    with pytest.raises(ConfigError) as info:  # a key of another certificate
        options.context()
    assert "tls_cert_file" in info.value.message
    assert "PRIVATE KEY" not in info.value.message
    assert not TLSOptions(verify=False).context().check_hostname


# ------------------------------------------------------------------------------------ refusals

def test_publish_refusals_name_the_key_the_user_and_the_page():
    address = BrokerAddress("rabbit", 5672, "operator")
    topic = PublishRefused.from_reason(403, "ACCESS_REFUSED - access to topic 'waffles' in exchange "
                                       "'requests' in vhost '/' refused for user 'operator'", address)
    assert (topic.exchange, topic.topic, topic.return_code) == ("requests", "waffles", 403)
    assert "'waffles'" in topic.message and "operator" in topic.message
    assert "docs/security.md" in topic.message
    exchange = PublishRefused.from_reason(403, "ACCESS_REFUSED - access to exchange 'alerts' in "
                                          "vhost '/' refused for user 'operator'", address)
    assert (exchange.exchange, exchange.topic) == ("alerts", "")
    missing = PublishRefused.from_reason(404, "NOT_FOUND - no exchange 'nope' in vhost '/'", address)
    assert missing.exchange == "nope" and "docs/security.md" not in missing.message
    assert isinstance(topic, ConnectionError_)


def test_access_refused_names_the_operation():
    err = DriplineError("the broker closed the channel: 403 ACCESS_REFUSED - access to queue "
                        "'x' in vhost '/' refused for user 'u'", 100)
    refused = AccessRefused.for_operation("declare the queue 'x'", err, BrokerAddress("h", 1, "u"))
    assert refused.message.startswith("the broker at h:1 refused to declare the queue 'x' (403 ")
    assert "user 'u'" in refused.message and "docs/security.md" in refused.message
    assert refused.amqp_code == 403 and refused.return_code == 101


# ------------------------------------------------------------------------------------ round robin

class _FakeConnection(Connection):
    """A Connection whose nodes answer as the test says (no broker)."""

    def __init__(self, answers: dict[int, Any], **kwargs: Any) -> None:
        super().__init__([BrokerAddress("127.0.0.1", port) for port in (1, 2, 3)], **kwargs)
        self.answers = answers
        self.tried: list[int] = []

    async def _check_hosts_resolve(self, timeout_s: float | None) -> None:
        return None

    async def _open_once(self, a: BrokerAddress) -> None:
        self.tried.append(a.port)
        answer = self.answers.get(a.port)
        if answer is not None:
            raise answer
        self._ready.set()


def test_nodes_are_tried_in_turn_and_rounds_are_counted():
    async def go() -> None:
        conn = _FakeConnection({1: ConnectionError_("refused"), 2: None})
        await conn.connect()
        assert conn.tried == [1, 2] and conn.address.port == 2
        dead = _FakeConnection({p: ConnectionError_("refused") for p in (1, 2, 3)},
                               max_connection_attempts=2)
        with pytest.raises(ConnectionError_) as info:
            await dead.connect()
        assert dead.tried == [1, 2, 3, 1, 2, 3]
        assert "every node" in info.value.message and "after 6 attempt" in info.value.message
    asyncio.run(go())


def test_a_hard_error_on_one_node_ends_the_attempt():
    from dripline.transport.connection import _HardConnectError

    async def go() -> None:
        conn = _FakeConnection({1: _HardConnectError("refused the credentials")})
        with pytest.raises(ConnectionError_) as info:
            await conn.connect()
        assert conn.tried == [1] and "credentials" in info.value.message
    asyncio.run(go())


# ------------------------------------------------------------------------------------ dedupe

SETUP = ("CREATE TABLE numeric_data (sensor_name TEXT, timestamp TEXT, value_raw REAL, "
         "message_id TEXT UNIQUE)")
TABLE = {"name": "values_table", "module": "SQLTable", "table_name": "numeric_data",
         "required_insert_names": ["sensor_name", "timestamp", "value_raw"]}


def make_logger(tmp_path, setup: str = SETUP, **kwargs: Any) -> Any:
    import dripline.assembly.objects  # noqa: F401 - builds endpoints from mappings
    from dripline.implementations import PostgresSensorLogger
    logger = PostgresSensorLogger(name="dedupe_logger", make_connection=False,
                                  database_url=f"sqlite:///{tmp_path / 'v.db'}", setup_sql=setup,
                                  endpoints=[dict(TABLE)], insertion_table_endpoint_name="values_table",
                                  flush_interval_s=0.01, deduplicate=True, **kwargs)
    start = getattr(logger, "on_start", None)
    if start is not None:
        start()
    return logger


def test_deduplicate_stores_a_repeated_alert_once(tmp_path):
    logger = make_logger(tmp_path)
    logger.start_writer()
    try:
        first = MsgAlert.create(payload={"value_raw": 1.0}, routing_key="sensor_value.a")
        first.message_id, first.timestamp = "id-1", "2024-01-01T00:00:00Z"
        second = MsgAlert.create(payload={"value_raw": 2.0}, routing_key="sensor_value.b")
        second.message_id, second.timestamp = "id-2", "2024-01-01T00:00:01Z"
        for msg in (first, second, first):  # a redelivery in the same batch
            logger._deliver_alert(msg, ())
        assert logger.flush(10)
        logger._deliver_alert(first, ())  # and again later, in a batch of its own
        assert logger.flush(10)
    finally:
        logger.stop_writer(5)
    with logger.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT message_id, value_raw FROM numeric_data "
                                    "ORDER BY message_id").fetchall()
    assert rows == [("id-1", 1.0), ("id-2", 2.0)]
    assert logger.counters["received"] == 4 and logger.counters["skipped"] == 0


@pytest.mark.parametrize("setup, words", [
    ("CREATE TABLE numeric_data (sensor_name TEXT, timestamp TEXT, value_raw REAL)",
     "ADD COLUMN message_id"),
    ("CREATE TABLE numeric_data (sensor_name TEXT, timestamp TEXT, value_raw REAL, message_id TEXT)",
     "UNIQUE INDEX"),
])
def test_deduplicate_needs_a_unique_message_id_column(tmp_path, setup, words):
    with pytest.raises(ConfigError) as info:
        make_logger(tmp_path, setup=setup)
    assert words in info.value.message and "numeric_data" in info.value.message


def test_deduplicate_must_be_a_boolean(tmp_path):
    from dripline.implementations import PostgresSensorLogger
    with pytest.raises(ConfigError) as info:
        PostgresSensorLogger(name="x", make_connection=False, deduplicate="yes",
                             database_url=f"sqlite:///{tmp_path / 'x.db'}",
                             insertion_table_endpoint_name="values_table")
    assert "deduplicate" in info.value.message


def test_insert_ignoring_conflicts_on_postgresql_and_sqlite(tmp_path):
    from dripline.implementations.postgres_interface import _insert_ignoring_conflicts
    table = sa.table("t", sa.column("message_id"))
    pg = _insert_ignoring_conflicts("postgresql", table).compile(
        dialect=sa.dialects.postgresql.dialect())
    lite = _insert_ignoring_conflicts("sqlite", table).compile(dialect=sa.dialects.sqlite.dialect())
    assert "ON CONFLICT DO NOTHING" in str(pg) and "ON CONFLICT DO NOTHING" in str(lite)
    with pytest.raises(ConfigError):
        _insert_ignoring_conflicts("mysql", table)


# ------------------------------------------------------------------------------------ queue type

def test_queue_type_is_checked_and_needs_a_durable_queue():
    import dripline.assembly.objects  # noqa: F401
    from dripline.core import AlertConsumer
    assert AlertConsumer(name="c", make_connection=False).queue_type is None
    assert AlertConsumer(name="c", make_connection=False, durable_queue=True,
                         queue_type="quorum").queue_type == "quorum"
    with pytest.raises(ConfigError) as info:
        AlertConsumer(name="c", make_connection=False, durable_queue=True, queue_type="stream")
    assert "classic, quorum" in info.value.message
    with pytest.raises(ConfigError) as info:
        AlertConsumer(name="c", make_connection=False, queue_type="quorum")
    assert "durable_queue" in info.value.message


def test_broker_heartbeat_reaches_the_connection(tmp_path):
    from dripline.client.broker import DEFAULT_HEARTBEAT_S, connection_for_mesh
    from dripline.settings.auth import build_authentication
    auth = build_authentication()
    fast = connection_for_mesh(mesh_config({"broker_heartbeat_s": "5"}, home=tmp_path), auth, name="t")
    default = connection_for_mesh(mesh_config({}, home=tmp_path), auth, name="t")
    assert (fast.heartbeat_s, default.heartbeat_s) == (5, DEFAULT_HEARTBEAT_S)
    with pytest.raises(ConfigError):
        mesh_config({"broker_heartbeat_s": -1}, home=tmp_path)
