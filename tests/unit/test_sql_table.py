"""PostgreSQLInterface and SQLTable against SQLite files (no server needed)."""
from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from dripline.core import Service, ThrowReply
from dripline.assembly.config import Authentication, build_authentication
from dripline.protocol.errors import ConfigError
from dripline.protocol.message import MsgRequest, op_t
from dripline.implementations import PostgreSQLInterface, SQLTable

DDL = """CREATE TABLE numeric_data (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor_name TEXT NOT NULL,
    "timestamp" TEXT NOT NULL,
    value_raw DOUBLE PRECISION NOT NULL,
    value_cal DOUBLE PRECISION,
    note TEXT DEFAULT 'none')"""


class TableService(Service, PostgreSQLInterface):
    """The reference's recipe for a service with SQL tables."""

    def __init__(self, **kwargs):
        Service.__init__(self, add_endpoints_now=False, **kwargs)
        PostgreSQLInterface.__init__(self, **kwargs)
        self.connect_to_db(self.auth)
        self.add_endpoints_from_config()

    def add_child(self, endpoint):
        Service.add_child(self, endpoint)
        self.add_child_table(endpoint)


@pytest.fixture
def db_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'data.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(DDL)
    engine.dispose()
    return url


def table_config(**overrides):
    conf = {"name": "values_table", "module": "SQLTable", "table_name": "numeric_data",
            "required_insert_names": ["sensor_name", "timestamp", {"column": "value_raw", "payload_key": "raw"}],
            "optional_insert_names": ["value_cal"], "return_col_names": ["id", "note"],
            "default_insert_values": {"note": "logged"}}
    conf.update(overrides)
    return conf


@pytest.fixture
def service(db_url):
    svc = TableService(name="tables", make_connection=False, database_url=db_url,
                       endpoints=[table_config()])
    svc.on_start()  # what start() runs: the tables are read
    yield svc
    svc.engine.dispose()


def cmd(svc, endpoint, method, **kwargs):
    request = MsgRequest.create(payload=kwargs, msg_op=op_t.cmd, routing_key=endpoint, specifier=method)
    return svc.sync_children[endpoint].on_request_message(request)


# ---------------------------------------------------------------------------------- configuration
def test_insert_names_become_the_column_map():
    t = SQLTable(name="t", **{k: v for k, v in table_config().items() if k not in ("name", "module")})
    assert t._column_map == {"sensor_name": "sensor_name", "timestamp": "timestamp", "raw": "value_raw",
                             "value_cal": "value_cal"}
    assert t._required_insert_names[2] == {"column": "value_raw", "payload_key": "raw"}


@pytest.mark.parametrize("spec", [{"column": "a"}, {"column": "a", "payload_key": "b", "x": 1}, 5])
def test_a_malformed_insert_name_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="SQLTable 't'"):
        SQLTable(name="t", table_name="x", required_insert_names=[spec])


def test_build_insert_applies_defaults_mapping_and_drops_unknown_keys():
    t = SQLTable(name="t", **{k: v for k, v in table_config().items() if k not in ("name", "module")})
    row = t.build_insert({"sensor_name": "p", "timestamp": "ts", "raw": 1.5, "junk": 3, "note": "x"})
    assert row == {"note": "logged", "sensor_name": "p", "timestamp": "ts", "value_raw": 1.5}


def test_build_insert_refuses_a_missing_required_value_with_304():
    t = SQLTable(name="t", **{k: v for k, v in table_config().items() if k not in ("name", "module")})
    with pytest.raises(ThrowReply) as info:
        t.build_insert({"sensor_name": "p", "timestamp": "ts"})
    assert info.value.return_code == 304 and "'raw'" in info.value.message


# ---------------------------------------------------------------------------------- inserting / selecting
def test_do_insert_returns_the_requested_columns(service):
    table = service.sync_children["values_table"]
    assert table.table is not None and "value_raw" in table.columns
    first = table.do_insert(sensor_name="peaches", timestamp="2024-01-01T00:00:00Z", raw=0.75)
    second = table.do_insert(sensor_name="peaches", timestamp="2024-01-01T00:00:01Z", raw=0.8,
                             value_cal=1.6, note="ignored, not an insert name")
    assert first == {"id": 1, "note": "logged"} and second == {"id": 2, "note": "logged"}


def test_do_insert_through_a_cmd_request(service):
    reply = cmd(service, "values_table", "do_insert", sensor_name="s", timestamp="t", raw=2)
    assert reply.return_code == 0 and reply.payload == {"id": 1, "note": "logged"}
    reply = cmd(service, "values_table", "do_insert", sensor_name="s", timestamp="t")
    assert reply.return_code == 304


def test_do_insert_database_refusal_is_an_error_reply(service):
    reply = cmd(service, "values_table", "do_insert", sensor_name=None, timestamp="t", raw=2)
    assert reply.return_code == 200 and "NOT NULL" in reply.return_message


def test_do_select_filters_and_names_columns(service):
    table = service.sync_children["values_table"]
    for i in range(5):
        table.do_insert(sensor_name=f"s{i % 2}", timestamp=f"2024-01-01T00:00:0{i}Z", raw=float(i))
    names, rows = table.do_select(return_cols=["sensor_name", "value_raw"], where_eq_dict={"sensor_name": "s0"},
                                  where_gt_dict={"value_raw": 0.5}, where_lt_dict={"value_raw": 4.5})
    assert names == ["sensor_name", "value_raw"] and rows == [("s0", 2.0), ("s0", 4.0)]
    names, rows = table.do_select()
    assert names == ["id", "sensor_name", "timestamp", "value_raw", "value_cal", "note"] and len(rows) == 5


def test_do_select_refuses_unknown_columns(service):
    table = service.sync_children["values_table"]
    with pytest.raises(ThrowReply) as info:
        table.do_select(return_cols=["value_raw; DROP TABLE numeric_data"])
    assert info.value.return_code == 304
    reply = cmd(service, "values_table", "do_select", where_eq_dict={"nope": 1})
    assert reply.return_code == 304 and "nope" in reply.return_message


def test_do_select_through_a_cmd_request_is_plain_data(service):
    service.sync_children["values_table"].do_insert(sensor_name="a", timestamp="t", raw=1)
    reply = cmd(service, "values_table", "do_select", return_cols=["sensor_name", "value_raw"])
    assert reply.return_code == 0 and reply.payload == [["sensor_name", "value_raw"], [["a", 1.0]]]


def test_a_missing_table_is_a_config_error_at_start(db_url):
    svc = TableService(name="tables", make_connection=False, database_url=db_url,
                       endpoints=[table_config(name="other", table_name="nope")])  # no I/O yet
    with pytest.raises(ConfigError, match="nope"):
        svc.on_start()


def test_tables_work_without_the_add_child_override(db_url):
    class Plain(Service, PostgreSQLInterface):
        def __init__(self, **kwargs):
            Service.__init__(self, add_endpoints_now=False, **kwargs)
            PostgreSQLInterface.__init__(self, **kwargs)
            self.connect_to_db(self.auth)
            self.add_endpoints_from_config()

    svc = Plain(name="p", make_connection=False, database_url=db_url, endpoints=[table_config()])
    table = svc.sync_children["values_table"]
    assert table.table is None
    assert table.do_insert(sensor_name="a", timestamp="t", raw=1) == {"id": 1, "note": "logged"}


# ---------------------------------------------------------------------------------- URLs and credentials
def interface(**kwargs):
    return PostgreSQLInterface(**kwargs)


def test_url_from_name_and_server_uses_psycopg_and_the_postgres_group():
    auth = build_authentication(extra_groups={"postgres": {"username": {"default": "alice"},
                                                           "password": {"default": "p@ss:/word"}}})
    url = interface(database_name="sensor_data", database_server="db.example:6543").database_sqlalchemy_url(auth)
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username, url.password) == \
        ("db.example", 6543, "sensor_data", "alice", "p@ss:/word")
    assert "p@ss" not in url.render_as_string(hide_password=True)
    assert sa.make_url(url.render_as_string(hide_password=False)).password == "p@ss:/word"


def test_missing_postgres_group_falls_back_to_defaults_and_environment(monkeypatch):
    monkeypatch.setenv("POSTGRES_USER", "bob")
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    url = interface(database_name="d", database_server="h").database_sqlalchemy_url(Authentication())
    assert (url.username, url.password, url.port) == ("bob", "postgres", None)


def test_database_url_wins_and_keeps_its_own_user():
    auth = build_authentication(extra_groups={"postgres": {"username": {"default": "alice"},
                                                           "password": {"default": "x"}}})
    pg = interface(database_name="ignored", database_server="ignored",
                   database_url="postgresql://carol:pw@127.0.0.1:5432/test").database_sqlalchemy_url(auth)
    assert (pg.drivername, pg.username, pg.password, pg.database) == ("postgresql+psycopg", "carol", "pw", "test")
    filled = interface(database_url="postgresql://127.0.0.1/test").database_sqlalchemy_url(auth)
    assert (filled.username, filled.password) == ("alice", "x")
    lite = interface(database_url="sqlite:///x.db").database_sqlalchemy_url(auth)
    assert lite.drivername == "sqlite" and lite.username is None


def test_no_database_is_a_config_error():
    with pytest.raises(ConfigError, match="database_name and database_server"):
        interface(database_name="d").database_sqlalchemy_url(Authentication())
    with pytest.raises(ConfigError, match="database_url"):
        interface(database_url="not a url").database_sqlalchemy_url(Authentication())


def test_the_password_is_not_logged(caplog):
    svc = interface(database_name="d", database_server="h")
    auth = build_authentication(extra_groups={"postgres": {"username": {"default": "u"},
                                                           "password": {"default": "Sup3rSecret"}}})
    with caplog.at_level(logging.DEBUG):
        svc.connect_to_db(auth)
    assert "Sup3rSecret" not in caplog.text and "postgresql+psycopg://u:***@h/d" in caplog.text


def test_dl_serve_credentials_reach_the_database_url(tmp_path, monkeypatch):
    """The postgres group comes from the auth file; POSTGRES_USER / POSTGRES_PASSWORD win over it."""
    from dripline.cli.serve import build_parser, load_service_config
    auth_file = tmp_path / "auths.json"
    auth_file.write_text('{"postgres": {"username": "from_file", "password": "file_pw"}}')
    config = tmp_path / "logger.yaml"
    config.write_text("name: x\nmodule: PostgresSensorLogger\ndatabase_name: d\ndatabase_server: h\n")
    monkeypatch.delenv("POSTGRES_USER", raising=False)
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    args = build_parser().parse_intermixed_args(["-c", str(config), "--auth-file", str(auth_file)])
    conf, auth, _ = load_service_config(args)
    url = interface(database_name="d", database_server="h").database_sqlalchemy_url(auth)
    assert (url.username, url.password) == ("from_file", "file_pw")
    monkeypatch.setenv("POSTGRES_PASSWORD", "env_pw")
    conf, auth, _ = load_service_config(args)
    url = interface(database_name="d", database_server="h").database_sqlalchemy_url(auth)
    assert (url.username, url.password) == ("from_file", "env_pw")
