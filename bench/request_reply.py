#!/usr/bin/env python3
"""Request/reply benchmark: dripline's clients against a raw AMQP RPC baseline, in one run.

What it measures (everything on loopback; the broker must run on the given host, default
127.0.0.1:5672):

* sequential latency (p50/p90/p99) of one request in flight, and throughput (replies/s) with
  C = 1, 8 and 64 requests in flight, for
    - **raw**: pika AsyncioConnection + uvloop on both ends, reply_to + correlation_id, mandatory
      publish, the body echoed by the server with no dripline headers (the transport ceiling);
    - **AsyncInterface.get** (C concurrent tasks on one AsyncInterface, uvloop);
    - **Interface.get** (C threads sharing one blocking Interface);
  against a trivial endpoint (a KeyValueStore) of a service started with dripline's own
  ``dl-serve`` code in another process;
* the wall time of one ``dl-agent get`` command, from process spawn to exit (median and min),
  plus the largest imports of that command (``python -X importtime``).

It prints a table of median [min-max] over --repeat repetitions, the dripline/raw ratios with
PASS/MISS against the targets of the issue (p50 latency <= 1.5x raw; throughput at 64 in flight
>= 0.5x raw; server CPU per request at 64 in flight <= 2x raw; an installed dl-agent get
<= 0.15 s), and one ``BENCH_JSON {...}`` line at the end.

Safety: the servers are child processes of this script; they are stopped in a ``finally`` and
also exit by themselves when this process dies (parent-death signal + polling) or after a bounded
time. Every loop is bounded in count and time. The raw baseline uses its own exchange
(``bench.requests``, auto-delete) so it cannot clash with a real mesh; dripline uses its normal
``requests`` exchange with unique service and endpoint names.

    python bench/request_reply.py                 # full run (about 1-2 min per repetition)
    python bench/request_reply.py --repeat 3
    python bench/request_reply.py --quick         # small counts: a smoke test, figures are noise
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from _children import die_with_parent, start_watchdog, terminate_self  # beside this script

RAW_EXCHANGE = "bench.requests"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TARGET_P50_RATIO = 1.5          # dripline p50 latency <= 1.5 x raw
TARGET_TPUT_RATIO = 0.5         # dripline replies/s at C=64 >= 0.5 x raw
TARGET_AGENT_S = 0.15           # one `dl-agent get`, spawn to exit (the target)
TARGET_SERVER_CPU_RATIO = 2.0   # server CPU per request at C=64 <= 2 x raw
CONCURRENCIES = (1, 8, 64)
MAX_ATTEMPTS = 3                # a repetition disturbed by a broker connection loss is repeated
MAX_RAW_SERVER_CONNECTS = 20
CLIENTS = ("raw", "async", "sync")
CLIENT_LABEL = {"raw": "raw pika-asyncio", "async": "AsyncInterface.get",
                "sync": "Interface.get"}


# ============================================================================== child processes
def raw_server_main(args: argparse.Namespace) -> None:
    """Raw echo RPC server: pika AsyncioConnection + uvloop; body echoed, no dripline headers."""
    import uvloop
    start_watchdog(args.max_seconds, terminate_self)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_raw_serve(args))


async def _raw_serve(args: argparse.Namespace) -> None:
    import pika
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    props_cls = pika.BasicProperties
    ready_said = False

    async def open_and_consume(lost: asyncio.Event):
        conn, ch = await _pika_open(args.host, args.port, "bench-raw-server",
                                    on_close=lambda *_: lost.set())
        await _pika_step(ch.exchange_declare, RAW_EXCHANGE, exchange_type="topic",
                         auto_delete=True)
        await _pika_step(ch.queue_declare, args.queue, exclusive=True, auto_delete=True)
        await _pika_step(ch.queue_bind, args.queue, RAW_EXCHANGE, routing_key=args.queue + ".#")
        publish = ch.basic_publish

        def on_request(_ch, _method, props, body):
            publish(RAW_EXCHANGE, props.reply_to, body,
                    props_cls(correlation_id=props.correlation_id))

        await _pika_step(ch.basic_consume, args.queue, on_request, auto_ack=True)
        return conn

    for _ in range(MAX_RAW_SERVER_CONNECTS):  # reconnects when something closes our connection
        lost = asyncio.Event()
        try:
            conn = await asyncio.wait_for(open_and_consume(lost), 20)
        except Exception as err:  # broker busy, or the connection was killed while setting up
            print(f"raw server: (re)connecting failed: {err!r}", file=sys.stderr, flush=True)
            await asyncio.sleep(0.5)
            continue
        if not ready_said:
            print("READY", flush=True)
            ready_said = True
        waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        if stop.is_set():
            if conn.is_open:
                conn.close()
                await asyncio.sleep(0.2)  # let Connection.Close go out
            return
        print("raw server: connection lost; reconnecting", file=sys.stderr, flush=True)
        await asyncio.sleep(0.2)
    print("raw server: giving up after too many reconnects", file=sys.stderr, flush=True)


def dl_server_main(args: argparse.Namespace) -> None:
    """dripline service via dl-serve's own entry point, with a bounded life."""
    start_watchdog(args.max_seconds, terminate_self)
    from dripline.cli import serve
    serve.main(["-q", "-c", args.config])


# ============================================================================== pika helpers
def _pika_step(fn: Callable, *a: Any, **kw: Any) -> asyncio.Future:
    """Run a callback-style pika call and return a future of its completion."""
    fut = asyncio.get_running_loop().create_future()
    fn(*a, callback=lambda *r: fut.done() or fut.set_result(r), **kw)
    return fut


async def _pika_open(host: str, port: int, name: str, on_close: Callable | None = None):
    import pika
    from pika.adapters.asyncio_connection import AsyncioConnection
    loop = asyncio.get_running_loop()
    opened = loop.create_future()
    conn = AsyncioConnection(
        pika.ConnectionParameters(host, port, credentials=pika.PlainCredentials(
            os.environ.get("DRIPLINE_USER", "guest"), os.environ.get("DRIPLINE_PASSWORD", "guest")),
            client_properties={"connection_name": name}),
        on_open_callback=lambda c: opened.done() or opened.set_result(c),
        on_open_error_callback=lambda c, e: opened.done() or opened.set_exception(
            RuntimeError(f"cannot connect to {host}:{port}: {e}")),
        on_close_callback=on_close, custom_ioloop=loop)
    await asyncio.wait_for(opened, 15)
    ch_fut = loop.create_future()
    conn.channel(on_open_callback=lambda c: ch_fut.set_result(c))
    ch = await asyncio.wait_for(ch_fut, 15)
    return conn, ch


class Disturbed(Exception):
    """The broker connection was disturbed (e.g. another process closed every connection)."""


class ServerDied(Exception):
    """A server child process exited."""


class RawClient:
    """pika AsyncioConnection RPC client: futures keyed by correlation id, mandatory publish."""

    def __init__(self, host: str, port: int, routing_key: str) -> None:
        self.host, self.port, self.routing_key = host, port, routing_key
        self.pending: dict[str, asyncio.Future] = {}

    async def connect(self) -> None:
        await asyncio.wait_for(self._connect(), 30)

    async def _connect(self) -> None:
        import pika
        self.props_cls = pika.BasicProperties
        self.conn, self.ch = await _pika_open(self.host, self.port, "bench-raw-client",
                                              on_close=self._on_close)
        await _pika_step(self.ch.exchange_declare, RAW_EXCHANGE, exchange_type="topic",
                         auto_delete=True)
        frame = (await _pika_step(self.ch.queue_declare, "", exclusive=True, auto_delete=True))[0]
        self.reply_to = frame.method.queue
        await _pika_step(self.ch.queue_bind, self.reply_to, RAW_EXCHANGE, routing_key=self.reply_to)
        self.ch.add_on_return_callback(self._on_return)
        await _pika_step(self.ch.basic_consume, self.reply_to, self._on_reply, auto_ack=True)

    def _on_reply(self, _ch, _method, props, body) -> None:
        fut = self.pending.pop(props.correlation_id, None)
        if fut is not None and not fut.done():
            fut.set_result(body)

    def _on_close(self, _conn, reason) -> None:
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(Disturbed(f"raw client connection lost: {reason}"))

    def _on_return(self, _ch, method, props, _body) -> None:
        fut = self.pending.pop(props.correlation_id, None)
        if fut is not None and not fut.done():
            fut.set_exception(Disturbed(f"unroutable: {method.reply_text}"))

    async def request(self, body: bytes = b"{}", timeout: float = 10.0) -> bytes:
        cid = str(uuid.uuid4())
        fut = asyncio.get_running_loop().create_future()
        self.pending[cid] = fut
        try:
            try:
                self.ch.basic_publish(RAW_EXCHANGE, self.routing_key, body,
                                      self.props_cls(correlation_id=cid, reply_to=self.reply_to),
                                      mandatory=True)
            except Exception as err:  # channel or connection closed under us
                raise Disturbed(f"raw client cannot publish: {err!r}") from None
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.pending.pop(cid, None)

    async def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()
            await asyncio.sleep(0.05)


# ============================================================================== CPU accounting
_TCK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int | None) -> float:
    """utime+stime of a process (all threads), seconds; 0 when unknown."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def _machine_busy() -> float:
    try:
        with open("/proc/stat") as fh:
            vals = [int(v) for v in fh.readline().split()[1:]]
        return (sum(vals[:8]) - vals[3] - vals[4]) / _TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def _broker_pid() -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if fh.read().strip() == "beam.smp":
                        return int(entry)
            except OSError:
                continue
    return None


class CpuWindow:
    """CPU used by server, client and broker, and by everything else, over a measured window."""

    def __init__(self, server_pid: int | None, broker_pid: int | None) -> None:
        self.pids = {"server": server_pid, "client": os.getpid(), "broker": broker_pid}

    def __enter__(self) -> "CpuWindow":
        self.t0 = time.perf_counter()
        self.m0 = _machine_busy()
        self.c0 = {k: _proc_cpu(p) for k, p in self.pids.items()}
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = {k: _proc_cpu(p) - self.c0[k] for k, p in self.pids.items()}
        total = _machine_busy() - self.m0
        self.other_cores = max(0.0, total - sum(self.cpu.values())) / max(self.wall, 1e-9)


def wait_for_quiet(max_wait: float, threshold: float) -> float:
    """Wait (at most max_wait s) until the machine is quiet: under `threshold` busy cores over a
    1 s sample (our servers are idle meanwhile). Returns the last sample."""
    deadline = time.monotonic() + max_wait
    while True:
        m0, t0 = _machine_busy(), time.perf_counter()
        time.sleep(1.0)
        busy = (_machine_busy() - m0) / (time.perf_counter() - t0)
        if busy < threshold or time.monotonic() >= deadline:
            return busy
        print(f"# waiting for a quiet machine: {busy:.2f} cores busy", file=sys.stderr, flush=True)


# ============================================================================== measurements
def _pct(sorted_vals: list[float], p: float) -> float:
    if not sorted_vals:
        return math.nan
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def _lat_stats(samples_s: list[float]) -> dict[str, float]:
    s = sorted(samples_s)
    return {"p50_ms": _pct(s, 50) * 1e3, "p90_ms": _pct(s, 90) * 1e3, "p99_ms": _pct(s, 99) * 1e3,
            "n": len(s)}


async def _async_latency(call: Callable, warmup: int, n: int, max_s: float) -> dict[str, float]:
    deadline = time.monotonic() + max_s
    for _ in range(warmup):
        await call()
        if time.monotonic() > deadline:
            break
    samples = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        await call()
        samples.append(clock() - t0)
        if time.monotonic() > deadline:
            break
    return _lat_stats(samples)


def _sync_latency(call: Callable, warmup: int, n: int, max_s: float) -> dict[str, float]:
    deadline = time.monotonic() + max_s
    for _ in range(warmup):
        call()
        if time.monotonic() > deadline:
            break
    samples = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        call()
        samples.append(clock() - t0)
        if time.monotonic() > deadline:
            break
    return _lat_stats(samples)


async def _async_throughput(call: Callable, conc: int, n: int, max_s: float,
                            cpu: CpuWindow) -> dict[str, float]:
    await asyncio.gather(*(call() for _ in range(conc)))  # one warm-up wave
    remaining = [n]
    done = [0]
    deadline = time.monotonic() + max_s

    async def worker() -> None:
        while remaining[0] > 0 and time.monotonic() < deadline:
            remaining[0] -= 1
            await call()
            done[0] += 1

    tasks = [asyncio.ensure_future(worker()) for _ in range(conc)]
    try:
        with cpu:
            await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:  # no stray requests into the next measurement
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return _tput_result(done[0], cpu)


def _sync_throughput(call: Callable, conc: int, n: int, max_s: float,
                     cpu: CpuWindow) -> dict[str, float]:
    lock = threading.Lock()
    remaining = [n]
    done = [0]
    errors: list[BaseException] = []
    deadline = time.monotonic() + max_s
    start = threading.Barrier(conc + 1)

    def worker() -> None:
        try:
            call()  # warm-up, not counted
            start.wait(30)
        except threading.BrokenBarrierError:
            return
        except BaseException as err:
            errors.append(err)
            start.abort()
            return
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            try:
                call()
            except BaseException as err:  # reported below; stop this worker
                errors.append(err)
                return
            with lock:
                done[0] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conc)]
    for t in threads:
        t.start()
    try:
        start.wait(30)
    except threading.BrokenBarrierError:
        for t in threads:
            t.join(30)
        raise errors[0] if errors else Disturbed("the client threads did not start")
    with cpu:
        for t in threads:
            t.join(max_s + 30)
    if errors:
        raise errors[0]
    return _tput_result(done[0], cpu)


def _tput_result(done: int, cpu: CpuWindow) -> dict[str, float]:
    return {"replies_per_s": done / cpu.wall if cpu.wall > 0 else math.nan, "n": done,
            "server_us": cpu.cpu["server"] / max(done, 1) * 1e6,
            "client_us": cpu.cpu["client"] / max(done, 1) * 1e6,
            "broker_us": cpu.cpu["broker"] / max(done, 1) * 1e6,
            "other_cores": cpu.other_cores}


# ============================================================================== dl-agent timing
def _agent_command() -> list[str]:
    """The installed console script next to this interpreter (a pyenv shim would add its own
    start-up), else whatever `dl-agent` is on PATH, else `python -m dripline.cli.agent`."""
    local = Path(sys.executable).with_name("dl-agent")
    if local.exists():
        return [str(local)]
    found = shutil.which("dl-agent")
    if found:
        return [found]
    return [sys.executable, "-m", "dripline.cli.agent"]


def _time_command(cmd: list[str], env: dict[str, str], check: Callable[[str], bool] | None,
                  timeout: float = 30) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or (check is not None and not check(proc.stdout)):
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-800:]}{proc.stderr[-800:]}")
    return wall


def _envs(pyc_dir: str) -> dict[str, dict[str, str]]:
    """'pyc cached' = bytecode caching on, into a private cache directory (nothing is written into
    the source tree): what an installed dl-agent does, since pip compiles the bytecode when it
    installs a package (also when PYTHONDONTWRITEBYTECODE is set). 'no_pyc' = writing bytecode
    off (PYTHONDONTWRITEBYTECODE=1, as in some sandboxes): an editable checkout then compiles
    dripline's modules at every start, unless their __pycache__ folders exist already."""
    base = dict(os.environ)
    cached = dict(base)
    cached.pop("PYTHONDONTWRITEBYTECODE", None)
    cached["PYTHONPYCACHEPREFIX"] = pyc_dir
    no_pyc = dict(base, PYTHONDONTWRITEBYTECODE="1")
    return {"no_pyc": no_pyc, "pyc_cached": cached}


def measure_agent(host: str, port: int, endpoint: str, runs: int, pyc_dir: str) -> dict[str, Any]:
    cmd = _agent_command() + ["-b", host, "-p", str(port), "get", endpoint]
    ok = (lambda out: "value_raw" in out)
    envs = _envs(pyc_dir)
    _time_command(cmd, envs["pyc_cached"], ok)  # primes the private bytecode cache
    out: dict[str, Any] = {"command": " ".join(cmd)}
    walls: dict[str, list[float]] = {"no_pyc": [], "pyc_cached": [], "python_floor": []}
    for _ in range(runs):  # interleaved, so that load from elsewhere hits all three alike
        for label, env in envs.items():
            walls[label].append(_time_command(cmd, env, ok))
        walls["python_floor"].append(
            _time_command([sys.executable, "-c", "pass"], envs["pyc_cached"], None))
    for label, values in walls.items():
        out[label] = {"median_s": statistics.median(values), "min_s": min(values)}
    return out


def import_profile(host: str, port: int, endpoint: str, pyc_dir: str, top: int = 8
                   ) -> list[tuple[str, float, float]]:
    """(module, cumulative ms, self ms) of the top-level imports of one `dl-agent get`, largest
    first. Everything the command imports (also lazily, while running) is included."""
    env = _envs(pyc_dir)["pyc_cached"]
    script = [sys.executable, "-m", "dripline.cli.agent"]
    agent = _agent_command()
    if len(agent) == 1:
        try:
            with open(agent[0], "rb") as fh:
                if b"python" in fh.readline():  # a console script (not a shell shim)
                    script = [sys.executable, agent[0]]
        except OSError:
            pass
    cmd = [script[0], "-X", "importtime", *script[1:], "-b", host, "-p", str(port), "get", endpoint]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m and not m.group(3):  # top level (no indentation)
            rows.append((m.group(4), int(m.group(2)) / 1e3, int(m.group(1)) / 1e3))
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    return [("(all imports)", total, math.nan)] + rows[:top]


# ============================================================================== orchestration
class Children:
    """Starts the two servers; stop() always ends them (SIGTERM, then SIGKILL)."""

    def __init__(self, args: argparse.Namespace, tmp: str) -> None:
        self.args, self.tmp = args, tmp
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[int, str] = {}
        tag = uuid.uuid4().hex[:8]
        self.raw_queue = f"bench_rr_raw_{tag}"
        self.service = f"bench_rr_svc_{tag}"
        self.endpoint = f"bench_rr_ep_{tag}"
        self.raw_pid: int | None = None
        self.dl_pid: int | None = None

    def _spawn(self, role_args: list[str], log_name: str, pipe: bool) -> subprocess.Popen:
        log = open(os.path.join(self.tmp, log_name), "w")
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *role_args,
             "--host", self.args.host, "--port", str(self.args.port),
             "--max-seconds", str(self.args.child_max_seconds)],
            stdout=subprocess.PIPE if pipe else log, stderr=log, text=True,
            preexec_fn=die_with_parent)
        log.close()
        self.procs.append(proc)
        self.logs[proc.pid] = log_name
        return proc

    def start_raw(self) -> None:
        proc = self._spawn(["--role", "raw-server", "--queue", self.raw_queue], "raw_server.log",
                           pipe=True)
        self.raw_pid = proc.pid
        deadline = time.monotonic() + 30
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if sel.select(timeout=0.5) and proc.stdout.readline().strip() == "READY":
                sel.close()
                return
        sel.close()
        raise RuntimeError("the raw server did not start:\n" + self.log_tail("raw_server.log"))

    def start_dripline(self) -> None:
        path = os.path.join(self.tmp, "service.yaml")
        with open(path, "w") as fh:
            fh.write(f"name: {self.service}\n"
                     "heartbeat_interval_s: 0\n"
                     "enable_scheduling: false\n"
                     "dripline_mesh:\n"
                     f"  broker: {self.args.host}\n"
                     f"  broker_port: {self.args.port}\n"
                     "endpoints:\n"
                     f"  - name: {self.endpoint}\n"
                     "    module: KeyValueStore\n"
                     "    initial_value: 1.5\n")
        proc = self._spawn(["--role", "dl-server", "--config", path], "dl_server.log", pipe=False)
        self.dl_pid = proc.pid

    def log_tail(self, name: str) -> str:
        try:
            with open(os.path.join(self.tmp, name)) as fh:
                return fh.read()[-2000:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise ServerDied(f"server process {proc.pid} exited with {proc.returncode}:\n"
                                 + self.log_tail(self.logs[proc.pid]))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stdout:
                proc.stdout.close()


async def _wait_answers(call: Callable, what: str, children: Children, timeout: float = 30) -> None:
    """Poll until `call` gets an answer (the server has bound its queue), bounded in time."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        children.check_alive()
        try:
            await asyncio.wait_for(call(), 2)
            return
        except Exception as err:  # not bound yet (unroutable) or still starting
            last = err
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not answer within {timeout:.0f} s: {last!r}")


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    from dripline.core import AsyncInterface, Interface
    from dripline.protocol.errors import DriplineError

    tmp = tempfile.mkdtemp(prefix="dl_bench_rr_")
    children = Children(args, tmp)
    broker = _broker_pid()
    reps: list[dict[str, Any]] = []
    agent_imports: list[tuple[str, float, float]] = []
    mesh = {"broker": args.host, "broker_port": args.port}
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    raw = adl = dl = None
    cl: dict[str, Any] = {}
    disturbed: list[str] = []
    try:
        children.start_dripline()  # slower to start: overlap with the raw server's start
        children.start_raw()
        raw = RawClient(args.host, args.port, children.raw_queue + ".get")
        cl = {"raw": raw}
        adl = AsyncInterface(dripline_mesh=mesh, timeout_s=10, name="bench-async")
        ep = children.endpoint

        async def setup() -> None:
            await raw.connect()
            await adl.start()
            await _wait_answers(raw.request, "the raw server", children)
            await _wait_answers(lambda: adl.get(ep), f"the dripline service ({ep})", children)
        runner.run(setup())
        dl = Interface(dripline_mesh=mesh, timeout_s=10, name="bench-sync")
        value = dl.get(ep)
        assert value == {"value_raw": 1.5}, value

        def repetition(rep: int) -> dict[str, Any]:
            children.check_alive()
            res: dict[str, Any] = {"latency": {}, "throughput": {}}
            if args.quiet_wait > 0:
                res["busy_before"] = wait_for_quiet(args.quiet_wait, args.quiet_threshold)
            print(f"# repetition {rep + 1}/{args.repeat}: latency", file=sys.stderr, flush=True)
            for client in CLIENTS:  # interleaved so drift hits all three alike
                if client == "raw":
                    r = runner.run(_async_latency(lambda: cl["raw"].request(), args.warmup,
                                                  args.n_latency, args.max_seconds))
                elif client == "async":
                    r = runner.run(_async_latency(lambda: adl.get(ep), args.warmup,
                                                  args.n_latency, args.max_seconds))
                else:
                    r = _sync_latency(lambda: dl.get(ep), args.warmup, args.n_latency,
                                      args.max_seconds)
                res["latency"][client] = r
            for conc in CONCURRENCIES:
                print(f"# repetition {rep + 1}/{args.repeat}: throughput C={conc}",
                      file=sys.stderr, flush=True)
                row = {}
                for client in CLIENTS:
                    server = children.raw_pid if client == "raw" else children.dl_pid
                    cpu = CpuWindow(server, broker)
                    if client == "raw":
                        r = runner.run(_async_throughput(lambda: cl["raw"].request(), conc,
                                                         args.n_throughput, args.max_seconds, cpu))
                    elif client == "async":
                        r = runner.run(_async_throughput(lambda: adl.get(ep), conc,
                                                         args.n_throughput, args.max_seconds, cpu))
                    else:
                        r = _sync_throughput(lambda: dl.get(ep), conc, args.n_throughput,
                                             args.max_seconds, cpu)
                    row[client] = r
                res["throughput"][conc] = row
            if args.agent_runs > 0:
                print(f"# repetition {rep + 1}/{args.repeat}: dl-agent", file=sys.stderr,
                      flush=True)
                if args.quiet_wait > 0:
                    wait_for_quiet(args.quiet_wait, args.quiet_threshold)
                res["agent"] = measure_agent(args.host, args.port, ep, args.agent_runs,
                                             os.path.join(tmp, "pyc"))
            return res

        async def recover() -> None:
            old, cl["raw"] = cl["raw"], RawClient(args.host, args.port, children.raw_queue + ".get")
            try:
                await old.close()
            except Exception:
                pass
            await cl["raw"].connect()
            await _wait_answers(lambda: cl["raw"].request(), "the raw server", children)
            await _wait_answers(lambda: adl.get(ep), f"the dripline service ({ep})", children)

        for rep in range(args.repeat):
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    reps.append(repetition(rep))
                    break
                except (Disturbed, DriplineError, TimeoutError, OSError,
                        RuntimeError, concurrent.futures.TimeoutError) as err:
                    if isinstance(err, ServerDied) or attempt == MAX_ATTEMPTS:
                        raise
                    print(f"# repetition {rep + 1} disturbed ({type(err).__name__}: {err}); "
                          "reconnecting and repeating it", file=sys.stderr, flush=True)
                    disturbed.append(f"{type(err).__name__}: {err}")
                    runner.run(recover())
                    deadline = time.monotonic() + 30
                    while True:  # the blocking Interface reconnects by itself
                        try:
                            dl.get(ep)
                            break
                        except DriplineError:
                            if time.monotonic() > deadline:
                                raise
                            time.sleep(0.2)
        if args.agent_runs > 0:
            agent_imports = import_profile(args.host, args.port, ep, os.path.join(tmp, "pyc"))
    finally:
        try:
            if dl is not None:
                dl.close()

            async def teardown() -> None:
                if adl is not None:
                    await adl.close()
                current = cl.get("raw") if cl else raw
                if current is not None and hasattr(current, "conn"):
                    await current.close()
            runner.run(teardown())
            runner.close()
        finally:
            children.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    return {"reps": reps, "agent_imports": agent_imports, "service": children.service,
            "endpoint": children.endpoint, "disturbed": disturbed}


# ============================================================================== report
def _summ(values: list[float]) -> dict[str, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def _fmt(s: dict[str, float], digits: int, unit: str = "") -> str:
    if math.isnan(s["median"]):
        return "-"
    f = f"{{:.{digits}f}}"
    if s["min"] == s["max"]:
        return f"{f.format(s['median'])}{unit}"
    return f"{f.format(s['median'])}{unit} [{f.format(s['min'])}-{f.format(s['max'])}]"


def report(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    reps = result["reps"]
    n = len(reps)
    summary: dict[str, Any] = {"repeat": n, "quick": args.quick, "latency": {}, "throughput": {},
                               "targets": {"p50_ratio_max": TARGET_P50_RATIO,
                                           "tput64_ratio_min": TARGET_TPUT_RATIO,
                                           "agent_s_max": TARGET_AGENT_S,
                                           "server_cpu64_ratio_max": TARGET_SERVER_CPU_RATIO},
                               "pass": {}}
    try:
        import pika
        import uvloop
        libs = f"pika {pika.__version__}, uvloop {uvloop.__version__}"
    except Exception:
        libs = "pika, uvloop"
    print()
    print(f"dripline request/reply vs raw AMQP RPC - {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {libs}; broker {args.host}:{args.port}")
    print(f"{n} repetition(s); cells are median [min-max] over repetitions; ratios are computed "
          "per repetition (dripline/raw of the same run)")
    if args.quick:
        print("--quick: small counts, a smoke test; the figures are NOT meaningful")
    print(f"latency: {args.warmup} warm-up + {args.n_latency} sequential requests; throughput: "
          f"{args.n_throughput} requests per cell; CPU columns in us per request (server / client "
          "/ broker)")
    print()
    head = f"{'measure':<18} {'client':<20} {'value':<26} {'vs raw':<22} {'target':<8} result"
    print(head)
    print("-" * len(head))
    verdicts: list[bool] = []
    for key, label in (("p50_ms", "latency p50 ms"), ("p90_ms", "latency p90 ms"),
                       ("p99_ms", "latency p99 ms")):
        summary["latency"][key] = {}
        for client in CLIENTS:
            vals = [r["latency"][client][key] for r in reps]
            s = _summ(vals)
            summary["latency"][key][client] = s
            ratio_txt = target = verdict = ""
            if client != "raw":
                rs = _summ([r["latency"][client][key] / r["latency"]["raw"][key] for r in reps])
                summary["latency"][key][client + "_ratio"] = rs
                ratio_txt = _fmt(rs, 2, "x")
                if key == "p50_ms":
                    target = f"<={TARGET_P50_RATIO}x"
                    ok = rs["median"] <= TARGET_P50_RATIO
                    verdict = "PASS" if ok else "MISS"
                    summary["pass"][f"p50_{client}"] = ok
                    verdicts.append(ok)
            print(f"{label:<18} {CLIENT_LABEL[client]:<20} {_fmt(s, 3):<26} {ratio_txt:<22} "
                  f"{target:<8} {verdict}")
    print()
    head2 = (f"{'measure':<18} {'client':<20} {'replies/s':<26} {'vs raw':<22} {'target':<8} "
             f"{'result':<7} CPU us/req srv/cli/broker")
    print(head2)
    print("-" * len(head2))
    for conc in CONCURRENCIES:
        summary["throughput"][str(conc)] = {}
        for client in CLIENTS:
            cells = [r["throughput"][conc][client] for r in reps]
            s = _summ([c["replies_per_s"] for c in cells])
            entry = {"replies_per_s": s}
            for k in ("server_us", "client_us", "broker_us"):
                entry[k] = statistics.median(c[k] for c in cells)
            ratio_txt = target = verdict = ""
            if client != "raw":
                rs = _summ([r["throughput"][conc][client]["replies_per_s"]
                            / r["throughput"][conc]["raw"]["replies_per_s"] for r in reps])
                entry["ratio"] = rs
                ratio_txt = _fmt(rs, 2, "x")
                if conc == 64:
                    target = f">={TARGET_TPUT_RATIO}x"
                    ok = rs["median"] >= TARGET_TPUT_RATIO
                    verdict = "PASS" if ok else "MISS"
                    summary["pass"][f"tput64_{client}"] = ok
                    verdicts.append(ok)
            summary["throughput"][str(conc)][client] = entry
            cpu = f"{entry['server_us']:.0f} / {entry['client_us']:.0f} / {entry['broker_us']:.0f}"
            print(f"{'replies/s C=' + str(conc):<18} {CLIENT_LABEL[client]:<20} {_fmt(s, 0):<26} "
                  f"{ratio_txt:<22} {target:<8} {verdict:<7} {cpu}")
    print()
    head_cpu = (f"{'measure':<30} {'client':<20} {'us/request':<26} {'vs raw':<22} {'target':<8} "
                "result")
    print(head_cpu)
    print("-" * len(head_cpu))
    summary["server_cpu64"] = {}
    for client in CLIENTS:
        per = _summ([r["throughput"][64][client]["server_us"] for r in reps])
        ratio_txt = target = verdict = ""
        entry: dict[str, Any] = {"server_us": per}
        if client != "raw":
            rs = _summ([r["throughput"][64][client]["server_us"]
                        / max(r["throughput"][64]["raw"]["server_us"], 1e-9) for r in reps])
            entry["ratio"] = rs
            ratio_txt = _fmt(rs, 2, "x")
            target = f"<={TARGET_SERVER_CPU_RATIO}x"
            ok = rs["median"] <= TARGET_SERVER_CPU_RATIO
            verdict = "PASS" if ok else "MISS"
            summary["pass"][f"server_cpu64_{client}"] = ok
            verdicts.append(ok)
        summary["server_cpu64"][client] = entry
        print(f"{'server CPU at C=64':<30} {CLIENT_LABEL[client]:<20} {_fmt(per, 0):<26} "
              f"{ratio_txt:<22} {target:<8} {verdict}")
    per_rep = [max(c["other_cores"] for row in r["throughput"].values() for c in row.values())
               for r in reps]
    other = max(per_rep, default=0.0)
    summary["max_other_cores"] = other
    summary["other_cores_per_repetition"] = per_rep
    print(f"\nnoise: other processes used at most {other:.2f} cores during a throughput cell "
          f"(per repetition: {', '.join(f'{v:.2f}' for v in per_rep)})"
          f"{'; noisy: compare ratios, not absolutes' if other > 0.3 else ''}")
    agents = [r["agent"] for r in reps if "agent" in r]
    if agents:
        print()
        print(f"dl-agent get, spawn to exit ({args.agent_runs} runs per repetition): "
              f"{agents[0]['command']}")
        head3 = f"{'condition':<52} {'median s':<22} {'min s':<22} {'target':<8} result"
        print(head3)
        print("-" * len(head3))
        summary["agent"] = {}
        for label, text in (("pyc_cached", "bytecode cached (as after pip install)"),
                            ("no_pyc", "PYTHONDONTWRITEBYTECODE=1 (a checkout)"),
                            ("python_floor", "floor: python -c pass")):
            med = _summ([a[label]["median_s"] for a in agents])
            mn = _summ([a[label]["min_s"] for a in agents])
            summary["agent"][label] = {"median_s": med, "min_s": mn}
            target = verdict = ""
            if label == "pyc_cached":  # the target: an installed command (see _envs)
                target = f"<={TARGET_AGENT_S}s"
                ok = med["median"] <= TARGET_AGENT_S
                verdict = "PASS" if ok else "MISS"
                summary["pass"][f"agent_{label}"] = ok
                verdicts.append(ok)
            print(f"{text:<52} {_fmt(med, 3):<22} {_fmt(mn, 3):<22} {target:<8} {verdict}")
    if result["agent_imports"]:
        print("\nlargest top-level imports of one `dl-agent get` (python -X importtime, bytecode "
              "cached; cumulative / self ms):")
        for name, cum, self_ms in result["agent_imports"]:
            self_txt = "" if math.isnan(self_ms) else f" / {self_ms:6.1f}"
            print(f"  {name:<40} {cum:7.1f}{self_txt}")
        summary["agent_imports_ms"] = {name: round(cum, 2) for name, cum, _ in
                                       result["agent_imports"]}
    if result.get("disturbed"):
        summary["disturbed"] = result["disturbed"]
        print(f"\n{len(result['disturbed'])} repetition(s) were disturbed (broker connection lost)"
              " and measured again")
    summary["per_repetition"] = {
        "p50_ms": {c: [round(r["latency"][c]["p50_ms"], 4) for r in reps] for c in CLIENTS},
        "replies_per_s_c64": {c: [round(r["throughput"][64][c]["replies_per_s"], 1)
                                  for r in reps] for c in CLIENTS},
        "agent_pyc_cached_median_s": [round(r["agent"]["pyc_cached"]["median_s"], 4)
                                      for r in reps if "agent" in r],
    }
    summary["all_pass"] = all(verdicts)
    print(f"\nverdict: {sum(verdicts)}/{len(verdicts)} targets met")
    return summary


# ============================================================================== main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts (CI smoke test)")
    p.add_argument("--repeat", type=int, default=1, help="repetitions (default 1)")
    p.add_argument("--warmup", type=int, help="warm-up requests before latency (default 200)")
    p.add_argument("--n-latency", type=int, help="sequential requests (default 2000)")
    p.add_argument("--n-throughput", type=int, help="requests per throughput cell (default 3000)")
    p.add_argument("--agent-runs", type=int, help="dl-agent runs per condition (default 10; 0: skip)")
    p.add_argument("--quiet-wait", type=float,
                   help="before each repetition wait up to this many seconds for the machine to "
                        "be quiet (default 60; 0 with --quick)")
    p.add_argument("--quiet-threshold", type=float, default=0.3,
                   help="busy cores below which the machine counts as quiet (default 0.3)")
    p.add_argument("--max-seconds", type=float, default=60,
                   help="time bound of each measured phase (default 60)")
    p.add_argument("--host", default="127.0.0.1", help="broker host (loopback only)")
    p.add_argument("--port", type=int, default=int(os.environ.get("DRIPLINE_TEST_PORT", "5672")))
    p.add_argument("--json-out", help="also append the JSON summary to this file")
    # internal: child roles
    p.add_argument("--role", choices=["bench", "raw-server", "dl-server"], default="bench",
                   help=argparse.SUPPRESS)
    p.add_argument("--queue", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--child-max-seconds", type=float, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.host not in LOOPBACK:
        raise SystemExit(f"--host must be a loopback address, not {args.host!r}")
    if args.role == "raw-server":
        raw_server_main(args)
        return 0
    if args.role == "dl-server":
        dl_server_main(args)
        return 0
    quick = args.quick
    defaults = {"warmup": 20 if quick else 200, "n_latency": 100 if quick else 2000,
                "n_throughput": 200 if quick else 3000, "agent_runs": 2 if quick else 10,
                "quiet_wait": 0 if quick else 60}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.repeat = max(1, min(args.repeat, 20))
    args.n_latency = max(1, args.n_latency)
    args.n_throughput = max(max(CONCURRENCIES), args.n_throughput)
    if args.child_max_seconds is None:  # generous upper bound of the whole run
        args.child_max_seconds = 120 + args.repeat * (10 * args.max_seconds + 60)
    # children of the children (dl-agent runs) must never outlive us either: bounded by timeouts
    result = run_benchmark(args)
    summary = report(result, args)
    line = json.dumps(summary, sort_keys=True, default=str)
    print("BENCH_JSON " + line)
    if args.json_out:
        with open(args.json_out, "a") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
