"""bench/http_gateway.py runs end to end (behaviour only: no figure is ever asserted)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "http_gateway.py"


def test_http_gateway_bench_quick_runs_and_prints_its_figures():
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--requests", "30", "--flood-s", "2",
                           "--page", "sse"], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for text in ("direct AsyncInterface.get", "dl-http-server (aiohttp)", "minimal aiohttp",
                 "overhead p50", "one page following 200 endpoints", "latency_p99_ms",
                 "gateway_cpu_percent"):
        assert text in out, text
    assert out.count("PASS") + out.count("MISS") == 3
    summary = json.loads([ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")][-1][11:])
    assert set(summary["pass"]) == {"overhead_p50", "dropped", "latency_p99"}
    flood = summary["flood"]
    assert flood["sent"] == 200 * 10 * 2 and flood["received"] + flood["dropped"] == flood["sent"]
    assert summary["overhead"]["dl-http-server (aiohttp)"]["p50_ms"] > 0
