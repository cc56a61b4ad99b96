#!/usr/bin/env python3
"""HTTP gateway benchmark: what dl-http-server adds to a get, and how one live page keeps up.

Two parts, everything on loopback (the broker must run on 127.0.0.1:5672 or --host/--port):

1. **Gateway overhead.** A KeyValueStore is served by ``dl-serve`` in a child process. The bench
   process (uvloop) then sends, interleaved round by round so that load from other processes
   hits every path alike:
     - ``AsyncInterface.get`` directly (the baseline),
     - ``GET /dl/<endpoint>`` to the real ``dl-http-server`` (child process), and, for the choice
       of framework, to two minimal gateways doing only that one thing with the same
       AsyncInterface: **aiohttp** and **Starlette on uvicorn** (httptools parser; skipped when
       starlette/uvicorn are not installed: ``pip install starlette uvicorn httptools``);
   over keep-alive HTTP/1.1 connections. It reports p50/p99 and the p50 overhead over the direct
   get (target <= 1 ms), plus each gateway process's CPU time per request.

2. **One page following 200 endpoints.** A publisher child process sends ``sensor_value.<ep>``
   alerts for 200 endpoints, 10 a second each (2000 alerts/s), with dripline's own client code,
   payload ``{"value_raw": <sequence>, "sent": <publish time>}``, for --flood-s seconds. An SSE
   client in the bench process reads ``/events`` exactly as the page's EventSource does and
   checks every (endpoint, sequence) arrived: alerts dropped (target 0), latency publish ->
   event parsed p50/p99 (target p99 <= 250 ms), and the gateway's CPU use (% of one core).

Output: a table, PASS/MISS lines and one ``BENCH_JSON {...}`` line. Children are stopped in a
``finally`` and die with this process (parent-death signal + watchdog); every loop is bounded.

    python bench/http_gateway.py                # 2000 requests per path, 20 s flood
    python bench/http_gateway.py --quick        # small counts: a smoke test, figures are noise
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from _children import die_with_parent, start_watchdog, terminate_self  # beside this script

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TARGET_OVERHEAD_MS = 1.0
TARGET_P99_MS = 250.0
FLOOD_ENDPOINTS = 200
FLOOD_HZ = 10
CHILD_MAX_S = 900
START_TIMEOUT_S = 60


# ============================================================================== children
def _mesh(args: argparse.Namespace) -> dict:
    return {"broker": args.host, "broker_port": args.port}


def mini_main(args: argparse.Namespace) -> None:
    """A minimal gateway: GET /dl/<path> -> AsyncInterface get -> JSON; nothing else."""
    die_with_parent()
    start_watchdog(CHILD_MAX_S, terminate_self, grace_s=5)
    import orjson
    import uvloop

    from dripline.client.interface import AsyncInterface
    from dripline.client.request_sender import build_request
    from dripline.protocol.message import op_t

    async def serve() -> None:
        dl = AsyncInterface(dripline_mesh=_mesh(args), name="bench-mini")
        await dl.start()

        async def get(path: str) -> tuple[bytes, int]:
            reply = await dl.send_request(build_request(op_t.get, path.replace("/", ".")))
            return orjson.dumps(reply.payload), reply.return_code

        if args.mini == "aiohttp":
            from aiohttp import web

            async def handler(request: web.Request) -> web.Response:
                body, code = await get(request.match_info["path"])
                return web.Response(body=body, content_type="application/json",
                                    headers={"dl_return_code": str(code)})
            app = web.Application()
            app.router.add_get("/dl/{path:.+}", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            print(f"PORT {port}", flush=True)
            await asyncio.Event().wait()
        else:
            import socket

            import uvicorn
            from starlette.applications import Starlette
            from starlette.responses import Response
            from starlette.routing import Route

            async def endpoint(request: Any) -> Response:
                body, code = await get(request.path_params["path"])
                return Response(body, media_type="application/json", headers={"dl_return_code": str(code)})
            app = Starlette(routes=[Route("/dl/{path:path}", endpoint)])
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            print(f"PORT {sock.getsockname()[1]}", flush=True)
            config = uvicorn.Config(app, log_level="warning", http="httptools", loop="none",
                                    lifespan="off")
            await uvicorn.Server(config).serve(sockets=[sock])

    uvloop.run(serve())


def publisher_main(args: argparse.Namespace) -> None:
    """Send sensor_value alerts for FLOOD_ENDPOINTS endpoints at FLOOD_HZ each for flood_s."""
    die_with_parent()
    start_watchdog(CHILD_MAX_S, terminate_self, grace_s=5)
    import uvloop

    from dripline.client.session import Core

    async def publish() -> None:
        core = Core(_mesh(args), connection_name="dripline:bench-publisher")
        await core.start()
        names = [f"{args.prefix}_{i:03d}" for i in range(FLOOD_ENDPOINTS)]
        sys.stdin.readline()  # warm up: the page meets every endpoint once, as on a running mesh
        for name in names:
            core.send_alert(f"sensor_value.{name}", {"value_raw": -1, "sent": time.time()})
        print("READY", flush=True)
        sys.stdin.readline()  # go
        period = 1.0 / FLOOD_HZ
        start = time.monotonic()
        rounds = int(args.flood_s * FLOOD_HZ)
        sent = 0
        for seq in range(rounds):
            due = start + seq * period
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # spread one round over the period in 10 slices, as independent sensors would be
            for part in range(10):
                for name in names[part::10]:
                    core.send_alert(f"sensor_value.{name}", {"value_raw": seq, "sent": time.time()})
                    sent += 1
                await asyncio.sleep(period / 12)
        await asyncio.sleep(0.5)
        print(f"SENT {sent}", flush=True)
        await core.close()

    uvloop.run(publish())


class Child:
    """A child process of this script, with its first stdout lines parsed."""

    def __init__(self, cmd: list[str], stdin: bool = False, stderr_file: Path | None = None) -> None:
        self.err = open(stderr_file, "w") if stderr_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.PIPE if stdin else None,
                                     stderr=self.err, text=True)

    def readline(self, timeout: float = START_TIMEOUT_S) -> str:
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not result:
            raise RuntimeError(f"no output from {self.proc.args[:4]} within {timeout} s")
        return result[0].strip()

    def cpu_s(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.err is not subprocess.DEVNULL:
            self.err.close()


def start_gateway(args: argparse.Namespace, tmp: Path, words: list[str] | None = None) -> Child:
    config = tmp / "gateway.yaml"
    config.write_text(json.dumps({"dripline_mesh": _mesh(args), "http_port": 0,
                                  "max_inflight": 256, "ping_interval_s": 30,
                                  "services": ["bench_http_*"]}))  # leave other services alone
    log = tmp / "gateway.log"
    child = Child([sys.executable, "-m", "dripline.cli.http_server", "-c", str(config), *(words or [])],
                  stderr_file=log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        m = re.search(r"serving http://[^:]+:(\d+)/", log.read_text())
        if m:
            child.port = int(m.group(1))  # type: ignore[attr-defined]
            return child
        if child.proc.poll() is not None:
            break
        time.sleep(0.1)
    child.stop()
    raise RuntimeError("dl-http-server did not start:\n" + log.read_text()[-2000:])


# ============================================================================== part 1
class KeepAliveClient:
    """The smallest correct HTTP/1.1 keep-alive client for GETs (Content-Length bodies)."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.request = port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

    async def open(self) -> "KeepAliveClient":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def get(self) -> None:
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"gateway answered {head[:60]!r}")
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        await self.reader.readexactly(int(m.group(1)) if m else 0)

    def close(self) -> None:
        self.writer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_overhead(args: argparse.Namespace, endpoint: str, gateways: dict[str, Child]) -> dict:
    from dripline.client.interface import AsyncInterface
    dl = AsyncInterface(dripline_mesh=_mesh(args), name="bench-direct")
    await dl.start()

    async def direct() -> None:
        await dl.get(endpoint)
    paths: dict[str, Callable[[], Awaitable[None]]] = {"direct AsyncInterface.get": direct}
    clients = []
    for label, child in gateways.items():
        client = await KeepAliveClient(child.port, f"/dl/{endpoint}").open()  # type: ignore[attr-defined]
        clients.append(client)
        paths[label] = client.get
    lat: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, float] = {k: 0.0 for k in paths}
    warm = max(20, args.requests // 10)
    for i in range(args.requests + warm):
        for label, call in paths.items():
            child = gateways.get(label)
            c0 = child.cpu_s() if child else 0.0
            t0 = time.perf_counter()
            await call()
            dt = time.perf_counter() - t0
            if i >= warm:
                lat[label].append(dt * 1000)
                if child:
                    cpu[label] += child.cpu_s() - c0
    for client in clients:
        client.close()
    await dl.close()
    base = statistics.median(lat["direct AsyncInterface.get"])
    return {label: {"p50_ms": statistics.median(v), "p99_ms": percentile(v, 0.99),
                    "overhead_p50_ms": statistics.median(v) - base,
                    "cpu_us_per_request": cpu[label] / len(v) * 1e6 if label in gateways else None}
            for label, v in lat.items()}


# ============================================================================== part 2
async def follow_flood(args: argparse.Namespace, gateway: Child, publisher: Child) -> dict:
    prefix = args.prefix
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)  # type: ignore[attr-defined]
    writer.write(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/events answered {head[:80]!r}")
    chunked = b"chunked" in head.lower()
    seen: set[tuple[str, int]] = set()
    latencies: list[float] = []
    at_gateway: list[float] = []   # publish -> handled by the gateway (broker + gateway input)
    dropped_reported = 0
    buffer = b""

    async def read_chunk() -> bytes:
        if not chunked:
            return await reader.read(65536)
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.strip(), 16)
        data = await reader.readexactly(size + 2)
        return data[:-2]

    def handle(block: bytes) -> None:
        nonlocal dropped_reported
        event, data = "message", []
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                event = line[7:].decode()
            elif line.startswith(b"data: "):
                data.append(line[6:])
        if not data:
            return
        now = time.time()
        payload = json.loads(b"\n".join(data))
        if event == "snapshot":
            dropped_reported += int(payload.get("dropped") or 0)
            return
        for ev in payload:
            if ev.get("t") == "v" and str(ev.get("n", "")).startswith(prefix) and isinstance(ev.get("p"), dict) \
                    and int(ev["p"].get("value_raw", -1)) >= 0:
                p = ev["p"]
                seen.add((ev["n"], int(p.get("value_raw", -1))))
                latencies.append((now - float(p.get("sent", now))) * 1000)
                at_gateway.append((float(ev.get("at", now)) - float(p.get("sent", now))) * 1000)

    async def pump() -> None:
        nonlocal buffer
        while True:
            chunk = await read_chunk()
            if not chunk:
                return
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                handle(block)

    reading = asyncio.ensure_future(pump())
    await asyncio.sleep(1.0)   # the snapshot
    await _warm_up(publisher)
    seen.clear()
    latencies.clear()
    at_gateway.clear()
    cpu0, t0 = gateway.cpu_s(), time.monotonic()
    publisher.proc.stdin.write("go\n")  # type: ignore[union-attr]
    publisher.proc.stdin.flush()  # type: ignore[union-attr]
    await asyncio.sleep(args.flood_s + 1.0)
    cpu1, t1 = gateway.cpu_s(), time.monotonic()
    sent_line = await asyncio.get_running_loop().run_in_executor(None, publisher.readline, 60)
    expected = int(sent_line.split()[1]) if sent_line.startswith("SENT") else None
    deadline = time.monotonic() + 10.0         # stragglers
    while time.monotonic() < deadline and not reading.done() and (expected is None or len(seen) < expected):
        await asyncio.sleep(0.1)
    reading.cancel()
    writer.close()
    sent = expected if expected is not None else FLOOD_ENDPOINTS * FLOOD_HZ * int(args.flood_s)
    return {"sent": sent, "received": len(seen), "dropped": sent - len(seen),
            "dropped_reported_by_server": dropped_reported,
            "latency_p50_ms": statistics.median(latencies) if latencies else None,
            "latency_p99_ms": percentile(latencies, 0.99) if latencies else None,
            "to_gateway_p50_ms": statistics.median(at_gateway) if at_gateway else None,
            "to_gateway_p99_ms": percentile(at_gateway, 0.99) if at_gateway else None,
            "gateway_cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0)}


PAGE_PROBE = """
const prefix = arguments[0];
window.__bench = {lat: [], gw: [], seen: new Set(), dropped: 0};
if (window.__BENCH_NO_PAGE) window.__dl.es.onmessage = null;
window.__bench.handler_ms = 0; window.__bench.long_ms = 0;
{ const orig = window.__dl.es.onmessage;
  if (orig) window.__dl.es.onmessage = m => { const t = performance.now(); orig(m); window.__bench.handler_ms += performance.now() - t; };
  try { new PerformanceObserver(l => { for (const e of l.getEntries()) window.__bench.long_ms += e.duration; }).observe({type: "longtask"}); } catch (_) {} }
window.__dl.es.addEventListener("message", m => {
  const now = Date.now() / 1000;
  for (const ev of JSON.parse(m.data)) {
    if (ev.t === "v" && String(ev.n).startsWith(prefix) && ev.p && ev.p.sent !== undefined && ev.p.value_raw >= 0) {
      window.__bench.lat.push((now - ev.p.sent) * 1000);
      window.__bench.gw.push((ev.at - ev.p.sent) * 1000);
      window.__bench.seen.add(ev.n + ":" + ev.p.value_raw);
    }
  }
});
window.__dl.es.addEventListener("snapshot", m => { window.__bench.dropped += JSON.parse(m.data).dropped || 0; });
"""


async def follow_flood_in_chromium(args: argparse.Namespace, gateway: Child, publisher: Child) -> dict:
    """The same measurement made by the live page itself in headless Chromium (its EventSource)."""
    import shutil
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService
    os.environ.setdefault("SE_AVOID_STATS", "true")
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1360,900", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=ChromeService(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    try:
        driver.get(f"http://127.0.0.1:{gateway.port}/")  # type: ignore[attr-defined]
        deadline = time.monotonic() + START_TIMEOUT_S
        while not driver.execute_script("return !!(window.__dl && window.__dl.es && window.__dl.es.readyState === 1)"):
            if time.monotonic() > deadline:
                raise RuntimeError("the page did not connect to /events")
            await asyncio.sleep(0.2)
        if os.environ.get("BENCH_NO_PAGE"):
            driver.execute_script("window.__BENCH_NO_PAGE = true;")
        await _warm_up(publisher)
        driver.execute_script(PAGE_PROBE, args.prefix)
        browser_pids = _descendants(driver.service.process.pid)
        cpu0, bcpu0, t0 = gateway.cpu_s(), _cpu_of(browser_pids), time.monotonic()
        publisher.proc.stdin.write("go\n")  # type: ignore[union-attr]
        publisher.proc.stdin.flush()  # type: ignore[union-attr]
        await asyncio.sleep(args.flood_s + 1.0)
        cpu1, bcpu1, t1 = gateway.cpu_s(), _cpu_of(browser_pids), time.monotonic()
        sent_line = await asyncio.get_running_loop().run_in_executor(None, publisher.readline, 60)
        expected = int(sent_line.split()[1]) if sent_line.startswith("SENT") else FLOOD_ENDPOINTS * FLOOD_HZ * int(args.flood_s)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and driver.execute_script("return window.__bench.seen.size") < expected:
            await asyncio.sleep(0.2)
        result = driver.execute_script("return {lat: window.__bench.lat, gw: window.__bench.gw, seen: window.__bench.seen.size, "
                                       "dropped: window.__bench.dropped, handler_ms: window.__bench.handler_ms, long_ms: window.__bench.long_ms, "
                                       "render_ms: window.__dl.perf.renderMs, renders: window.__dl.perf.renders}")
        print(f"(page: {result['handler_ms']:.0f} ms in its event handler, {result['render_ms']:.0f} ms in "
              f"{result['renders']} redraws, {result['long_ms']:.0f} ms in long tasks)")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    lat = [float(x) for x in result["lat"]]
    return {"sent": expected, "received": int(result["seen"]), "dropped": expected - int(result["seen"]),
            "dropped_reported_by_server": int(result["dropped"]),
            "latency_p50_ms": statistics.median(lat) if lat else None,
            "latency_p99_ms": percentile(lat, 0.99) if lat else None,
            "to_gateway_p50_ms": statistics.median(result["gw"]) if result["gw"] else None,
            "to_gateway_p99_ms": percentile([float(x) for x in result["gw"]], 0.99) if result["gw"] else None,
            "gateway_cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
            "browser_cpu_percent": 100 * (bcpu1 - bcpu0) / (t1 - t0)}


async def _warm_up(publisher: Child) -> None:
    """Every endpoint sends one value first; the measured flood starts 2 s later."""
    publisher.proc.stdin.write("warm\n")  # type: ignore[union-attr]
    publisher.proc.stdin.flush()  # type: ignore[union-attr]
    line = await asyncio.get_running_loop().run_in_executor(None, publisher.readline, START_TIMEOUT_S)
    if line != "READY":
        raise RuntimeError(f"the publisher said {line!r}")
    await asyncio.sleep(2.0)


def _descendants(pid: int) -> list[int]:
    """pid and every process below it (chromedriver -> chromium -> renderers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def _cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def _have_chromium() -> bool:
    import shutil
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


# ============================================================================== main
def run(args: argparse.Namespace) -> int:
    import uvloop
    run_id = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    service, endpoint = f"bench_http_svc_{run_id}", f"bench_http_ep_{run_id}"
    (tmp / "kv.yaml").write_text(json.dumps({
        "name": service, "heartbeat_interval_s": 0, "dripline_mesh": _mesh(args),
        "endpoints": [{"name": endpoint, "module": "KeyValueStore", "initial_value": 0.75}]}))
    children: list[Child] = []
    try:
        serve = Child([sys.executable, "-m", "dripline.cli.serve", "-q", "-c", str(tmp / "kv.yaml")],
                      stderr_file=tmp / "serve.log")
        children.append(serve)
        gw = start_gateway(args, tmp)
        children.append(gw)
        gateways: dict[str, Child] = {"dl-http-server (aiohttp)": gw}
        minis = ["aiohttp"]
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
            minis.append("starlette")
        except ImportError:
            print("(starlette/uvicorn not installed: the Starlette comparison is skipped)")
        for mini in minis:
            child = Child([sys.executable, __file__, "--child", "mini", "--mini", mini,
                           "--host", args.host, "--port", str(args.port)], stderr_file=tmp / f"{mini}.log")
            children.append(child)
            child.port = int(child.readline().split()[1])  # type: ignore[attr-defined]
            label = "minimal aiohttp" if mini == "aiohttp" else "minimal Starlette+uvicorn"
            gateways[label] = child
        # the service answers before the first measured request
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            probe = subprocess.run([sys.executable, "-m", "dripline.cli.agent", "get", endpoint,
                                    "-b", args.host, "-p", str(args.port), "-t", "2", "--suppress-output"],
                                   capture_output=True)
            if probe.returncode == 0:
                break
            if serve.proc.poll() is not None:
                break
            time.sleep(0.5)
        else:
            probe = None
        if probe is None or probe.returncode != 0:
            raise RuntimeError("the KeyValueStore service did not answer:\n"
                               + (tmp / "serve.log").read_text()[-2000:])
        overhead = uvloop.run(measure_overhead(args, endpoint, gateways))

        args.prefix = f"bench_flood_{run_id}"
        publisher = Child([sys.executable, __file__, "--child", "publisher", "--prefix", args.prefix,
                           "--flood-s", str(args.flood_s), "--host", args.host, "--port", str(args.port)],
                          stdin=True, stderr_file=tmp / "publisher.log")
        children.append(publisher)
        if args.page == "auto":
            args.page = "chromium" if _have_chromium() else "sse"
        follow = follow_flood_in_chromium if args.page == "chromium" else follow_flood
        flood = uvloop.run(follow(args, gw, publisher))
    finally:
        for child in reversed(children):
            child.stop()

    print()
    print(f"gateway overhead: {args.requests} GETs per path, interleaved; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'path':32} {'p50 ms':>8} {'p99 ms':>8} {'overhead p50':>13} {'gateway CPU/request':>20}")
    for label, r in overhead.items():
        cpu = f"{r['cpu_us_per_request']:.0f} us" if r["cpu_us_per_request"] is not None else "-"
        over = f"{r['overhead_p50_ms']:+.3f} ms" if label in gateways else "baseline"
        print(f"{label:32} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {over:>13} {cpu:>20}")
    print()
    how = ("the live page in headless Chromium, measured by its own EventSource" if args.page == "chromium"
           else "an SSE client reading /events as the page does")
    print(f"one page following {FLOOD_ENDPOINTS} endpoints x {FLOOD_HZ}/s for {args.flood_s:g} s ({how})")
    for key in ("sent", "received", "dropped", "dropped_reported_by_server"):
        print(f"  {key:28} {flood[key]}")
    for key in ("latency_p50_ms", "latency_p99_ms", "to_gateway_p50_ms", "to_gateway_p99_ms",
                "gateway_cpu_percent", "browser_cpu_percent"):
        if key not in flood:
            continue
        value = flood[key]
        print(f"  {key:28} {value:.1f}" if value is not None else f"  {key:28} -")
    ours = overhead["dl-http-server (aiohttp)"]["overhead_p50_ms"]
    checks = {
        "overhead_p50": (ours <= TARGET_OVERHEAD_MS, f"dl-http-server overhead p50 {ours:.3f} ms (target <= {TARGET_OVERHEAD_MS} ms)"),
        "dropped": (flood["dropped"] == 0, f"alerts dropped {flood['dropped']} (target 0)"),
        "latency_p99": ((flood["latency_p99_ms"] or 1e9) <= TARGET_P99_MS,
                        f"page latency p99 {flood['latency_p99_ms'] or float('nan'):.1f} ms (target <= {TARGET_P99_MS:g} ms)"),
    }
    print()
    for ok, text in checks.values():
        print(("PASS " if ok else "MISS ") + text)
    print("BENCH_JSON " + json.dumps({"overhead": overhead, "flood": flood,
                                      "pass": {k: v[0] for k, v in checks.items()},
                                      "requests": args.requests, "flood_s": args.flood_s, "page": args.page,
                                      "loadavg": os.getloadavg()[0]}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5672)
    parser.add_argument("--requests", type=int, default=2000, help="GETs per path (after warm-up)")
    parser.add_argument("--flood-s", type=float, default=20.0, help="seconds of the 2000 alerts/s flood")
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke test)")
    parser.add_argument("--page", choices=["auto", "chromium", "sse"], default="auto",
                        help="who follows the flood: the live page in headless Chromium (auto: when "
                             "chromium, chromium-driver and selenium are installed) or an SSE client")
    parser.add_argument("--child", choices=["mini", "publisher"], help=argparse.SUPPRESS)
    parser.add_argument("--mini", choices=["aiohttp", "starlette"], help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host not in LOOPBACK:
        parser.error("the benchmark runs against a loopback broker only")
    if args.child == "mini":
        mini_main(args)
        return 0
    if args.child == "publisher":
        publisher_main(args)
        return 0
    if args.quick:
        args.requests, args.flood_s = min(args.requests, 200), min(args.flood_s, 3.0)
    args.requests = max(10, min(args.requests, 100000))
    args.flood_s = max(1.0, min(args.flood_s, 300.0))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
