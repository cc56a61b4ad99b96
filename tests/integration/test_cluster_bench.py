"""bench/cluster.py at small scale: a 3-node cluster, a service, a client and a quorum-queue logger
through a kill -9 and a node restart. Behaviour only (nothing lost, nothing stored twice, everyone
back); no figure of speed is asserted."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "cluster.py"


def test_cluster_bench_quick_loses_and_duplicates_nothing():
    proc = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for text in ("requests sent", "gap client s", "gap service s", "gap logger s", "alerts lost",
                 "duplicated", "redelivered"):
        assert text in proc.stdout, text
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")][-1]
    phases = {p["phase"]: p for p in json.loads(line[len("BENCH_JSON "):])["phases"]}
    assert set(phases) == {"baseline", "kill -9", "rolling restart"}
    for phase in phases.values():
        assert phase["alerts"]["sent"] > 0
        assert phase["alerts"]["lost"] == 0 and phase["alerts"]["duplicated"] == 0, phase
        assert phase["alerts"]["stored"] == phase["alerts"]["sent"]
        assert phase["requests"]["answered"] > 0
    assert phases["baseline"]["requests"]["failed"] == 0
    assert phases["kill -9"]["reconnects"]["client"] >= 1  # its node was the one killed
    assert phases["rolling restart"]["reconnects"]["logger"] >= 1  # node 2 was restarted
