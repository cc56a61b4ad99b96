"""Clients of a dripline mesh: `AsyncInterface` (native asyncio) and `Interface` (blocking).

`Interface` runs an AsyncInterface on a private loop thread, so it works the same in a script, in
a Jupyter notebook (which has its own running loop) and inside a service's request handler.
"""
from __future__ import annotations

import logging
from typing import Any

from dripline.client.session import Core
from dripline.protocol.message import MsgReply, MsgRequest, op_t
from dripline.client.request_sender import (RequestSender, broadcast_value, build_request, cmd_payload,
                             reply_value, set_payload)

__all__ = ["AsyncInterface", "Interface"]

logger = logging.getLogger(__name__)


class AsyncInterface:
    """An asyncio client: ``async with AsyncInterface() as dl: await dl.get('peaches')``."""

    def __init__(self, username: Any = None, password: Any = None, dripline_mesh: dict | None = None,
                 timeout_s: float = 10, confirm_retcodes: bool = True, auth: Any = None,
                 broadcast_key: str = "broadcast", name: str = "interface", **kwargs: Any) -> None:
        if kwargs:
            logger.debug("AsyncInterface ignores %s", sorted(kwargs))
        self.core = Core(dripline_mesh, auth, username=username, password=password,
                         connection_name=f"dripline:{name}")
        self.timeout_s = timeout_s
        self.confirm_retcodes = confirm_retcodes
        self.broadcast_key = broadcast_key
        self._started = False

    async def start(self) -> "AsyncInterface":
        if not self._started:
            await self.core.start()
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

    # ------------------------------------------------------------------ requests
    async def send_request(self, request: MsgRequest, timeout_s: float | None = None) -> MsgReply:
        """Send a prepared request; return the whole reply message (no return-code check)."""
        await self.start()
        return await self.core.request(request, self.timeout_s if timeout_s is None else timeout_s)

    async def send_request_all(self, request: MsgRequest, timeout_s: float | None = None) -> list[MsgReply]:
        await self.start()
        return await self.core.request_all(request, (self.timeout_s if timeout_s is None else timeout_s) or 10)

    async def _exchange(self, request: MsgRequest, timeout_s: float | None) -> Any:
        if request.routing_key.split(".", 1)[0] == self.broadcast_key:
            return broadcast_value(await self.send_request_all(request, timeout_s), self.confirm_retcodes)
        reply = await self.send_request(request, timeout_s)
        return reply_value(reply, self.confirm_retcodes, request.routing_key)

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

    async def send_alert(self, routing_key: str, payload: Any = None) -> None:
        await self.start()
        self.core.send_alert(routing_key, payload)


class Interface(RequestSender):
    """A blocking client for scripts, notebooks and service handlers.

    ``Interface().get('peaches')`` returns the reply payload; a non-zero return code raises a
    DriplineError carrying code, message and payload (unless confirm_retcodes=False).
    """

    def __init__(self, username: Any = None, password: Any = None, dripline_mesh: dict | None = None,
                 timeout_s: float = 10, confirm_retcodes: bool = True, **kwargs: Any) -> None:
        from dripline.transport.bridge import LoopThread
        self._async = AsyncInterface(username, password, dripline_mesh, timeout_s, confirm_retcodes,
                                     **kwargs)
        self.timeout_s = timeout_s
        self.confirm_retcodes = confirm_retcodes
        self.broadcast_key = self._async.broadcast_key
        self._thread = LoopThread("dripline-interface")
        try:
            self._thread.run(self._async.start())
        except BaseException:
            self._thread.stop()
            raise

    @property
    def core(self) -> Core:
        return self._async.core

    def send_request(self, request: MsgRequest, timeout_s: float | None = None) -> MsgReply:
        aif = self._async
        if not aif._started:  # closed: AsyncInterface.send_request (re)starts as it always did
            return self._thread.run(aif.send_request(request, timeout_s))
        # the task-free path: every blocking get/set/cmd comes here (bench/request_reply.py)
        return self._thread.call(aif.core.request_callback, request,
                                 aif.timeout_s if timeout_s is None else timeout_s)

    def send_request_all(self, request: MsgRequest, timeout_s: float | None = None) -> list[MsgReply]:
        return self._thread.run(self._async.send_request_all(request, timeout_s))

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
