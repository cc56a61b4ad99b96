#!/usr/bin/env python3
"""Alert-ingest benchmark: sensor alerts stored in PostgreSQL by PostgresSensorLogger, in one run
beside the broker's raw one-way rate and a one-row-per-transaction baseline.

Every phase uses the same publishers: --publishers separate processes that send dripline alerts
``sensor_value.<unique sensor>`` with dripline's own client code (MsgAlert + Core), payload
``{"value_raw": <sequence number>, "value_cal": <publish time>}``. Phases, each on a fresh table
(database ``test``) and fresh names:

1. **raw**: a bare pika consumer (uvloop, auto-ack, no storage; AMQP frames decoded with the
   same code as dripline's, the body not even parsed) in another process: the one-way rate
   broker + publishers + consumer reach on this machine.
2. **batched**: ``dl-serve`` running a PostgresSensorLogger with its default batching, publishers
   flat out: stored alerts/s = N / (last row stored - first alert published).
3. **durable**: the same with ``durable_queue: true`` (acknowledgement after commit).
4. **one row per transaction**: the same logger with ``batch_size: 1`` (what the reference does:
   one INSERT and COMMIT per alert), flat out; the baseline.
5. **paced**: the batched logger under a steady stream at --paced-fraction x the raw rate for
   --paced-seconds: the end-to-end lag (publish -> row inserted) at a sustained rate.

For every storing phase it checks that nothing was lost (distinct sequence numbers == N) and
reports lag p50/p99 (``stored_at`` = clock_timestamp() at insert, minus the publish time; the
commit follows within the same batch). CPU use per process group during each phase is shown to
explain where the time goes. Targets (the issue's): batched stored/s >= 0.6 x raw and >= 5 x the
one-row-per-transaction baseline, with nothing lost. Output: a table, PASS/MISS lines and one
``BENCH_JSON {...}`` line.

Safety: every child (publishers, consumer, dl-serve) is killed in a ``finally`` and also dies with
this process (parent-death signal + watchdog); every loop is bounded in count and time. Only
loopback hosts are accepted. Tables are dropped afterwards.

    python bench/alert_ingest.py                # N = 20000 alerts per flat-out phase
    python bench/alert_ingest.py --repeat 3
    python bench/alert_ingest.py --quick        # small counts: a smoke test, figures are noise
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from _children import die_with_parent, spawn, start_watchdog  # beside this script

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TARGET_RAW_RATIO = 0.6
TARGET_BASELINE_RATIO = 5.0
CHILD_MAX_S = 600
START_TIMEOUT_S = 30
IDLE_TIMEOUT_S = 20  # a phase ends when no new row arrived for this long (something is wrong)


# ---------------------------------------------------------------------------------------------
# child safety
def stop(procs: list[subprocess.Popen], sig: int = signal.SIGTERM) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


# ---------------------------------------------------------------------------------------------
# child roles
def publisher_main(args: argparse.Namespace) -> None:
    die_with_parent()
    start_watchdog(CHILD_MAX_S)
    from dripline.transport.bridge import new_event_loop
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    first, last, cpu = loop.run_until_complete(_publish(args))
    print(f"DONE {first!r} {last!r} {cpu!r}", flush=True)


async def _publish(args: argparse.Namespace) -> tuple[float, float, float]:
    from dripline.client.session import Core
    from dripline.protocol.message import MsgAlert
    core = Core({"broker": args.broker, "broker_port": args.port}, service_name="bench_publisher")
    await core.start()
    transport = core.connection._conn._transport  # pika's: to keep our write buffer bounded
    print("READY", flush=True)
    while time.time() < args.go_at:
        await asyncio.sleep(min(0.01, max(0.0, args.go_at - time.time())))
    cpu0 = time.process_time()
    send, create, now = core.send, MsgAlert.create, time.time
    seq, end = args.start_seq, args.start_seq + args.n
    period = 1.0 / args.rate if args.rate > 0 else 0.0
    first = now()
    t0 = time.monotonic()
    sent = 0
    while seq < end:
        if period:  # paced: catch up to the schedule every 5 ms
            due = min(end - seq, int((time.monotonic() - t0) / period) + 1 - sent)
            if due <= 0:
                await asyncio.sleep(0.005)
                continue
            burst = due
        else:
            burst = min(100, end - seq)
        for _ in range(burst):
            send(create(payload={"value_raw": seq, "value_cal": now()}, routing_key=args.routing_key))
            seq += 1
        sent += burst
        await asyncio.sleep(0)
        while transport.get_write_buffer_size() > 2_000_000:
            await asyncio.sleep(0.001)
    last = now()
    for _ in range(2000):  # let the socket drain (bounded)
        if transport.get_write_buffer_size() == 0:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    cpu = time.process_time() - cpu0
    await core.close()
    return first, last, cpu


def consumer_main(args: argparse.Namespace) -> None:
    die_with_parent()
    start_watchdog(CHILD_MAX_S)
    from dripline.transport.bridge import new_event_loop
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    count, first, last = loop.run_until_complete(_consume(args))
    print(f"DONE {count} {first!r} {last!r} {time.process_time()!r}", flush=True)


async def _consume(args: argparse.Namespace) -> tuple[int, float, float]:
    import pika
    from pika.adapters.asyncio_connection import AsyncioConnection

    import dripline.transport.connection  # noqa: F401 - the same (faster) AMQP header decoding as the logger
    loop = asyncio.get_running_loop()
    opened = loop.create_future()
    AsyncioConnection(pika.ConnectionParameters(args.broker, args.port),
                      on_open_callback=lambda c: opened.set_result(c),
                      on_open_error_callback=lambda c, e: opened.set_exception(RuntimeError(str(e))),
                      custom_ioloop=loop)
    conn = await opened

    def step(fn, **kw):
        fut = loop.create_future()
        fn(callback=lambda frame: fut.done() or fut.set_result(frame), **kw)
        return fut

    ch_fut = loop.create_future()
    conn.channel(on_open_callback=lambda ch: ch_fut.set_result(ch))
    ch = await ch_fut
    await step(ch.exchange_declare, exchange="alerts", exchange_type="topic", durable=False)
    frame = await step(ch.queue_declare, queue="", exclusive=True, auto_delete=True)
    queue = frame.method.queue
    await step(ch.queue_bind, queue=queue, exchange="alerts", routing_key=args.routing_key)
    state = {"count": 0, "first": 0.0, "last": 0.0}
    done = loop.create_future()

    def on_message(_ch, _method, _props, _body):
        t = time.time()
        if not state["count"]:
            state["first"] = t
        state["count"] += 1
        state["last"] = t
        if state["count"] >= args.n and not done.done():
            done.set_result(None)

    await step(ch.basic_consume, queue=queue, on_message_callback=on_message, auto_ack=True)
    print(f"READY {time.process_time()!r}", flush=True)
    while not done.done():
        seen = state["count"]
        try:
            await asyncio.wait_for(asyncio.shield(done), IDLE_TIMEOUT_S)
        except asyncio.TimeoutError:
            if state["count"] == seen and seen:
                break
    conn.close()
    return state["count"], state["first"], state["last"]


# ---------------------------------------------------------------------------------------------
# measurements
class Cpu:
    """CPU seconds of process groups (broker, postgres, logger, publishers) over a phase."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.start_t = time.monotonic()
        self.start = {name: self._sum(find()) for name, find in groups.items()}
        self.elapsed = 0.0

    def _sum(self, pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / self.TICK
            except (OSError, IndexError, ValueError):
                pass
        return total

    def cores(self) -> dict[str, float]:
        """Cores used by each group since the start (ends the window: see `elapsed`)."""
        wall = self.elapsed = time.monotonic() - self.start_t
        result = {}
        for name, find in self.groups.items():
            result[name] = round((self._sum(find()) - self.start[name]) / wall, 2) if wall else 0.0
        return result


def pids_named(comm: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == comm:
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def machine_busy() -> float:
    """Busy cores over 0.5 s (to warn when something else loads the machine)."""
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = read()
    time.sleep(0.5)
    t1, i1 = read()
    return round((os.cpu_count() or 1) * (1 - (i1 - i0) / max(1, t1 - t0)), 2)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        import sqlalchemy as sa
        self.args = args
        self.engine = sa.create_engine(args.pg_url)
        self.tmp = Path(tempfile.mkdtemp(prefix="dl_alert_bench_"))
        self.tables: list[str] = []
        self.go_at = 0.0

    def wait_go(self) -> None:
        """Sleep until the publishers start (CPU windows begin there)."""
        time.sleep(max(0.0, self.go_at - time.time()))

    # ---- helpers
    def uid(self, prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:8]}"

    def new_table(self) -> str:
        name = self.uid("bench_numeric")
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f'''CREATE TABLE {name} (
                sensor_name text NOT NULL,
                "timestamp" timestamp with time zone NOT NULL,
                value_raw double precision NOT NULL,
                value_cal double precision,
                stored_at timestamp with time zone NOT NULL DEFAULT clock_timestamp())''')
        self.tables.append(name)
        return name

    def drop_tables(self) -> None:
        with self.engine.begin() as conn:
            for name in self.tables:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        self.tables.clear()

    def _child(self, role: str, *extra: str) -> subprocess.Popen:
        a = self.args
        return spawn([sys.executable, os.path.abspath(__file__), "--role", role, "-b", a.broker,
                      "-p", str(a.port), *extra], stdout=subprocess.PIPE, text=True)

    @staticmethod
    def _expect(proc: subprocess.Popen, word: str, timeout: float) -> str:
        import selectors
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    break
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"child {proc.args[3]} exited before saying {word} "
                                       f"(exit status {proc.wait(10)})")
                if line.startswith(word):
                    return line
        raise RuntimeError(f"child {proc.args[3]} did not say {word} within {timeout:.0f} s")

    def publishers(self, routing_key: str, n: int, rate: float = 0.0) -> list[subprocess.Popen]:
        p = self.args.publishers
        share = [n // p + (1 if i < n % p else 0) for i in range(p)]
        procs, start = [], 0
        go_at = self.go_at = time.time() + 1.5
        for count in share:
            procs.append(self._child("publisher", "--routing-key", routing_key, "--n", str(count),
                                     "--start-seq", str(start), "--rate", str(rate / p),
                                     "--go-at", repr(go_at)))
            start += count
        for proc in procs:
            self._expect(proc, "READY", START_TIMEOUT_S)
        return procs

    def publisher_times(self, procs: list[subprocess.Popen]) -> tuple[float, float, float]:
        """(first publish, last publish, CPU seconds of all publishers while publishing)."""
        firsts, lasts, cpu = [], [], 0.0
        for proc in procs:
            line = self._expect(proc, "DONE", CHILD_MAX_S)
            _, first, last, seconds = line.split()
            firsts.append(float(first))
            lasts.append(float(last))
            cpu += float(seconds)
            proc.wait(30)
        return min(firsts), max(lasts), cpu

    def logger(self, table: str, sensor: str, **options: Any) -> tuple[subprocess.Popen, str]:
        import yaml
        name = self.uid("bench_logger")
        conf = {"name": name, "module": "PostgresSensorLogger", "heartbeat_interval_s": 0,
                "insertion_table_endpoint_name": "values_table", "database_url": self.args.pg_url,
                "alert_keys": [f"sensor_value.{sensor}"],
                "alert_key_parser_re": r"sensor_value\.(?P<sensor_name>\w+)",
                "dripline_mesh": {"broker": self.args.broker, "broker_port": self.args.port},
                "endpoints": [{"name": "values_table", "module": "SQLTable", "table_name": table,
                               "required_insert_names": ["sensor_name", "timestamp", "value_raw"],
                               "optional_insert_names": ["value_cal"]}]}
        conf.update(options)
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(conf))
        log = open(self.tmp / f"{name}.log", "ab")
        proc = spawn([sys.executable, "-m", "dripline.cli.serve", "-c", str(path), "-q"],
                     stdout=log, stderr=subprocess.STDOUT)
        from dripline.protocol.errors import DriplineError
        from dripline.client.interface import Interface
        deadline = time.monotonic() + START_TIMEOUT_S
        with Interface(dripline_mesh={"broker": self.args.broker, "broker_port": self.args.port}) as dl:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the logger exited: {(self.tmp / f'{name}.log').read_text()[-2000:]}")
                try:
                    dl.cmd(name, "ping", timeout_s=2)
                    break
                except DriplineError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        return proc, name

    def wait_rows(self, table: str, n: int) -> None:
        last, last_change = -1, time.monotonic()
        deadline = time.monotonic() + CHILD_MAX_S
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                count = conn.exec_driver_sql(f"SELECT count(DISTINCT value_raw) FROM {table}").scalar()
            if count >= n:
                return
            if count != last:
                last, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > IDLE_TIMEOUT_S:
                return
            time.sleep(0.1)

    def table_stats(self, table: str) -> dict[str, float]:
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql(f"""
                SELECT count(*), count(DISTINCT value_raw),
                       extract(epoch FROM max(stored_at)),
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at) - value_cal),
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at) - value_cal),
                       max(extract(epoch FROM stored_at) - value_cal)
                FROM {table}""").one()
        return {"rows": row[0], "distinct": row[1], "last_stored": float(row[2] or 0),
                "lag_p50_ms": 1000 * float(row[3] or 0), "lag_p99_ms": 1000 * float(row[4] or 0),
                "lag_max_ms": 1000 * float(row[5] or 0)}

    # ---- phases
    def raw(self, n: int) -> dict[str, Any]:
        sensor = self.uid("bench_raw")
        rk = f"sensor_value.{sensor}"
        consumer = self._child("consumer", "--routing-key", rk, "--n", str(n))
        procs = [consumer]
        try:
            ready_cpu = float(self._expect(consumer, "READY", START_TIMEOUT_S).split()[1])
            pubs = self.publishers(rk, n)
            procs += pubs
            self.wait_go()
            cpu = Cpu({"broker": lambda: pids_named("beam.smp")})
            first_pub, _, pub_cpu = self.publisher_times(pubs)
            _, count, _first, last, done_cpu = self._expect(consumer, "DONE", CHILD_MAX_S).split()
            cores = cpu.cores()
            cores["consumer"] = round((float(done_cpu) - ready_cpu) / cpu.elapsed, 2)
            cores["publishers"] = round(pub_cpu / cpu.elapsed, 2)
        finally:
            stop(procs)
        count, last = int(count), float(last)
        return {"received": count, "lost": n - count, "rate": count / max(1e-9, last - first_pub),
                "cpu": cores}

    def storing(self, n: int, rate: float = 0.0, **logger_options: Any) -> dict[str, Any]:
        sensor = self.uid("bench")
        table = self.new_table()
        logger, name = self.logger(table, sensor, **logger_options)
        procs = [logger]
        try:
            pubs = self.publishers(f"sensor_value.{sensor}", n, rate)
            procs += pubs
            self.wait_go()
            cpu = Cpu({"broker": lambda: pids_named("beam.smp"), "postgres": lambda: pids_named("postgres"),
                       "logger": lambda: [logger.pid]})
            first_pub, last_pub, pub_cpu = self.publisher_times(pubs)
            self.wait_rows(table, n)
            cores = cpu.cores()
            cores["publishers"] = round(pub_cpu / cpu.elapsed, 2)
            stats = self.table_stats(table)
        finally:
            stop(procs, signal.SIGINT)
            if logger_options.get("durable_queue"):
                _delete_queue(self.args, f"{name}.alerts")
        stats.update(n=n, lost=n - stats["distinct"], cpu=cores,
                     rate=stats["distinct"] / max(1e-9, stats["last_stored"] - first_pub),
                     offered_rate=n / max(1e-9, last_pub - first_pub))
        return stats


def _delete_queue(args: argparse.Namespace, name: str) -> None:
    import pika
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters(args.broker, args.port))
        conn.channel().queue_delete(name)
        conn.close()
    except Exception as err:  # best effort: report, never hide the benchmark's result
        print(f"note: could not delete queue {name}: {err}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
def _attempts(phase: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a phase; repeat it once if a child failed (e.g. a broker connection lost meanwhile)."""
    for attempt in (1, 2):
        try:
            return phase(*args, **kwargs)
        except RuntimeError as err:
            if attempt == 2:
                raise
            print(f"   note: {err}; repeating this phase", flush=True)
    raise AssertionError("unreachable")


def _fmt(values: list[float], digits: int = 0) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def run(args: argparse.Namespace) -> int:
    if args.broker not in LOOPBACK:
        raise SystemExit("this benchmark only runs against a broker on loopback")
    import sqlalchemy as sa
    if sa.make_url(args.pg_url).host not in LOOPBACK:
        raise SystemExit("this benchmark only runs against PostgreSQL on loopback")
    bench = Bench(args)
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in ("raw", "batched", "durable", "baseline", "paced")}
    print(f"alert ingest benchmark: {platform.node()} {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, N={args.n} per flat-out phase (baseline {args.baseline_n}), "
          f"{args.publishers} publisher processes, repeat {args.repeat}", flush=True)
    busy = machine_busy()
    if busy > 0.3:
        print(f"note: the machine is already {busy} cores busy before the run; figures will be lower")
    try:
        for rep in range(args.repeat):
            print(f"-- repetition {rep + 1}/{args.repeat}", flush=True)
            r = _attempts(bench.raw, args.n)
            results["raw"].append(r)
            print(f"   raw one-way       {r['rate']:8.0f} msgs/s  (received {r['received']}/{args.n}) "
                  f"cpu {r['cpu']}", flush=True)
            for key, label, n, options in (
                    ("batched", "logger (batched)", args.n, {}),
                    ("durable", "logger (durable)", args.n, {"durable_queue": True}),
                    ("baseline", "1 row/transaction", args.baseline_n, {"batch_size": 1, "flush_interval_s": 0})):
                s = _attempts(bench.storing, n, **options)
                results[key].append(s)
                print(f"   {label:17s} {s['rate']:8.0f} alerts/s stored, lost {s['lost']}, lag p50 "
                      f"{s['lag_p50_ms']:.0f} ms p99 {s['lag_p99_ms']:.0f} ms, cpu {s['cpu']}", flush=True)
            paced_rate = args.paced_fraction * r["rate"]
            if args.paced_seconds > 0 and paced_rate > 0:
                n = max(100, int(paced_rate * args.paced_seconds))
                s = _attempts(bench.storing, n, rate=paced_rate)
                s["target_rate"] = paced_rate
                results["paced"].append(s)
                print(f"   paced at {paced_rate:5.0f}/s  {s['rate']:8.0f} alerts/s stored, lost {s['lost']}, "
                      f"lag p50 {s['lag_p50_ms']:.0f} ms p99 {s['lag_p99_ms']:.0f} ms, cpu {s['cpu']}",
                      flush=True)
            bench.drop_tables()
    finally:
        bench.drop_tables()
        bench.engine.dispose()

    def col(key: str, field: str) -> list[float]:
        return [r[field] for r in results[key]]

    raw = col("raw", "rate")
    batched, baseline = col("batched", "rate"), col("baseline", "rate")
    ratio_raw = [b / r for b, r in zip(batched, raw) if r]
    ratio_base = [b / s for b, s in zip(batched, baseline) if s]
    lost = sum(r["lost"] for k in ("batched", "durable", "baseline", "paced") for r in results[k])
    print()
    print(f"{'phase':26s} {'alerts/s':>22s} {'lag p50 ms':>18s} {'lag p99 ms':>18s} {'lost':>6s}")
    print(f"{'raw one-way (no storage)':26s} {_fmt(raw):>22s} {'-':>18s} {'-':>18s} "
          f"{sum(r['lost'] for r in results['raw']):>6d}")
    for key, label in (("batched", "logger, batched"), ("durable", "logger, durable_queue"),
                       ("baseline", "logger, 1 row/transaction"), ("paced", "logger, paced")):
        if results[key]:
            print(f"{label:26s} {_fmt(col(key, 'rate')):>22s} {_fmt(col(key, 'lag_p50_ms')):>18s} "
                  f"{_fmt(col(key, 'lag_p99_ms')):>18s} {sum(r['lost'] for r in results[key]):>6d}")
    print()
    checks = {
        "stored_vs_raw": bool(ratio_raw) and statistics.median(ratio_raw) >= TARGET_RAW_RATIO,
        "stored_vs_baseline": bool(ratio_base) and statistics.median(ratio_base) >= TARGET_BASELINE_RATIO,
        "nothing_lost": lost == 0,
    }
    print(f"{'PASS' if checks['stored_vs_raw'] else 'MISS'}  batched stored/s = {_fmt(ratio_raw, 2)} x raw "
          f"one-way (target >= {TARGET_RAW_RATIO})")
    print(f"{'PASS' if checks['stored_vs_baseline'] else 'MISS'}  batched stored/s = {_fmt(ratio_base, 1)} x "
          f"one row per transaction (target >= {TARGET_BASELINE_RATIO})")
    print(f"{'PASS' if checks['nothing_lost'] else 'MISS'}  alerts lost in storing phases: {lost}")
    summary = {"n": args.n, "baseline_n": args.baseline_n, "publishers": args.publishers,
               "repeat": args.repeat, "results": results, "ratio_vs_raw": ratio_raw,
               "ratio_vs_baseline": ratio_base, "pass": checks}
    print("BENCH_JSON " + json.dumps(summary))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["main", "publisher", "consumer"], default="main",
                        help=argparse.SUPPRESS)
    parser.add_argument("-b", "--broker", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5672)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--n", type=int, default=20000, help="alerts per flat-out phase")
    parser.add_argument("--baseline-n", type=int, default=5000, help="alerts for the 1 row/transaction phase")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--paced-fraction", type=float, default=0.6,
                        help="rate of the paced phase, as a fraction of the raw rate")
    parser.add_argument("--paced-seconds", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    # child options
    parser.add_argument("--routing-key", help=argparse.SUPPRESS)
    parser.add_argument("--start-seq", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--go-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publisher":
        publisher_main(args)
        return
    if args.role == "consumer":
        consumer_main(args)
        return
    if args.quick:
        args.n, args.baseline_n, args.paced_seconds = 2000, 500, 2
    sys.exit(run(args))


if __name__ == "__main__":
    main()
