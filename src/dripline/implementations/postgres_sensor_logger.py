"""PostgresSensorLogger: store every sensor-value alert as a row of a database table.

Each alert ``sensor_value.<name>`` becomes one row: ``{"timestamp": <alert timestamp>}``, then the
named groups of `alert_key_parser_re` (e.g. ``sensor_name``), then the payload
(``value_raw``, ``value_cal`` ...), later sources winning, mapped to columns by the SQLTable
endpoint named `insertion_table_endpoint_name` (the reference's configuration, unchanged)::

    name: sensor_data_logger
    module: PostgresSensorLogger
    insertion_table_endpoint_name: values_table
    alert_keys: ["sensor_value.#"]
    alert_key_parser_re: 'sensor_value\\.(?P<sensor_name>\\w+)'
    database_name: sensor_data
    database_server: 127.0.0.1          # or database_url: sqlite:///sensor_data.db
    endpoints:
      - name: values_table
        module: SQLTable
        table_name: numeric_data
        required_insert_names: [sensor_name, timestamp, value_raw]
        optional_insert_names: [value_cal]

How it differs from the reference, which inserts each alert in a transaction of its own on the
service's worker thread:

* Rows are batched: alerts are taken off the broker connection on the event loop and queued; a
  writer thread inserts them, up to `batch_size` rows per transaction. A row waits at most
  `flush_interval_s` before being written, so a lone alert is stored within that time.
* Nothing is lost while the database is away: the writer keeps the rows and tries again (waiting
  up to `retry_interval_s` between attempts), warning while the database is unavailable and when
  it is back. The queue holds at most `buffer_size` rows; when it is full the oldest rows are
  dropped with a warning that counts them -- unless `durable_queue` is on, in which case the broker
  simply stops handing over alerts, which wait in the durable queue.
* ``durable_queue: true``: alerts arrive on a durable queue (``<name>.alerts``) that survives a
  restart of the logger, and each is acknowledged only after its row is committed. Delivery is
  at-least-once: rows committed just before a crash can be stored twice after the restart.
* An alert that cannot be stored (a required value missing, a value the column refuses, a payload
  that is not a mapping) is logged with its routing key and skipped; the other rows of its batch are
  stored and the logger keeps running.
* `database_url` selects another database, e.g. ``sqlite:///sensor_data.db`` (no server needed);
  `setup_sql` (statements separated by ';') is run once at start, e.g. to create the table.
* `get` on the logger returns its counters (stored, skipped, dropped, waiting, database state).
* Stopping is bounded by `stop_timeout_s` (default 10 s): the queued rows are written for at most
  that long; a database that does not answer by then (a hung server, a network that swallows
  packets) has its connection aborted, and the logger stops at most about a second later. Start,
  end, duration and what was left unstored are logged; rows left are lost, unless `durable_queue`
  is on, in which case they wait in the broker.
* Without configuration, `alert_keys` is ``["sensor_value.#"]`` and `alert_key_parser_re` extracts
  ``sensor_name`` from the second token.
* ``deduplicate: true`` stores each alert once: its message id goes into a ``message_id`` column,
  which must be the table's unique key (``ALTER TABLE numeric_data ADD COLUMN message_id text
  UNIQUE``), and rows whose id is already stored are left out (``INSERT ... ON CONFLICT DO
  NOTHING``; PostgreSQL or SQLite). With `durable_queue` this turns at-least-once delivery into
  exactly-once storage: an alert redelivered after a crash or a lost broker node, or sent again
  by its service with the same id, is not stored twice. ``queue_type: quorum`` keeps the waiting
  alerts on every node of a cluster; several loggers may share one durable queue (see
  AlertConsumer and docs/howto/scaling.md).

A subclass that overrides `process_payload` or `on_alert_message` gets the reference's behaviour
(one call per alert on the worker thread); calling ``PostgresSensorLogger.process_payload`` from
there still queues the row for a batched insert, and durable-queue alerts are then acknowledged
when that row is committed.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import threading
import time
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import exc as sa_exc

from dripline.service.alert_consumer import AlertConsumer
from dripline.protocol.errors import ConfigError
from dripline.protocol.message import Message

from .postgres_interface import (PostgreSQLInterface, SQLTable, _short, database_unavailable,
                                 has_unique_key)

__all__ = ["PostgresSensorLogger"]

logger = logging.getLogger(__name__)

DEFAULT_ALERT_KEYS = ["sensor_value.#"]
DEFAULT_PARSER_RE = r"sensor_value\.(?P<sensor_name>[^.]+)"
#: the column that holds each alert's message id when `deduplicate` is on (its unique key)
MESSAGE_ID_COLUMN = "message_id"
_WARN_EVERY_S = 30.0
# after stop_timeout_s: how long the writer may take to notice its aborted connection
_ABORT_GRACE_S = 1.0


class _Row:
    __slots__ = ("table", "values", "routing_key", "deliveries", "queued_at")

    def __init__(self, table: SQLTable, values: dict, routing_key: str, deliveries: Any) -> None:
        self.table = table
        self.values = values
        self.routing_key = routing_key
        self.deliveries = deliveries
        self.queued_at = time.monotonic()


class _GiveUp(Exception):
    """The logger is stopping and the database is still unavailable."""


class _Unavailable(Exception):
    def __init__(self, err: BaseException, remaining: list[_Row]) -> None:
        super().__init__(str(err))
        self.err = err
        self.remaining = remaining


class PostgresSensorLogger(AlertConsumer, PostgreSQLInterface):
    """An alert consumer that inserts each alert into a table (see the module documentation)."""

    def __init__(self, insertion_table_endpoint_name: str, batch_size: int = 1000,
                 flush_interval_s: float = 0.1, buffer_size: int = 100_000,
                 retry_interval_s: float = 2.0, stop_timeout_s: float = 10.0,
                 setup_sql: str | None = None, deduplicate: bool = False, **kwargs: Any) -> None:
        """
        Args:
            insertion_table_endpoint_name: the ``SQLTable`` endpoint (of this service) that
                each alert is inserted into.
            deduplicate: store each alert once, keyed on its message id in the table's unique
                ``message_id`` column (insert-or-ignore); exactly-once storage together with
                ``durable_queue``.
        """
        kwargs.pop("add_endpoints_now", None)
        if kwargs.get("alert_keys") is None:
            kwargs["alert_keys"] = list(DEFAULT_ALERT_KEYS)
        if not kwargs.get("alert_key_parser_re"):
            kwargs["alert_key_parser_re"] = DEFAULT_PARSER_RE
        name = kwargs.get("name", "?")
        if not isinstance(deduplicate, bool):
            raise ConfigError(f"service {name!r}: deduplicate must be true or false, not {deduplicate!r}")
        self.deduplicate = deduplicate
        self._dedupe_checked = False
        self.batch_size = _positive_int(batch_size, "batch_size", name)
        self.buffer_size = _positive_int(buffer_size, "buffer_size", name)
        # durable queue: the broker hands over at most what the buffer holds; the rest waits there
        kwargs.setdefault("durable_prefetch", min(self.buffer_size, 65535))
        AlertConsumer.__init__(self, add_endpoints_now=False, **kwargs)
        PostgreSQLInterface.__init__(self, **kwargs)
        self.insertion_table_endpoint_name = insertion_table_endpoint_name
        self.default_insertion_table = insertion_table_endpoint_name  # newer reference name
        self.flush_interval_s = max(0.0, float(flush_interval_s))
        self.retry_interval_s = max(0.05, float(retry_interval_s))
        self.stop_timeout_s = max(0.0, float(stop_timeout_s))
        self.setup_sql = setup_sql
        self._buffer: collections.deque[_Row] = collections.deque()
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stopping = False
        self._stop_deadline: float | None = None
        self._writer: threading.Thread | None = None
        self._db_conn: Any = None
        self._conn_lock = threading.Lock()  # the stop path aborts the writer's connection
        self._setup_done = False
        self._in_flight = 0
        self._tls = threading.local()
        self._unavailable_since: float | None = None
        self._db_state = "not used yet"
        self._last_warning = 0.0
        self._last_drop_warning = 0.0
        self.counters = {"received": 0, "stored": 0, "skipped": 0, "dropped": 0, "batches": 0}
        self._fast_path = (type(self).process_payload is PostgresSensorLogger.process_payload
                           and type(self).on_alert_message is AlertConsumer.on_alert_message)

        self.connect_to_db(self.auth)  # an engine only: the database is contacted by on_start
        self.add_endpoints_from_config()
        table = self.sync_children.get(insertion_table_endpoint_name)
        if not isinstance(table, SQLTable):
            tables = [n for n, e in self.sync_children.items() if isinstance(e, SQLTable)]
            raise ConfigError(f"service {self.name!r}: insertion_table_endpoint_name "
                              f"{insertion_table_endpoint_name!r} is not one of its SQLTable endpoints "
                              f"({', '.join(tables) or 'none configured'})")

    def on_start(self) -> None:
        """Run `setup_sql`, read the tables, check deduplicate's key (the service's start hook).

        A database that cannot be reached yet is a warning: setup_sql then runs when it is.
        """
        if self.setup_sql and not self._setup_done:
            try:
                self.run_setup_sql(self.setup_sql)
                self._setup_done = True
            except sa_exc.SQLAlchemyError as err:
                if not database_unavailable(err):
                    raise ConfigError(f"service {self.name!r}: setup_sql failed: {_short(err)}") from None
                logger.warning("%s: database not reachable yet (%s); setup_sql runs when it is",
                               self.name, _short(err))
        super().on_start()  # PostgreSQLInterface reads the tables
        table = self.sync_children.get(self.insertion_table_endpoint_name)
        if self.deduplicate and isinstance(table, SQLTable) and table.table is not None:
            self._check_dedupe_table(table)  # read now: checked at start, not at the first alert

    def _check_dedupe_table(self, table: SQLTable) -> None:
        """ConfigError unless the table has a `message_id` column that is its unique key; without
        one, duplicates would be stored silently (or the ids dropped)."""
        if self._dedupe_checked or table.table is None:
            return
        if MESSAGE_ID_COLUMN not in table.columns:
            raise ConfigError(f"service {self.name!r}: deduplicate needs a {MESSAGE_ID_COLUMN!r} column "
                              f"in table {table.qualified_name!r}, unique (ALTER TABLE "
                              f"{table.qualified_name} ADD COLUMN {MESSAGE_ID_COLUMN} text UNIQUE)")
        if not has_unique_key(table.table, MESSAGE_ID_COLUMN):
            raise ConfigError(f"service {self.name!r}: deduplicate needs the column "
                              f"{MESSAGE_ID_COLUMN!r} of table {table.qualified_name!r} to be "
                              f"unique (CREATE UNIQUE INDEX ON {table.qualified_name} "
                              f"({MESSAGE_ID_COLUMN}))")
        self._dedupe_checked = True

    # the reference's explicit resolution of the diamond
    def add_child(self, endpoint: Any) -> bool:
        result = AlertConsumer.add_child(self, endpoint)
        self.add_child_table(endpoint)
        return result

    # ------------------------------------------------------------------ alerts -> rows
    def process_payload(self, payload: Any, routing_key_data: dict[str, Any], timestamp: str,
                        target_table: str | None = None) -> None:
        """Queue the row for this alert (the reference inserts it at once)."""
        table = self._table(target_table)
        row = self._make_row(table, payload, routing_key_data, timestamp)
        deliveries = getattr(self._tls, "deliveries", None)
        if deliveries:
            self._tls.deliveries = None  # the row now carries the acknowledgement
        routing_key = getattr(self._tls, "routing_key", "") or ""
        if self.deduplicate:
            row[MESSAGE_ID_COLUMN] = getattr(self._tls, "message_id", None) or None
        self._enqueue(_Row(table, row, routing_key, deliveries or ()))

    def _table(self, name: str | None) -> SQLTable:
        name = name or self.insertion_table_endpoint_name
        table = self.sync_children.get(name)
        if not isinstance(table, SQLTable):
            raise ConfigError(f"{self.name}: no SQLTable endpoint named {name!r}")
        return table

    @staticmethod
    def _make_row(table: SQLTable, payload: Any, routing_key_data: dict, timestamp: str) -> dict:
        if hasattr(payload, "to_python"):
            payload = payload.to_python()
        if not isinstance(payload, dict):
            raise ValueError(f"the payload is not a mapping of values but {type(payload).__name__} "
                             f"{payload!r:.80}")
        values = {"timestamp": timestamp or _utc_now()}
        values.update(routing_key_data)
        values.update(payload)
        return table.build_insert(values)

    def _deliver_alert(self, msg: Message, deliveries: Any) -> None:
        """On the loop thread: turn the alert into a queued row (the fast path) or, for subclasses
        that override process_payload/on_alert_message, hand it to the worker thread."""
        self.counters["received"] += 1
        if not self._fast_path:
            def handle() -> None:
                self._tls.deliveries, self._tls.routing_key = deliveries, msg.routing_key
                self._tls.message_id = msg.message_id
                try:
                    self.on_alert_message(msg)
                finally:
                    left, self._tls.deliveries = self._tls.deliveries, None
                    self._finish_deliveries(left)  # not queued as a row: acknowledge now
            self.runtime.run_on_worker(handle)
            return
        try:
            table = self._table(None)
            row = self._make_row(table, msg.payload, self.parse_routing_key(msg.routing_key),
                                 msg.timestamp)
            if self.deduplicate:
                row[MESSAGE_ID_COLUMN] = msg.message_id or None
        except Exception as err:
            self.counters["skipped"] += 1
            logger.error("%s: alert %r not stored: %s", self.name, msg.routing_key,
                         getattr(err, "message", None) or err)
            self._finish_deliveries(deliveries)
            return
        self._enqueue(_Row(table, row, msg.routing_key, deliveries))

    def _enqueue(self, row: _Row) -> None:
        buffer = self._buffer
        if len(buffer) >= self.buffer_size and not row.deliveries:
            try:
                buffer.popleft()
            except IndexError:
                pass
            else:
                self.counters["dropped"] += 1
                now = time.monotonic()
                if now - self._last_drop_warning > _WARN_EVERY_S or self.counters["dropped"] == 1:
                    self._last_drop_warning = now
                    logger.warning("%s: the buffer is full (%d alerts waiting for the database): "
                                   "dropping the oldest; %d dropped so far. Use durable_queue: true "
                                   "to keep alerts in the broker instead", self.name, len(buffer),
                                   self.counters["dropped"])
        buffer.append(row)
        n = len(buffer)
        if n == 1 or n == self.batch_size:
            with self._cond:
                self._cond.notify()

    # ------------------------------------------------------------------ writer thread
    def start_writer(self) -> None:
        """Start the writer thread (done by start(); public for tests and dry runs)."""
        if self._writer is not None and self._writer.is_alive():
            return
        self._stopping = False
        self._stop_deadline = None
        self._wake.clear()
        self._writer = threading.Thread(target=self._writer_main, name=f"{self.name}-db-writer",
                                        daemon=True)
        self._writer.start()

    def stop_writer(self, timeout_s: float | None = None) -> int:
        """Write what is queued (for at most `timeout_s`), stop the writer; returns rows left.

        Bounded even when the database hangs mid-statement: after `timeout_s` the connection is
        aborted under the writer (its socket shut down, so the blocked call fails at once) and
        the writer gets `_ABORT_GRACE_S` more to notice. A writer still busy after that (only
        possible while it opens a connection, bounded by the driver's connect timeout) is left
        to finish on its own; it stores nothing more.
        """
        timeout_s = self.stop_timeout_s if timeout_s is None else max(0.0, float(timeout_s))
        writer = self._writer
        started = time.monotonic()
        self._stop_deadline = started + timeout_s
        waiting = len(self._buffer) + self._in_flight
        if writer is not None and writer.is_alive():
            logger.info("%s: stopping; writing the %d queued alerts for at most %g s "
                        "(stop_timeout_s)", self.name, waiting, timeout_s)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake.set()
        aborted = False
        if writer is not None:
            writer.join(timeout_s)
            if writer.is_alive():
                logger.warning("%s: the database did not finish within stop_timeout_s (%g s); "
                               "aborting its connection", self.name, timeout_s)
                aborted = self._abort_db_connection()
                writer.join(_ABORT_GRACE_S)
        if writer is None or not writer.is_alive():
            self._close_db_connection(invalidate=aborted)
        else:
            logger.error("%s: the database writer is still waiting for the database (connecting); "
                         "stopping without it", self.name)
        left = len(self._buffer) + self._in_flight
        if writer is not None:
            logger.info("%s: writer stopped after %.1f s", self.name, time.monotonic() - started)
        if left:
            if self.durable_queue:
                logger.warning("%s: %d alerts not stored before stopping; they stay in the durable "
                               "queue %r and are stored after the restart", self.name, left,
                               self.durable_queue_name)
            else:
                logger.error("%s: %d alerts could not be stored before stopping and are lost",
                             self.name, left)
        return left

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Block until every queued row is written (or skipped); False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self._buffer or self._in_flight:
            if time.monotonic() > deadline:
                return False
            with self._cond:
                self._cond.notify()
            time.sleep(0.01)
        return True

    def _writer_main(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._store(batch)
            except _GiveUp:
                return
            except Exception:  # a bug guard: the writer must survive anything
                logger.exception("%s: unexpected error while storing %d alerts; they are skipped",
                                 self.name, len(batch))
                self.counters["skipped"] += len(batch)
                self._finish_rows(batch)
            finally:
                self._in_flight = 0

    def _next_batch(self) -> list[_Row] | None:
        buffer = self._buffer
        with self._cond:
            while not buffer:
                if self._stopping:
                    return None
                self._cond.wait(0.5)
            if self._stopping and time.monotonic() > (self._stop_deadline or float("inf")):
                return None  # alerts keep coming faster than they can be written: stop anyway
            if not self._stopping and self.flush_interval_s > 0:
                try:
                    deadline = buffer[0].queued_at + self.flush_interval_s
                except IndexError:
                    deadline = time.monotonic()
                while len(buffer) < self.batch_size and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            batch: list[_Row] = []
            while buffer and len(batch) < self.batch_size:
                batch.append(buffer.popleft())
            self._in_flight = len(batch)
        return batch

    def _store(self, batch: list[_Row]) -> None:
        pending = batch
        delay = min(0.25, self.retry_interval_s)
        while True:
            try:
                skipped = self._insert(pending)
                break
            except _Unavailable as unavailable:
                pending = unavailable.remaining
                self._close_db_connection(invalidate=True)
                self._db_state = "unavailable"
                self._note_unavailable(unavailable.err, len(pending))
                if self._stopping:
                    remaining = (self._stop_deadline or 0) - time.monotonic()
                    if remaining <= 0:  # give up: the rows stay queued (durable: unacknowledged)
                        self._buffer.extendleft(reversed(pending))
                        raise _GiveUp from None
                    time.sleep(min(delay, remaining))
                else:
                    self._wake.wait(delay)
                    self._wake.clear()
                delay = min(delay * 2, self.retry_interval_s)
        self._db_state = "available"
        if self._unavailable_since is not None:
            logger.warning("%s: the database is available again after %.1f s; storing the %d alerts "
                           "kept meanwhile", self.name, time.monotonic() - self._unavailable_since,
                           len(batch) + len(self._buffer))
            self._unavailable_since = None
        self.counters["stored"] += len(batch) - skipped
        self.counters["skipped"] += skipped
        self.counters["batches"] += 1
        self._finish_rows(batch)

    def _finish_rows(self, rows: list[_Row]) -> None:
        deliveries = [d for row in rows if row.deliveries for d in row.deliveries]
        if deliveries:
            self._finish_deliveries(deliveries)

    def _note_unavailable(self, err: BaseException, n_pending: int) -> None:
        now = time.monotonic()
        if self._unavailable_since is None:
            self._unavailable_since = now
        elif now - self._last_warning < _WARN_EVERY_S:
            return
        self._last_warning = now
        where = (f"; further alerts wait in the durable queue {self.durable_queue_name!r}"
                 if self.durable_queue else f" (at most {self.buffer_size} are kept)")
        logger.warning("%s: the database is unavailable (%s); %d alerts waiting, retrying every "
                       "%.1f s at most%s", self.name, _short(err), n_pending + len(self._buffer),
                       self.retry_interval_s, where)

    def _connection(self) -> Any:
        if self._db_conn is None:
            conn = self.require_engine().connect()
            if self.setup_sql and not self._setup_done:
                with conn.begin():
                    for statement in (s.strip() for s in self.setup_sql.split(";")):
                        if statement:
                            conn.exec_driver_sql(statement)
                self._setup_done = True
            self._db_conn = conn
        return self._db_conn

    def _close_db_connection(self, invalidate: bool = False) -> None:
        with self._conn_lock:
            conn, self._db_conn = self._db_conn, None
        if conn is None:
            return
        try:
            if invalidate:
                conn.invalidate()
            conn.close()
        except Exception:  # the connection is already broken; nothing to clean up
            pass

    def _abort_db_connection(self) -> bool:
        """Shut down the socket of the writer's connection, from another thread.

        Closing the connection itself is not safe while the writer is inside a driver call (it
        would wait for the driver's lock, or free what the writer uses); shutting the socket
        down makes the blocked call fail, and the writer then drops the connection itself. The
        lock keeps the writer from closing the connection (and the descriptor from being reused)
        while its socket is being shut down. True when a socket was shut down.
        """
        if not self._conn_lock.acquire(timeout=_ABORT_GRACE_S):
            return False
        try:
            conn = self._db_conn
            if conn is None or conn.closed or conn.invalidated:
                return False
            try:
                fileno = conn.connection.dbapi_connection.fileno()
            except Exception:  # not a socket-based driver (SQLite), or already gone
                return False
            try:
                with socket.socket(fileno=os.dup(fileno)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError as err:
                logger.debug("%s: could not shut down the database socket: %s", self.name, err)
                return False
            return True
        finally:
            self._conn_lock.release()

    def _insert(self, rows: list[_Row]) -> int:
        """Insert `rows`, one transaction per attempt; returns how many were skipped as bad.

        A failing batch is split in halves until the bad rows are isolated, so one bad alert costs
        a few extra transactions, not the batch. Raises _Unavailable with the rows not yet
        committed when the database cannot be reached.
        """
        skipped = 0
        work = [rows]
        # only when asked: SQLTable subclasses (and tests) may override insert_rows(conn, rows)
        dedupe = {"ignore_conflicts": True} if self.deduplicate else {}
        while work:
            part = work.pop()
            try:
                conn = self._connection()
                if self.deduplicate and not self._dedupe_checked:
                    for table, _ in _groups(part):
                        table.ensure_table()  # its own connection: conn has no transaction yet
                        try:
                            self._check_dedupe_table(table)
                        except ConfigError as err:  # keep the rows (and, durable, the alerts)
                            remaining = [row for chunk in work for row in chunk] + part
                            raise _Unavailable(err, remaining) from None
                with conn.begin():
                    for table, group in _groups(part):
                        table.insert_rows(conn, group, **dedupe)
            except (sa_exc.SQLAlchemyError, ConfigError) as err:
                if isinstance(err, sa_exc.NoSuchTableError) or database_unavailable(err):
                    remaining = [row for chunk in work for row in chunk] + part
                    raise _Unavailable(err, remaining) from None
                if self._db_conn is not None and self._db_conn.invalidated:
                    self._close_db_connection()
                if len(part) == 1:
                    skipped += 1
                    logger.error("%s: alert %r not stored (%s); skipped", self.name,
                                 part[0].routing_key, _short(err))
                    continue
                middle = len(part) // 2
                work.append(part[middle:])
                work.append(part[:middle])
        return skipped

    # ------------------------------------------------------------------ lifecycle and status
    async def listen(self) -> None:
        # alerts that arrive between start() and now are simply queued
        self.start_writer()
        await super().listen()

    async def stop_async(self) -> None:
        await asyncio.to_thread(self.stop_writer)
        await super().stop_async()

    def on_get(self) -> dict[str, Any]:
        """The logger's counters: alerts received, stored, skipped, dropped, and waiting."""
        status: dict[str, Any] = dict(self.counters)
        status["waiting"] = len(self._buffer) + self._in_flight
        status["database"] = self._db_state
        return status


def _groups(rows: list[_Row]) -> list[tuple[SQLTable, list[dict]]]:
    """Rows grouped by table and set of columns (one executemany per group), in first-seen order."""
    groups: dict[tuple, tuple[SQLTable, list[dict]]] = {}
    for row in rows:
        key = (id(row.table), tuple(row.values))
        group = groups.get(key)
        if group is None:
            groups[key] = group = (row.table, [])
        group[1].append(row.values)
    return list(groups.values())


def _positive_int(value: Any, option: str, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConfigError(f"service {name!r}: {option} must be a positive integer, not {value!r}")
    return number


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
