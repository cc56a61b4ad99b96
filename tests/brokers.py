"""Fixtures that start private RabbitMQ nodes (dripline.testing.rabbitmq) for tests that must
restart, kill or reconfigure a broker: never the shared one on 5672.

Module-scoped: a node costs 10-20 s to start on this machine, so the tests of one module share it,
and the next module gets a fresh one (a test that kills the node cannot leak into another module).
A test that leaves the node stopped restarts it before returning.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from dripline.testing.rabbitmq import RabbitCluster, RabbitNode, rabbitmq_available


def _require_rabbitmq() -> None:
    if not rabbitmq_available():  # an integration test fails, never skips, when a service is missing
        pytest.fail("RabbitMQ (rabbitmq-server and erl) is not installed; private broker nodes "
                    "cannot be started")


@pytest.fixture(scope="module")
def private_rabbit() -> Iterator[RabbitNode]:
    """A private RabbitMQ node on its own ports, for this test module only."""
    _require_rabbitmq()
    with RabbitNode() as node:
        yield node


@pytest.fixture(scope="module")
def tls_rabbit() -> Iterator[RabbitNode]:
    """A private node with an amqps listener that requires a client certificate from its own CA
    (`node.tls_files`, `node.tls_port`); the plain listener stays on `node.port`."""
    _require_rabbitmq()
    with RabbitNode(tls=True, verify_peer=True, fail_if_no_peer_cert=True) as node:
        yield node


@pytest.fixture(scope="module")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    """Three private nodes joined into one cluster (`cluster.addresses`)."""
    _require_rabbitmq()
    with RabbitCluster(3) as cluster:
        yield cluster
