"""The broker side of a service: its queues, their bindings and consumers.

A service owns one exclusive queue named after it, bound ``<service>.#``, ``<broadcast>.#`` and
``<endpoint>.#`` for every endpoint that shares the service's lane. An endpoint with a lane of its
own (an async child, or any child under ``worker_lanes: per_endpoint``) gets a queue of its own,
bound ``<endpoint>.#``: with one queue, the broker hands requests over in arrival order, so a
flood for one endpoint would sit in front of every other endpoint's requests whatever the lanes.

Names are unique on a mesh: the exclusive queue refuses a second service of the same name, and
before an endpoint's key is bound a ping to it finds out whether another service answers for it.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from dripline.protocol.errors import DriplineError, TimeoutError_, UnableToSendError
from dripline.protocol.message import MsgReply, MsgRequest, op_t
from dripline.service.acks import AckWindow
from dripline.service.lanes import Lanes

__all__ = ["ENDPOINT_PROBE_TIMEOUT_S", "Topology"]

logger = logging.getLogger(__name__)

#: how long a start waits for an answer when it asks whether an endpoint name is served
ENDPOINT_PROBE_TIMEOUT_S = 0.5


class Topology:
    """Declares, binds, consumes and deletes a service's queues (see the module docstring).

    Deliveries of every queue go to `on_delivery`, with the prefetch of the one `window`;
    `on_restored` runs when the broker connection is back.
    """

    def __init__(self, service: Any, lanes: Lanes, window: AckWindow,
                 on_delivery: Callable[[str, bytes, Any, Any], None],
                 on_restored: Callable[[], None]) -> None:
        self._service = service
        self._lanes = lanes
        self._window = window
        self._on_delivery = on_delivery
        self._on_restored = on_restored
        self.queues: list[Any] = []

    def _own_queue_children(self) -> list[Any]:
        svc = self._service
        return [c for c in (*svc.sync_children.values(), *svc.async_children.values())
                if self._lanes.has_own_lane(c.name)]

    def binding_keys(self) -> list[str]:
        svc = self._service
        return [f"{svc.name}.#", f"{svc.broadcast_key}.#"] + \
            [f"{c}.#" for c in svc.sync_children if not self._lanes.has_own_lane(c)]

    async def claim(self) -> None:
        """Connect, declare the service's queue (refused if the name is taken), check endpoints."""
        svc = self._service
        await svc.core.start()
        try:
            queue = await svc.core.connection.declare_queue(svc.name)
        except DriplineError as err:
            if "already running" in err.message or "RESOURCE_LOCKED" in err.message:
                raise DriplineError(f"cannot start service {svc.name!r}: a service with that name "
                                    "is already running on this mesh (its queue is held by another "
                                    "connection)", 101) from None
            raise
        self.queues.append(queue)
        await self.refuse_served_endpoints()

    async def serve(self) -> None:
        """Bind the keys and start consuming (after `claim` and the service's start hook)."""
        svc = self._service
        conn = svc.core.connection
        queue = self.queues[0]
        svc.bind_keys(queue)
        for key in self.binding_keys():
            await conn.bind(queue, svc.core.requests_exchange, key)
        await svc._bind_extra(queue)
        await conn.consume(queue, self._on_delivery, no_ack=False, prefetch=self._window.size)
        conn.on_restored.append(self._on_restored)
        for child in self._own_queue_children():
            await self.add_own_queue(child.name)
        logger.info("service %s listening on %s (endpoints: %s)", svc.name, conn.address,
                    ", ".join(list(svc.sync_children) + list(svc.async_children)) or "none")

    async def add_own_queue(self, name: str) -> None:
        """A queue bound ``<name>.#`` for an endpoint with a lane of its own."""
        core = self._service.core
        queue = await core.connection.declare_queue(name)
        self.queues.append(queue)
        await core.connection.bind(queue, core.requests_exchange, f"{name}.#")
        await core.connection.consume(queue, self._on_delivery, no_ack=False,
                                      prefetch=self._window.size)

    async def add_child(self, name: str) -> None:
        """Route requests for an endpoint attached while the service runs."""
        core = self._service.core
        if core.connection is None or not self.queues:
            return
        if self._lanes.has_own_lane(name):
            await self.add_own_queue(name)
        else:
            await core.connection.bind(self.queues[0], core.requests_exchange, f"{name}.#")

    async def delete(self) -> None:
        conn = self._service.core.connection
        if conn is not None and conn.is_open:
            for declared in self.queues:
                try:
                    await conn.delete_queue(declared)
                except DriplineError as err:
                    logger.debug("deleting queue %s: %s", declared.name, err.message)
        self.queues.clear()

    async def refuse_served_endpoints(self) -> None:
        """DriplineError when another service on the mesh already answers for a child's name.

        Before `<child>.#` is bound, a mandatory ``cmd <child> ping`` goes out for every child at
        once: the broker returns it at once (UnableToSendError) when nobody is bound, which is
        the usual case and costs about a millisecond. Any reply means another service serves that
        name. No answer within ENDPOINT_PROBE_TIMEOUT_S means something is bound that does not
        answer requests (e.g. dl-mon watching the key): the name is taken as free.
        """
        svc = self._service
        names = [n for n in (*svc.sync_children, *svc.async_children) if n != svc.broadcast_key]
        if not names:
            return

        async def probe(name: str) -> MsgReply | None:
            request = MsgRequest.create(payload={}, msg_op=op_t.cmd, routing_key=name,
                                        specifier="ping")
            request.sender_info = svc.sender_info
            try:
                return await svc.core.request(request, ENDPOINT_PROBE_TIMEOUT_S)
            except UnableToSendError:
                return None
            except TimeoutError_:
                logger.debug("service %s: '%s.#' is bound on the mesh but nothing answered a ping "
                             "within %g s; taking the name as free", svc.name, name,
                             ENDPOINT_PROBE_TIMEOUT_S)
                return None

        replies = await asyncio.gather(*(probe(n) for n in names))
        for name, reply in zip(names, replies):
            if reply is not None:
                owner = (reply.sender_info or {}).get("service_name") or "unknown"
                raise DriplineError(f"endpoint {name!r} is already served by service {owner!r} on "
                                    "this mesh; endpoint names must be unique", 101)
