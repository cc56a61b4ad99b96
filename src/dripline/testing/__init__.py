"""Testing kit for service and plugin authors (a pytest plugin, loaded automatically).

    def test_peaches(dl_service, dl_interface):
        dl_service({"name": "my_store", "endpoints": [{"name": "peaches", "module": "KeyValueStore",
                                                        "initial_value": 0.75}]})
        assert dl_interface.get("peaches")["value_raw"] == 0.75

or, for one class, in three lines (the class is found as `module:` in a YAML file would be: from
a plugin, dripline itself, or given as a class object)::

    def test_jitter(dl_endpoint):
        peaches = dl_endpoint("JitterEntity", initial_value=0.75, seed=7)
        assert peaches.get()["value_raw"] >= 0.75

Fixtures talk to a real broker (DRIPLINE_TEST_BROKER / DRIPLINE_TEST_PORT, default localhost:5672)
because a mocked broker hides exactly the failures that matter. Services run in a background
thread and are stopped (queue deleted) after the test.

Without a broker, `memory_service` / `memory_endpoint` / `MemoryMesh` (`dripline.testing.memory`)
build the same objects from the same configuration and answer requests through the real dispatch
table and codec, in memory: for what an endpoint answers, not for how the broker carries it::

    def test_peaches_in_memory():
        with memory_endpoint("KeyValueStore", initial_value=0.75) as peaches:
            assert peaches.get() == {"value_raw": 0.75}
"""
from __future__ import annotations

import asyncio
import os
import threading
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from dripline.testing.memory import (Alert, MemoryChannel, MemoryEndpoint, MemoryMesh,
                                     MemoryService, memory_endpoint, memory_service)

__all__ = ["Alert", "EndpointHandle", "MemoryChannel", "MemoryEndpoint", "MemoryMesh",
           "MemoryService",
           "ServiceRunner", "memory_endpoint", "memory_service", "run_service", "test_mesh",
           "unique_name"]


def test_mesh() -> dict:
    """The dripline_mesh block for the test broker."""
    return {"broker": os.environ.get("DRIPLINE_TEST_BROKER", "localhost"),
            "broker_port": int(os.environ.get("DRIPLINE_TEST_PORT", "5672")),
            "max_connection_attempts": 3}


setattr(test_mesh, "__test__", False)  # not a test function (pytest reads it)


def unique_name(prefix: str = "svc") -> str:
    """A service or endpoint name no other test (or concurrent run) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


class ServiceRunner:
    """Runs a Service on its own event loop in a background thread."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"service-{service.name}", daemon=True)

    def _main(self) -> None:
        from dripline.transport.bridge import new_event_loop
        loop = new_event_loop()
        asyncio.set_event_loop(loop)

        async def go() -> None:
            task = asyncio.ensure_future(self.service.run_async())
            started = asyncio.ensure_future(asyncio.to_thread(self.service.started.wait, 30))
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                self._ready.set()
            else:
                self.service.started.set()  # release the waiting helper thread
            await task

        try:
            loop.run_until_complete(go())
        except BaseException as err:  # surfaced to the test by start()
            self.error = err
        finally:
            self._ready.set()
            loop.close()

    def start(self, timeout: float = 30) -> "ServiceRunner":
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"service {self.service.name} did not start within {timeout} s")
        if self.error is not None:
            raise self.error
        return self

    def stop(self, timeout: float = 15) -> None:
        self.service.cancel()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"service {self.service.name} did not stop within {timeout} s")


def _build(config: Any) -> Any:
    import yaml

    from dripline.assembly.objects import create_object
    if isinstance(config, str):
        config = yaml.safe_load(config)
    config = dict(config)
    mesh = dict(test_mesh())
    mesh.update(config.pop("dripline_mesh", None) or {})
    config["dripline_mesh"] = mesh
    config.setdefault("enable_scheduling", True)
    return create_object(config, "Service")


@contextmanager
def run_service(config: Any) -> Iterator[Any]:
    """Build a service from a dict or YAML text, run it, yield it, stop it."""
    runner = ServiceRunner(_build(config) if not hasattr(config, "run_async") else config).start()
    try:
        yield runner.service
    finally:
        runner.stop()


@pytest.fixture
def dl_mesh() -> dict:
    return test_mesh()


@pytest.fixture
def dl_service() -> Iterator[Any]:
    """Call with a config dict / YAML text (or a Service object); returns the running service."""
    runners: list[ServiceRunner] = []

    def start(config: Any) -> Any:
        service = config if hasattr(config, "run_async") else _build(config)
        runners.append(ServiceRunner(service).start())
        return service

    yield start
    for runner in reversed(runners):
        runner.stop()


@pytest.fixture
def dl_interface() -> Iterator[Any]:
    """A blocking Interface connected to the test broker."""
    from dripline.client.interface import Interface
    iface = Interface(dripline_mesh=test_mesh(), timeout_s=10)
    yield iface
    iface.close()


class EndpointHandle:
    """An endpoint running in a test service; get/set/cmd go through the real broker."""

    def __init__(self, name: str, service: Any, interface: Any) -> None:
        self.name = name
        self.service = service
        self.interface = interface

    @property
    def endpoint(self) -> Any:
        """The endpoint object itself (to inspect its state)."""
        return self.service.endpoint(self.name)

    def get(self, specifier: str | None = None, **kwargs: Any) -> Any:
        return self.interface.get(self.name, specifier, **kwargs)

    def set(self, value: Any, specifier: str | None = None, **kwargs: Any) -> Any:
        return self.interface.set(self.name, value, specifier, **kwargs)

    def cmd(self, specifier: str, *args: Any, **kwargs: Any) -> Any:
        return self.interface.cmd(self.name, specifier, list(args), kwargs or None)


@pytest.fixture
def dl_endpoint(dl_service, dl_interface) -> Any:
    """Call with a class name (as `module:` in YAML) or a class, and its keywords; the endpoint runs
    alone in a fresh service under a unique name and an `EndpointHandle` is returned."""

    def start(module: Any, **kwargs: Any) -> EndpointHandle:
        name = kwargs.pop("name", None) or unique_name("ep")
        if isinstance(module, type):
            from dripline.service.service import Service
            service = Service(unique_name("svc"), dripline_mesh=test_mesh(), heartbeat_interval_s=0,
                              enable_scheduling=True)
            service.add_child(module(name=name, **kwargs))
            dl_service(service)
        else:
            service = dl_service({"name": unique_name("svc"), "heartbeat_interval_s": 0,
                                  "endpoints": [{"name": name, "module": module, **kwargs}]})
        return EndpointHandle(name, service, dl_interface)

    return start
