"""Building requests from get/set/cmd arguments and turning replies into return values.

Shared by the synchronous `RequestSender` mix-in (Interface, Service) and by `AsyncInterface`, so
that both speak exactly the same payload conventions (reference §1.12) and check return codes the
same way. Unlike the reference, `timeout_s` and `confirm_retcodes` are honoured.
"""
from __future__ import annotations

from typing import Any

from dripline.protocol.errors import DriplineError
from dripline.protocol.message import MsgReply, MsgRequest, op_t

__all__ = ["RequestSender", "build_request", "reply_value", "broadcast_value"]

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


class RequestSender:
    """Synchronous get/set/cmd for any class that can send a request and wait for its reply.

    Subclasses provide `send_request(request, timeout_s) -> MsgReply` and
    `send_request_all(request, timeout_s) -> list[MsgReply]`, and the attributes `timeout_s`,
    `confirm_retcodes` and `broadcast_key`.
    """

    timeout_s: float = 10
    confirm_retcodes: bool = True
    broadcast_key: str = "broadcast"

    def _timeout(self, timeout_s: float | None) -> float | None:
        return self.timeout_s if timeout_s is None else timeout_s

    def _exchange(self, request: MsgRequest, timeout_s: float | None) -> Any:
        timeout = self._timeout(timeout_s)
        if request.routing_key.split(".", 1)[0] == self.broadcast_key:
            replies = self.send_request_all(request, timeout or 10)
            return broadcast_value(replies, self.confirm_retcodes)
        reply = self.send_request(request, timeout)
        return reply_value(reply, self.confirm_retcodes, request.routing_key)

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
