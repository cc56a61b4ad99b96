"""The simulated SCPI instrument on a TCP port, with switchable faults.

`SimulatedSCPIInstrument` serves an `InstrumentModel` to any number of connections (one thread
each; the model executes one line at a time). Lines end with ``\\n`` or ``\\r`` (``\\r\\n`` too);
responses end with `terminator`. It runs in a background thread of the caller (tests) or as its own
process (``python -m dripline.implementations.sim``).

Faults, for testing what a client does when an instrument misbehaves, apply to the next `count`
program lines (0: until changed) and never to the ``SIM:`` control commands:

* ``silent``  — the line is ignored and no answer ever comes;
* ``garbage`` — the answer is replaced by bytes that are not text (then the terminator);
* ``partial`` — half the answer is sent, without terminator;
* ``drop``    — the connection is closed (FIN) without an answer;
* ``reset``   — the connection is aborted (RST) without an answer.

Besides the Python API, the same controls exist as commands, so a test can steer a simulator
running in another process over a second connection: ``SIM:FAULt <mode>[,<count>]``,
``SIM:FAULt?``, ``SIM:DELay <seconds>``, ``SIM:DELay?``, ``SIM:COUNt?`` (lines executed),
``SIM:CONNections?`` and ``SIM:DROP`` (close every other connection).

``one_query_per_connection`` imitates the toy device of the dripline controls guide's SCPI
walkthrough (and some serial-to-ethernet adapters): connections are served one at a time; each
gets exactly one line answered, after which the instrument stops reading it *without closing it*
and waits for the next connection. Only when a new connection is served is the old one closed.
A client that sends a second line on the old connection therefore sees neither an answer nor a
closed connection, only silence: the case a client has to recover from by reconnecting.
"""
from __future__ import annotations

import logging
import re
import socket
import socketserver
import struct
import threading
import time
from typing import Any

from .model import InstrumentModel

__all__ = ["FAULT_MODES", "GARBAGE", "SimulatedSCPIInstrument"]

logger = logging.getLogger(__name__)

FAULT_MODES = ("none", "silent", "garbage", "partial", "drop", "reset")
#: what the ``garbage`` fault sends instead of an answer: invalid UTF-8, NUL, control characters
GARBAGE = b"\xfe\xff\x00#?\x1b[2J\xc3(\x80garbage\x7f"

_LINE_END = re.compile(rb"\r\n|\n|\r")


def decode_escapes(text: str) -> str:
    r"""``\n``, ``\r``, ``\t``, ``\\`` and ``\xNN`` written literally (command lines) -> characters."""
    if "\\" not in text:
        return text
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], sim: "SimulatedSCPIInstrument") -> None:
        self.sim = sim
        super().__init__(address, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.sim._serve_connection(self.request)  # type: ignore[attr-defined]


class SimulatedSCPIInstrument:
    """A SCPI instrument on ``host:port`` (port 0: a free port, read `port` after `start`).

    Use as a context manager, or `start()` / `stop()`. Keywords: `model` (an InstrumentModel;
    default: a bench power supply), `terminator` of responses, `delay` in seconds before each
    answer, `echo` (send each received line back before answering, as some serial-to-ethernet
    adapters do), `greeting` (a line sent on every new connection), `fault` / `fault_count`,
    `one_query_per_connection` (see the module docstring).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, model: InstrumentModel | None = None,
                 terminator: str = "\n", delay: float = 0.0, echo: bool = False,
                 greeting: str | None = None, fault: str = "none", fault_count: int = 0,
                 one_query_per_connection: bool = False) -> None:
        if not terminator:
            raise ValueError("the response terminator must not be empty")
        self.host = host
        self._requested_port = int(port)
        self.model = model if model is not None else InstrumentModel()
        self.terminator = terminator
        self.delay = float(delay)
        self.echo = bool(echo)
        self.greeting = greeting
        self._fault = "none"
        self._fault_remaining = 0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.connections_accepted = 0
        self.one_query_per_connection = bool(one_query_per_connection)
        # one-query mode: only one connection is read at a time (the guide's device has a single
        # accept-read-answer loop); `_served` counts connections that got their turn, so a parked
        # connection knows when a newer one has taken over and it must be closed
        self._device = threading.Lock()
        self._handover = threading.Condition()
        self._served = 0
        self.set_fault(fault, fault_count)

    # ---- lifecycle ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        return self._server.server_address[1]

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def start(self) -> "SimulatedSCPIInstrument":
        if self._server is not None:
            return self
        self._server = _Server((self.host, self._requested_port), self)
        self._requested_port = self._server.server_address[1]  # a restart keeps the same port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sim-scpi-{self.port}", daemon=True)
        self._thread.start()
        logger.info("simulated SCPI instrument listening on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop listening and close every connection (clients see the instrument go away)."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self._handover:  # parked connections (one-query mode) stop waiting for a successor
            self._handover.notify_all()
        self.drop_connections()

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` is called from another thread (or a signal)."""
        self.start()
        try:
            while self._server is not None:
                time.sleep(0.2)
        finally:
            self.stop()

    def __enter__(self) -> "SimulatedSCPIInstrument":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- faults ---------------------------------------------------------------------------
    def set_fault(self, mode: str, count: int = 0) -> None:
        """Apply `mode` to the next `count` program lines (0: until changed; ``none`` clears)."""
        mode = str(mode).strip().lower()
        matches = [m for m in FAULT_MODES if m.startswith(mode)] if mode else []
        if mode in FAULT_MODES:
            matches = [mode]
        if len(matches) != 1:
            raise ValueError(f"unknown fault {mode!r}; one of {', '.join(FAULT_MODES)}")
        if int(count) < 0:
            raise ValueError("the fault count must not be negative")
        with self._lock:
            self._fault = matches[0]
            self._fault_remaining = int(count)

    @property
    def fault(self) -> tuple[str, int]:
        with self._lock:
            return self._fault, self._fault_remaining

    def _take_fault(self) -> str:
        with self._lock:
            mode = self._fault
            if mode != "none" and self._fault_remaining:
                self._fault_remaining -= 1
                if self._fault_remaining == 0:
                    self._fault = "none"
            return mode

    def drop_connections(self, keep: socket.socket | None = None) -> int:
        """Close every open connection (except `keep`); returns how many were closed."""
        with self._lock:
            victims = [c for c in self._connections if c is not keep]
        for conn in victims:
            _close(conn)
        return len(victims)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    # ---- serving one connection ---------------------------------------------------------
    def _serve_connection(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._server is None:  # accepted just before stop(): the instrument is off
                _close(conn)
                return
            self._connections.add(conn)
            self.connections_accepted += 1
        try:
            if self.one_query_per_connection:
                self._serve_one_line(conn)
                return
            if self.greeting is not None:
                conn.sendall(self._frame(self.greeting))
            buffer = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buffer += data
                *lines, buffer = _LINE_END.split(buffer)
                for raw in lines:
                    verdict = self._serve_line(conn, raw.decode("utf-8", "replace"))
                    if verdict == "reset":
                        self._abort(conn)
                        return
                    if verdict == "close":
                        return
                if len(buffer) > 1 << 20:  # a client that never ends its line
                    logger.warning("simulator: dropping a connection sending an endless line")
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._connections.discard(conn)
            _close(conn)

    def _abort(self, conn: socket.socket) -> None:
        """Abort the connection with an RST: linger 0 and no shutdown() before close()."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._lock:
            self._connections.discard(conn)
        conn.close()

    def _serve_one_line(self, conn: socket.socket) -> None:
        """One-query mode: wait for the turn, answer one line, then keep the connection unread."""
        with self._device:
            if self._server is None:
                return
            with self._handover:
                self._served += 1
                turn = self._served
                self._handover.notify_all()  # the previously parked connection is closed now
            if self.greeting is not None:
                conn.sendall(self._frame(self.greeting))
            buffer = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buffer += data
                lines = _LINE_END.split(buffer)
                if len(lines) > 1:
                    break
                if len(buffer) > 1 << 20:
                    return
            verdict = self._serve_line(conn, lines[0].decode("utf-8", "replace"))
            if verdict == "reset":
                self._abort(conn)
                return
            if verdict == "close":
                return
        logger.debug("simulator: one line answered; the connection stays open but unread")
        with self._handover:
            while self._served == turn and self._server is not None:
                self._handover.wait(0.5)

    def _serve_line(self, conn: socket.socket, line: str) -> str | None:
        """Answer one line; "close" or "reset" when the connection must end that way."""
        if not line.strip():
            return None
        if line.strip().upper().startswith(("SIM:", "SIMULATION:", ":SIM:", ":SIMULATION:")):
            answer = self._control(line.strip(), conn)
            if answer is not None:
                conn.sendall(self._frame(answer))
            return None
        if self.echo:
            conn.sendall(self._frame(line))
        mode = self._take_fault()
        if mode == "silent":
            return None
        if mode == "drop":
            return "close"
        if mode == "reset":
            return "reset"
        answer = self.model.execute(line)
        if answer is None:
            return None
        if self.delay > 0:
            time.sleep(self.delay)
        if mode == "garbage":
            conn.sendall(GARBAGE + self.terminator.encode())
        elif mode == "partial":
            data = answer.encode()
            conn.sendall(data[: max(1, len(data) // 2)])
        else:
            conn.sendall(self._frame(answer))
        return None

    def _frame(self, text: str) -> bytes:
        return (text + self.terminator).encode("utf-8")

    def _control(self, line: str, conn: socket.socket) -> str | None:
        header, _, rest = line.lstrip(":").partition(" ")
        header = header.upper()
        node = header.split(":", 1)[1] if ":" in header else ""
        query = node.endswith("?")
        node = node.rstrip("?")
        try:
            if node in ("FAUL", "FAULT"):
                if query:
                    mode, count = self.fault
                    return f"{mode.upper()},{count}"
                args = [a.strip() for a in rest.split(",")]
                self.set_fault(args[0], int(args[1]) if len(args) > 1 and args[1] else 0)
                return None
            if node in ("DEL", "DELAY"):
                if query:
                    return repr(self.delay)
                delay = float(rest)
                if not 0 <= delay <= 3600:
                    raise ValueError(rest)
                self.delay = delay
                return None
            if node in ("COUN", "COUNT") and query:
                return str(self.model.lines_executed)
            if node in ("CONN", "CONNECTIONS") and query:
                return str(self.open_connections)
            if node == "DROP" and not query:
                self.drop_connections(keep=conn)
                return None
        except (ValueError, IndexError) as err:
            self.model._error((-224, "Illegal parameter value"), f"{line} ({err})")
            return None
        self.model._error((-113, "Undefined header"), line)
        return None


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass
