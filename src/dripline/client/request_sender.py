"""Building requests from get/set/cmd arguments and turning replies into return values.

The one policy of every client: how a request is built (reference §1.12 payload conventions),
which timeout applies, when a routing key is a broadcast (collect every reply), and how a reply
becomes the return value (`confirm_retcodes`). `AsyncInterface` applies it (`exchange_plan`), and
so do `Interface` and a Service's blocking `get/set/cmd` (the `RequestSender` mix-in), so the
clients cannot drift apart. Unlike the reference, `timeout_s` and `confirm_retcodes` are honoured.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from dripline.protocol.errors import DriplineError
from dripline.protocol.message import MsgReply, MsgRequest, op_t

__all__ = ["RequestSender", "ExchangePlan", "build_request", "exchange_plan", "reply_value",
           "broadcast_value"]

#: how long a broadcast collects replies when no timeout (or 0, "forever") is given
BROADCAST_TIMEOUT_S = 10

_EXAMPLE_UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def build_request(op: op_t, endpoint: str, specifier: str | None = None, payload: Any = None,
                  lockout_key: Any = None) -> MsgRequest:
    request = MsgRequest.create(payload=payload, msg_op=op, routing_key=endpoint,
                                specifier=specifier or "")
    if lockout_key is not None:
        try:
            request.lockout_key = lockout_key
        except DriplineError:
            # a client-side mistake (nothing is sent): 400, as the reference, not the 308 a
            # service replies for a key it cannot parse
            raise DriplineError(f"Lockout key [{lockout_key}] is not uuid format compliant "
                                f"(expected a UUID such as {_EXAMPLE_UUID})", 400) from None
    return request


def set_payload(value: Any) -> dict:
    return {"values": [value]}


def cmd_payload(ordered_args: Any = None, keyed_args: dict | None = None) -> dict:
    if ordered_args is None:
        values: list = []
    elif isinstance(ordered_args, (list, tuple)):
        values = list(ordered_args)
    else:
        values = [ordered_args]
    payload = {"values": values}
    if keyed_args:
        payload.update(keyed_args)
    return payload


def reply_value(reply: MsgReply, confirm_retcodes: bool, routing_key: str = "") -> Any:
    """The reply's payload; with confirm_retcodes a non-zero return code raises DriplineError."""
    if confirm_retcodes and reply.return_code != 0:
        raise DriplineError(
            f"{routing_key or 'endpoint'} replied {reply.return_code}: {reply.return_message}",
            reply.return_code, reply.payload)
    return reply.payload


def broadcast_value(replies: list[MsgReply], confirm_retcodes: bool) -> dict[str, Any]:
    """{service name: payload} for every reply to a broadcast."""
    result: dict[str, Any] = {}
    for reply in replies:
        name = (reply.sender_info or {}).get("service_name") or "unknown"
        key, n = name, 1
        while key in result:
            n += 1
            key = f"{name}#{n}"
        result[key] = reply_value(reply, confirm_retcodes, key)
    return result


class _ReplyValue:
    """`reply_value` for one request: the converter a request's future applies to its reply."""

    __slots__ = ("confirm_retcodes", "routing_key")

    def __init__(self, confirm_retcodes: bool, routing_key: str) -> None:
        self.confirm_retcodes, self.routing_key = confirm_retcodes, routing_key

    def __call__(self, reply: MsgReply) -> Any:
        return reply_value(reply, self.confirm_retcodes, self.routing_key)


class _BroadcastValue:
    __slots__ = ("confirm_retcodes",)

    def __init__(self, confirm_retcodes: bool) -> None:
        self.confirm_retcodes = confirm_retcodes

    def __call__(self, replies: list[MsgReply]) -> dict[str, Any]:
        return broadcast_value(replies, self.confirm_retcodes)


class ExchangePlan(NamedTuple):
    """How one get/set/cmd is carried out: wait `timeout_s`, `collect` every reply (broadcast)
    or take the first, and `convert` the reply (or the list of replies) to the return value."""

    timeout_s: float | None
    collect: bool
    convert: Callable[[Any], Any]


def exchange_plan(request: MsgRequest, timeout_s: float | None, default_timeout_s: float | None,
                  confirm_retcodes: bool, broadcast_key: str) -> ExchangePlan:
    """The plan for `request` from the call's timeout and the client's settings."""
    timeout = default_timeout_s if timeout_s is None else timeout_s
    if request.routing_key.split(".", 1)[0] == broadcast_key:
        return ExchangePlan(timeout or BROADCAST_TIMEOUT_S, True, _BroadcastValue(confirm_retcodes))
    return ExchangePlan(timeout, False, _ReplyValue(confirm_retcodes, request.routing_key))


class RequestSender:
    """Synchronous get/set/cmd for any class that can send a request and wait for its reply.

    Subclasses provide `send_request(request, timeout_s) -> MsgReply` and
    `send_request_all(request, timeout_s) -> list[MsgReply]` (a Service: through
    `dripline.client.interface.request_from_thread`), and the attributes `timeout_s`,
    `confirm_retcodes` and `broadcast_key`; `Interface` replaces `_exchange` by one hop to
    `AsyncInterface`.
    """

    timeout_s: float = 10
    confirm_retcodes: bool = True
    broadcast_key: str = "broadcast"

    def _timeout(self, timeout_s: float | None) -> float | None:
        return self.timeout_s if timeout_s is None else timeout_s

    def _exchange(self, request: MsgRequest, timeout_s: float | None) -> Any:
        plan = exchange_plan(request, timeout_s, self.timeout_s, self.confirm_retcodes,
                             self.broadcast_key)
        if plan.collect:
            return plan.convert(self.send_request_all(request, plan.timeout_s or BROADCAST_TIMEOUT_S))
        return plan.convert(self.send_request(request, plan.timeout_s))

    def get(self, endpoint: str, specifier: str | None = None, lockout_key: Any = None,
            timeout_s: float | None = None) -> Any:
        """Value of `endpoint` (or of its attribute `specifier`): the reply payload."""
        return self._exchange(build_request(op_t.get, endpoint, specifier, None, lockout_key), timeout_s)

    def set(self, endpoint: str, value: Any, specifier: str | None = None, lockout_key: Any = None,
            timeout_s: float | None = None) -> Any:
        return self._exchange(build_request(op_t.set, endpoint, specifier, set_payload(value),
                                            lockout_key), timeout_s)

    def cmd(self, endpoint: str, specifier: str, ordered_args: Any = None,
            keyed_args: dict | None = None, lockout_key: Any = None,
            timeout_s: float | None = None) -> Any:
        return self._exchange(build_request(op_t.cmd, endpoint, specifier,
                                            cmd_payload(ordered_args, keyed_args), lockout_key),
                              timeout_s)

    def send_request(self, request: MsgRequest, timeout_s: float | None) -> MsgReply:  # pragma: no cover
        raise NotImplementedError

    def send_request_all(self, request: MsgRequest, timeout_s: float) -> list[MsgReply]:  # pragma: no cover
        raise NotImplementedError
