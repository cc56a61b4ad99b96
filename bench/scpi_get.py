#!/usr/bin/env python3
"""Benchmark: gets of a SimpleSCPIEntity through dl-serve to the simulated SCPI instrument.

    python bench/scpi_get.py [--duration 3] [--inflight 1 16] [-b localhost] [-p 5672]

One run starts two child processes on loopback — the simulated instrument
(``python -m dripline.implementations.sim``) and ``dl-serve`` with an EthernetSCPIService
serving one SimpleSCPIEntity — and measures, in this process:

* the baseline: ``SOUR:VOLT?`` queries sent straight to the simulator over one TCP socket
  (what the instrument link alone allows; no broker, no dripline);
* requests/s of ``get <entity>`` through the broker with 1 and with 16 requests in flight
  (AsyncInterface; the service answers them one at a time on its single instrument socket);
* for reference, the same with a KeyValueStore of the same service (dripline without the
  instrument), so the difference is what the instrument round trip adds;

and prints each rate, the mean latency and the ratio to the baseline. Every loop is bounded by
--duration (and the start-up waits by fixed deadlines); the children are terminated, then killed,
whatever happens.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import yaml

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulator(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "dripline.implementations.sim", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(START_TIMEOUT_S)
    line = proc.stdout.readline() if ready else ""
    if "listening on" not in line:
        stop(proc)
        raise SystemExit(f"the simulator did not start: {line!r}")
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def direct_rate(port: int, duration: float, query: bytes) -> tuple[int, float]:
    """(queries, seconds) of back-to-back queries on one socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        n = 0
        start = time.perf_counter()
        end = start + duration
        while time.perf_counter() < end:
            sock.sendall(query)
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    raise SystemExit("the simulator closed the connection")
                data += chunk
            n += 1
        return n, time.perf_counter() - start


async def wait_until_served(dl, endpoint: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            await dl.get(endpoint, timeout_s=1)
            return
        except Exception as err:  # not bound yet (403) or not answering yet
            last = err
            await asyncio.sleep(0.2)
    raise SystemExit(f"dl-serve did not answer within {START_TIMEOUT_S:.0f} s: {last}")


async def dripline_rate(dl, endpoint: str, inflight: int, duration: float) -> tuple[int, int, float]:
    """(replies, errors, seconds) with `inflight` concurrent request loops."""
    counts = [0, 0]

    async def loop(end: float) -> None:
        while time.perf_counter() < end:
            try:
                await dl.get(endpoint, timeout_s=10)
                counts[0] += 1
            except Exception:
                counts[1] += 1

    warm_end = time.perf_counter() + min(0.5, duration / 4)
    await asyncio.gather(*(loop(warm_end) for _ in range(inflight)))
    counts[:] = [0, 0]
    start = time.perf_counter()
    await asyncio.gather(*(loop(start + duration) for _ in range(inflight)))
    return counts[0], counts[1], time.perf_counter() - start


async def measure(args: argparse.Namespace, endpoints: dict[str, str]) -> list[tuple]:
    """[(label, inflight, replies, errors, seconds)] for each endpoint and in-flight count."""
    from dripline.client.interface import AsyncInterface
    mesh = {"broker": args.broker, "broker_port": args.port}
    results = []
    async with AsyncInterface(dripline_mesh=mesh, timeout_s=10) as dl:
        for endpoint in endpoints.values():
            await wait_until_served(dl, endpoint)
        for label, endpoint in endpoints.items():
            for inflight in args.inflight:
                n, errors, seconds = await dripline_rate(dl, endpoint, inflight, args.duration)
                results.append((label, inflight, n, errors, seconds))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--inflight", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--calibration", help="calibration of the entity (default: none)")
    parser.add_argument("-b", "--broker", default="localhost")
    parser.add_argument("-p", "--port", type=int, default=5672)
    args = parser.parse_args()
    if not 0 < args.duration <= 600 or not all(0 < n <= 1000 for n in args.inflight):
        parser.error("--duration must be in (0, 600] and --inflight values in [1, 1000]")

    sim_port = free_port()
    suffix = uuid.uuid4().hex[:8]
    service, endpoint, store = (f"bench_scpi_{suffix}", f"bench_volts_{suffix}",
                                f"bench_store_{suffix}")
    entity = {"name": endpoint, "module": "SimpleSCPIEntity", "base_str": "SOUR:VOLT"}
    reference = {"name": store, "module": "KeyValueStore", "initial_value": "0.0"}
    if args.calibration:
        entity["calibration"] = reference["calibration"] = args.calibration
    config = {"name": service, "module": "EthernetSCPIService", "heartbeat_interval_s": 0,
              "socket_info": f"('127.0.0.1', {sim_port})", "socket_timeout": 2.0,
              "command_terminator": "\n", "response_terminator": "\n",
              "endpoints": [entity, reference]}
    sim = serve = None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scpi_bench.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        try:
            sim = start_simulator(sim_port)
            n_direct, s_direct = direct_rate(sim_port, args.duration, b"SOUR:VOLT?\n")
            serve = subprocess.Popen([sys.executable, "-m", "dripline.cli.serve", "-c", path, "-q",
                                      "-b", args.broker, "-p", str(args.port)])
            results = asyncio.run(measure(args, {"SimpleSCPIEntity get via dl-serve": endpoint,
                                                 "KeyValueStore get (no instrument)": store}))
        finally:
            stop(serve)
            stop(sim)

    direct = n_direct / s_direct
    print(f"SCPI get benchmark: dl-serve (EthernetSCPIService) -> simulated instrument on loopback, "
          f"{args.duration:g} s per row, broker {args.broker}:{args.port}"
          + (f", calibration {args.calibration!r}" if args.calibration else ""))
    print(f"{'path':<36}{'in flight':>10}{'req/s':>10}{'mean ms':>10}{'errors':>8}{'vs direct':>11}")
    print(f"{'direct socket to the simulator':<36}{1:>10}{direct:>10.0f}{1000 / direct:>10.3f}"
          f"{0:>8}{'1.00':>11}")
    for label, inflight, n, errors, seconds in results:
        rate = n / seconds if seconds else 0.0
        mean_ms = 1000 * inflight / rate if rate else float("nan")
        print(f"{label:<36}{inflight:>10}{rate:>10.0f}{mean_ms:>10.3f}{errors:>8}{rate / direct:>11.3f}")
    print("mean ms with N in flight = N / rate (time a request spends queued and served)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
