#!/usr/bin/env python3
"""A mesh on a private 3-node RabbitMQ cluster while its nodes die: what is lost, what waits.

Starts a cluster of three private nodes on loopback (own names, ports, data, cookie; never the
shared broker), then three processes, each with all three nodes in its ``broker`` list and each
connected first to a different node:

* **service**: a dripline Service with one endpoint that counts the requests it handles;
* **client**: an AsyncInterface sending ``get`` requests at --rate per second (timeout 2 s) and
  sensor alerts at --alert-rate per second, each alert published with publisher confirms and sent
  again, with the same message id, until the broker confirmed it (at-least-once sending);
* **logger**: a PostgresSensorLogger on a quorum queue (``queue_type: quorum``) with
  ``deduplicate: true`` (unique ``message_id``), storing into a fresh table of database ``test``.

Phases, each with fresh processes and a fresh table:

1. **baseline**: nothing fails for --baseline-s seconds (the figures without faults, same run);
2. **kill -9**: for the service, the client and the logger in turn, ``kill -9`` of the node that
   process is connected to *at that moment*, --down-s seconds without it, then the node started
   again and --settle-s seconds to settle;
3. **rolling restart**: each node in turn stopped gracefully and started again.

For every phase it prints: requests sent, answered, failed (by kind), the longest gap per process
(client: between two answered requests; service: between two handled requests; logger: between
two alerts received; and how long each was disconnected at most), and alerts sent (confirmed),
stored, lost (target 0), duplicated rows (target 0) and redelivered (delivered to the logger
again, absorbed by deduplicate). One ``BENCH_JSON {...}`` line at the end.

Safety: loopback only; every child is terminated in a ``finally`` and exits by itself when this
process dies (it polls its parent) or after --max-s; the cluster is always taken down; tables are
dropped. Every loop is bounded in count and time.

    python bench/cluster.py                  # about 8 minutes on the 2-core machine
    python bench/cluster.py --quick          # small rates, one kill, a smoke test (figures noise)
    python bench/cluster.py --no-dedupe      # show what redeliveries become without deduplicate
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REQUEST_TIMEOUT_S = 2.0
STATUS_EVERY_S = 0.1
POLL_S = 0.02


# ================================================================================ child processes

class _Watch:
    """Longest time the connection was down, polled every POLL_S."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.longest_down = 0.0

    def poll(self, connected: bool) -> None:
        now = time.monotonic()
        if connected:
            if self.down_since is not None:
                self.longest_down = max(self.longest_down, now - self.down_since)
                self.down_since = None
        elif self.down_since is None:
            self.down_since = now

    def result(self) -> float:
        if self.down_since is not None:
            return max(self.longest_down, time.monotonic() - self.down_since)
        return self.longest_down


class _Gaps:
    """Longest interval between two events (from the first event on)."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.longest = 0.0
        self.count = 0

    def event(self) -> None:
        now = time.monotonic()
        if self.last is not None:
            self.longest = max(self.longest, now - self.last)
        self.last = now
        self.count += 1


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


async def _supervise(args: argparse.Namespace, stop: asyncio.Event, connection: Any,
                     watch: _Watch, status: dict) -> None:
    """Poll the connection, write the status file, end on a signal, parent death or --max-s."""
    parent = os.getppid()
    started = time.monotonic()
    last_status = 0.0
    while not stop.is_set():
        conn = connection()
        connected = bool(conn is not None and conn.is_open)
        watch.poll(connected)
        now = time.monotonic()
        if now - last_status >= STATUS_EVERY_S:
            last_status = now
            status.update(connected=connected,
                          port=conn.address.port if conn is not None else None)
            _write_json(args.status, status)
        if os.getppid() != parent or now - started > args.max_s:
            stop.set()
        await asyncio.sleep(POLL_S)


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _serve_until_stopped(args: argparse.Namespace, service: Any, role: str) -> _Watch:
    """Start `service`, watch its connection (status file, outages) and serve until a stop
    signal, parent death or --max-s; then stop it. Returns the outage watch."""
    stop = asyncio.Event()
    _install_stop(stop)
    watch, status = _Watch(), {"role": role}
    await service.start()
    supervisor = asyncio.ensure_future(_supervise(args, stop, lambda: service.core.connection,
                                                  watch, status))
    listening = asyncio.ensure_future(service.listen())
    await stop.wait()
    service.cancel()
    await listening
    await service.stop_async()
    await supervisor
    return watch


async def run_service(args: argparse.Namespace) -> dict:
    from dripline.core import Endpoint, Service

    gaps = _Gaps()

    class Counted(Endpoint):
        def on_get(self) -> int:
            gaps.event()
            return gaps.count

    service = Service(args.name, dripline_mesh=json.loads(args.mesh), heartbeat_interval_s=0)
    service.add_child(Counted(name=args.endpoint))
    watch = await _serve_until_stopped(args, service, "service")
    return {"handled": gaps.count, "longest_gap_s": gaps.longest, "longest_down_s": watch.result(),
            "reconnects": service.core.connection.reconnects if service.core.connection else 0}


async def run_logger(args: argparse.Namespace) -> dict:
    import dripline.assembly.objects  # noqa: F401 - builds endpoints given as mappings, as dl-serve
    from dripline.implementations.postgres_sensor_logger import PostgresSensorLogger

    gaps = _Gaps()
    endpoint = f"{args.name}_table"

    class Logger(PostgresSensorLogger):
        def _deliver_alert(self, msg: Any, deliveries: Any) -> None:
            gaps.event()
            super()._deliver_alert(msg, deliveries)

    queue = args.queue
    logger = Logger(name=args.name, dripline_mesh=json.loads(args.mesh), heartbeat_interval_s=0,
                    insertion_table_endpoint_name=endpoint, database_url=PG_URL,
                    durable_queue=queue, queue_type="quorum", deduplicate=args.dedupe,
                    alert_keys=[f"{args.alert_prefix}.#"],
                    alert_key_parser_re=rf"{args.alert_prefix}\.(?P<sensor_name>[^.]+)",
                    flush_interval_s=0.05,
                    endpoints=[{"name": endpoint, "module": "SQLTable", "table_name": args.table,
                                "required_insert_names": ["sensor_name", "timestamp",
                                                          "value_raw"]}])
    watch = await _serve_until_stopped(args, logger, "logger")
    return {"received": logger.counters["received"], "stored": logger.counters["stored"],
            "longest_gap_s": gaps.longest, "longest_down_s": watch.result(),
            "reconnects": logger.core.connection.reconnects if logger.core.connection else 0}


async def run_client(args: argparse.Namespace) -> dict:
    from dripline.core import AsyncInterface
    from dripline.protocol.errors import DriplineError
    from dripline.protocol.message import MsgAlert
    try:  # the sender's identity and clock live in the client since the protocol reads none
        from dripline.client.identity import now_timestamp, sender_info_for
    except ImportError:
        from dripline.protocol.message import default_sender_info as sender_info_for
        now_timestamp = None

    dl = AsyncInterface(dripline_mesh=json.loads(args.mesh), timeout_s=REQUEST_TIMEOUT_S)
    await dl.start()
    core = dl.core
    stop = asyncio.Event()
    _install_stop(stop)
    watch, status = _Watch(), {"role": "client"}
    supervisor = asyncio.ensure_future(_supervise(args, stop, lambda: core.connection, watch, status))
    answered = _Gaps()
    failed: dict[str, int] = {}
    examples: dict[str, str] = {}  # the first error message of each kind
    sent = 0
    in_flight: set[asyncio.Task] = set()

    async def one_request() -> None:
        try:
            await dl.get(args.endpoint)
        except DriplineError as err:
            kind = {101: "connection", 403: "not routed", 404: "timeout"}.get(err.return_code,
                                                                              str(err.return_code))
            failed[kind] = failed.get(kind, 0) + 1
            examples.setdefault(kind, err.message[:300])
        else:
            answered.event()

    first_at: list[float] = []

    async def requests() -> None:
        nonlocal sent
        period = 1.0 / args.rate
        next_at = time.monotonic()
        first_at.append(next_at)
        while not stop.is_set():
            if len(in_flight) < 4 * args.rate:  # bounded: at most 4 s worth in flight
                task = asyncio.ensure_future(one_request())
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent += 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    confirmed: list[str] = []
    attempts = 0

    async def alerts() -> None:
        nonlocal attempts
        sender = sender_info_for("bench-client")
        period = 1.0 / args.alert_rate
        i = 0
        next_at = time.monotonic()
        while not stop.is_set():
            msg = MsgAlert.create(payload={"value_raw": float(i)},
                                  routing_key=f"{args.alert_prefix}.s{i % 10}")
            msg.sender_info = sender
            wires = msg.encode(core.max_payload_size, **(
                {"timestamp": now_timestamp()} if now_timestamp is not None else {}))
            deadline = time.monotonic() + args.max_s
            while time.monotonic() < deadline:  # until confirmed: same message, same id
                attempts += 1
                try:
                    for wire in wires:
                        await core.connection.publish_confirmed(core.alerts_exchange, wire, 5)
                    break
                except DriplineError:
                    await asyncio.sleep(0.05)
            confirmed.append(i)
            i += 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(alerts())]
    await stop.wait()
    await asyncio.gather(*tasks)
    if in_flight:
        await asyncio.wait(set(in_flight), timeout=REQUEST_TIMEOUT_S + 1)
    await supervisor
    await dl.close()
    seconds = time.monotonic() - first_at[0] if first_at else 0.0
    return {"sent": sent, "answered": answered.count, "failed": failed, "examples": examples,
            "rate": sent / seconds if seconds else 0.0,
            "longest_gap_s": answered.longest, "longest_down_s": watch.result(),
            "alerts_confirmed": confirmed, "alert_attempts": attempts,
            "reconnects": core.connection.reconnects if core.connection else 0}


def child_main(args: argparse.Namespace) -> int:
    import logging
    logging.basicConfig(level=logging.WARNING, format=f"[{args.role}] %(levelname)s %(message)s")
    from dripline.transport.bridge import new_event_loop
    loop = new_event_loop()
    runner = {"service": run_service, "client": run_client, "logger": run_logger}[args.role]
    result = loop.run_until_complete(runner(args))
    _write_json(args.result, result)
    loop.close()
    return 0


# ================================================================================ orchestration

class Child:
    def __init__(self, role: str, folder: Path, argv: list[str], max_s: float) -> None:
        self.role = role
        self.status_path = folder / f"{role}.status.json"
        self.result_path = folder / f"{role}.result.json"
        self.log = open(folder / f"{role}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--role", role, "--status",
             str(self.status_path), "--result", str(self.result_path), "--max-s", str(max_s),
             *argv], stdout=self.log, stderr=subprocess.STDOUT)

    def status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def wait_connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.role} exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            if self.status().get("connected"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.role} not connected within {timeout:g} s: {self.log_tail()}")

    def stop(self, timeout: float = 60) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        try:
            return json.loads(self.result_path.read_text())
        except (OSError, ValueError):
            raise RuntimeError(f"{self.role} left no result: {self.log_tail()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self) -> str:
        try:
            return Path(self.log.name).read_text()[-2000:]
        except OSError:
            return ""


def _rotate(addresses: list[str], first: int) -> str:
    return ",".join(addresses[first:] + addresses[:first])


def _db_rows(table: str) -> tuple[int, set[int]]:
    """(rows, distinct alert numbers): each alert carries its sequence number as value_raw."""
    import sqlalchemy as sa
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            ids = [int(r[0]) for r in conn.exec_driver_sql(f"SELECT value_raw FROM {table}")]
    finally:
        engine.dispose()
    return len(ids), set(ids)


def _sql(statement: str) -> None:
    import sqlalchemy as sa
    engine = sa.create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def run_phase(name: str, cluster: Any, args: argparse.Namespace, folder: Path,
              faults: Any) -> dict:
    """Start the three processes, run `faults(children)`, stop, and count."""
    tag = uuid.uuid4().hex[:8]
    table = f"bench_cluster_{tag}"
    _sql(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, sensor_name text, "
         f"timestamp timestamptz, value_raw double precision, message_id text"
         f"{' UNIQUE' if args.dedupe else ''})")
    addresses = cluster.addresses
    common = {"endpoint": f"bench_ep_{tag}", "alert_prefix": f"bench_alert_{tag}"}
    phase_dir = folder / name.replace(" ", "_")
    phase_dir.mkdir()
    children: dict[str, Child] = {}
    try:
        def argv(first: int, **extra: Any) -> list[str]:
            values = dict(common, mesh=json.dumps({"broker": _rotate(addresses, first)}), **extra)
            out: list[str] = []
            for key, value in values.items():
                out += [f"--{key.replace('_', '-')}", str(value)]
            return out

        children["service"] = Child("service", phase_dir, argv(0, name=f"bench_svc_{tag}"),
                                    args.max_s)
        children["logger"] = Child("logger", phase_dir,
                                   argv(2, name=f"bench_logger_{tag}", table=table,
                                        queue=f"bench_q_{tag}")
                                   + ([] if args.dedupe else ["--no-dedupe"]), args.max_s)
        for child in children.values():
            child.wait_connected(60)
        children["client"] = Child("client", phase_dir,
                                   argv(1, rate=args.rate, alert_rate=args.alert_rate), args.max_s)
        children["client"].wait_connected(60)
        time.sleep(args.settle_s)
        started = time.monotonic()
        faults(children)
        results = {"client": children["client"].stop()}
        sent = set(results["client"]["alerts_confirmed"])
        deadline = time.monotonic() + 120  # the logger drains what waits in its queue
        while time.monotonic() < deadline:
            rows, stored = _db_rows(table)
            if sent <= stored:
                break
            time.sleep(0.5)
        results["service"] = children["service"].stop()
        results["logger"] = children["logger"].stop()
        rows, stored = _db_rows(table)
    finally:
        for child in children.values():
            child.kill()
        _sql(f"DROP TABLE IF EXISTS {table}")
    client = results["client"]
    return {
        "phase": name, "seconds": round(time.monotonic() - started, 1),
        "requests": {"sent": client["sent"], "rate": round(client["rate"], 1),
                     "answered": client["answered"],
                     "failed": sum(client["failed"].values()), "failed_by_kind": client["failed"],
                     "first_error_by_kind": client["examples"]},
        "longest_gap_s": {role: round(results[role]["longest_gap_s"], 3) for role in results},
        "longest_down_s": {role: round(results[role]["longest_down_s"], 3) for role in results},
        "reconnects": {role: results[role]["reconnects"] for role in results},
        "alerts": {"sent": len(sent), "stored": len(stored & sent), "lost": len(sent - stored),
                   "duplicated": rows - len(stored),
                   "redelivered": max(0, results["logger"]["received"] - len(sent)),
                   "send_attempts": client["alert_attempts"]},
    }


def kill_each(cluster: Any, args: argparse.Namespace, roles: list[str]) -> Any:
    def faults(children: dict[str, Child]) -> None:
        for role in roles:
            port = children[role].status().get("port")
            index = next((i for i, n in enumerate(cluster) if n.port == port), None)
            if index is None:
                raise RuntimeError(f"{role} reports no node (status {children[role].status()})")
            print(f"  kill -9 of node {index} ({role}'s)", flush=True)
            cluster.kill(index)
            time.sleep(args.down_s)
            cluster.start_node(index)
            time.sleep(args.settle_s)
    return faults


def rolling_restart(cluster: Any, args: argparse.Namespace, nodes: list[int]) -> Any:
    def faults(children: dict[str, Child]) -> None:
        for index in nodes:
            print(f"  restart of node {index}", flush=True)
            cluster.stop_node(index)
            cluster.start_node(index)
            time.sleep(args.settle_s)
    return faults


def steady(args: argparse.Namespace) -> Any:
    def faults(children: dict[str, Child]) -> None:
        time.sleep(args.baseline_s)
    return faults


def print_table(phases: list[dict], args: argparse.Namespace) -> None:
    names = [p["phase"] for p in phases]
    width = max(14, *(len(n) for n in names))
    rows = [("requests sent", lambda p: p["requests"]["sent"]),
            ("  per second", lambda p: p["requests"]["rate"]),
            ("answered", lambda p: p["requests"]["answered"]),
            ("failed", lambda p: p["requests"]["failed"]),
            *[(f"  {kind}", lambda p, kind=kind: p["requests"]["failed_by_kind"].get(kind, 0))
              for kind in sorted({k for p in phases for k in p["requests"]["failed_by_kind"]})],
            ("gap client s", lambda p: p["longest_gap_s"]["client"]),
            ("gap service s", lambda p: p["longest_gap_s"]["service"]),
            ("gap logger s", lambda p: p["longest_gap_s"]["logger"]),
            ("down client s", lambda p: p["longest_down_s"]["client"]),
            ("down service s", lambda p: p["longest_down_s"]["service"]),
            ("down logger s", lambda p: p["longest_down_s"]["logger"]),
            ("reconnects s/c/l", lambda p: "/".join(str(p["reconnects"][r])
                                                    for r in ("service", "client", "logger"))),
            ("alerts sent", lambda p: p["alerts"]["sent"]),
            ("alerts stored", lambda p: p["alerts"]["stored"]),
            ("alerts lost", lambda p: p["alerts"]["lost"]),
            ("duplicated", lambda p: p["alerts"]["duplicated"]),
            ("redelivered", lambda p: p["alerts"]["redelivered"])]
    print(f"\n{args.rate:g} requests/s, {args.alert_rate:g} alerts/s, deduplicate "
          f"{'on' if args.dedupe else 'off'}; gap = longest time between two answered requests "
          "(client), handled requests (service), alerts received (logger); down = longest time "
          "disconnected")
    print(f"{'':18}" + "".join(f"{n:>{width + 2}}" for n in names))
    for label, get in rows:
        print(f"{label:18}" + "".join(f"{str(get(p)):>{width + 2}}" for p in phases))
    for p in phases:
        verdict = "PASS" if p["alerts"]["lost"] == 0 and p["alerts"]["duplicated"] == 0 else "MISS"
        print(f"{verdict} {p['phase']}: alerts lost {p['alerts']['lost']} (target 0), duplicated "
              f"{p['alerts']['duplicated']} (target 0)")


def main_orchestrate(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from dripline.testing.rabbitmq import RabbitCluster

    if args.quick:
        args.rate, args.alert_rate = min(args.rate, 20), min(args.alert_rate, 5)
        args.baseline_s, args.down_s, args.settle_s = 3, 2, 2
    print(f"starting a private 3-node RabbitMQ cluster ...", flush=True)
    t0 = time.monotonic()
    phases: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp, RabbitCluster(3) as cluster:
        print(f"cluster up in {time.monotonic() - t0:.0f} s on ports "
              f"{', '.join(str(n.port) for n in cluster)}", flush=True)
        folder = Path(tmp)
        plan = [("baseline", steady(args))]
        if args.quick:
            plan += [("kill -9", kill_each(cluster, args, ["client"])),
                     ("rolling restart", rolling_restart(cluster, args, [2]))]
        else:
            plan += [("kill -9", kill_each(cluster, args, ["service", "client", "logger"])),
                     ("rolling restart", rolling_restart(cluster, args, [0, 1, 2]))]
        for name, faults in plan:
            print(f"phase {name} ...", flush=True)
            phases.append(run_phase(name, cluster, args, folder, faults))
    print_table(phases, args)
    print("BENCH_JSON " + json.dumps({"rate": args.rate, "alert_rate": args.alert_rate,
                                      "dedupe": args.dedupe, "phases": phases}))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=200, help="requests per second (default 200)")
    p.add_argument("--alert-rate", type=float, default=20, help="alerts per second (default 20)")
    p.add_argument("--baseline-s", type=float, default=20, help="length of the baseline phase")
    p.add_argument("--down-s", type=float, default=5, help="how long a killed node stays down")
    p.add_argument("--settle-s", type=float, default=5, help="wait after each fault")
    p.add_argument("--max-s", type=float, default=900, help="a child ends by itself after this")
    p.add_argument("--no-dedupe", dest="dedupe", action="store_false",
                   help="the logger without deduplicate (redeliveries become duplicate rows)")
    p.add_argument("--quick", action="store_true", help="small rates, one kill (smoke test)")
    # the child processes' own options
    p.add_argument("--role", choices=["service", "client", "logger"], help=argparse.SUPPRESS)
    for option in ("--status", "--result", "--mesh", "--name", "--endpoint", "--alert-prefix",
                   "--table", "--queue"):
        p.add_argument(option, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rate <= 0 or args.alert_rate <= 0:
        p.error("rates must be positive")
    if args.role:
        return child_main(args)
    return main_orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
