"""bench/request_reply.py runs end to end (behaviour only: no figure is ever asserted)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "request_reply.py"


def test_request_reply_bench_quick_runs_and_prints_its_table():
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--agent-runs", "1"],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for text in ("latency p50 ms", "latency p99 ms", "replies/s C=1", "replies/s C=8",
                 "replies/s C=64", "raw pika-asyncio", "AsyncInterface.get", "Interface.get",
                 "vs raw", "dl-agent get", "python -X importtime"):
        assert text in out, text
    # 2 latency, 2 throughput, 2 server CPU, 1 dl-agent (installed, i.e. bytecode cached)
    assert out.count("PASS") + out.count("MISS") == 7
    line = [ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")][-1]
    summary = json.loads(line[len("BENCH_JSON "):])
    assert set(summary["pass"]) == {"p50_async", "p50_sync", "tput64_async", "tput64_sync",
                                    "server_cpu64_async", "server_cpu64_sync", "agent_pyc_cached"}
    for client in ("async", "sync"):
        assert summary["latency"]["p50_ms"][client + "_ratio"]["median"] > 0
        assert summary["throughput"]["64"][client]["ratio"]["median"] > 0
    assert summary["agent_imports_ms"]
