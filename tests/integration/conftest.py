from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _needs_broker(rabbitmq):
    """Every integration test needs the broker; fail (never skip) when it is down."""
