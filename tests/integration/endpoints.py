"""Small endpoint classes the integration tests serve."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

from dripline.core import Endpoint, ThrowReply


class Echo(Endpoint):
    """Replies with what it was given; records the threads it ran on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.value = None
        self.threads = set()
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def on_get(self):
        return {"value": self.value}

    def on_set(self, value):
        self.value = value
        return {"value": value}

    def echo(self, *args, **kwargs):
        return {"args": list(args), "kwargs": kwargs}

    def add(self, a, b):
        return a + b

    def sleep(self, seconds):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.threads.add(threading.current_thread().name)
        time.sleep(seconds)
        with self._lock:
            self.active -= 1
        return seconds

    def fail(self):
        raise ValueError("this endpoint always fails")

    def refuse(self):
        raise ThrowReply("resource_error_no_response", "the instrument did not answer", {"tries": 3})

    def ask(self, other):
        """Calls another endpoint from inside a handler (must not deadlock)."""
        return self.service.get(other)


class AsyncEcho(Endpoint):
    async def on_get(self):
        import asyncio
        await asyncio.sleep(0.01)
        return {"async": True}


def dl(tool: str, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run a dripline command (agent, mon, serve, plugin) as a user would, in a subprocess."""
    return subprocess.run([sys.executable, "-m", f"dripline.cli.{tool}", *args], capture_output=True,
                          text=True, timeout=timeout, **kw)
