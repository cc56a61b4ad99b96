"""Fixtures of the web tests: a real service on the shared broker and real dl-http-server processes.

The gateway runs as the installed command does (``python -m dripline.cli.http_server`` with a
configuration file and an auth file), on a port the kernel picks, so the command line, the
configuration keys and the auth file are tested along with the routes. Names are unique per run.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from dripline.core import Endpoint, Service
from dripline.implementations import KeyValueStore
from dripline.testing import ServiceRunner, test_mesh, unique_name
from dripline.web.auth import hash_password, new_token

PASSWORD = "correct horse battery staple"
_HASH = None


@pytest.fixture(autouse=True)
def _needs_broker(rabbitmq):
    """Every web test needs the broker; fail (never skip) when it is down."""


class SlowEndpoint(Endpoint):
    """Answers a get after `delay_s`: keeps gateway requests in flight for the burst test."""

    def __init__(self, delay_s: float = 1.0, **kwargs: Any) -> None:
        Endpoint.__init__(self, **kwargs)
        self.delay_s = delay_s

    def on_get(self) -> float:
        time.sleep(self.delay_s)
        return self.delay_s

    def scale(self, x: float, factor: float = 2) -> float:
        """A cmd with a positional and a keyword parameter."""
        return x * factor


@dataclass
class Mesh:
    service: str
    peaches: str
    limited: str
    slow: str


@pytest.fixture(scope="module")
def mesh_service() -> Iterator[Mesh]:
    names = Mesh(unique_name("websvc"), unique_name("peaches"), unique_name("limited"), unique_name("slow"))
    svc = Service(names.service, dripline_mesh=test_mesh(), heartbeat_interval_s=1)
    svc.add_child(KeyValueStore(name=names.peaches, initial_value=0.75, calibration="2*{}",
                                get_on_set=True, log_on_set=True, units="kg",
                                description="peaches in the fridge"))
    svc.add_child(KeyValueStore(name=names.limited, initial_value=5, min=0, max=10,
                                description="a value between 0 and 10"))
    svc.add_child(SlowEndpoint(name=names.slow, delay_s=1.0))
    runner = ServiceRunner(svc).start()
    try:
        yield names
    finally:
        runner.stop()


@dataclass
class Reply:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class GatewayProcess:
    """One dl-http-server process; `call` sends one HTTP request to it."""

    def __init__(self, tmp: Path, users: bool = True, words: list[str] | None = None,
                 web_root: Path | None = None, services: str = "websvc_*") -> None:
        global _HASH
        self.token, digest = new_token()
        if _HASH is None:
            _HASH = hash_password(PASSWORD)
        auth: dict[str, Any] = {}
        if users:
            auth["http"] = {"users": {"alice": {"password_hash": _HASH}},
                            "tokens": [{"name": "bot", "sha256": digest}]}
        self.auth_file = tmp / "auth.json"
        self.auth_file.write_text(json.dumps(auth))
        config: dict[str, Any] = {"dripline_mesh": test_mesh(), "http_port": 0,
                                  "ping_interval_s": 2, "heartbeat_late_s": 3, "heartbeat_gone_s": 6,
                                  # only this module's services: the page reads the values of what it
                                  # shows, and other engineers' tests share the broker
                                  "services": [services]}
        if web_root is not None:
            config["web_root"] = str(web_root)
        self.config_file = tmp / "gateway.yaml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.log = tmp / "gateway.log"
        cmd = [sys.executable, "-m", "dripline.cli.http_server", "-c", str(self.config_file),
               "--auth-file", str(self.auth_file), *(words or [])]
        self._log_fh = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log_fh,
                                     env=dict(os.environ))
        self.port = self._wait_for_port()
        self.host = "127.0.0.1"
        self.origin = f"http://{self.host}:{self.port}"

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.log.read_text()
            m = re.search(r"serving http://[^:]+:(\d+)/", text)
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"dl-http-server exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dl-http-server did not start:\n{self.log.read_text()}")

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             timeout: float = 30) -> Reply:
        headers = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return Reply(resp.status, resp.reason, resp.headers, resp.read())
        finally:
            conn.close()

    def raw(self, data: bytes, timeout: float = 10) -> bytes:
        """Send raw bytes, return what comes back until the server closes (for malformed requests)."""
        import socket
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(data)
            chunks = []
            try:
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    if b"\r\n\r\n" in b"".join(chunks) and b"Content-Length: " in b"".join(chunks):
                        head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                        if len(rest) >= length:
                            break
            except (ConnectionResetError, TimeoutError):
                pass
            return b"".join(chunks)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_fh.close()


@pytest.fixture(scope="module")
def gateway(mesh_service: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("gateway")
    root = tmp / "www"
    root.mkdir()
    (root / "hello.txt").write_text("served from web_root\n")
    (tmp / "secret.txt").write_text("TOP-SECRET outside web_root\n")
    gw = GatewayProcess(tmp, web_root=root)
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def own_gateway(tmp_path: Path) -> Iterator[Any]:
    """Start gateways with their own settings (stopped after the test)."""
    started: list[GatewayProcess] = []

    def start(**kwargs: Any) -> GatewayProcess:
        sub = tmp_path / f"gw{len(started)}"
        sub.mkdir()
        gw = GatewayProcess(sub, **kwargs)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll until predicate() is truthy (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
