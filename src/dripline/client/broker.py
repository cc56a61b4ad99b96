"""From the settings of a mesh to a broker connection: which nodes, which user, TLS or not.

Why here: `dripline.settings` checks the ``dripline_mesh`` block and `dripline.transport` knows the
broker; neither may import the other, and every client and service (through Core) needs this one
translation, so it sits in the lowest layer that sees both.
"""
from __future__ import annotations

from typing import Any, Mapping

from dripline.settings.mesh import broker_nodes, tls_settings
from dripline.transport.connection import BrokerAddress, Connection, TLSOptions

__all__ = ["broker_addresses", "connection_for_mesh", "DEFAULT_HEARTBEAT_S"]

#: AMQP heartbeat interval unless ``broker_heartbeat_s`` says otherwise (pika's client value wins
#: over the broker's proposal, so this is the interval in force)
DEFAULT_HEARTBEAT_S = 60


def broker_addresses(mesh: Mapping[str, Any], username: str, password: str,
                     vhost: str = "/") -> list[BrokerAddress]:
    """One BrokerAddress per node of ``broker`` (a list or comma-separated ``host[:port]``), all
    with the same credentials and TLS settings (``broker_tls`` and the ``tls_*`` keys)."""
    tls = tls_settings(mesh)
    options = TLSOptions(**tls) if tls is not None else None
    return [BrokerAddress(host, port, username, password, vhost, options)
            for host, port in broker_nodes(mesh)]


def connection_for_mesh(mesh: Mapping[str, Any], auth: Any, *, name: str,
                        max_connection_attempts: int | None = None) -> Connection:
    """A (not yet opened) Connection to the nodes of `mesh`, as the ``dripline`` user of `auth`.

    ``broker_heartbeat_s`` (default 60) sets the AMQP heartbeat: how soon a broker host that
    vanished without closing the connection (power, network) is noticed.
    """
    addresses = broker_addresses(mesh, auth.get("dripline", "username"),
                                 auth.get("dripline", "password"))
    attempts = max_connection_attempts if max_connection_attempts is not None else \
        int(mesh.get("max_connection_attempts") or 10)
    heartbeat = mesh.get("broker_heartbeat_s")
    return Connection(addresses, max_connection_attempts=attempts, name=name,
                      heartbeat_s=DEFAULT_HEARTBEAT_S if heartbeat is None else int(heartbeat))
