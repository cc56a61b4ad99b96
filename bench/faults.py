#!/usr/bin/env python3
"""Fault suite (issue 9, item 6): what a dripline service survives, with figures and targets.

It starts its own RabbitMQ node (dripline.testing.rabbitmq: own node name, ports, config file, data,
log folder and cookie) and its own PostgreSQL *database* on the shared PostgreSQL server (created
with a unique name and dropped afterwards). A PostgreSQL outage is simulated by a TCP proxy of this
script's own between the logger and the server, which is cut and restored; the shared broker and
the shared PostgreSQL server are never restarted, and no connection of anybody else is closed.
Services run as ``dl-serve -c <yaml>`` subprocesses pointed at the private node. Hostile traffic
is sent with raw pika.

Phases (``--only NAME[,NAME]``):

restarts    the broker restarted R times (alternately graceful and ``kill -9``) while a client
            process keeps 8 requests in flight: recoveries of the service (a fresh client reaches
            it) and of the long-lived client, hangs, requests failed, the longest request, the
            time from broker-back to the first answer.
exceptions  10,000 requests whose handler raises: deaths, log bytes written, the error replies.
fuzz        >= 100,000 requests with random bodies, header types, chunk ids, encodings,
            properties (seeded; announced chunk counts kept <= 10, the huge ones are the chunk
            phase's job): crashes, RSS before and after, still answering.
chunks      the three chunk-abuse shapes, each against a fresh service: one empty-body request
            with message_id ``<uuid>/0/4294967296``; 20,000 10-byte first chunks announcing
            1,000,000 chunks with a reply_to; 6,000 incomplete 100 kB chunks: peak RSS, RSS after,
            reply bytes per input byte and the worst reply excess over its request, still answering.
logger      a PostgresSensorLogger with a durable queue, fed 200 alerts/s, through a 30 s
            PostgreSQL outage and then a ``kill -9`` and restart of the logger: rows lost and
            duplicated.

Targets (the issue's): 0 deaths, 0 hangs, RSS after the fuzz campaign within 1.5x of before, peak
RSS under chunk abuse under 300 MB, reply bytes never more than request bytes plus 1 KB, 0 alerts
lost; 0 rows duplicated is issue 13's. Figures without a target are printed as ``(figure)``. Every
service is watched: one whose RSS passes --rss-cap-mb (2 GB) is killed and the phase reported FAIL,
so a memory defect cannot take the machine down. Every wait is bounded.

    python bench/faults.py                    # the full suite (about 10-15 minutes here)
    python bench/faults.py --quick            # small counts: a smoke test, figures are indicative
    python bench/faults.py --only chunks,fuzz

Output: one table per phase, a summary, and one ``BENCH_JSON {...}`` line. Exit status 0 when the
suite ran (whatever the figures), 1 with --fail-on-miss and any FAIL, 2 when the suite itself broke.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import decimal
import json
import logging
import os
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from _children import die_with_parent, spawn, start_watchdog  # beside this script

PHASES = ("restarts", "exceptions", "fuzz", "chunks", "logger")
MB = 1024 * 1024
CHILD_MAX_S = 1800          # any child process ends itself after this long
SERVICE_START_S = 60        # dl-serve to first answered ping
REPLY_EXCESS_LIMIT = 1024   # reply bytes allowed beyond the request's bytes
FUZZ_RSS_RATIO = 1.5
CHUNK_PEAK_MB = 300
UINT32_CHUNKS = 4294967296


# ---------------------------------------------------------------------------------------------
# child safety: children die with this process, and end themselves after CHILD_MAX_S
def rss_bytes(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# ---------------------------------------------------------------------------------------------
# the service under test

ENDPOINTS_PY = textwrap.dedent('''
    """Endpoints of the fault suite (written by bench/faults.py)."""
    from dripline.core import Endpoint


    class FaultEcho(Endpoint):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.value = 0

        def on_get(self):
            return {"value": self.value}

        def on_set(self, value):
            self.value = value
            return {"value": value}

        def add(self, a, b):
            return a + b

        def echo(self, *args, **kwargs):
            return {"args": list(args), "kwargs": kwargs}

        def fail(self, *args, **kwargs):
            raise ValueError("fault suite: this handler always fails")
''')


class RssGuard:
    """Samples the RSS of watched processes every 50 ms: keeps the peak, kills above the cap."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap = cap_bytes
        self._watched: dict[int, list[int]] = {}  # pid -> [peak, killed]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-guard", daemon=True)
        self._thread.start()

    def watch(self, pid: int) -> None:
        with self._lock:
            self._watched[pid] = [rss_bytes(pid), 0]

    def reset_peak(self, pid: int) -> None:
        with self._lock:
            if pid in self._watched:
                self._watched[pid][0] = rss_bytes(pid)

    def peak(self, pid: int) -> int:
        with self._lock:
            return self._watched.get(pid, [0, 0])[0]

    def killed(self, pid: int) -> bool:
        with self._lock:
            return bool(self._watched.get(pid, [0, 0])[1])

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                items = list(self._watched.items())
            for pid, state in items:
                rss = rss_bytes(pid)
                with self._lock:
                    state[0] = max(state[0], rss)
                if rss > self.cap and not state[1]:
                    state[1] = 1
                    print(f"   !! RSS guard: pid {pid} at {rss / MB:.0f} MB > cap "
                          f"{self.cap / MB:.0f} MB: killed", flush=True)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


class ServiceProc:
    """One ``dl-serve -c <yaml>`` subprocess, its log file and its RSS."""

    def __init__(self, bench: "Bench", config: dict, label: str) -> None:
        import yaml
        self.bench = bench
        self.name = config["name"]
        self.config = config
        self.label = label
        self.path = bench.tmp / f"{self.name}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log_path = bench.tmp / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServiceProc":
        log = open(self.log_path, "ab")
        self.proc = spawn([sys.executable, "-m", "dripline.cli.serve", "-c", str(self.path)],
                          signal.SIGKILL, stdout=log, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL)
        log.close()
        self.bench.guard.watch(self.proc.pid)
        deadline = time.monotonic() + SERVICE_START_S
        while not self.ping(2.0):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited at start: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} did not answer within {SERVICE_START_S} s: "
                                   f"{self.log_tail()}")
            time.sleep(0.2)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        return rss_bytes(self.pid) if self.alive else 0

    def log_bytes(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def ping(self, timeout_s: float = 5.0) -> bool:
        return self.bench.answers(self.name, "cmd", "ping", timeout_s)

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(15)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)


# ---------------------------------------------------------------------------------------------
# raw AMQP: hand-made requests and their replies

def sender_info() -> dict:
    return {"exe": "bench/faults.py", "hostname": socket.gethostname(), "username": "bench",
            "service_name": "faults_raw", "versions": {}, "commit": "", "package": "",
            "version": ""}


def request_headers(op: int, specifier: str = "", **extra: Any) -> dict:
    headers = {"message_type": 3, "message_operation": op, "specifier": specifier,
               "timestamp": "2026-01-01T00:00:00.000000Z", "lockout_key": "",
               "sender_info": sender_info()}
    headers.update(extra)
    return headers


class RawAMQP:
    """A pika BlockingConnection with a reply queue bound on the requests exchange; counts reply
    bytes per correlation id and return codes."""

    def __init__(self, port: int) -> None:
        import pika
        self.pika = pika
        self.conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", port, connection_attempts=3, retry_delay=1, heartbeat=0,
            blocked_connection_timeout=120))
        self.ch = self.conn.channel()
        self.reply_queue = self.ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self.ch.queue_bind(self.reply_queue, "requests", self.reply_queue)
        self.reply_bytes: dict[str, int] = collections.defaultdict(int)
        self.codes: collections.Counter = collections.Counter()
        self.replies = 0
        self.samples: list[tuple[dict, bytes]] = []
        self.ch.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)

    def _on_reply(self, _ch: Any, _method: Any, props: Any, body: bytes) -> None:
        self.replies += 1
        self.reply_bytes[str(props.correlation_id)] += len(body)
        code = (props.headers or {}).get("return_code")
        self.codes[code] += 1
        if len(self.samples) < 3:
            self.samples.append((dict(props.headers or {}), body[:300]))

    def publish(self, routing_key: str, body: bytes, **props: Any) -> None:
        self.ch.basic_publish("requests", routing_key, body, self.pika.BasicProperties(**props))

    def request(self, routing_key: str, body: bytes, headers: dict | None, *,
                message_id: str | None = None, correlation_id: str | None = None,
                reply: bool = True, content_encoding: str | None = "application/json") -> str:
        corr = correlation_id or str(uuid.uuid4())
        self.publish(routing_key, body, content_encoding=content_encoding, correlation_id=corr,
                     reply_to=self.reply_queue if reply else None,
                     message_id=message_id if message_id is not None else f"{uuid.uuid4()}/0/1",
                     headers=headers)
        return corr

    def pump(self, seconds: float = 0.0) -> None:
        self.conn.process_data_events(time_limit=seconds)

    def wait_replies(self, n: int, timeout: float, idle: float | None = None,
                     alive: Callable[[], bool] = lambda: True) -> None:
        """Pump until `n` replies arrived, `timeout` passed, no reply for `idle` s, or not alive."""
        deadline = time.monotonic() + timeout
        last, last_change = self.replies, time.monotonic()
        while self.replies < n and time.monotonic() < deadline and alive():
            self.pump(0.1)
            if self.replies != last:
                last, last_change = self.replies, time.monotonic()
            elif idle is not None and time.monotonic() - last_change > idle:
                break

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------
# fuzzing

class Fuzzer:
    """Seeded generator of hostile requests (see the module docstring for what varies)."""

    def __init__(self, seed: int, endpoint: str, service: str, reply_queue: str) -> None:
        self.rng = random.Random(seed)
        self.endpoint = endpoint
        self.service = service
        self.reply_queue = reply_queue

    def _scalar(self) -> Any:
        r = self.rng
        return r.choice([
            lambda: r.randint(-2**31, 2**31 - 1), lambda: r.choice([-1, 0, 1, 2, 3, 4, 9, 2**31,
                                                                    2**32 - 1, 2**32, 2**40,
                                                                    -2**40, 2**63 - 1]),
            # pika writes no float header (a Decimal is AMQP 'D'); datetime is AMQP 'T'
            lambda: decimal.Decimal(r.randint(-10**9, 10**9)).scaleb(-r.randint(0, 12)),
            lambda: datetime.datetime.fromtimestamp(r.randint(0, 2**32), datetime.timezone.utc),
            lambda: r.choice(["", "3", "get", "cmd", "a" * r.randint(0, 300), "\u00e9\u2603\U0001f40d",
                              "\x00\x01", "../../etc/passwd", "__class__", "service.cancel",
                              "%s%s%n", "null"]),
            lambda: r.choice([True, False]), lambda: None,
            lambda: bytes(r.getrandbits(8) for _ in range(r.randint(0, 40))),
        ])()

    def _value(self, depth: int = 0) -> Any:
        r = self.rng
        kind = r.random()
        if depth > 3 or kind < 0.55:
            return self._scalar()
        if kind < 0.8:
            return [self._value(depth + 1) for _ in range(r.randint(0, 4))]
        return {str(self._scalar())[:40]: self._value(depth + 1) for _ in range(r.randint(0, 4))}

    def _json_value(self, depth: int = 0) -> Any:
        v = self._value(depth)
        return v if not isinstance(v, bytes) else v.hex()

    def body(self) -> bytes:
        r = self.rng
        choice = r.random()
        if choice < 0.35:
            payload = r.choice([None, {"values": [self._json_value()]},
                                {"values": [r.randint(-9, 9), r.randint(-9, 9)]},
                                {"values": self._json_value()}, self._json_value(),
                                {"values": [], "keyword": self._json_value()}])
            return json.dumps(payload, default=str).encode()
        if choice < 0.5:
            return bytes(r.getrandbits(8) for _ in range(r.randint(0, 300)))
        if choice < 0.6:
            return r.choice([b"", b"{", b"[", b'{"values": [1', b"\xff\xfe\xfd", b"null",
                             b'"unterminated', b"1e999999", b"-", b"NaN", b"[]" * 1000])
        if choice < 0.7:
            depth = r.randint(50, 5000)
            return b"[" * depth + b"]" * depth
        if choice < 0.78:
            return b'{"values": [' + b"9" * r.randint(100, 6000) + b"]}"
        if choice < 0.86:
            return json.dumps({"values": ["x" * r.randint(1000, 9000)]}).encode()
        return json.dumps({"values": [r.randint(0, 9), r.randint(0, 9)]}).encode()

    def headers(self) -> dict | None:
        r = self.rng
        if r.random() < 0.03:
            return None
        op = r.choice([0, 1, 9, 9, 1, 6, 7, 8, 2**32 - 1, -1, 12345])
        spec = r.choice(["", "add", "echo", "fail", "value", "name", "calibration", "ping",
                         "__class__", "service", "a.b.c", "values.0", "0", "."])
        h = request_headers(op, spec)
        for _ in range(r.randint(0, 3)):
            key = r.choice(list(h) + ["return_code", "return_message", "payload", "x" * 200,
                                      "message_id"])
            action = r.random()
            if action < 0.25:
                h.pop(key, None)
            elif action < 0.85:
                h[key] = self._value(1)
            else:  # sender_info mutated inside
                info = dict(sender_info())
                sub = r.choice(list(info))
                if r.random() < 0.5:
                    info.pop(sub)
                else:
                    info[sub] = self._value(2)
                h["sender_info"] = info
        return h

    def message_id(self) -> str | None:
        r = self.rng
        u = str(uuid.uuid4())
        if r.random() < 0.6:
            return f"{u}/0/1"
        n = r.randint(0, 10)
        return r.choice([None, "", "abc", "a/b/c", "///", f"{u}/0/0", f"{u}/-1/2", f"{u}/5/2",
                         f"{u}/x/y", f"{u}/{r.randint(0, n)}/{n}", f"{u}/0/{n}", f"{u}/1/3",
                         f"{u}//1", f"{u}/0/1/extra", "/0/1", f"{u}/0/ 1", f"{u}/00/01"])

    def encoding(self) -> str | None:
        r = self.rng
        if r.random() < 0.65:
            return "application/json"
        return r.choice([None, "", "gzip", "application/msgpack", "text/plain", "identity",
                         "application/json; charset=utf-8", "APPLICATION/JSON", "x" * 200])

    def request(self) -> tuple[str, bytes, dict]:
        r = self.rng
        key = self.endpoint if r.random() < 0.85 else r.choice(
            [self.service, f"{self.endpoint}.value", f"{self.endpoint}.x.y", "nobody_home"])
        props: dict[str, Any] = {
            "content_encoding": self.encoding(),
            "correlation_id": r.choice([str(uuid.uuid4())] * 8 + [None, "", "c" * 200]),
            "reply_to": r.choice([self.reply_queue] * 6 + [None, "", "no_such_queue"]),
            "message_id": self.message_id(),
            "headers": self.headers(),
        }
        if r.random() < 0.05:
            props["content_type"] = r.choice(["application/json", "text/plain", "x"])
        if r.random() < 0.03:
            props["priority"] = r.randint(0, 9)
        return key, self.body(), props


# ---------------------------------------------------------------------------------------------
# a TCP proxy that can be cut (the PostgreSQL outage)

class CuttableProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` drops every connection and refuses new ones
    (connection refused), `restore()` listens again on the same port."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        from dripline.testing.rabbitmq import free_port
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, name="pg-proxy", daemon=True)
        self._thread.start()
        self.restore()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                  reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            if transport is not None:
                transport.abort()  # RST, as when the server's host goes away
        self._writers.clear()

    def restore(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        try:
            self._call(self._cut())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


# ---------------------------------------------------------------------------------------------
# child role: the long-lived client of the restarts phase

def client_main(args: argparse.Namespace) -> None:
    die_with_parent(signal.SIGKILL)
    start_watchdog(CHILD_MAX_S)
    # the reconnect warnings expected here go to a file beside the records, not into the table
    logging.basicConfig(filename=args.out + ".log", level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from dripline.transport.bridge import new_event_loop
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    records = loop.run_until_complete(_client(args))
    Path(args.out).write_text(json.dumps(records))
    print("DONE", len(records), flush=True)


async def _client(args: argparse.Namespace) -> list:
    from dripline.core import AsyncInterface
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)),
                     daemon=True).start()
    records: list[tuple[float, float, str]] = []
    mesh = {"broker": "127.0.0.1", "broker_port": args.port}

    async def worker(dl: Any, n: int) -> None:
        i = n * 1_000_000
        while not stop.is_set():
            i += 1
            t0, m0 = time.time(), time.monotonic()
            try:
                result = await dl.cmd(args.endpoint, "add", [i, 1], timeout_s=args.request_timeout)
                outcome = "ok" if result == i + 1 else "wrong-answer"
            except Exception as err:  # every outcome is a figure
                outcome = type(err).__name__
            records.append((t0, time.monotonic() - m0, outcome))
            if outcome != "ok":
                await asyncio.sleep(0.05)

    async with AsyncInterface(dripline_mesh=mesh, timeout_s=args.request_timeout) as dl:
        print("READY", flush=True)
        await asyncio.gather(*(worker(dl, n) for n in range(args.concurrency)))
    return records


# ---------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from dripline.testing.rabbitmq import RabbitNode
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="dl_faults_"))
        (self.tmp / "fault_endpoints.py").write_text(ENDPOINTS_PY)
        self.guard = RssGuard(args.rss_cap_mb * MB)
        self.node = RabbitNode()
        self.results: dict[str, dict] = {}
        self.verdicts: list[tuple[str, str, bool]] = []
        self.services: list[ServiceProc] = []
        self.last_probe_error = ""

    # ---- helpers
    def uid(self, prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:8]}"

    def mesh(self) -> dict:
        return {"broker": "127.0.0.1", "broker_port": self.node.port}

    def answers(self, routing_key: str, op: str, specifier: str | None, timeout_s: float) -> bool:
        """A fresh client's request answered with return code 0 (a new connection every time, so
        the service's recovery is measured, not this client's)."""
        from dripline.core import Interface
        try:
            with Interface(dripline_mesh=dict(self.mesh(), max_connection_attempts=1),
                           timeout_s=timeout_s) as dl:
                if op == "cmd":
                    dl.cmd(routing_key, specifier or "ping")
                else:
                    dl.get(routing_key, specifier)
            return True
        except Exception as err:
            self.last_probe_error = f"{type(err).__name__}: {err}"
            return False

    def depth(self, queue: str) -> int:
        """Messages ready in `queue` of the private node (0 if it does not exist)."""
        try:
            rows = self.node.list_queues("name", "messages")
        except Exception:
            return 0
        return sum(int(r.get("messages") or 0) for r in rows if r.get("name") == queue)

    def echo_service(self, label: str, **extra: Any) -> tuple[ServiceProc, str]:
        name, ep = self.uid("faults_svc"), self.uid("faults_ep")
        config = {"name": name, "heartbeat_interval_s": 5, "dripline_mesh": self.mesh(),
                  "endpoints": [{"name": ep, "module": "FaultEcho",
                                 "module_path": str(self.tmp / "fault_endpoints.py")}]}
        config.update(extra)
        svc = ServiceProc(self, config, label).start()
        self.services.append(svc)
        return svc, ep

    def verdict(self, phase: str, figure: str, value: str, target: str, ok: bool | None) -> None:
        mark = "(figure)" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {figure:<46} {value:>26}   {target:<16} {mark}", flush=True)
        if ok is not None:
            self.verdicts.append((phase, figure, ok))

    def header(self, text: str) -> None:
        print(f"\n== {text}", flush=True)
        print(f"  {'figure':<46} {'value':>26}   {'target':<16}", flush=True)

    def close(self) -> None:
        for svc in self.services:
            try:
                svc.stop()
            except Exception as err:
                print(f"note: stopping {svc.label}: {err}", file=sys.stderr)
        self.guard.close()
        self.node.close()
        if not self.args.keep:
            import shutil
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- phase: broker restarts under load
    def phase_restarts(self) -> dict:
        a = self.args
        count = a.restarts
        svc, ep = self.echo_service("restarts service")
        out = self.tmp / "client_records.json"
        client = spawn([sys.executable, os.path.abspath(__file__), "--role", "client",
                        "--port", str(self.node.port), "--endpoint", ep, "--out", str(out),
                        "--concurrency", str(a.concurrency), "--request-timeout",
                        str(a.request_timeout)],
                       signal.SIGKILL, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = client.stdout.readline() if client.stdout else ""
        if not line.startswith("READY"):
            raise RuntimeError(f"load client did not start: {line!r}")
        service_pid = svc.pid
        events = []
        service_recovered = 0
        hangs = 0
        kinds = []
        try:
            for i in range(count):
                time.sleep(a.steady_s)
                hard = i % 2 == 1
                kinds.append("kill -9" if hard else "graceful")
                t_fault = time.time()
                self.node.restart(hard=hard)
                t_back = time.time()
                ok = self._probe_until(ep, a.recover_s)
                t_service = time.time()
                if ok:
                    service_recovered += 1
                else:
                    hangs += 1
                events.append({"kind": kinds[-1], "fault": t_fault, "back": t_back,
                               "service": t_service if ok else None,
                               "broker_down_s": t_back - t_fault})
                print(f"   restart {i + 1}/{count} ({kinds[-1]}): broker back after "
                      f"{t_back - t_fault:.1f} s, service answering "
                      f"{'after %.1f s' % (t_service - t_back) if ok else 'NO'}", flush=True)
            time.sleep(a.steady_s)
        finally:
            if client.stdin:
                client.stdin.close()
            try:
                client.wait(a.request_timeout * 3 + 30)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait(10)
        client_alive_to_end = client.returncode == 0
        records = json.loads(out.read_text()) if out.exists() else []
        failed = [r for r in records if r[2] != "ok"]
        reasons = collections.Counter(r[2] for r in failed)
        longest = max((r[1] for r in records), default=0.0)
        client_recovered = 0
        client_delays, service_delays = [], []
        for ev in events:
            firsts = [r[0] + r[1] for r in records if r[2] == "ok" and r[0] >= ev["back"]]
            if firsts:
                client_recovered += 1
                client_delays.append(min(firsts) - ev["back"])
            if ev["service"] is not None:
                service_delays.append(ev["service"] - ev["back"])
        service_alive = svc.alive and svc.pid == service_pid
        res = {"restarts": count, "kinds": kinds, "service_recovered": service_recovered,
               "client_recovered": client_recovered, "hangs": hangs, "requests": len(records),
               "failed": len(failed), "failure_kinds": dict(reasons), "longest_request_s": longest,
               "client_recovery_s": client_delays, "service_recovery_s": service_delays,
               "broker_down_s": [ev["broker_down_s"] for ev in events],
               "service_process_survived": service_alive, "client_process_ok": client_alive_to_end}
        self.header(f"restarts: broker restarted {count} times ({kinds.count('graceful')} graceful, "
                    f"{kinds.count('kill -9')} kill -9) under load ({a.concurrency} requests in "
                    "flight)")
        self.verdict("restarts", "service recoveries (fresh client answered)",
                     f"{service_recovered}/{count}", f"{count}/{count}", service_recovered == count)
        self.verdict("restarts", "client recoveries (same client answered)",
                     f"{client_recovered}/{count}", f"{count}/{count}", client_recovered == count)
        self.verdict("restarts", "hangs", str(hangs + (count - client_recovered)), "0",
                     hangs == 0 and client_recovered == count)
        self.verdict("restarts", "service / client process survived",
                     f"{service_alive} / {client_alive_to_end}", "True / True",
                     service_alive and client_alive_to_end)
        self.verdict("restarts", "requests sent / failed", f"{len(records)} / {len(failed)}", "", None)
        self.verdict("restarts", "failures by kind",
                     ", ".join(f"{k} {v}" for k, v in reasons.most_common()) or "-", "", None)
        self.verdict("restarts", "longest request (s)", f"{longest:.2f}",
                     f"<= {a.request_timeout + 2:g} (timeout+2)", longest <= a.request_timeout + 2)
        self.verdict("restarts", "broker down per restart (s) med [max]",
                     _med_max(res["broker_down_s"]), "", None)
        self.verdict("restarts", "service answers after broker back (s)",
                     _med_max(service_delays), "", None)
        self.verdict("restarts", "client answered after broker back (s)",
                     _med_max(client_delays), "", None)
        return res

    def _probe_until(self, ep: str, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self._add_works(ep):
                return True
            time.sleep(0.2)
        return False

    def _add_works(self, ep: str, timeout_s: float = 3.0) -> bool:
        from dripline.core import Interface
        try:
            with Interface(dripline_mesh=dict(self.mesh(), max_connection_attempts=1),
                           timeout_s=timeout_s) as dl:
                return dl.cmd(ep, "add", [2, 3]) == 5
        except Exception as err:
            self.last_probe_error = f"{type(err).__name__}: {err}"
            return False

    # ---- phase: handler exceptions
    def phase_exceptions(self) -> dict:
        n = self.args.exceptions
        svc, ep = self.echo_service("exceptions service")
        raw = RawAMQP(self.node.port)
        log0 = svc.log_bytes()
        body = json.dumps({"values": []}).encode()
        window = 300
        sent = 0
        deadline = time.monotonic() + self.args.phase_max_s
        try:
            while sent < n and svc.alive and time.monotonic() < deadline:
                while sent < n and sent - raw.replies < window:
                    raw.request(ep, body, request_headers(9, "fail"))
                    sent += 1
                raw.pump(0.01)
            raw.wait_replies(n, 60, idle=20, alive=lambda: svc.alive)
            sample = raw.samples[0] if raw.samples else ({}, b"")
        finally:
            raw.close()
        time.sleep(1.0)  # let the last log lines reach the file
        log_bytes = svc.log_bytes() - log0
        died = not svc.alive
        answering = (not died) and self.answers(ep, "get", None, 10)
        codes = {str(k): v for k, v in raw.codes.items()}
        message = str(sample[0].get("return_message", ""))
        res = {"requests": n, "sent": sent, "replies": raw.replies, "codes": codes,
               "deaths": int(died), "log_bytes": log_bytes, "log_bytes_per_exception":
               log_bytes / max(1, sent), "answering_after": answering,
               "reply_message_sample": message[:200]}
        self.header(f"exceptions: {n} requests whose handler raises ValueError")
        self.verdict("exceptions", "deaths", str(int(died)), "0", not died)
        self.verdict("exceptions", "still answering afterwards", str(answering), "True", answering)
        self.verdict("exceptions", "error replies received", f"{raw.replies}/{sent}",
                     f"{n}/{n}", raw.replies == n)
        self.verdict("exceptions", "return codes", ", ".join(f"{k}: {v}" for k, v in codes.items()),
                     "", None)
        names_error = "ValueError" in message and "always fails" in message
        self.verdict("exceptions", "reply names the exception type and message",
                     str(names_error), "True", names_error)
        self.verdict("exceptions", "log bytes written (default verbosity)", f"{log_bytes:,}", "", None)
        self.verdict("exceptions", "log bytes per exception", f"{log_bytes / max(1, sent):.1f}",
                     "", None)
        return res

    # ---- phase: fuzz
    def phase_fuzz(self) -> dict:
        n = self.args.fuzz
        svc, ep = self.echo_service("fuzz service")
        raw = RawAMQP(self.node.port)
        crashed = False
        try:
            # warm-up with valid requests, so that "before" includes what any service holds
            for i in range(1000):
                raw.request(ep, json.dumps({"values": [i, 1]}).encode(), request_headers(9, "add"))
            raw.wait_replies(1000, 60, idle=15, alive=lambda: svc.alive)
            time.sleep(1.0)
            rss_before = svc.rss()
            self.guard.reset_peak(svc.pid or 0)
            fuzzer = Fuzzer(self.args.seed, ep, svc.name, raw.reply_queue)
            sent = published_bytes = unencodable = 0
            import pika
            deadline = time.monotonic() + self.args.phase_max_s
            t0 = time.monotonic()
            while sent < n and time.monotonic() < deadline:
                if not svc.alive:
                    crashed = True
                    break
                for _ in range(min(500, n - sent)):
                    key, body, props = fuzzer.request()
                    try:
                        raw.publish(key, body, **props)
                    except (pika.exceptions.UnsupportedAMQPFieldException, struct.error,
                            ValueError, TypeError):
                        unencodable += 1  # a value pika cannot write; not sent, not counted
                        continue
                    sent += 1
                    published_bytes += len(body)
                raw.pump(0)
                if sent % 5000 < 500:  # keep the backlog bounded (the service queue is exclusive,
                    # so its depth is asked of rabbitmqctl, about a second per call)
                    while self.depth(svc.name) > 10000 and svc.alive \
                            and time.monotonic() < deadline:
                        raw.pump(1.0)
                if sent % 20000 < 500:
                    print(f"   fuzz: {sent}/{n} sent, {raw.replies} replies, service RSS "
                          f"{svc.rss() / MB:.0f} MB", flush=True)
            publish_s = time.monotonic() - t0
            # drain: the service's queue empty and no reply for 5 s (bounded)
            drain_deadline = time.monotonic() + 300
            last, quiet_since = raw.replies, time.monotonic()
            while svc.alive and time.monotonic() < drain_deadline:
                raw.pump(0.2)
                if raw.replies != last:
                    last, quiet_since = raw.replies, time.monotonic()
                elif time.monotonic() - quiet_since > 5 and self.depth(svc.name) == 0:
                    break
            time.sleep(3.0)  # chunk waits of incomplete requests expire (1 s by default)
            crashed = crashed or not svc.alive
            rss_after = svc.rss()
            peak = self.guard.peak(svc.pid or 0)
        finally:
            raw.close()
        answering = (not crashed) and self.answers(ep, "get", None, 10) and self._add_works(ep)
        ratio = rss_after / max(1, rss_before)
        res = {"requests": sent, "bytes": published_bytes, "replies": raw.replies,
               "crashes": int(crashed), "rss_before": rss_before, "rss_after": rss_after,
               "rss_peak": peak, "rss_ratio": ratio, "answering_after": answering,
               "publish_s": publish_s, "unencodable_skipped": unencodable, "guard_killed": self.guard.killed(svc.pid or 0),
               "codes": {str(k): v for k, v in raw.codes.most_common(12)}}
        self.header(f"fuzz: {sent:,} hostile requests (seed {self.args.seed})")
        self.verdict("fuzz", "requests sent", f"{sent:,}", f">= {n:,}", sent >= n)
        self.verdict("fuzz", "crashes", str(int(crashed)), "0", not crashed)
        self.verdict("fuzz", "still answering afterwards", str(answering), "True", answering)
        if not answering:
            print(f"     (last probe error: {self.last_probe_error[:300]})", flush=True)
            res["probe_error"] = self.last_probe_error
        self.verdict("fuzz", "RSS before -> after (MB)",
                     f"{rss_before / MB:.0f} -> {rss_after / MB:.0f}", "", None)
        self.verdict("fuzz", "RSS after / before", f"{ratio:.2f}", f"<= {FUZZ_RSS_RATIO}",
                     (not crashed) and ratio <= FUZZ_RSS_RATIO)
        self.verdict("fuzz", "peak RSS (MB)", f"{peak / MB:.0f}", "", None)
        self.verdict("fuzz", "replies received", f"{raw.replies:,}", "", None)
        self.verdict("fuzz", "reply codes (most common)",
                     ", ".join(f"{k}:{v}" for k, v in raw.codes.most_common(6)), "", None)
        return res

    # ---- phase: chunk abuse
    def phase_chunks(self) -> dict:
        a = self.args
        shapes = [
            ("one empty-body request announcing 2^32 chunks", 1, 0, UINT32_CHUNKS, 15.0),
            (f"{a.tiny_chunks:,} 10-byte first chunks announcing 1,000,000", a.tiny_chunks, 10,
             1_000_000, a.shape_wait_s),
            (f"{a.big_chunks:,} incomplete 100 kB chunks", a.big_chunks, 100_000, 2,
             a.shape_wait_s),
        ]
        res: dict[str, Any] = {}
        self.header("chunks: chunk-abuse shapes, each against a fresh service")
        for label, count, size, announced, wait_s in shapes:
            res[label] = self._chunk_shape(label, count, size, announced, wait_s)
        return res

    def _chunk_shape(self, label: str, count: int, size: int, announced: int, wait_s: float) -> dict:
        svc, ep = self.echo_service(f"chunks service ({label})")
        time.sleep(0.5)
        rss_start = svc.rss()
        self.guard.reset_peak(svc.pid or 0)
        raw = RawAMQP(self.node.port)
        body_bytes: dict[str, int] = {}
        rng = random.Random(self.args.seed)
        try:
            for i in range(count):
                body = bytes(rng.choice(b"0123456789abcdef") for _ in range(min(size, 64)))
                body = (body * (size // max(1, len(body)) + 1))[:size]
                corr = raw.request(ep, body, request_headers(9, "echo"),
                                   message_id=f"{uuid.uuid4()}/0/{announced}")
                body_bytes[corr] = len(body)
                if i % 200 == 199:
                    raw.pump(0)
                    if not svc.alive:
                        break
            published = time.monotonic()
            # bounded: the replies (one per request expected, small), the guard, or wait_s
            raw.wait_replies(count, wait_s, alive=lambda: svc.alive)
            if svc.alive:  # a little longer for late reply chunks and the memory to settle
                end = time.monotonic() + 3.0
                while time.monotonic() < end and svc.alive:
                    raw.pump(0.2)
            waited = time.monotonic() - published
            answering = svc.alive and self.answers(ep, "get", None, 10)
            rss_after = svc.rss()
            peak = self.guard.peak(svc.pid or 0)
            killed = self.guard.killed(svc.pid or 0)
        finally:
            raw.close()
        input_bytes = sum(body_bytes.values())
        reply_total = sum(raw.reply_bytes.values())
        excess = max((raw.reply_bytes.get(c, 0) - b for c, b in body_bytes.items()), default=0)
        replied = sum(1 for c in body_bytes if c in raw.reply_bytes)
        died = not svc.alive
        svc.kill()  # every shape gets a fresh service
        ratio = (reply_total / input_bytes) if input_bytes else None
        print(f"  -- {label}", flush=True)
        self.verdict("chunks", "   peak RSS (MB)", f"{peak / MB:.0f}", f"< {CHUNK_PEAK_MB}",
                     peak < CHUNK_PEAK_MB * MB and not killed)
        self.verdict("chunks", "   RSS start -> after (MB)",
                     f"{rss_start / MB:.0f} -> {rss_after / MB:.0f}"
                     + (" (killed)" if killed else " (died)" if died else ""), "", None)
        self.verdict("chunks", "   reply bytes per input byte",
                     f"{ratio:.3f}" if ratio is not None else f"{reply_total} B / 0 B", "", None)
        self.verdict("chunks", "   worst (reply - request) bytes", f"{excess:,}",
                     f"<= {REPLY_EXCESS_LIMIT}", excess <= REPLY_EXCESS_LIMIT)
        self.verdict("chunks", "   requests answered / sent", f"{replied:,}/{len(body_bytes):,}",
                     "", None)
        self.verdict("chunks", "   deaths", str(int(died)), "0", not died)
        self.verdict("chunks", "   still answering afterwards", str(answering), "True", answering)
        return {"count": count, "size": size, "announced": announced, "peak_rss": peak,
                "rss_start": rss_start, "rss_after": rss_after, "input_bytes": input_bytes,
                "reply_bytes": reply_total, "reply_per_input": ratio, "worst_excess": excess,
                "replied": replied, "died": died, "guard_killed": killed,
                "answering_after": answering, "waited_s": waited}

    # ---- phase: sensor logger through a PostgreSQL outage and a kill -9
    def phase_logger(self) -> dict:
        import psycopg
        a = self.args
        db = self.uid("dl_faults")
        admin = psycopg.connect(a.pg_dsn, autocommit=True)
        admin.execute(f"CREATE DATABASE {db}")
        proxy = CuttableProxy(a.pg_port)
        logger_svc: ServiceProc | None = None
        try:
            with psycopg.connect(a.pg_dsn.replace("dbname=postgres", f"dbname={db}"),
                                 autocommit=True) as conn:
                conn.execute('CREATE TABLE numeric_data (sensor_name text NOT NULL, '
                             '"timestamp" timestamptz NOT NULL, value_raw double precision '
                             'NOT NULL, value_cal double precision)')
            sensor = self.uid("faults_sensor")
            name = self.uid("faults_logger")
            config = {
                "name": name, "module": "PostgresSensorLogger", "heartbeat_interval_s": 5,
                "dripline_mesh": self.mesh(), "durable_queue": True,
                "insertion_table_endpoint_name": "values_table",
                "database_url": f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{db}",
                "alert_keys": [f"sensor_value.{sensor}"],
                "alert_key_parser_re": r"sensor_value\.(?P<sensor_name>\w+)",
                "retry_interval_s": 1.0,
                "endpoints": [{"name": "values_table", "module": "SQLTable",
                               "table_name": "numeric_data",
                               "required_insert_names": ["sensor_name", "timestamp", "value_raw"],
                               "optional_insert_names": ["value_cal"]}]}
            logger_svc = ServiceProc(self, config, "sensor logger").start()
            self.services.append(logger_svc)

            sent = [0]
            publish_errors: list[str] = []
            stop = threading.Event()

            def publish() -> None:
                from dripline.core import Interface
                with Interface(dripline_mesh=self.mesh()) as dl:
                    period = 1.0 / a.alert_rate
                    t0 = time.monotonic()
                    while not stop.is_set():
                        due = int((time.monotonic() - t0) / period) + 1
                        while sent[0] < due and not stop.is_set():
                            try:
                                dl.send_alert(f"sensor_value.{sensor}",
                                              {"value_raw": sent[0], "value_cal": 2.0 * sent[0]})
                                sent[0] += 1
                            except Exception as err:  # counted, never hidden
                                publish_errors.append(repr(err))
                                time.sleep(0.1)
                        time.sleep(0.005)

            publisher = threading.Thread(target=publish, name="alert-publisher", daemon=True)
            t0 = time.monotonic()
            publisher.start()
            timeline = []

            def at(offset: float) -> None:
                time.sleep(max(0.0, t0 + offset - time.monotonic()))

            direct = psycopg.connect(a.pg_dsn.replace("dbname=postgres", f"dbname={db}"),
                                     autocommit=True)  # not through the proxy

            def rows_now() -> int:
                return direct.execute("SELECT count(*) FROM numeric_data").fetchone()[0]

            at(a.outage_at_s)
            proxy.cut()
            rows_at_cut = rows_now()
            timeline.append(("PostgreSQL cut", time.monotonic() - t0))
            print(f"   logger: PostgreSQL cut at {time.monotonic() - t0:.1f} s", flush=True)
            at(a.outage_at_s + a.outage_s)
            rows_during_outage = rows_now() - rows_at_cut
            proxy.restore()
            timeline.append(("PostgreSQL back", time.monotonic() - t0))
            print(f"   logger: PostgreSQL back at {time.monotonic() - t0:.1f} s", flush=True)
            at(a.outage_at_s + a.outage_s + a.kill_after_s)
            logger_svc.kill()
            timeline.append(("logger kill -9", time.monotonic() - t0))
            print(f"   logger: kill -9 at {time.monotonic() - t0:.1f} s", flush=True)
            time.sleep(1.0)
            logger_svc.start()
            timeline.append(("logger restarted", time.monotonic() - t0))
            print(f"   logger: restarted, answering at {time.monotonic() - t0:.1f} s", flush=True)
            at(a.logger_run_s)
            stop.set()
            publisher.join(30)
            total = sent[0]
            # wait for the rows: all stored, or no progress for 30 s (bounded)
            stored = distinct = 0
            last, last_change = -1, time.monotonic()
            deadline = time.monotonic() + 300
            with psycopg.connect(a.pg_dsn.replace("dbname=postgres", f"dbname={db}"),
                                 autocommit=True) as conn:
                while time.monotonic() < deadline:
                    stored, distinct = conn.execute(
                        "SELECT count(*), count(DISTINCT value_raw) FROM numeric_data").fetchone()
                    if distinct >= total:
                        time.sleep(2.0)  # a duplicate may still be in flight
                        stored, distinct = conn.execute(
                            "SELECT count(*), count(DISTINCT value_raw) FROM numeric_data").fetchone()
                        break
                    if stored != last:
                        last, last_change = stored, time.monotonic()
                    elif time.monotonic() - last_change > 30:
                        break
                    time.sleep(0.5)
            logger_alive = logger_svc.alive
            direct.close()
        finally:
            if logger_svc is not None:
                logger_svc.stop()
                self._delete_queue(f"{logger_svc.name}.alerts")
            proxy.close()
            try:
                admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            finally:
                admin.close()
        lost = total - distinct
        duplicated = stored - distinct
        res = {"alerts_sent": total, "rows": stored, "distinct": distinct, "lost": lost,
               "duplicated": duplicated, "publish_errors": len(publish_errors),
               "outage_s": a.outage_s, "rows_stored_during_outage": rows_during_outage,
               "timeline": timeline, "logger_alive_at_end": logger_alive}
        self.header(f"logger: durable-queue sensor logger, {a.alert_rate:g} alerts/s, "
                    f"{a.outage_s:g} s PostgreSQL outage (proxy cut), then kill -9 and restart")
        self.verdict("logger", "alerts sent", f"{total:,}", "", None)
        self.verdict("logger", "rows stored while PostgreSQL was cut (sanity)",
                     str(rows_during_outage), "0", rows_during_outage == 0)
        self.verdict("logger", "publish errors", str(len(publish_errors)), "", None)
        self.verdict("logger", "rows stored / distinct", f"{stored:,} / {distinct:,}", "", None)
        self.verdict("logger", "alerts lost", f"{lost:,}", "0", lost == 0)
        self.verdict("logger", "rows duplicated", f"{duplicated:,}", "0 (issue 13)", duplicated == 0)
        self.verdict("logger", "logger running at the end", str(logger_alive), "True", logger_alive)
        return res

    def _delete_queue(self, name: str) -> None:
        try:
            raw = RawAMQP(self.node.port)
            raw.ch.queue_delete(name)
            raw.close()
        except Exception as err:
            print(f"note: could not delete queue {name}: {err}", file=sys.stderr)


def _med_max(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} [{max(values):.1f}]"


def run(args: argparse.Namespace) -> int:
    only = [p.strip() for p in (args.only or ",".join(PHASES)).split(",") if p.strip()]
    unknown = [p for p in only if p not in PHASES]
    if unknown:
        print(f"unknown phase(s) {unknown}; choose from {', '.join(PHASES)}", file=sys.stderr)
        return 2
    bench = Bench(args)
    # this process's own log (probes, the alert publisher, the harness) goes to a file, so that the
    # reconnect warnings expected during the faults do not interleave with the table
    logging.basicConfig(filename=str(bench.tmp / "bench.log"), level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.keep:
        print(f"logs in {bench.tmp}", flush=True)
    t_start = time.monotonic()
    try:
        print(f"fault suite: phases {', '.join(only)}{' (quick)' if args.quick else ''}; "
              f"starting a private RabbitMQ node ...", flush=True)
        t = time.monotonic()
        bench.node.start()
        print(f"private node {bench.node.node_name} on 127.0.0.1:{bench.node.port} "
              f"(started in {time.monotonic() - t:.1f} s)", flush=True)
        for phase in only:
            t = time.monotonic()
            try:
                bench.results[phase] = getattr(bench, f"phase_{phase}")()
            except Exception as err:  # a phase that breaks is a FAIL with its reason, not a crash
                print(f"\n== {phase}: the phase could not run: {type(err).__name__}: {err}",
                      flush=True)
                bench.verdicts.append((phase, "phase ran", False))
                bench.results[phase] = {"error": f"{type(err).__name__}: {err}"}
            bench.results[phase]["phase_s"] = round(time.monotonic() - t, 1)
    finally:
        bench.close()
    passed = sum(1 for v in bench.verdicts if v[2])
    failed = [f"{p}: {f.strip()}" for p, f, ok in bench.verdicts if not ok]
    print(f"\nsummary: {passed} PASS, {len(failed)} FAIL in {time.monotonic() - t_start:.0f} s"
          + ("".join(f"\n  FAIL {f}" for f in failed)), flush=True)
    print("BENCH_JSON " + json.dumps({"phases": bench.results, "pass": passed,
                                      "fail": failed, "quick": args.quick}, default=str))
    return 1 if (failed and args.fail_on_miss) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["main", "client"], default="main", help=argparse.SUPPRESS)
    parser.add_argument("--only", help=f"comma-separated phases: {', '.join(PHASES)}")
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--exceptions", type=int, default=10_000)
    parser.add_argument("--fuzz", type=int, default=100_000)
    parser.add_argument("--tiny-chunks", type=int, default=20_000)
    parser.add_argument("--big-chunks", type=int, default=6_000)
    parser.add_argument("--shape-wait-s", type=float, default=60.0,
                        help="longest wait for the replies of one chunk shape")
    parser.add_argument("--outage-s", type=float, default=30.0)
    parser.add_argument("--alert-rate", type=float, default=200.0)
    parser.add_argument("--rss-cap-mb", type=int, default=2048,
                        help="a service above this RSS is killed (and the phase fails)")
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 if any figure FAILs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    # tuning and child-role options
    parser.add_argument("--concurrency", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--request-timeout", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--steady-s", type=float, default=3.0, help=argparse.SUPPRESS)
    parser.add_argument("--recover-s", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--phase-max-s", type=float, default=600.0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "client":
        client_main(args)
        return
    args.outage_at_s, args.kill_after_s, args.logger_run_s = 5.0, 10.0, 0.0
    if args.quick:
        args.restarts = min(args.restarts, 2)
        args.exceptions = min(args.exceptions, 500)
        args.fuzz = min(args.fuzz, 3000)
        args.tiny_chunks = min(args.tiny_chunks, 300)
        args.big_chunks = min(args.big_chunks, 60)
        args.shape_wait_s = min(args.shape_wait_s, 10.0)
        args.outage_s = min(args.outage_s, 3.0)
        args.outage_at_s, args.kill_after_s = 2.0, 2.0
        args.steady_s = min(args.steady_s, 1.0)
    args.logger_run_s = args.outage_at_s + args.outage_s + args.kill_after_s + 10.0
    if args.pg_dsn and "127.0.0.1" not in args.pg_dsn and "localhost" not in args.pg_dsn:
        parser.error("loopback only: --pg-dsn must name host=127.0.0.1 or localhost")
    try:
        sys.exit(run(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
