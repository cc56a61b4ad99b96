"""EthernetSCPIService: a service that talks to one instrument over a TCP socket.

Endpoints (the SCPI entities of `entity_endpoints`) call ``self.service.send_to_device(commands)``;
each command is sent with `command_terminator` appended and its answer is read up to
`response_terminator`. Answers of several commands are joined with ``;``.

How failures are handled — a request never hangs and never stops the service:

* One command at a time on the socket (a lock): requests are already serialised on the service's
  worker thread, but scheduled logging and asynchronous children may call in from elsewhere.
* Reading an answer is bounded by `socket_timeout` (a deadline for the whole answer, not per
  piece). No answer in time: the socket is closed, so a late answer can never be taken for the
  answer to the next command. Whether the command is then sent again on a new connection is the
  `resend_on_timeout` choice (below); if it is not, or the second try gets no answer either, the
  request is answered 202 (resource_error_no_response).
* A broken socket (connection reset or closed by the instrument, e.g. after it restarted) is
  noticed before sending (pending input is checked) or while reading; the service reconnects and
  sends the command once more. A second failure, or failing to connect at all, is 201
  (resource_error_connection).
* Bytes the instrument sends that belong to no command (left over after a terminator, or
  unsolicited) are discarded, with a warning, before the next command.
* After (re)connecting, `cmd_at_reconnect` is sent and the last answer must equal
  `reconnect_test`; a ``None`` entry reads (and discards) one unsolicited line, such as a greeting.

The service starts when the instrument is off (the reference refuses to): the first connection is
tried in the constructor, a failure is logged, and each request tries again until it succeeds.

Sending a command twice — `resend_on_timeout`
---------------------------------------------
A command that got no answer may or may not have been carried out. Sending it again is harmless
for a query (``MEAS:VOLT?``) but not for a command that changes something (``OUTP ON``,
``*TRG``, ``VOLT 5;VOLT?``): the instrument may have acted on it and only the answer was lost.
The reference always reconnects and sends again after a timeout. Here it is a choice, made per
service and overridable per entity (keyword `resend_on_timeout` on both):

* ``auto`` (default): send again only a *query*, a command each of whose ``;``-separated parts has
  a header ending in ``?``;
* ``always``: send any command again (the reference's behaviour);
* ``never``: never send again; a timeout is always 202.

Instruments that answer one command per connection
--------------------------------------------------
Some instruments (the controls guide's toy SCPI device, some serial-to-ethernet adapters) answer
one command on a TCP connection, then stop reading it without closing it and wait for a new
connection. A second command on the old connection meets only silence. The service copes without
ever sending a command twice:

* until it has seen the instrument answer twice on one connection (the reconnect test counts), a
  command that is not a query goes out on a new connection rather than on one that already
  carried an answer;
* a query that meets silence on a used connection is sent again on a new one (`resend_on_timeout`
  permitting); when the instrument answers it at once there, as the first command on that
  connection, the service concludes that the instrument serves one command per connection, logs
  that once, and from then on opens a new connection for every command, so no request waits for
  a timeout again. `keeps_connections` (None: not known yet) shows what was concluded.
"""
from __future__ import annotations

import ast
import logging
import re
import socket
import threading
import time
from typing import Any, Sequence

from dripline.protocol.errors import ConfigError
from dripline.service.service import Service
from dripline.protocol.throw_reply import ThrowReply
from dripline.implementations.scpi_syntax import split_program_units

__all__ = ["EthernetSCPIService", "RESEND_CHOICES", "SCPIConfigError", "is_query",
           "resend_choice"]

logger = logging.getLogger(__name__)

_CONNECTION_ERROR = 201  # resource_error_connection
_NO_RESPONSE = 202       # resource_error_no_response
_INVALID_VALUE = 304     # service_error_invalid_value

_RECV_SIZE = 4096
# control characters (C0 but tab/LF/CR, DEL, C1) never appear in a text answer
_GARBAGE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_DEFAULT_RECONNECT = ("*OPC?",)
RESEND_CHOICES = ("auto", "always", "never")


class SCPIConfigError(ConfigError, ValueError):
    """A bad keyword of an SCPI service or entity.

    A ConfigError, so dl-serve reports it as a configuration error (status 2), and a ValueError,
    which is what the reference raises and what existing code may catch.
    """


class _Broken(Exception):
    """The socket is unusable (reset, closed by the peer, send failed)."""


class _NoAnswer(Exception):
    """No complete answer before the deadline; `partial` holds what did arrive."""

    def __init__(self, message: str, partial: bytes = b"") -> None:
        super().__init__(message)
        self.partial = partial


def parse_socket_info(value: Any) -> tuple[str, int]:
    """``(host, port)`` from a tuple/list, the reference's string ``"('host', 5025)"`` or ``host:port``."""
    host: Any
    port: Any
    if isinstance(value, str):
        text = value.strip()
        parsed: Any = None
        bracketed = re.fullmatch(r"\[([^\]\s]+)\]:(\d+)", text)  # [IPv6]:port
        if bracketed:
            parsed = (bracketed.group(1), int(bracketed.group(2)))
        elif text.startswith(("(", "[")):
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                match = re.fullmatch(r"[(\[]\s*['\"]?([^'\",\s]+)['\"]?\s*,\s*(\d+)\s*[)\]]", text)
                parsed = (match.group(1), int(match.group(2))) if match else None
        else:
            match = re.fullmatch(r"([^\s\[\]]+):(\d+)", text)
            parsed = (match.group(1), int(match.group(2))) if match else None
        if not isinstance(parsed, (tuple, list)):
            raise SCPIConfigError(f"socket_info {value!r} is neither \"('host', port)\" nor \"host:port\"")
        value = parsed
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise SCPIConfigError(f"socket_info must be (host, port), got {value!r}")
    host, port = value
    if not isinstance(host, str) or not host:
        raise SCPIConfigError(f"socket_info host must be a non-empty string, got {host!r}")
    try:
        port_number = int(port)
    except (TypeError, ValueError):
        raise SCPIConfigError(f"socket_info port must be an integer, got {port!r}") from None
    if isinstance(port, bool) or not 0 < port_number < 65536 or str(port).strip() != str(port_number):
        raise SCPIConfigError(f"socket_info port must be an integer from 1 to 65535, got {port!r}")
    return host, port_number


def _terminator(value: Any, option: str, allow_empty: bool) -> str:
    r"""A terminator as given; literal escapes (``'\r\n'`` written in single quotes) are decoded."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise SCPIConfigError(f"{option} must be a string, got {value!r}")
    if "\\" in value:
        decoded = value.encode("latin-1", "backslashreplace").decode("unicode_escape")
        logger.debug("%s %r taken as %r", option, value, decoded)
        value = decoded
    if not value and not allow_empty:
        raise SCPIConfigError(f"{option} is required (the characters the instrument ends each "
                              "answer with, e.g. \"\\n\")")
    return value


def _reconnect_commands(value: Any) -> list[str | None] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise SCPIConfigError(f"cmd_at_reconnect must be a list of commands or null, got {value!r}")
    if not value:
        raise SCPIConfigError("cmd_at_reconnect must not be an empty list (use null to send nothing "
                              "after connecting)")
    for item in value:
        if item is not None and not isinstance(item, str):
            raise SCPIConfigError(f"cmd_at_reconnect entries must be strings or null, got {item!r}")
    return list(value)


def resend_choice(value: Any, option: str = "resend_on_timeout") -> str:
    """One of RESEND_CHOICES; YAML booleans (``yes``/``no``) are taken as always/never."""
    if isinstance(value, bool):
        return "always" if value else "never"
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text not in RESEND_CHOICES:
        raise SCPIConfigError(f"{option} must be one of {', '.join(RESEND_CHOICES)} (auto: send "
                              f"again after a timeout only queries, commands ending in '?'), got "
                              f"{value!r}")
    return text


def _units(command: str) -> list[str]:
    """The non-empty ``;``-separated program units of a command, stripped."""
    return [unit.strip() for unit in split_program_units(command) if unit.strip()]


def is_query(command: str) -> bool:
    """Whether every program unit of `command` is a query (its header ends with ``?``).

    ``MEAS:VOLT?``, ``*IDN?;SYST:ERR?`` and ``MEAS:VOLT? (@1)`` are queries; ``VOLT 5;VOLT?`` is
    not, since it also sets. Only queries are sent twice under ``resend_on_timeout: auto``.
    """
    units = _units(command)
    return bool(units) and all(unit.split(None, 1)[0].endswith("?") for unit in units)


def _positive_seconds(value: Any, option: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SCPIConfigError(f"{option} must be a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not 0 < seconds < 1e6:
        raise SCPIConfigError(f"{option} must be a positive number of seconds, got {value!r}")
    return seconds


def _invalid_value(check: Any, *args: Any) -> Any:
    """A configuration check applied to a value set at run time: a bad value is answered 304."""
    try:
        return check(*args)
    except SCPIConfigError as err:
        raise ThrowReply(_INVALID_VALUE, err.message) from None


class EthernetSCPIService(Service):
    """A service owning a TCP connection to an SCPI (or similar line-based) instrument.

    Keywords (reference names and defaults): `socket_timeout` (s, 1.0), `socket_info`
    (``('localhost', 1234)``; a tuple/list, the string ``"('host', port)"`` or ``"host:port"``),
    `cmd_at_reconnect` (``['*OPC?']``; None sends nothing), `reconnect_test` (``'1'``; None
    accepts any answer), `command_terminator` (``''``), `response_terminator` (required),
    `reply_echo_cmd` (False: the instrument echoes each command before answering),
    `resend_on_timeout` (``auto``; ``always`` or ``never``: whether a command that got no answer is
    sent again on a new connection, see the module docstring); all other keywords are Service
    keywords.
    """

    def __init__(self, socket_timeout: float = 1.0, socket_info: Any = ("localhost", 1234),
                 cmd_at_reconnect: Sequence[str | None] | None = _DEFAULT_RECONNECT,
                 reconnect_test: str | None = "1", command_terminator: str = "",
                 response_terminator: str | None = None, reply_echo_cmd: bool = False,
                 resend_on_timeout: str = "auto", **kwargs: Any) -> None:
        """
        Args:
            command_terminator: appended to every command sent (often ``"\\n"``).
            response_terminator: where an answer ends (often ``"\\n"``); required.
        """
        where = f"EthernetSCPIService {kwargs.get('name', '')!r}"
        try:
            self._socket_timeout = _positive_seconds(socket_timeout, "socket_timeout")
            self._socket_info = parse_socket_info(socket_info)
            self._cmd_at_reconnect = _reconnect_commands(cmd_at_reconnect)
            self._command_terminator = _terminator(command_terminator, "command_terminator", True)
            self._response_terminator = _terminator(response_terminator, "response_terminator",
                                                    False)
            self._resend_on_timeout = resend_choice(resend_on_timeout)
        except SCPIConfigError as err:
            raise SCPIConfigError(f"{where}: {err.message}") from None
        self.reconnect_test = None if reconnect_test is None else str(reconnect_test)
        self.reply_echo_cmd = bool(reply_echo_cmd)
        self._socket: socket.socket | None = None
        self._rx = bytearray()  # bytes read past the end of the last answer
        # answers received on the current connection (reconnect commands included), whether one
        # of them answered a caller's command, and what was learnt about the instrument: True
        # when it answered twice on one connection, False when it serves one command per
        # connection, None while unknown
        self._answers_here = 0
        self._used = False
        self._keeps_connections: bool | None = None
        # not `_lock` (the handler of the `lock` instruction) nor `_exchange` (RequestSender's)
        self._io_lock = threading.Lock()
        self._closing = False
        Service.__init__(self, **kwargs)  # no I/O here: the instrument is contacted by on_start

    def on_start(self) -> None:
        """Connect to the instrument (and run `cmd_at_reconnect`) when the service starts.

        An instrument that cannot be reached yet is a warning, not a failure: the service starts
        anyway and every request tries to connect again.
        """
        super().on_start()
        with self._io_lock:
            try:
                self._connect()
            except ThrowReply as err:
                logger.warning("%s: instrument not reachable yet (%s); the service starts anyway "
                               "and every request will try to connect again", self.name, err.message)

    # ---- options (validated also when changed by a set request with a specifier) ---------------
    @property
    def socket_timeout(self) -> float:
        return self._socket_timeout

    @socket_timeout.setter
    def socket_timeout(self, value: Any) -> None:
        self._socket_timeout = _invalid_value(_positive_seconds, value, "socket_timeout")

    @property
    def socket_info(self) -> tuple[str, int]:
        return self._socket_info

    @socket_info.setter
    def socket_info(self, value: Any) -> None:
        info = _invalid_value(parse_socket_info, value)
        with self._io_lock:  # the next command connects to the new address
            self._socket_info = info
            self._keeps_connections = None  # another instrument: nothing known about it
            self._close()

    @property
    def resend_on_timeout(self) -> str:
        return self._resend_on_timeout

    @resend_on_timeout.setter
    def resend_on_timeout(self, value: Any) -> None:
        self._resend_on_timeout = _invalid_value(resend_choice, value)

    @property
    def keeps_connections(self) -> bool | None:
        """True: answers several commands per connection; False: one; None: not known yet."""
        return self._keeps_connections

    @property
    def cmd_at_reconnect(self) -> list[str | None] | None:
        return self._cmd_at_reconnect

    @cmd_at_reconnect.setter
    def cmd_at_reconnect(self, value: Any) -> None:
        self._cmd_at_reconnect = _invalid_value(_reconnect_commands, value)

    @property
    def command_terminator(self) -> str:
        return self._command_terminator

    @command_terminator.setter
    def command_terminator(self, value: Any) -> None:
        self._command_terminator = _invalid_value(_terminator, value, "command_terminator", True)

    @property
    def response_terminator(self) -> str:
        return self._response_terminator

    @response_terminator.setter
    def response_terminator(self, value: Any) -> None:
        self._response_terminator = _invalid_value(_terminator, value, "response_terminator", False)

    @property
    def connected(self) -> bool:
        """Whether a connection to the instrument is open (it may still turn out broken)."""
        return self._socket is not None

    # ---- public API ---------------------------------------------------------------------
    def send_to_device(self, commands: str | Sequence[str], resend_on_timeout: str | None = None,
                       **kwargs: Any) -> str:
        """Send each command, read its answer; the answers joined with ``;``.

        `resend_on_timeout` (auto, always, never; None: the service's choice) decides whether a
        command that got no answer is sent again on a new connection. ThrowReply 201 when the
        instrument cannot be reached or the connection breaks twice, 202 when an answer does not
        arrive within `socket_timeout` (and the command is not, or no longer, sent again).
        """
        if isinstance(commands, str):
            commands = [commands]
        if not isinstance(commands, (list, tuple)) or not commands:
            raise ThrowReply(_INVALID_VALUE, f"send_to_device needs a command or a non-empty list "
                                             f"of commands, got {commands!r}")
        for command in commands:
            if not isinstance(command, str):
                raise ThrowReply(_INVALID_VALUE, f"commands must be strings, got {command!r}")
        policy = self._resend_on_timeout if resend_on_timeout is None else \
            _invalid_value(resend_choice, resend_on_timeout)
        if kwargs:
            logger.debug("%s: send_to_device ignores %s", self.name, sorted(kwargs))
        with self._io_lock:
            answers = []
            retried = False
            for command in commands:
                query = is_query(command)
                resend = policy == "always" or (policy == "auto" and query)
                timeouts = 0
                silent_on_used = False
                while True:
                    if self._socket is None or self._needs_new_connection(query):
                        try:
                            self._connect()
                        except ThrowReply as err:
                            if not timeouts:
                                raise
                            # the instrument did not answer; that it then also failed the
                            # reconnect test does not make it a connection problem
                            raise ThrowReply(_NO_RESPONSE, f"no answer from {self._where()} to "
                                             f"{command!r} within {self._socket_timeout:g} s, and "
                                             f"reconnecting to send it again failed: "
                                             f"{err.message}") from None
                    on_used = self._used
                    try:
                        answer = self._exchange_command(command)
                    except _Broken as err:
                        self._close()
                        if retried or self._closing:
                            raise ThrowReply(_CONNECTION_ERROR, f"Broken ethernet socket to "
                                             f"{self._where()}: {err}") from None
                        retried = True
                        logger.warning("%s: connection to %s broken (%s); reconnecting and sending "
                                       "%r again", self.name, self._where(), err, command)
                        continue
                    except _NoAnswer as err:
                        self._close()  # a late answer must not be read as the next one
                        timeouts += 1
                        if not resend or timeouts > 1 or self._closing:
                            raise ThrowReply(_NO_RESPONSE, self._no_answer_text(
                                err, command, policy, resend)) from None
                        silent_on_used = on_used
                        logger.warning("%s: no answer from %s to %r within %g s; reconnecting and "
                                       "sending it again (resend_on_timeout: %s)", self.name,
                                       self._where(), command, self._socket_timeout, policy)
                        continue
                    self._used = True
                    if silent_on_used and self._answers_here == 1 \
                            and self._keeps_connections is None:
                        self._keeps_connections = False
                        logger.warning("%s: the instrument at %s ignored a second command on a "
                                       "connection and answered it at once on a new one: it "
                                       "serves one command per connection, so every command now "
                                       "gets a new connection", self.name, self._where())
                    answers.append(answer)
                    break
            return ";".join(answers)

    def _needs_new_connection(self, query: bool) -> bool:
        """Whether `command` must not go out on the current, already used, connection.

        A used connection of an instrument known to serve one command per connection is never
        reused; while that is not known, only a query (which may be sent again) goes out on it.
        """
        if not self._used:
            return False
        if self._keeps_connections is False:
            return True
        return self._keeps_connections is None and not query

    def _no_answer_text(self, err: Exception, command: str, policy: str, resend: bool) -> str:
        if resend:
            why = "no answer after sending it again on a new connection either"
        elif policy == "never":
            why = "not sent again (resend_on_timeout: never)"
        else:
            why = ("not sent again: it is not a query and may have been carried out "
                   "(resend_on_timeout: auto sends only queries again)")
        return f"{err} (command {command!r}; {why})"

    def reconnect(self) -> bool:
        """Close the connection and connect again (runs cmd_at_reconnect); 201 on failure."""
        with self._io_lock:
            self._close()
            self._connect()
        return True

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._closing = False
        await Service.start(self)

    async def stop_async(self) -> None:
        self._closing = True
        try:
            await Service.stop_async(self)
        finally:
            self._shutdown_socket()

    def _shutdown_socket(self) -> None:
        """Close the instrument connection, also while a handler may be waiting on it."""
        if self._io_lock.acquire(timeout=0.1):
            try:
                self._close()
            finally:
                self._io_lock.release()
            return
        sock = self._socket
        if sock is not None:  # a handler is reading: wake it up, it closes the socket itself
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ---- connection (all called with the lock held) -----------------------------------------
    def _where(self) -> str:
        return f"{self.socket_info[0]}:{self.socket_info[1]}"

    def _close(self) -> None:
        sock, self._socket = self._socket, None
        self._rx.clear()
        self._answers_here = 0
        self._used = False
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _connect(self) -> None:
        """Open the connection and run the reconnect commands; ThrowReply 201 on any failure."""
        if self._closing:
            raise ThrowReply(_CONNECTION_ERROR, f"service {self.name} is stopping; not connecting "
                                                f"to {self._where()}")
        self._close()
        try:
            sock = socket.create_connection(self.socket_info, timeout=self._socket_timeout)
        except OSError as err:
            raise ThrowReply(_CONNECTION_ERROR, f"Unable to establish ethernet socket to "
                                                f"{self._where()}: {err}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - not every socket family has it
            pass
        self._socket = sock
        # one connection per command is routine for some instruments: not worth an INFO line each
        level = logging.DEBUG if self._keeps_connections is False else logging.INFO
        if not self.cmd_at_reconnect:
            logger.log(level, "%s: connected to %s", self.name, self._where())
            return
        last: str | None = None
        step = ""
        try:
            for command in self.cmd_at_reconnect:
                if command is None:
                    step = "waiting for an unsolicited line"
                    try:
                        self._read_line(time.monotonic() + self._socket_timeout)
                    except _NoAnswer:
                        pass
                    continue
                step = f"sending {command!r}"
                last = self._exchange_command(command)
        except (_Broken, _NoAnswer, ThrowReply) as err:
            self._close()
            raise ThrowReply(_CONNECTION_ERROR, f"Failed connection test with {self._where()} "
                                                f"({step}): {err}") from None
        if self.reconnect_test is not None and last is not None \
                and last.strip() != self.reconnect_test.strip():
            self._close()
            raise ThrowReply(_CONNECTION_ERROR, f"Failed connection test with {self._where()}: "
                                                f"expected {self.reconnect_test!r}, got {last!r}")
        logger.log(level, "%s: connected to %s", self.name, self._where())

    def _exchange_command(self, command: str) -> str:
        """Send one command and return its answer (terminator removed)."""
        sock = self._socket
        assert sock is not None
        self._discard_pending()
        try:
            sock.settimeout(self._socket_timeout)
            sock.sendall((command + self.command_terminator).encode("utf-8"))
        except OSError as err:
            raise _Broken(f"send failed: {err}") from None
        deadline = time.monotonic() + self._socket_timeout
        blank = not command.strip()
        try:
            answer = self._read_line(deadline)
            if self.reply_echo_cmd:
                answer = self._strip_echo(command, answer, deadline)
        except _NoAnswer as err:
            if blank:  # nothing was asked: whatever came is the answer (reference behaviour)
                return err.partial.decode("utf-8", "replace")
            raise
        text = self._as_text(answer, command)
        self._answers_here += 1
        if self._answers_here >= 2 and self._keeps_connections is not True:
            logger.debug("%s: the instrument answers several commands per connection", self.name)
            self._keeps_connections = True
        return text

    def _as_text(self, answer: bytes, command: str) -> str:
        """The answer as text; 202 for bytes that are not (line noise, a confused instrument).

        UTF-8 first, else Latin-1 (some instruments send a degree sign as 0xB0); either way control
        characters other than tab, CR and LF mean the line is garbage, and the connection is
        closed so that the rest of it cannot be taken for the next answer.
        """
        try:
            text = answer.decode("utf-8")
        except UnicodeDecodeError:
            text = answer.decode("latin-1")
        if _GARBAGE.search(text):
            self._close()
            raise ThrowReply(_NO_RESPONSE, f"the instrument at {self._where()} answered {command!r} "
                                           f"with bytes that are not text: {answer[:200]!r}")
        return text

    def _strip_echo(self, command: str, first: bytes, deadline: float) -> bytes:
        echoed = command.encode("utf-8")
        if first.strip() == echoed.strip():  # the echo came on a line of its own
            return self._read_line(deadline)
        if first.startswith(echoed):
            return first[len(echoed):]
        self._close()
        raise ThrowReply(_CONNECTION_ERROR, f"the instrument at {self._where()} did not echo the "
                                            f"command {command!r}; it sent {first!r}")

    def _read_line(self, deadline: float) -> bytes:
        """Bytes up to the response terminator (excluded); the rest is kept for the next read."""
        sock = self._socket
        assert sock is not None
        terminator = self.response_terminator.encode("utf-8")
        while True:
            end = self._rx.find(terminator)
            if end >= 0:
                line = bytes(self._rx[:end])
                del self._rx[:end + len(terminator)]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _NoAnswer(self._timeout_text(), bytes(self._rx))
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(_RECV_SIZE)
            except socket.timeout:
                raise _NoAnswer(self._timeout_text(), bytes(self._rx)) from None
            except OSError as err:
                raise _Broken(str(err) or type(err).__name__) from None
            if not chunk:
                raise _Broken("connection closed by the instrument" +
                              (f" after a partial answer {bytes(self._rx)!r}" if self._rx else ""))
            self._rx += chunk
            if len(self._rx) > 1 << 20:
                raise _NoAnswer(f"no response terminator in 1 MiB of data from {self._where()}")

    def _timeout_text(self) -> str:
        got = f"; received {bytes(self._rx)[:200]!r} without terminator" if self._rx else ""
        return (f"Timeout while waiting for a response from the instrument at {self._where()} "
                f"({self._socket_timeout:g} s){got}")

    def _discard_pending(self) -> None:
        """Drop bytes that arrived unasked; notice a connection the instrument has closed."""
        sock = self._socket
        assert sock is not None
        stale = bytes(self._rx)
        self._rx.clear()
        try:
            sock.settimeout(0.0)  # non-blocking: only what is already there
            while len(stale) < 1 << 20:
                try:
                    chunk = sock.recv(_RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                if not chunk:
                    raise _Broken("connection closed by the instrument")
                stale += chunk
        except OSError as err:
            raise _Broken(str(err) or type(err).__name__) from None
        if stale:
            logger.warning("%s: discarded %d unexpected bytes from %s: %r", self.name, len(stale),
                           self._where(), stale[:200])
