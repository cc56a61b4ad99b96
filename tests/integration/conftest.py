from __future__ import annotations

import pytest

from dripline.core import Service
from dripline.testing import test_mesh, unique_name

from .endpoints import Echo

# private RabbitMQ nodes for tests that restart or kill a broker (never the shared one)
from ..brokers import private_rabbit, rabbit_cluster, tls_rabbit  # noqa: F401


@pytest.fixture(autouse=True)
def _needs_broker(rabbitmq):
    """Every integration test needs the broker; fail (never skip) when it is down."""


@pytest.fixture
def served(dl_service):
    """A running service with one Echo endpoint: (service, endpoint name)."""
    svc = Service(unique_name("svc"), dripline_mesh=test_mesh(), heartbeat_interval_s=0)
    ep = Echo(name=unique_name("echo"))
    svc.add_child(ep)
    dl_service(svc)
    return svc, ep.name
