"""SQL storage for services: the PostgreSQLInterface mix-in and SQLTable endpoints.

A service that stores or reads data in a database combines a Service class with the
`PostgreSQLInterface` mix-in, in the reference's order::

    class RunTables(Service, PostgreSQLInterface):
        def __init__(self, **kwargs):
            Service.__init__(self, add_endpoints_now=False, **kwargs)
            PostgreSQLInterface.__init__(self, **kwargs)
            self.connect_to_db(self.auth)
            self.add_endpoints_from_config()

and lists `SQLTable` endpoints, each describing one table: which payload keys map to which
columns (`required_insert_names`, `optional_insert_names`: a column name, or
``{column: ..., payload_key: ...}`` when they differ), `default_insert_values`, the columns an
insert returns (`return_col_names`), and `schema`. ``cmd <table> do_insert key=value ...`` inserts
a row; ``cmd <table> do_select ...`` reads rows.

Built on SQLAlchemy 2 with psycopg 3. The database is PostgreSQL (`database_name` on
`database_server`, ``host`` or ``host:port``), or any SQLAlchemy URL given as `database_url` (e.g.
``sqlite:///sensor_data.db``, which needs no server at all). Credentials for PostgreSQL come from
the ``postgres`` credential group: the auth file, then ``POSTGRES_USER`` / ``POSTGRES_PASSWORD``,
default postgres/postgres; a URL that names a user keeps its own.

Differences from the reference, on purpose:
* The URL is built with proper escaping and the port is honoured; `database_url` is new.
* A missing ``postgres`` credential group is filled from the defaults and the environment (the
  reference raises RuntimeError).
* Values are handed to the database driver as they are; the database converts them to the column
  types (so an ISO timestamp string fits a timestamp column, with PostgreSQL and SQLite alike).
* A table that cannot be read yet (database down at start-up) is looked up again on first use
  instead of failing the service.
* `do_select` accepts column names only (the reference pasted `return_cols` into the SQL text), and
  returns JSON-ready values (timestamps as ISO 8601 text, decimals as floats), so that the rows
  also reach a client through ``cmd`` (the reference sent their str()). Unknown column names, a
  missing required value or a value of the wrong type are answered with
  service_error_invalid_value (304); an unreachable database with resource_error_connection (201).
"""
from __future__ import annotations

import datetime
import decimal
import logging
import re
import threading
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from dripline.service.endpoint import Endpoint
from dripline.protocol.errors import ConfigError
from dripline.protocol.throw_reply import ThrowReply

__all__ = ["PostgreSQLInterface", "SQLTable", "database_unavailable", "has_unique_key"]

logger = logging.getLogger(__name__)


class _QuietPipelineAbort(logging.Filter):
    """psycopg warns once more for every statement queued behind a failed one in a pipeline
    (executemany); the failure itself is reported by whoever ran the statement."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_QuietPipelineAbort())

_INVALID_VALUE = "service_error_invalid_value"
_CONNECTION_ERROR = "resource_error_connection"


def database_unavailable(err: BaseException) -> bool:
    """True when `err` means "the database cannot be reached now" (retry later), False when the
    statement or its data are at fault (retrying the same row cannot help)."""
    if isinstance(err, sa_exc.DBAPIError):
        if err.connection_invalidated:
            return True
        if type(err.orig).__module__.startswith("sqlite3"):
            # sqlite3 reports syntax errors and missing tables as OperationalError too
            text = str(err.orig).lower()
            return any(t in text for t in ("locked", "busy", "unable to open", "disk i/o"))
        return isinstance(err, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.InternalError))
    return isinstance(err, (sa_exc.DisconnectionError, sa_exc.TimeoutError))


def _short(err: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's statement and parameter dump."""
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    return f"{type(orig if orig is not None else err).__name__}: {text.splitlines()[0] if text else ''}"


class PostgreSQLInterface:
    """Mix-in giving a service an SQLAlchemy engine and SQLTable children.

    Keywords: `database_name`, `database_server` (``host`` or ``host:port``) for PostgreSQL, or
    `database_url` (any SQLAlchemy URL; it wins when given). Other keywords are for the service
    class this is mixed into and are ignored here.
    """

    def __init__(self, database_name: str | None = None, database_server: str | None = None,
                 database_url: str | None = None, **kwargs: Any) -> None:
        """
        Args:
            database_url: any SQLAlchemy URL (``sqlite:///data.db`` needs no server); it wins
                over `database_name` and `database_server`.
        """
        self.database_name = database_name
        self.database_server = database_server
        self.database_url = database_url
        self.engine: sa.Engine | None = None
        self.meta = sa.MetaData()

    # ------------------------------------------------------------------ connection
    def connect_to_db(self, auth: Any = None) -> None:
        """Create the engine (no connection is opened yet: the database may still be starting)."""
        url = self.database_sqlalchemy_url(auth)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if url.get_backend_name() == "postgresql":
            # fail fast when the server is gone instead of hanging on a dead TCP connection
            options["connect_args"] = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10,
                                       "keepalives_interval": 5, "keepalives_count": 3}
        self.engine = sa.create_engine(url, **options)
        logger.info("%s: database %s", getattr(self, "name", type(self).__name__),
                    url.render_as_string(hide_password=True))

    def database_sqlalchemy_url(self, auth: Any = None) -> sa.URL:
        """The SQLAlchemy URL of the database, with credentials filled in from `auth`."""
        where = f"service {getattr(self, 'name', type(self).__name__)!r}"
        if self.database_url:
            try:
                url = sa.make_url(str(self.database_url))
            except sa_exc.ArgumentError:
                raise ConfigError(f"{where}: database_url is not a database URL such as "
                                  "postgresql://host:5432/name or sqlite:///file.db") from None
        else:
            if not self.database_name or not self.database_server:
                raise ConfigError(f"{where}: give database_name and database_server (PostgreSQL), or "
                                  "database_url (e.g. sqlite:///sensor_data.db)")
            host, port = _split_server(str(self.database_server), where)
            url = sa.URL.create("postgresql+psycopg", host=host, port=port,
                                database=str(self.database_name))
        if url.get_backend_name() == "postgresql":
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")  # psycopg 3 is what we install
            if url.username is None:
                creds = _postgres_credentials(auth if auth is not None else getattr(self, "auth", None))
                url = url.set(username=creds.get("postgres", "username"),
                              password=creds.get("postgres", "password"))
        return url

    def add_child_table(self, endpoint: Any) -> None:
        """Give an SQLTable child the engine (the reference's hook, called from add_child).

        No I/O: the table is read when the service starts (`on_start`) or on first use.
        """
        if isinstance(endpoint, SQLTable) and self.engine is not None:
            endpoint._engine = self.engine

    def on_start(self) -> None:
        """Read the tables of the service's SQLTable endpoints (the service's start hook).

        A table that is not there is a ConfigError (the service does not start); a database
        that cannot be reached yet is a warning, and the table is read on first use.
        """
        hook = getattr(super(), "on_start", None)
        if hook is not None:
            hook()
        if self.engine is None:
            return
        children = [*getattr(self, "sync_children", {}).values(),
                    *getattr(self, "async_children", {}).values()]
        for endpoint in children:
            if not isinstance(endpoint, SQLTable):
                continue
            try:
                endpoint.reflect()
            except sa_exc.SQLAlchemyError as err:
                if not database_unavailable(err):
                    raise ConfigError(f"SQLTable {endpoint.name!r}: cannot read table "
                                      f"{endpoint.qualified_name!r}: {_short(err)}") from None
                logger.warning("SQLTable %s: the database is not reachable yet (%s); the table is "
                               "read on first use", endpoint.name, _short(err))

    def require_engine(self) -> sa.Engine:
        """The engine; ConfigError when connect_to_db was not called."""
        if self.engine is None:
            raise ConfigError(f"{getattr(self, 'name', type(self).__name__)}: no database "
                              "connection (connect_to_db was not called)")
        return self.engine

    def run_setup_sql(self, sql: str) -> None:
        """Run `sql` (statements separated by ';') in one transaction, e.g. CREATE TABLE IF NOT EXISTS."""
        statements = [s.strip() for s in sql.split(";") if s.strip()]
        with self.require_engine().begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)


def _insert_ignoring_conflicts(dialect: str, table: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for `table` in the dialect that has it."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        return sqlite_insert(table).on_conflict_do_nothing()
    raise ConfigError(f"inserting while ignoring duplicates needs PostgreSQL or SQLite, not {dialect}")


def has_unique_key(table: sa.Table, column: str) -> bool:
    """True when `column` alone is the table's primary key, a unique constraint or a unique index."""
    for constraint in table.constraints:
        if isinstance(constraint, (sa.UniqueConstraint, sa.PrimaryKeyConstraint)):
            if [c.name for c in constraint.columns] == [column]:
                return True
    for index in table.indexes:
        if index.unique and [c.name for c in index.columns] == [column]:
            return True
    return False


def _plain(value: Any) -> Any:
    """A database value as JSON-ready data: timestamps as ISO 8601 text, decimals as floats."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _split_server(server: str, where: str) -> tuple[str, int | None]:
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?(?::(\d+))?", server.strip())
    if not match or (server.count(":") > 1 and not server.startswith("[")):
        return server, None  # a bare IPv6 address
    return match.group(1), int(match.group(2)) if match.group(2) else None


def _postgres_credentials(auth: Any) -> Any:
    from dripline.settings.auth import POSTGRES_AUTH_SPEC, Authentication
    if auth is not None and hasattr(auth, "has") and auth.has("postgres", "username"):
        return auth
    creds = Authentication()
    creds.add_groups(POSTGRES_AUTH_SPEC)
    if auth is not None and hasattr(auth, "has") and auth.has("postgres", "password"):
        creds.set("postgres", "password", auth.get("postgres", "password"))
    return creds


class SQLTable(Endpoint):
    """One database table, as an endpoint: ``cmd <name> do_insert ...`` / ``do_select ...``.

    `required_insert_names` / `optional_insert_names`: the payload keys an insert takes, each a
    column name or ``{column: <column>, payload_key: <key>}``; keys not listed are ignored, and a
    missing required key is an error. `default_insert_values`: ``{column: value}`` used when the
    insert does not give that column. `return_col_names`: columns an insert returns (RETURNING).
    """

    def __init__(self, table_name: str, schema: str | None = None,
                 required_insert_names: list | None = None, return_col_names: list | None = None,
                 optional_insert_names: list | None = None, default_insert_values: dict | None = None,
                 **kwargs: Any) -> None:
        """
        Args:
            table_name: the database table this endpoint reads and writes.
            schema: the table's schema (PostgreSQL), when not the default one.
        """
        Endpoint.__init__(self, **kwargs)
        if not table_name or not isinstance(table_name, str):
            raise ConfigError(f"SQLTable {self.name!r}: table_name must be a non-empty string")
        self.table: sa.Table | None = None
        self.table_name = table_name
        self.schema = schema
        self._return_names = [str(c) for c in (return_col_names or [])]
        self._column_map: dict[str, str] = {}
        self._required_insert_names = self._ensure_col_key_map(required_insert_names or [], "required")
        self._optional_insert_names = self._ensure_col_key_map(optional_insert_names or [], "optional")
        if default_insert_values is not None and not isinstance(default_insert_values, dict):
            raise ConfigError(f"SQLTable {self.name!r}: default_insert_values must be a mapping "
                              "{column: value}")
        self._default_insert_dict = dict(default_insert_values or {})
        self._required_keys = tuple(c["payload_key"] for c in self._required_insert_names)
        self._engine: sa.Engine | None = None
        self._columns: frozenset[str] = frozenset()
        self._plain_table: Any = None
        self._reflect_lock = threading.Lock()
        self._copy: bool | None = None  # decided on first use

    def _ensure_col_key_map(self, column_list: Any, kind: str) -> list[dict[str, str]]:
        if not isinstance(column_list, list):
            raise ConfigError(f"SQLTable {self.name!r}: {kind}_insert_names must be a list")
        result = []
        for spec in column_list:
            if isinstance(spec, str):
                spec = {"column": spec, "payload_key": spec}
            elif isinstance(spec, dict):
                missing = [k for k in ("column", "payload_key") if k not in spec]
                unknown = [k for k in spec if k not in ("column", "payload_key")]
                if missing or unknown:
                    raise ConfigError(f"SQLTable {self.name!r}: {kind} insert name {spec!r} must have "
                                      "exactly the keys 'column' and 'payload_key'")
                spec = {"column": str(spec["column"]), "payload_key": str(spec["payload_key"])}
            else:
                raise ConfigError(f"SQLTable {self.name!r}: {kind} insert name {spec!r} must be a "
                                  "column name or {column: ..., payload_key: ...}")
            result.append(spec)
            self._column_map[spec["payload_key"]] = spec["column"]
        return result

    # ------------------------------------------------------------------ table
    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table_name}" if self.schema else self.table_name

    @property
    def engine(self) -> sa.Engine:
        engine = self._engine
        if engine is None:
            engine = getattr(self.service, "engine", None) if self.is_attached else None
            if engine is None:
                raise ThrowReply(_CONNECTION_ERROR, f"SQLTable {self.name}: its service has no "
                                 "database connection (connect_to_db was not called)")
            self._engine = engine
        return engine

    @property
    def columns(self) -> frozenset[str]:
        """Column names of the table (empty until it has been read)."""
        return self._columns

    def reflect(self, connection: Any = None) -> sa.Table:
        """Read the table's definition from the database (again)."""
        with self._reflect_lock:
            meta = sa.MetaData()
            table = sa.Table(self.table_name, meta, schema=self.schema,
                             autoload_with=connection if connection is not None else self.engine)
            columns = frozenset(c.name for c in table.columns)
            mapped = set(self._column_map.values()) | set(self._default_insert_dict) | set(self._return_names)
            unknown = sorted(mapped - columns)
            if unknown:
                logger.error("SQLTable %s: table %s has no column(s) %s; values for them are not "
                             "stored (columns: %s)", self.name, self.qualified_name, ", ".join(unknown),
                             ", ".join(sorted(columns)))
            self._plain_table = sa.table(self.table_name, *(sa.column(c) for c in columns),
                                         schema=self.schema)
            self._copy = None
            self._columns = columns
            self.table = table
            return table

    def ensure_table(self, connection: Any = None) -> Any:
        """The table's untyped SQL handle, reading the definition first if needed."""
        if self._plain_table is None:
            self.reflect(connection)
        return self._plain_table

    # ------------------------------------------------------------------ inserting
    def build_insert(self, values: dict[str, Any]) -> dict[str, Any]:
        """``{column: value}`` for one insert: defaults, overlaid with the mapped payload keys.

        Raises ThrowReply(service_error_invalid_value) when a required key is missing.
        """
        for key in self._required_keys:
            if key not in values:
                raise ThrowReply(_INVALID_VALUE, f"SQLTable {self.name}: a value for {key!r} is "
                                 f"required; got {sorted(values)}")
        row = dict(self._default_insert_dict)
        column_map = self._column_map
        for key, value in values.items():
            column = column_map.get(key)
            if column is not None:
                row[column] = value
        return row

    def insert_rows(self, connection: Any, rows: list[dict[str, Any]],
                    ignore_conflicts: bool = False) -> None:
        """Insert many rows with the same keys on `connection` (the caller owns the transaction).

        Into a plain PostgreSQL table (no rules; psycopg) the rows go with one COPY, about four
        times cheaper per row than INSERTs; anywhere else (views, tables with rules, SQLite ...)
        with an executemany INSERT. Either way the database converts the values to the column
        types, and a value it refuses fails the whole call (the caller then splits the batch).
        `ignore_conflicts`: a row that would violate a unique key is left out instead
        (``INSERT ... ON CONFLICT DO NOTHING``, PostgreSQL and SQLite; never COPY).
        """
        table = self.ensure_table(connection)
        keys = list(rows[0])
        known = self._columns
        if not known.issuperset(keys):
            keys = [k for k in keys if k in known]
            rows = [{k: row[k] for k in keys} for row in rows]
        if ignore_conflicts:
            connection.execute(_insert_ignoring_conflicts(connection.dialect.name, table), rows)
            return
        if self._copy is None:
            self._copy = self._copy_possible(connection)
        if self._copy and keys:
            self._copy_rows(connection, keys, rows)
        else:
            connection.execute(table.insert(), rows)

    def _copy_possible(self, connection: Any) -> bool:
        """COPY only into an ordinary or partitioned PostgreSQL table without rewrite rules
        (COPY ignores rules, and views need INSERT)."""
        if connection.dialect.name != "postgresql" or connection.dialect.driver != "psycopg":
            return False
        name = connection.dialect.identifier_preparer.format_table(self.table)
        with connection.begin_nested():
            row = connection.execute(sa.text(
                "SELECT c.relkind, EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid) "
                "FROM pg_class c WHERE c.oid = to_regclass(:name)"), {"name": name}).first()
        return row is not None and row[0] in ("r", "p") and not row[1]

    def _copy_rows(self, connection: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
        import psycopg
        from psycopg import sql
        target = sql.Identifier(self.schema, self.table_name) if self.schema else sql.Identifier(self.table_name)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            target, sql.SQL(", ").join(sql.Identifier(k) for k in keys))
        raw = connection.connection.driver_connection
        try:
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                write = copy.write_row
                for row in rows:
                    write([row[k] for k in keys])
        except psycopg.Error as err:  # as SQLAlchemy would have wrapped it (DataError, ...)
            raise sa_exc.DBAPIError.instance(f"COPY {self.qualified_name}", None, err, psycopg.Error,
                                             connection_invalidated=raw.closed) from None

    def do_insert(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Insert one row from keyword values; returns ``{column: value}`` for `return_col_names`."""
        row = self.build_insert(kwargs)
        return self._insert_with_return(row, self._return_names)

    def _insert_with_return(self, insert_kv_dict: dict[str, Any], return_col_names_list: list[str]) -> dict[str, Any]:
        try:
            table = self.ensure_table()
            unknown = [c for c in list(insert_kv_dict) + list(return_col_names_list) if c not in self._columns]
            if unknown:
                raise ThrowReply(_INVALID_VALUE, f"SQLTable {self.name}: table {self.qualified_name} "
                                 f"has no column(s) {', '.join(unknown)}")
            statement = table.insert().values(**insert_kv_dict)
            if return_col_names_list:
                statement = statement.returning(*(table.c[c] for c in return_col_names_list))
            with self.engine.begin() as conn:
                result = conn.execute(statement)
                returned = result.first() if return_col_names_list else ()
        except sa_exc.SQLAlchemyError as err:
            self._raise_for(err, "insert into")
        return {c: _plain(v) for c, v in zip(return_col_names_list, returned or ())}

    # ------------------------------------------------------------------ selecting
    def do_select(self, return_cols: list | None = None, where_eq_dict: dict | None = None,
                  where_lt_dict: dict | None = None, where_gt_dict: dict | None = None) -> tuple[list, list]:
        """Rows matching all conditions (column == / < / > value), as (column names, row tuples).

        `return_cols`: column names (default: every column).
        """
        try:
            table = self.ensure_table()
            wanted = [str(c) for c in (return_cols or [])] or sorted(self._columns, key=self._column_order)
            conditions = {"where_eq_dict": where_eq_dict, "where_lt_dict": where_lt_dict,
                          "where_gt_dict": where_gt_dict}
            named = list(wanted)
            for option, cond in conditions.items():
                if cond is not None and not isinstance(cond, dict):
                    raise ThrowReply(_INVALID_VALUE, f"{option} must be a mapping {{column: value}}")
                named += list(cond or {})
            unknown = sorted({c for c in named if c not in self._columns})
            if unknown:
                raise ThrowReply(_INVALID_VALUE, f"SQLTable {self.name}: table {self.qualified_name} "
                                 f"has no column(s) {', '.join(unknown)}")
            statement = sa.select(*(table.c[c] for c in wanted))
            for column, value in (where_eq_dict or {}).items():
                statement = statement.where(table.c[column] == value)
            for column, value in (where_lt_dict or {}).items():
                statement = statement.where(table.c[column] < value)
            for column, value in (where_gt_dict or {}).items():
                statement = statement.where(table.c[column] > value)
            with self.engine.connect() as conn:
                result = conn.execute(statement)
                return list(result.keys()), [tuple(_plain(v) for v in row) for row in result]
        except sa_exc.SQLAlchemyError as err:
            self._raise_for(err, "select from")

    def _column_order(self, column: str) -> int:
        table = self.table
        if table is None:
            return 0
        return [c.name for c in table.columns].index(column)

    def _raise_for(self, err: sa_exc.SQLAlchemyError, action: str) -> NoReturn:
        if isinstance(err, sa_exc.NoSuchTableError):
            raise ThrowReply(_INVALID_VALUE, f"SQLTable {self.name}: table {self.qualified_name} "
                             "does not exist") from None
        if database_unavailable(err):
            raise ThrowReply(_CONNECTION_ERROR, f"SQLTable {self.name}: database unavailable: "
                             f"{_short(err)}") from None
        if isinstance(err, sa_exc.IntegrityError):
            raise ThrowReply("resource_error", f"SQLTable {self.name}: {action} {self.qualified_name} "
                             f"refused: {_short(err)}") from None
        raise ThrowReply(_INVALID_VALUE, f"SQLTable {self.name}: {action} {self.qualified_name} "
                         f"failed: {_short(err)}") from None
