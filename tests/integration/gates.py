"""A handler that blocks until the test releases it, a raw publisher of many requests, and the
polling helpers the raw-AMQP tests share (`take`, `wait_for`).

Used to hold a service in a known state (one request in a handler, the rest waiting) without
sleeping: the test waits on events and counts, never on time.
"""
from __future__ import annotations

import json
import threading
import time
import uuid

import pika

from dripline.core import Endpoint

RELEASE_TIMEOUT_S = 60  # a gate never released fails its request instead of hanging the run


class Gate(Endpoint):
    """``cmd <name> -s wait <n>``: records n, then blocks until `release` is set; returns n."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.release = threading.Event()
        self.entered = threading.Event()
        self.seen = []
        self.threads = set()

    def wait(self, n):
        self.seen.append(n)
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        if not self.release.wait(RELEASE_TIMEOUT_S):
            raise RuntimeError("the gate was never released")
        return n


class RawRequests:
    """dripline cmd/get requests published with pika, with publisher confirms (so that a
    published request is in its queue when `cmd` returns) and a reply queue of its own."""

    def __init__(self) -> None:
        self.conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.queue = self.ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self.ch.queue_bind(self.queue, "requests", self.queue)

    def send(self, routing_key: str, op: int, specifier: str = "", values: list | None = None) -> str:
        correlation_id = str(uuid.uuid4())
        headers = {"message_type": 3, "message_operation": op, "specifier": specifier,
                   "timestamp": "", "lockout_key": "",
                   "sender_info": {"exe": "test", "hostname": "h", "username": "u",
                                   "service_name": "raw", "versions": {}}}
        props = pika.BasicProperties(content_encoding="application/json",
                                     correlation_id=correlation_id, reply_to=self.queue,
                                     message_id=f"{uuid.uuid4()}/0/1", headers=headers)
        body = json.dumps({"values": values or []}).encode()
        self.ch.basic_publish("requests", routing_key, body, props, mandatory=True)
        return correlation_id

    def cmd(self, routing_key: str, specifier: str, *values) -> str:
        return self.send(routing_key, 9, specifier, list(values))

    def get(self, routing_key: str) -> str:
        return self.send(routing_key, 1)

    def replies(self, n: int, timeout: float = 60.0) -> list[tuple[str, int, object]]:
        """The next `n` replies as (correlation id, return code, payload), in arrival order."""
        return [(props.correlation_id, props.headers["return_code"], json.loads(body))
                for _, props, body in take(self.conn, self.ch, self.queue, n, timeout)]

    def close(self) -> None:
        self.conn.close()


def take(conn, ch, queue: str, n: int, timeout: float) -> list:
    """Up to `n` messages (method, properties, body) from `queue`, in arrival order, waiting at
    most `timeout` seconds for them."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            conn.process_data_events(0.05)
            continue
        got.append((method, props, body))
    return got


def wait_for(condition, timeout: float = 30.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
