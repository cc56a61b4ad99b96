"""Who this process is on the mesh, and when it speaks: what every message it sends carries in
``sender_info`` and ``timestamp``.

Why here and not in the codec: the protocol package is pure (it writes what it is handed), so
that building or encoding a message never reads the clock, the host, the passwd file or a version
registry, and never imports plugins. The process that owns the identity, a client or a service,
builds one `SenderIdentity` and stamps it on what it sends (`Core` does, at publish time).

The versions table holds dripline's own entries (the protocol and this package) by default.
``dl-serve`` adds the plugin versions in its assembly step (plugin discovery registers them with
`add_version`, as the reference's plugins do at import); a script or ``dl-agent`` discovers no
plugins and reports dripline's entries only.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Mapping

from dripline.protocol.message import format_timestamp
from dripline.protocol.version import PROTOCOL_VERSION, versions_table

__all__ = ["SenderIdentity", "set_program", "process_identity", "sender_info_for",
           "now_timestamp", "add_version", "remove_version", "get_version", "get_versions",
           "PROTOCOL_VERSION"]

_lock = threading.Lock()
_versions: dict[str, Any] = {}
_builtin_done = False
_table: dict[str, dict[str, str]] | None = None
_program: str | None = None
_identity: "SenderIdentity | None" = None


class SenderIdentity:
    """The facts a process reports about itself: program, host, user and package versions.

    Immutable once built; `sender_info(name)` gives the table for one sending service, one dict
    per name shared by every message (replace a message's sender_info, never mutate it).
    """

    __slots__ = ("exe", "hostname", "username", "versions", "_by_name")

    def __init__(self, exe: str, hostname: str, username: str,
                 versions: Mapping[str, Mapping[str, str]]) -> None:
        self.exe, self.hostname, self.username = str(exe), str(hostname), str(username)
        self.versions = versions
        self._by_name: dict[str, dict[str, Any]] = {}

    def sender_info(self, service_name: str = "unknown") -> dict[str, Any]:
        info = self._by_name.get(service_name)
        if info is None:
            info = {"exe": self.exe, "hostname": self.hostname, "username": self.username,
                    "service_name": str(service_name), "versions": self.versions}
            if len(self._by_name) > 1024:  # many distinct names (a test suite): stay bounded
                self._by_name.clear()
            self._by_name[service_name] = info
        return info

    @classmethod
    def of_this_process(cls, program: str | None = None,
                        versions: Mapping[str, Mapping[str, str]] | None = None) -> "SenderIdentity":
        """Read the program, host name and user name of this process (once per identity)."""
        return cls(program or _program_path(), _hostname(), _username(),
                   get_versions() if versions is None else versions)

    def __repr__(self) -> str:
        return (f"SenderIdentity(exe={self.exe!r}, hostname={self.hostname!r}, "
                f"username={self.username!r}, versions={sorted(self.versions)})")


# ------------------------------------------------------------------------------ the program
def set_program(program: str) -> None:
    """Name the running program in `sender_info.exe` (a path, or a name such as "dl-agent").

    dl-cpp reports its own binary there, and a ping's reply and dl-mon show it; for Python that
    binary is the interpreter, which names nothing. The commands call this with their own path.
    """
    global _program, _identity
    with _lock:
        _program = program
        _identity = None


def _program_path() -> str:
    """The program to name: what set_program() said, else the script being run (a user's
    `take_data.py`), else the interpreter (an interactive session, `python -c`)."""
    if _program:
        return _program
    script = sys.argv[0] if sys.argv else ""
    if script and script not in ("-c", "-m") and os.path.isfile(script):
        return os.path.abspath(script)
    try:
        return os.readlink("/proc/self/exe")
    except OSError:
        return sys.executable or "unknown"


def _hostname() -> str:
    import socket  # here: only the first message of a process needs it
    try:
        return socket.gethostname()
    except OSError:
        return "unknown"


def _username() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except Exception:
        try:
            import getpass
            return getpass.getuser()
        except Exception:
            return "unknown"


def process_identity() -> SenderIdentity:
    """This process's identity, built on first use and again after set_program/add_version."""
    identity = _identity
    if identity is None or identity.versions is not _table:
        identity = _rebuild_identity()
    return identity


def _rebuild_identity() -> SenderIdentity:
    global _identity
    versions = get_versions()
    with _lock:
        current = _identity
        if current is not None and current.versions is versions:
            return current
        program = _program
    if current is not None:  # only the versions changed: keep the facts already read
        identity = SenderIdentity(current.exe, current.hostname, current.username, versions)
    else:
        identity = SenderIdentity.of_this_process(program, versions)
    with _lock:
        _identity = identity
    return identity


def sender_info_for(service_name: str = "unknown") -> dict[str, Any]:
    """The ``sender_info`` table of this process when it sends as `service_name`."""
    return process_identity().sender_info(service_name)


def now_timestamp() -> str:
    """The ``timestamp`` header for a message sent now (UTC, microseconds)."""
    return format_timestamp(time.time_ns())


# ------------------------------------------------------------------------------ versions
def _ensure_builtin() -> None:
    """dripline's own entries, as the reference reports them (read once, on first need)."""
    global _builtin_done
    if _builtin_done:
        return
    from dripline._metadata import distribution_version  # a file read, done once
    version = distribution_version()
    with _lock:
        _versions.setdefault("dripline", PROTOCOL_VERSION)
        _versions.setdefault("dripline-python", {"version": version, "commit": "na",
                                                 "package": "driplineorg/dripline-python"})
        _builtin_done = True


def add_version(name: str, version: Any) -> None:
    """Report `version` (a scarab.VersionSemantic, anything with .version/.commit/.package, a
    mapping with those keys, or a plain string) under `name` in every message sent from now on."""
    global _table
    _ensure_builtin()
    with _lock:
        _versions[name] = version
        _table = None


def remove_version(name: str) -> None:
    global _table
    _ensure_builtin()
    with _lock:
        _versions.pop(name, None)
        _table = None


def get_version(name: str) -> Any:
    """What was registered under `name` (None when nothing is)."""
    _ensure_builtin()
    return _versions.get(name)


def get_versions() -> dict[str, dict[str, str]]:
    """The ``sender_info.versions`` table: {name: {"version"[, "commit"][, "package"]}}.

    The same dict object until the registry changes (messages share it).
    """
    global _table
    table = _table
    if table is None:
        _ensure_builtin()
        with _lock:
            table = _table
            if table is None:
                table = _table = versions_table(_versions)
    return table
