"""Shared test set-up: integration tests need the real RabbitMQ (and PostgreSQL) on loopback.

They never skip when a service is missing: .ci/run starts the services, and a test that cannot
reach them fails with the reason.
"""
from __future__ import annotations

import os
import socket

import pytest


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _fresh_log_limits() -> None:
    """Rate-limited logs start afresh in every test (a traceback logged by an earlier test would
    otherwise only be counted)."""
    from dripline.transport.ratelimit import reset_all
    reset_all()


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """A command run in-process (``main([...])``) installs its own root log handler on the
    stderr pytest captured for that test; put the root logger back afterwards, so that threads
    of later tests do not log into a closed capture file ("--- Logging error ---")."""
    import logging
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def rabbitmq() -> None:
    port = int(os.environ.get("DRIPLINE_TEST_PORT", "5672"))
    if not _listening(port):
        pytest.fail(f"RabbitMQ is not listening on 127.0.0.1:{port}; start it with "
                    "`rabbitmq-server -detached` (.ci/run does this)")


@pytest.fixture(scope="session")
def postgres() -> None:
    if not _listening(5432):
        pytest.fail("PostgreSQL is not listening on 127.0.0.1:5432; start it with "
                    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
