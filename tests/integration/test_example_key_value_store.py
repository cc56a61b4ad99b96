"""examples/key_value_store.yaml, the reference's own example, checks and serves as its comments say.

The file's service and endpoint names (my_store, peaches, ...) are shared by every copy of the
example on the broker, so the served copy gets a unique suffix per run; everything else is the file.
"""
from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
import time

import yaml

from dripline.core import DriplineError
from dripline.testing import unique_name

from .endpoints import dl

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "key_value_store.yaml"


def test_check_accepts_the_example():
    r = dl("serve", "--check", "-c", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    assert "service 'my_store' with 4 endpoint(s)" in r.stdout


def test_the_example_has_the_reference_endpoints():
    config = yaml.safe_load(EXAMPLE.read_text())
    names = [ep["name"] for ep in config["endpoints"]]
    assert names == ["peaches", "chips", "waffles", "peaches_status"]
    assert isinstance(config["endpoints"][3]["calibration"], dict)


def _renamed_copy(tmp_path: pathlib.Path) -> tuple[pathlib.Path, str]:
    config = yaml.safe_load(EXAMPLE.read_text())
    suffix = unique_name("")  # "_1a2b3c4d"
    config["name"] += suffix
    for ep in config["endpoints"]:
        ep["name"] += suffix
    path = tmp_path / "key_value_store.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, suffix


def _wait_for(iface, endpoint: str, deadline_s: float = 30):
    end = time.monotonic() + deadline_s
    while True:
        try:
            return iface.get(endpoint, timeout_s=2)
        except DriplineError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def test_serve_the_example(tmp_path, dl_interface):
    path, sfx = _renamed_copy(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "dripline.cli.serve", "-c", str(path),
                             "heartbeat_interval_s=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait_for(dl_interface, f"peaches{sfx}") == {"value_raw": 0.75, "value_cal": 1.5}
        assert dl_interface.get(f"chips{sfx}") == {"value_raw": 1.75, "value_cal": 5.25}
        assert dl_interface.get(f"waffles{sfx}") == {"value_raw": 4.0, "value_cal": 4.0}
        assert dl_interface.get(f"peaches_status{sfx}") == {"value_raw": "CLOSE", "value_cal": "on"}
        dl_interface.set(f"peaches_status{sfx}", "OPEN")
        assert dl_interface.get(f"peaches_status{sfx}")["value_cal"] == "off"
        reply = json.loads(dl("agent", "get", f"chips{sfx}", "--json-print").stdout)
        assert reply["sender_info"]["exe"] == "dl-serve"  # the program, not the interpreter
        assert reply["sender_info"]["service_name"] == f"my_store{sfx}"
        dl_interface.set(f"peaches{sfx}", 2)
        assert dl_interface.get(f"peaches{sfx}") == {"value_raw": 2, "value_cal": 4}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
