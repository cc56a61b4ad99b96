"""Clients of a dripline mesh: `AsyncInterface` (native asyncio) and `Interface` (blocking).

`AsyncInterface` is the one implementation: it builds requests, applies the client policy
(`dripline.client.request_sender.exchange_plan`) and starts every request in
`Core.begin_request`, whose tracker decides how it ends. `Interface` is its blocking face: an
AsyncInterface on a private loop thread, reached through the one loop<->thread bridge
(`dripline.transport.bridge.block_on`), so it works the same in a script, in a Jupyter notebook
(which has its own running loop) and inside a service's request handler. A service's own
blocking requests (``self.service.get()`` in a handler) take the same bridge into the same
pipeline (`request_from_thread`); dl-agent and dl-mon use an AsyncInterface.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Awaitable, Callable

from dripline.client.request_sender import (BROADCAST_TIMEOUT_S, RequestSender, build_request,
                                            cmd_payload, exchange_plan, set_payload)
from dripline.client.session import Core
from dripline.protocol.errors import DriplineError
from dripline.protocol.message import Message, MsgReply, MsgRequest, op_t
from dripline.transport.bridge import LoopThread, block_on

__all__ = ["AsyncInterface", "Interface", "request_from_thread"]

logger = logging.getLogger(__name__)


class AsyncInterface:
    """An asyncio client: ``async with AsyncInterface() as dl: await dl.get('peaches')``.

    `core` wraps an existing Core (its connection and reply queue) instead of making one.
    """

    def __init__(self, username: Any = None, password: Any = None, dripline_mesh: dict | None = None,
                 timeout_s: float = 10, confirm_retcodes: bool = True, auth: Any = None,
                 broadcast_key: str = "broadcast", name: str = "interface", *,
                 core: Core | None = None, **kwargs: Any) -> None:
        if kwargs:
            logger.debug("AsyncInterface ignores %s", sorted(kwargs))
        self.core = core if core is not None else Core(
            dripline_mesh, auth, username=username, password=password,
            connection_name=f"dripline:{name}")
        self.timeout_s = timeout_s
        self.confirm_retcodes = confirm_retcodes
        self.broadcast_key = broadcast_key
        self._started = core is not None and core.loop is not None

    async def start(self, timeout_s: float | None = None) -> "AsyncInterface":
        """Connect (`timeout_s` bounds the attempts; None: the mesh's max_connection_attempts)."""
        if not self._started:
            await self.core.start(timeout_s)
            self._started = True
        return self

    async def close(self) -> None:
        if self._started:
            self._started = False
            await self.core.close()

    async def __aenter__(self) -> "AsyncInterface":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ------------------------------------------------------------------ starting requests
    def begin(self, request: MsgRequest, timeout_s: float | None = None) -> Awaitable[Any]:
        """Send `request` and return an awaitable of its value (the payload; for a broadcast
        {service: payload}), by the client policy. On the loop, without a task: `Interface`
        blocks on it through the bridge. Before `start`, a coroutine that starts first."""
        if not self._started:
            return self._exchange(request, timeout_s)
        plan = exchange_plan(request, timeout_s, self.timeout_s, self.confirm_retcodes,
                             self.broadcast_key)
        return self.core.begin_request(request, plan.timeout_s, collect=plan.collect,
                                       convert=plan.convert)

    def begin_request(self, request: MsgRequest, timeout_s: float | None = None,
                      collect: bool = False) -> Awaitable[Any]:
        """Send a prepared request; an awaitable of the whole reply (no return-code check), or
        with `collect` of every reply within the timeout."""
        if not self._started:
            return self._send(request, timeout_s, collect)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        if collect:
            timeout = timeout or BROADCAST_TIMEOUT_S
        return self.core.begin_request(request, timeout, collect=collect)

    async def _exchange(self, request: MsgRequest, timeout_s: float | None) -> Any:
        await self.start()
        return await self.begin(request, timeout_s)

    async def _send(self, request: MsgRequest, timeout_s: float | None, collect: bool) -> Any:
        await self.start()
        return await self.begin_request(request, timeout_s, collect)

    # ------------------------------------------------------------------ requests
    async def send_request(self, request: MsgRequest, timeout_s: float | None = None) -> MsgReply:
        """Send a prepared request; return the whole reply message (no return-code check)."""
        reply: MsgReply = await self._send(request, timeout_s, False)
        return reply

    async def send_request_all(self, request: MsgRequest,
                               timeout_s: float | None = None) -> list[MsgReply]:
        """Send a prepared request (a broadcast) and return every reply within the timeout."""
        replies: list[MsgReply] = await self._send(request, timeout_s, True)
        return replies

    async def get(self, endpoint: str, specifier: str | None = None, lockout_key: Any = None,
                  timeout_s: float | None = None) -> Any:
        return await self._exchange(build_request(op_t.get, endpoint, specifier, None, lockout_key),
                                    timeout_s)

    async def set(self, endpoint: str, value: Any, specifier: str | None = None,
                  lockout_key: Any = None, timeout_s: float | None = None) -> Any:
        return await self._exchange(build_request(op_t.set, endpoint, specifier, set_payload(value),
                                                  lockout_key), timeout_s)

    async def cmd(self, endpoint: str, specifier: str, ordered_args: Any = None,
                  keyed_args: dict | None = None, lockout_key: Any = None,
                  timeout_s: float | None = None) -> Any:
        return await self._exchange(build_request(op_t.cmd, endpoint, specifier,
                                                  cmd_payload(ordered_args, keyed_args), lockout_key),
                                    timeout_s)

    # ------------------------------------------------------------------ sending and watching
    async def send_alert(self, routing_key: str, payload: Any = None) -> None:
        await self.start()
        self.core.send_alert(routing_key, payload)

    async def send(self, message: Message, timeout_s: float | None = None) -> None:
        """Send a reply or an alert and wait until the broker took it (a refusal raises)."""
        await self.start()
        await self.core.send_confirmed(message, self.timeout_s if timeout_s is None else timeout_s)

    async def watch(self, queue_name: str, request_keys: list[str], alert_keys: list[str],
                    on_delivery: Callable[[str, bytes, Any, Any], None]) -> Any:
        """Receive what is published to the given keys of both exchanges (dl-mon): a private
        queue named `queue_name`, every delivery handed to `on_delivery` undecoded. Returns the
        queue, for `unwatch`."""
        await self.start()
        return await self.core.watch(queue_name, request_keys, alert_keys, on_delivery)

    async def unwatch(self, queue: Any) -> None:
        await self.core.unwatch(queue)


class Interface(RequestSender):
    """A blocking client for scripts, notebooks and service handlers.

    ``Interface().get('peaches')`` returns the reply payload; a non-zero return code raises a
    DriplineError carrying code, message and payload (unless confirm_retcodes=False).
    """

    def __init__(self, username: Any = None, password: Any = None, dripline_mesh: dict | None = None,
                 timeout_s: float = 10, confirm_retcodes: bool = True, **kwargs: Any) -> None:
        self._async = AsyncInterface(username, password, dripline_mesh, timeout_s, confirm_retcodes,
                                     **kwargs)
        self._thread = LoopThread("dripline-interface")
        try:
            self._thread.run(self._async.start())
        except BaseException:
            self._thread.stop()
            raise

    @property
    def core(self) -> Core:
        return self._async.core

    # this face's settings are the implementation's (a script may change them any time)
    timeout_s = property(lambda self: self._async.timeout_s,
                         lambda self, value: setattr(self._async, "timeout_s", value))
    confirm_retcodes = property(lambda self: self._async.confirm_retcodes,
                                lambda self, value: setattr(self._async, "confirm_retcodes", value))
    broadcast_key = property(lambda self: self._async.broadcast_key,
                             lambda self, value: setattr(self._async, "broadcast_key", value))

    def _exchange(self, request: MsgRequest, timeout_s: float | None) -> Any:
        # one bridge hop to the future AsyncInterface.begin returns: every blocking get/set/cmd
        # comes here (bench/request_reply.py)
        return self._thread.run(self._async.begin, request, timeout_s)

    def send_request(self, request: MsgRequest, timeout_s: float | None = None) -> MsgReply:
        return self._thread.run(self._async.begin_request, request, timeout_s)

    def send_request_all(self, request: MsgRequest, timeout_s: float | None = None) -> list[MsgReply]:
        return self._thread.run(self._async.begin_request, request, timeout_s, True)

    def send_alert(self, routing_key: str, payload: Any = None) -> None:
        self._thread.run(self._async.send_alert(routing_key, payload))

    def close(self) -> None:
        if self._thread.thread.is_alive():
            try:
                self._thread.run(self._async.close(), timeout=10)
            finally:
                self._thread.stop()

    def __enter__(self) -> "Interface":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: do not leave a connection behind in notebooks
        try:
            self.close()
        except Exception:
            pass


def request_from_thread(loop: asyncio.AbstractEventLoop | None, core: Core, request: MsgRequest,
                        timeout_s: float | None, *, collect: bool = False,
                        owner: str = "client") -> Any:
    """Send `request` through `core` (whose loop runs in another thread) and block for its reply,
    or with `collect` its replies: a service handler's ``self.service.get()``. The client
    pipeline (`Core.begin_request`) over the one bridge; `owner` names the sender in errors."""
    if loop is None or loop.is_closed() or not loop.is_running():
        raise DriplineError(f"{owner} is not running; it cannot send requests yet", 101)
    if asyncio._get_running_loop() is loop:
        raise DriplineError("a blocking request was made on the event loop (from an async "
                            "handler); await self.service.core.request(...) there instead", 300)
    if collect:
        timeout_s = timeout_s or BROADCAST_TIMEOUT_S
    return block_on(loop, functools.partial(core.begin_request, collect=collect), request,
                    timeout_s)
