"""Private RabbitMQ nodes (and clusters) for tests, benchmarks and plugin authors.

Why this exists: a test that restarts, kills or reconfigures a broker must never do so to the broker
other people on the machine are using. These classes start a node of their own — own node name,
AMQP and distribution ports, configuration file, data and log folders, enabled-plugins file and
Erlang cookie — from the RabbitMQ that is installed, and always take it down again::

    from dripline.testing.rabbitmq import RabbitNode, RabbitCluster

    with RabbitNode() as node:                 # start() waits until a guest login works
        mesh = node.mesh()                     # {"broker": "127.0.0.1", "broker_port": <port>}
        node.restart(hard=True)                # kill -9 of this node only, then start again
        node.add_user("svc", "pw", configure="^svc$", write="^requests$", read="^svc$")

    with RabbitCluster(3) as cluster:          # three nodes joined into one cluster
        cluster.addresses                      # ["127.0.0.1:p1", "127.0.0.1:p2", "127.0.0.1:p3"]
        cluster.kill(0); cluster.start_node(0)

    RabbitNode(tls=True)                       # plus an amqps listener, a throwaway CA and
                                               # server/client certificates: node.tls_files

Facts this is built on (measured on the project's 2-core machine with RabbitMQ 3.10.8 / OTP 25):
* A node takes about 10-16 s from launch to its first accepted login when the machine is busy;
  several nodes run side by side without trouble (about 125 MB resident each).
* ``/etc/rabbitmq/rabbitmq.conf`` pins port 5672 and ``/etc/rabbitmq/rabbitmq-env.conf`` pins the
  node name, so a private node points ``RABBITMQ_CONFIG_FILE`` and ``RABBITMQ_CONF_ENV_FILE`` at
  files of its own; no plugin (so no management listener on 15672) is enabled unless asked for.
* ``/usr/sbin/rabbitmq-server`` on Debian switches to the ``rabbitmq`` user and writes to
  ``/var/log/rabbitmq``; the scripts it wraps (``/usr/lib/rabbitmq/bin``) are used instead.
* The node runs in its own session and process group (a shell that forwards SIGTERM, beam.smp and
  its helper processes), so ``kill()`` signals exactly that group. The machine's epmd is shared and
  never signalled: it daemonises into a session of its own if a node had to start it.
* A small watchdog process holds a pipe from this process; if this process dies without running
  its clean-up (SIGKILL, a crashed interpreter) the pipe closes and the watchdog kills the node and
  removes its files. ``atexit`` and the context managers cover every ordinary exit.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import string
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

__all__ = ["RabbitError", "RabbitNode", "RabbitCluster", "TLSFiles", "free_port", "make_tls_files",
           "rabbitmq_available"]

logger = logging.getLogger(__name__)

#: Where the un-wrapped RabbitMQ scripts live; DRIPLINE_RABBITMQ_BIN overrides (a folder holding
#: rabbitmq-server and rabbitmqctl that run as the current user).
_SCRIPT_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin", "/opt/rabbitmq/sbin")

#: Ports a private node never takes: the shared broker's AMQP, distribution, management and epmd.
_RESERVED_PORTS = frozenset({4369, 5671, 5672, 15672, 25672, 35672})

_ports_handed_out: set[int] = set()
_ports_lock = threading.Lock()


class RabbitError(RuntimeError):
    """A private node did not start, stop or answer a command; the message carries the log tail."""


# ------------------------------------------------------------------------------------------------
# small helpers

def _scripts_dir() -> Path:
    override = os.environ.get("DRIPLINE_RABBITMQ_BIN")
    candidates = [override] if override else list(_SCRIPT_DIRS)
    for folder in candidates:
        if folder and (Path(folder) / "rabbitmq-server").exists():
            return Path(folder)
    found = shutil.which("rabbitmq-server")
    if found:
        real = Path(found).resolve()
        # the Debian wrapper in /usr/sbin switches users; the real script sits next to rabbitmqctl
        if real.parent.name == "sbin" and (real.parent / "rabbitmq-env").exists():
            return real.parent
    raise RabbitError("no RabbitMQ installation found (looked in " + ", ".join(candidates)
                      + "); install rabbitmq-server or set DRIPLINE_RABBITMQ_BIN")


def rabbitmq_available() -> bool:
    """True if a private node can be started here (RabbitMQ's scripts and Erlang are installed)."""
    try:
        _scripts_dir()
    except RabbitError:
        return False
    return shutil.which("erl") is not None


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a wildcard listener too
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port that is free now, below the kernel's ephemeral range.

    Below the ephemeral range so that, while a node is down between a kill and a restart, no
    outgoing connection of another process is handed its port. Ports given out by this process are
    remembered and not given twice.
    """
    high = min(_ephemeral_low(), 32768) - 1
    low = 20000 if high > 21000 else 10000
    rng = random.SystemRandom()
    with _ports_lock:
        for _ in range(500):
            port = rng.randrange(low, high)
            if port in _RESERVED_PORTS or port in _ports_handed_out:
                continue
            if _bindable(port):
                _ports_handed_out.add(port)
                return port
    raise RabbitError(f"no free TCP port found in {low}-{high}")


def _wait_listening(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _amqp_greets(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if the port answers the AMQP 0-9-1 protocol header with Connection.Start.

    A booting node accepts TCP connections before it serves AMQP; probing at this level first keeps
    the login attempts (and pika's error logs about reset connections) to the one that succeeds.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            data = b""
            while len(data) < 11:
                chunk = sock.recv(11 - len(data))
                if not chunk:
                    return False
                data += chunk
    except OSError:
        return False
    # frame type 1 (method), channel 0, then class 10 / method 10 after the 4-byte size
    return data[0] == 1 and data[1:3] == b"\x00\x00" and data[7:11] == b"\x00\x0a\x00\x0a"


def _amqp_login(host: str, port: int, username: str = "guest", password: str = "guest",
                ssl_context: ssl.SSLContext | None = None) -> None:
    """One AMQP login and logout; raises on failure."""
    import pika  # here, so that importing this module stays cheap

    params = pika.ConnectionParameters(
        host, port, credentials=pika.PlainCredentials(username, password),
        connection_attempts=1, socket_timeout=5, blocked_connection_timeout=5,
        stack_timeout=10, heartbeat=0,
        ssl_options=pika.SSLOptions(ssl_context, "localhost") if ssl_context else None)
    pika.BlockingConnection(params).close()


def _pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, which has released its sockets, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


# ------------------------------------------------------------------------------------------------
# TLS material

@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a throwaway CA and the certificates it signed (keys unencrypted, mode 600)."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_name: str

    def client_context(self, *, with_client_cert: bool = True) -> ssl.SSLContext:
        """An SSL context that trusts only this CA and (by default) presents the client cert."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        if with_client_cert:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def make_tls_files(directory: str | os.PathLike, *, hostname: str = "localhost",
                   client_name: str = "dripline-test-client", days: int = 7) -> TLSFiles:
    """Make a CA, a server certificate (for `hostname` and 127.0.0.1) and a client certificate.

    Uses the `cryptography` package (the ``test`` extra) rather than the openssl command line, so the
    result does not depend on which openssl is installed. EC P-256 keys: fast to make, and accepted
    by Erlang's ssl and Python's.
    """
    import datetime
    import ipaddress

    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise RabbitError("TLS test material needs the 'cryptography' package "
                          "(pip install 'dripline[test]')") from err

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)

    def key() -> Any:
        return ec.generate_private_key(ec.SECP256R1())

    def name(common: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dripline tests"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = key()
    ca_name = name(f"dripline test CA {uuid.uuid4().hex[:8]}")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (x509.CertificateBuilder()
               .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(ca_ski, critical=False)
               .sign(ca_key, hashes.SHA256()))

    def leaf(common: str, usage: Any, alt_names: list) -> tuple[Any, Any]:
        leaf_key = key()
        builder = (x509.CertificateBuilder()
                   .subject_name(name(common)).issuer_name(ca_name).public_key(leaf_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_agreement=True,
                                                content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_cert_sign=False,
                                                crl_sign=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                                  critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()),
                                  critical=False))
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), leaf_key

    server_cert, server_key = leaf(hostname, ExtendedKeyUsageOID.SERVER_AUTH,
                                   [x509.DNSName(hostname), x509.DNSName("localhost"),
                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client_cert, client_key = leaf(client_name, ExtendedKeyUsageOID.CLIENT_AUTH, [])

    def write_cert(path: Path, cert: Any) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def write_key(path: Path, private: Any) -> Path:
        data = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return path

    return TLSFiles(
        ca_cert=write_cert(folder / "ca_cert.pem", ca_cert),
        ca_key=write_key(folder / "ca_key.pem", ca_key),
        server_cert=write_cert(folder / "server_cert.pem", server_cert),
        server_key=write_key(folder / "server_key.pem", server_key),
        client_cert=write_cert(folder / "client_cert.pem", client_cert),
        client_key=write_key(folder / "client_key.pem", client_key),
        client_name=client_name)


# ------------------------------------------------------------------------------------------------
# clean-up of every node still running when the interpreter exits

_live_nodes: set["RabbitNode"] = set()
_live_lock = threading.Lock()


def _close_all_at_exit() -> None:
    with _live_lock:
        nodes = list(_live_nodes)
    for node in nodes:
        try:
            node.close(timeout=10)
        except Exception:  # best effort at exit: the watchdog remains as the last resort
            logger.exception("could not close RabbitMQ node %s at exit", node.node_name)


atexit.register(_close_all_at_exit)

# Kills the node's process group and removes its folder once its stdin reaches end-of-file, which
# happens when the Python process that started it dies without closing the node.
_WATCHDOG = ('read _unused; kill -s KILL -- "-$1" 2>/dev/null; '
             'if [ -n "$2" ]; then sleep 1; rm -rf -- "$2"; fi')


# ------------------------------------------------------------------------------------------------

class RabbitNode:
    """One private RabbitMQ node on loopback (see the module docstring).

    `port` / `dist_port` / `tls_port` are chosen free when not given and stay the same across
    restarts, so clients reconnect to the same address. `config` adds or overrides lines of the
    node's rabbitmq.conf (``{"heartbeat": "5"}``); `plugins` are enabled at start
    (``["rabbitmq_auth_mechanism_ssl"]``). `base_dir` keeps the node's files in a folder of the
    caller's (not removed by `close()`); by default a temporary folder is made and removed.
    """

    def __init__(self, name: str | None = None, *, port: int | None = None,
                 dist_port: int | None = None, base_dir: str | os.PathLike | None = None,
                 cookie: str | None = None, tls: bool = False, tls_port: int | None = None,
                 verify_peer: bool = True, fail_if_no_peer_cert: bool = False,
                 plugins: Sequence[str] = (), config: Mapping[str, Any] | None = None,
                 start_timeout: float = 180.0) -> None:
        self.node_name = name or f"dltest-{uuid.uuid4().hex[:8]}@localhost"
        if "@" not in self.node_name:
            self.node_name += "@localhost"
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.dist_port = dist_port or free_port()
        self.tls = tls
        self.tls_port = (tls_port or free_port()) if tls else None
        self.verify_peer = verify_peer
        self.fail_if_no_peer_cert = fail_if_no_peer_cert
        self.plugins = tuple(plugins)
        self.extra_config = dict(config or {})
        self.start_timeout = start_timeout
        self.cookie = cookie or "".join(secrets.choice(string.ascii_uppercase) for _ in range(32))
        self._owns_dir = base_dir is None
        self.dir = Path(base_dir) if base_dir is not None else Path(
            tempfile.mkdtemp(prefix=f"{self.node_name.split('@')[0]}-"))
        self.tls_files: TLSFiles | None = None
        self._proc: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None
        self._out: Any = None
        self._prepared = False
        self._closed = False

    # ---- names and addresses --------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``"127.0.0.1:<port>"``"""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """AMQP URL with the guest account (only valid on loopback, as RabbitMQ allows guest)."""
        return f"amqp://guest:guest@{self.host}:{self.port}/%2F"

    @property
    def amqps_url(self) -> str:
        if not self.tls:
            raise RabbitError(f"node {self.node_name} has no TLS listener (start it with tls=True)")
        return f"amqps://guest:guest@localhost:{self.tls_port}/%2F"

    def mesh(self, **extra: Any) -> dict[str, Any]:
        """A ``dripline_mesh`` block pointing at this node."""
        return {"broker": self.host, "broker_port": self.port, **extra}

    @property
    def log_file(self) -> Path:
        return self.dir / "log" / f"{self.node_name}.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def beam_pid(self) -> int | None:
        """The Erlang VM's process id while the node runs (for RSS figures), else None."""
        try:
            pid = int((self.dir / "rabbitmq.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RabbitNode {self.node_name} amqp={self.port} {state}>"

    # ---- files and environment --------------------------------------------------------------------

    def _prepare(self) -> None:
        if self._prepared:
            return
        for sub in ("home", "mnesia", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        cookie_file = self.dir / "home" / ".erlang.cookie"
        fd = os.open(cookie_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.cookie)
        os.chmod(cookie_file, 0o600)
        (self.dir / "rabbitmq-env.conf").write_text("# private node: nothing from /etc/rabbitmq\n")
        (self.dir / "enabled_plugins").write_text("[" + ",".join(self.plugins) + "].\n")
        if self.tls and self.tls_files is None:
            self.tls_files = make_tls_files(self.dir / "tls")
        (self.dir / "rabbitmq.conf").write_text(self._config_text())
        self._prepared = True

    def _config_text(self) -> str:
        lines: dict[str, Any] = {
            "listeners.tcp.1": f"{self.host}:{self.port}",
            "loopback_users.guest": "true",
            "log.file.level": "info",
            "log.console": "false",
            "disk_free_limit.absolute": "50MB",
        }
        if self.tls:
            assert self.tls_files is not None
            lines.update({
                "listeners.ssl.1": f"{self.host}:{self.tls_port}",
                "ssl_options.cacertfile": str(self.tls_files.ca_cert),
                "ssl_options.certfile": str(self.tls_files.server_cert),
                "ssl_options.keyfile": str(self.tls_files.server_key),
                "ssl_options.verify": "verify_peer" if self.verify_peer else "verify_none",
                "ssl_options.fail_if_no_peer_cert": "true" if self.fail_if_no_peer_cert else "false",
            })
        lines.update(self.extra_config)
        head = f"# private RabbitMQ node {self.node_name}, written by dripline.testing.rabbitmq\n"
        return head + "".join(f"{key} = {value}\n" for key, value in lines.items())

    def env(self) -> dict[str, str]:
        """The environment for this node's scripts (rabbitmq-server, rabbitmqctl, ...)."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(self.dir / "home"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            # rabbitmqctl's own distribution ports: a wider range than the default ten, since many
            # tests may run commands at once
            "RABBITMQ_CTL_DIST_PORT_MIN": "35700",
            "RABBITMQ_CTL_DIST_PORT_MAX": "35900",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_CRASH_DUMP": str(self.dir / "log" / "erl_crash.dump"),
        })
        return env

    # ---- lifecycle ----------------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the node's processes without waiting (see `wait_ready`); `start()` does both."""
        if self._closed:
            raise RabbitError(f"node {self.node_name} was closed")
        if self.running:
            return
        self._prepare()
        if self._out is None:
            self._out = open(self.dir / "log" / "console.log", "ab")
        script = _scripts_dir() / "rabbitmq-server"
        (self.dir / "rabbitmq.pid").unlink(missing_ok=True)
        logger.info("starting private RabbitMQ node %s on %s:%d", self.node_name, self.host, self.port)
        self._proc = subprocess.Popen([str(script)], env=self.env(), cwd=self.dir,
                                      stdin=subprocess.DEVNULL, stdout=self._out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self._watchdog = subprocess.Popen(
            ["/bin/sh", "-c", _WATCHDOG, "dltest-rabbit-watchdog", str(self._proc.pid),
             str(self.dir) if self._owns_dir else ""],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        with _live_lock:
            _live_nodes.add(self)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until a guest login succeeds; on failure stop the node and raise with the log tail."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.start_timeout)
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise RabbitError(f"RabbitMQ node {self.node_name} exited during start-up "
                                  f"(status {code}):\n{self.log_tail()}")
            if _amqp_greets(self.host, self.port):
                try:
                    _amqp_login(self.host, self.port)
                except Exception as err:  # booting: listener up before the vhost is ready
                    last_error = err
                else:
                    if self.tls_port is None or _wait_listening(self.host, self.tls_port, 2.0):
                        logger.info("private RabbitMQ node %s accepts logins on port %d",
                                    self.node_name, self.port)
                        return
            time.sleep(0.25)
        self.kill()
        raise RabbitError(f"RabbitMQ node {self.node_name} did not accept a login on port "
                          f"{self.port} within the time allowed (last error: {last_error!r}):\n"
                          f"{self.log_tail()}")

    def start(self, timeout: float | None = None) -> "RabbitNode":
        """Start the node and wait (bounded) until it accepts AMQP logins."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop gracefully (SIGTERM to the node's start script, which stops the VM in order).

        Data (durable queues, users, cluster membership) is kept for a later `start()`; falls back
        to `kill()` if the node has not stopped within `timeout`.
        """
        proc = self._proc
        if proc is None:
            return
        beam = self.beam_pid
        if proc.poll() is None:
            logger.info("stopping private RabbitMQ node %s", self.node_name)
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("node %s did not stop within %.0f s; killing it", self.node_name,
                               timeout)
                self.kill()
                return
        deadline = time.monotonic() + timeout
        while beam is not None and _pid_alive(beam) and time.monotonic() < deadline:
            time.sleep(0.05)
        if beam is not None and _pid_alive(beam):
            self.kill()
            return
        self._reaped()

    def kill(self) -> None:
        """``kill -9`` of this node's process group only (VM, start script, helpers); not epmd."""
        proc = self._proc
        if proc is None:
            return
        beam = self.beam_pid
        logger.info("killing private RabbitMQ node %s (SIGKILL)", self.node_name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)
        deadline = time.monotonic() + 30
        while beam is not None and _pid_alive(beam) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._reaped()

    def _reaped(self) -> None:
        self._proc = None
        if self._watchdog is not None:  # the node is gone: the watchdog must not fire any more
            self._watchdog.kill()
            self._watchdog.wait(10)
            if self._watchdog.stdin is not None:
                self._watchdog.stdin.close()
            self._watchdog = None

    def restart(self, hard: bool = False, timeout: float | None = None) -> None:
        """Stop (or, with `hard`, kill -9) and start again on the same ports with the same data."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Stop the node for good and remove its files (if this object made the folder)."""
        if self._closed:
            return
        try:
            self.stop(timeout)
        finally:
            self._closed = True
            with _live_lock:
                _live_nodes.discard(self)
            if self._out is not None:
                self._out.close()
                self._out = None
            if self._owns_dir:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RabbitNode":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- commands -----------------------------------------------------------------------------------

    def cli(self, tool: str, *args: str, timeout: float = 120.0, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run one of RabbitMQ's command-line tools (rabbitmqctl, rabbitmq-diagnostics,
        rabbitmq-queues, rabbitmq-plugins) against this node, with this node's environment."""
        self._prepare()
        cmd = [str(_scripts_dir() / tool), "-n", self.node_name, *args]
        try:
            result = subprocess.run(cmd, env=self.env(), cwd=self.dir, capture_output=True,
                                    text=True, timeout=timeout, input=input,
                                    stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as err:
            raise RabbitError(f"{tool} {args[0] if args else ''} on {self.node_name} took more "
                              f"than {timeout:.0f} s") from err
        if check and result.returncode != 0:
            raise RabbitError(f"{tool} {' '.join(args[:1])} on {self.node_name} failed "
                              f"(status {result.returncode}): {result.stderr.strip()[-2000:]}")
        return result

    def ctl(self, *args: str, timeout: float = 120.0, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
        """``rabbitmqctl -n <this node> ARGS`` (e.g. ``node.ctl("list_queues", "name")``)."""
        return self.cli("rabbitmqctl", *args, timeout=timeout, check=check, input=input)

    def add_vhost(self, vhost: str) -> None:
        self.ctl("add_vhost", vhost)

    def add_user(self, name: str, password: str, *, vhost: str = "/", configure: str = ".*",
                 write: str = ".*", read: str = ".*", tags: Iterable[str] = ()) -> None:
        """Create a user with the given permission patterns on `vhost`.

        The password goes to rabbitmqctl on stdin, never on a command line other users can read.
        An empty pattern (``""``) grants nothing for that kind of access.
        """
        self.ctl("add_user", name, input=password)
        self.ctl("set_permissions", "-p", vhost, name, configure, write, read)
        tag_list = list(tags)
        if tag_list:
            self.ctl("set_user_tags", name, *tag_list)

    def delete_user(self, name: str) -> None:
        self.ctl("delete_user", name)

    def list_queues(self, *columns: str, vhost: str = "/") -> list[dict[str, Any]]:
        """Queues of `vhost` as dicts (default columns: name, messages, consumers)."""
        cols = list(columns) or ["name", "messages", "consumers"]
        out = self.ctl("list_queues", "-p", vhost, "--formatter", "json", *cols).stdout
        return json.loads(out or "[]")

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the node's log and console output (for error messages)."""
        parts = []
        for path in (self.log_file, self.dir / "log" / "console.log"):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no log written)"


class RabbitCluster:
    """`n` private nodes sharing one Erlang cookie, joined into one RabbitMQ cluster.

    Node 0 is started first in spirit: the others join it. Nodes start concurrently (on two cores a
    3-node cluster is up in well under two minutes). `kill(i)` / `stop_node(i)` / `start_node(i)`
    act on one node; a node brought back rejoins the cluster by itself (its data folder remembers).
    """

    def __init__(self, n: int = 3, *, start_timeout: float = 240.0, **node_kwargs: Any) -> None:
        if n < 1:
            raise ValueError("a cluster needs at least one node")
        if "name" in node_kwargs or "port" in node_kwargs or "base_dir" in node_kwargs:
            raise ValueError("name, port and base_dir are chosen per node by the cluster")
        self.cookie = node_kwargs.pop("cookie", None) or "".join(
            secrets.choice(string.ascii_uppercase) for _ in range(32))
        tag = uuid.uuid4().hex[:8]
        self.start_timeout = start_timeout
        self.nodes = [RabbitNode(f"dltest-{tag}-{i}@localhost", cookie=self.cookie,
                                 start_timeout=start_timeout, **node_kwargs) for i in range(n)]

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[RabbitNode]:
        return iter(self.nodes)

    def __getitem__(self, index: int) -> RabbitNode:
        return self.nodes[index]

    @property
    def addresses(self) -> list[str]:
        """``["127.0.0.1:p1", ...]`` in node order."""
        return [node.address for node in self.nodes]

    @property
    def broker(self) -> str:
        """The addresses as one comma-separated string (a ``dripline_mesh`` broker list)."""
        return ",".join(self.addresses)

    def start(self) -> "RabbitCluster":
        for node in self.nodes:
            node.launch()
        try:
            for node in self.nodes:
                node.wait_ready(self.start_timeout)
            first = self.nodes[0].node_name
            for node in self.nodes[1:]:
                if first in self.running_nodes(node):
                    continue  # already a member (restart of an existing cluster)
                node.ctl("stop_app")
                node.ctl("join_cluster", first)
                node.ctl("start_app")
                node.wait_ready(self.start_timeout)
            members = self.running_nodes()
            missing = [n.node_name for n in self.nodes if n.node_name not in members]
            if missing:
                raise RabbitError(f"nodes {missing} are not running members of the cluster "
                                  f"(running: {members})")
        except BaseException:
            self.close()
            raise
        logger.info("private RabbitMQ cluster of %d nodes on ports %s", len(self.nodes),
                    ", ".join(str(n.port) for n in self.nodes))
        return self

    def running_nodes(self, via: RabbitNode | None = None) -> list[str]:
        """Node names the cluster reports as running, asked through `via` (default: any running)."""
        asked = via or next((n for n in self.nodes if n.running), None)
        if asked is None:
            return []
        status = json.loads(asked.ctl("cluster_status", "--formatter", "json").stdout)
        return list(status.get("running_nodes", []))

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def stop_node(self, index: int, timeout: float = 60.0) -> None:
        self.nodes[index].stop(timeout)

    def start_node(self, index: int, timeout: float | None = None) -> None:
        self.nodes[index].start(timeout if timeout is not None else self.start_timeout)

    def restart(self, index: int, hard: bool = False) -> None:
        self.nodes[index].restart(hard, self.start_timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every node at once (in parallel, so that none waits for the others)."""
        threads = [threading.Thread(target=n.stop, args=(timeout,)) for n in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def close(self, timeout: float = 60.0) -> None:
        threads = [threading.Thread(target=n.close, args=(timeout,)) for n in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def __enter__(self) -> "RabbitCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
