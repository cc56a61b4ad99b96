"""Child processes of the benchmarks: each has a bounded life and goes when its parent goes.

A benchmark that is interrupted (Ctrl-C, a killed CI job) must not leave publishers, services or
servers running on the machine; every bench script starts its children through these helpers.
The scripts run as ``python bench/<name>.py``, so this module is found beside them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any, Callable

__all__ = ["die_with_parent", "start_watchdog", "terminate_self", "spawn"]


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """The kernel sends `sig` to this process when its parent dies (Linux; elsewhere the
    watchdog below still ends it). Call it in the child, or give it as ``preexec_fn``."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def start_watchdog(max_seconds: float, on_expire: Callable[[], None] | None = None,
                   grace_s: float = 10.0) -> None:
    """End this process when its parent is gone or `max_seconds` have passed: `on_expire()`
    (e.g. SIGTERM to itself, for a clean stop), then, `grace_s` later, ``os._exit(3)``; without
    `on_expire`, ``os._exit(3)`` at once."""
    parent = os.getppid()
    deadline = time.monotonic() + max_seconds

    def watch() -> None:
        while time.monotonic() < deadline and os.getppid() == parent:
            time.sleep(0.5)
        if on_expire is not None:
            on_expire()
            time.sleep(grace_s)
        os._exit(3)

    threading.Thread(target=watch, name="bench-watchdog", daemon=True).start()


def terminate_self() -> None:
    """An `on_expire` for `start_watchdog`: SIGTERM to this process."""
    os.kill(os.getpid(), signal.SIGTERM)


def spawn(cmd: list[str], death_signal: int = signal.SIGTERM, **kw: Any) -> subprocess.Popen:
    """subprocess.Popen(cmd, **kw) for a child that gets `death_signal` when this process dies."""
    return subprocess.Popen(cmd, preexec_fn=lambda: die_with_parent(death_signal), **kw)
