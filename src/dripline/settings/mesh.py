"""The ``dripline_mesh`` block: defaults < ``~/.dripline_mesh.yaml`` < what the caller gives.

Errors name the key, where it came from and the closest valid names, before anything connects.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dripline.protocol.errors import ConfigError, did_you_mean
from dripline.protocol.return_codes import ReturnCode, register_return_codes
from dripline.settings.files import load_config_file, read_data_file

__all__ = ["MESH_DEFAULTS", "MESH_KEYS", "MESH_FILE_NAME", "TLS_MESH_KEYS", "DriplineConfig",
           "mesh_config", "parse_value", "load_return_codes", "broker_nodes", "tls_settings"]

#: Hard-coded mesh defaults; ``make_connection`` and ``return_codes`` have no default (absent).
MESH_DEFAULTS: dict[str, Any] = {
    "broker": "localhost",
    "broker_port": 5672,
    "requests_exchange": "requests",
    "alerts_exchange": "alerts",
    "max_payload_size": 10000,
    "heartbeat_routing_key": "heartbeat",
    "max_connection_attempts": 10,
}

# Keys the reference's documentation lists under dripline_mesh although its code reads them at the
# service level. We accept them so documented configs load; the service layer decides what to use.
_TOLERATED_MESH_KEYS = ("loop_timeout_ms", "message_wait_ms", "heartbeat_interval_s")

# Reassembly limits of every receiver in the process (defaults in dripline.protocol.chunks):
# bytes of one reassembled message, and bytes all incomplete messages may hold together.
_LIMIT_MESH_KEYS = ("max_message_size", "max_pending_bytes")

# TLS to the broker (docs/security.md): off unless broker_tls is true; no defaults in the block, so
# that an absent key means "not given" (tls_verify: true, the system's CAs, the broker's name)
TLS_MESH_KEYS = ("broker_tls", "tls_ca_file", "tls_cert_file", "tls_key_file", "tls_verify",
                 "tls_server_hostname")

# Seconds between AMQP heartbeats (default 60, 0: none): a broker host that vanishes without
# closing the connection is noticed after about two of them, and the next node is tried.
_HEARTBEAT_MESH_KEYS = ("broker_heartbeat_s",)

#: Every key accepted inside ``dripline_mesh``.
MESH_KEYS: tuple[str, ...] = (*MESH_DEFAULTS, "make_connection", "return_codes",
                              *_TOLERATED_MESH_KEYS, *_LIMIT_MESH_KEYS, *TLS_MESH_KEYS,
                              *_HEARTBEAT_MESH_KEYS)

MESH_FILE_NAME = ".dripline_mesh.yaml"

# expected type of each mesh key, for early and readable errors
_MESH_TYPES: dict[str, str] = {
    "broker": "brokers", "requests_exchange": "str", "alerts_exchange": "str",
    "heartbeat_routing_key": "str",
    "broker_port": "port", "max_payload_size": "positive", "max_connection_attempts": "count",
    "make_connection": "bool", "return_codes": "codes",
    "loop_timeout_ms": "number", "message_wait_ms": "number", "heartbeat_interval_s": "number",
    "max_message_size": "positive", "max_pending_bytes": "positive",
    "broker_tls": "bool", "tls_verify": "bool", "tls_ca_file": "str", "tls_cert_file": "str",
    "tls_key_file": "str", "tls_server_hostname": "str", "broker_heartbeat_s": "count",
}


def mesh_config(overrides: Mapping[str, Any] | None = None, home: str | os.PathLike | None = None,
                source: str | None = None) -> dict[str, Any]:
    """The effective ``dripline_mesh`` block: defaults < ``<home>/.dripline_mesh.yaml`` < overrides.

    `home` defaults to the user's home directory (``$HOME``). `source` names where `overrides` came
    from (e.g. the config file path) for error messages. Keys whose value is None (``broker:``
    left empty, an unset CLI option) are treated as not given instead of wiping the default.
    Unknown keys raise ConfigError naming the key, its source and the closest valid names.
    """
    result = dict(MESH_DEFAULTS)
    mesh_file = _home_dir(home) / MESH_FILE_NAME
    if mesh_file.is_file():
        result.update(_check_mesh(load_config_file(mesh_file), str(mesh_file)))
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"dripline_mesh (from {source or 'the configuration'}) must be a "
                              f"mapping, not {type(overrides).__name__}")
        result.update(_check_mesh(overrides, source or "the given configuration"))
    return result


def _home_dir(home: str | os.PathLike | None) -> Path:
    if home is not None:
        return Path(home)
    try:
        return Path.home()
    except RuntimeError:  # no HOME and no passwd entry (some containers): no mesh file then
        return Path("/nonexistent")


def DriplineConfig() -> dict[str, Any]:  # noqa: N802 - the reference's name
    """The default mesh configuration (defaults + ``~/.dripline_mesh.yaml``) as a plain dict."""
    return mesh_config()


def _check_mesh(block: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Validated copy of `block` without its None values (None means "not given")."""
    checked = {}
    for key, value in block.items():
        if key not in MESH_KEYS:
            raise ConfigError(f"unknown dripline_mesh key {key!r} in {source}"
                              f"{did_you_mean(str(key), MESH_KEYS)}")
        if value is not None:
            checked[key] = _coerce_mesh_value(key, value, source)
    return checked


def _coerce_mesh_value(key: str, value: Any, source: str) -> Any:
    """Check a mesh value's type; numeric strings (e.g. from ENV{} substitution) become numbers."""
    kind = _MESH_TYPES[key]
    if kind == "brokers":
        # one node, "h1,h2:5673" or a list of "host[:port]": kept as one comma-separated string,
        # the form the command line's -b takes too
        entries = value if isinstance(value, list) else [value]
        if entries and all(isinstance(e, str) and e.strip() for e in entries):
            text = ",".join(e.strip() for e in entries)
            try:
                _split_nodes(text, None)
            except ValueError as err:
                raise ConfigError(f"dripline_mesh key 'broker' in {source}: {err}") from None
            return text
        expected = ("a non-empty string (host or host:port, several separated by commas) or a "
                    "YAML list of them")
    elif kind == "str":
        if isinstance(value, str) and value:
            return value
        expected = "a non-empty string"
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        expected = "true or false"
    elif kind == "codes":
        if isinstance(value, (list, str)):
            return value
        expected = "a list of {name, value, description} or a file path"
    elif kind == "number":
        number = _as_number(value, float)
        if number is not None and number >= 0:
            return number
        expected = "a non-negative number"
    else:
        number = _as_number(value, int)
        low, high, expected = {"port": (1, 65535, "a port number (1-65535)"),
                               "positive": (1, None, "a positive integer"),
                               "count": (0, None, "a non-negative integer")}[kind]
        if number is not None and number >= low and (high is None or number <= high):
            return number
    raise ConfigError(f"dripline_mesh key {key!r} in {source} must be {expected}, "
                      f"not {_describe(value)}")


_NODE_RE = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]+)\](?::(?P<v6port>[^:]*))?|(?P<host>[^:\[\]\s]+)(?::(?P<port>[^:]*))?")


def _split_nodes(text: str, default_port: int | None) -> list[tuple[str, int | None]]:
    """``"h1, h2:5673, [::1]:5672"`` as [(host, port or default_port)]; ValueError says what is wrong."""
    nodes: list[tuple[str, int | None]] = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            raise ValueError(f"{text!r} has an empty entry (write host[:port],host[:port],...)")
        if entry.count(":") > 1 and "[" not in entry:  # a bare IPv6 address, no port
            nodes.append((entry, default_port))
            continue
        match = _NODE_RE.fullmatch(entry)
        if match is None:
            raise ValueError(f"{entry!r} is not host or host:port")
        host = match.group("v6") or match.group("host")
        port_text = match.group("v6port") if match.group("v6") else match.group("port")
        port: int | None = default_port
        if port_text is not None:
            if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
                raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
            port = int(port_text)
        nodes.append((host, port))
    return nodes


def broker_nodes(mesh: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The broker nodes of a (checked) mesh block as [(host, port)], in the order given.

    `broker` holds one node or several (a list, or a comma-separated string); a node without a
    port uses `broker_port`.
    """
    default_port = int(mesh.get("broker_port") or MESH_DEFAULTS["broker_port"])
    broker = mesh.get("broker") or MESH_DEFAULTS["broker"]
    text = ",".join(broker) if isinstance(broker, list) else str(broker)
    try:
        return [(host, port or default_port) for host, port in _split_nodes(text, default_port)]
    except ValueError as err:
        raise ConfigError(f"dripline_mesh key 'broker': {err}") from None


def tls_settings(mesh: Mapping[str, Any]) -> dict[str, Any] | None:
    """None unless ``broker_tls`` is true; else the TLS settings, with their defaults:
    ``verify`` true, ``ca_file`` None (the system's CAs), ``server_hostname`` None (the broker
    address connected to), ``cert_file`` / ``key_file`` None (no client certificate).

    ConfigError when a tls_* key is given while broker_tls is not true (it would silently do
    nothing), or when a file does not exist.
    """
    given = [k for k in TLS_MESH_KEYS[1:] if mesh.get(k) is not None]
    if not mesh.get("broker_tls"):
        if given:
            raise ConfigError(f"dripline_mesh sets {', '.join(given)} but not broker_tls: true; "
                              "without it the connection is not encrypted")
        return None
    settings = {"ca_file": mesh.get("tls_ca_file"), "cert_file": mesh.get("tls_cert_file"),
                "key_file": mesh.get("tls_key_file"),
                "verify": mesh.get("tls_verify") is not False,
                "server_hostname": mesh.get("tls_server_hostname")}
    for key in ("ca_file", "cert_file", "key_file"):
        path = settings[key]
        if path is not None:
            path = os.path.expanduser(str(path))
            if not os.path.isfile(path):
                raise ConfigError(f"dripline_mesh tls_{key} {path!r} does not exist or is not a file")
            settings[key] = path
    if settings["key_file"] and not settings["cert_file"]:
        raise ConfigError("dripline_mesh tls_key_file is given without tls_cert_file")
    return settings


def _as_number(value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (kind is float and isinstance(value, float)):
        return value
    if isinstance(value, str):
        parsed = parse_value(value)
        if isinstance(parsed, int) or (kind is float and isinstance(parsed, float)):
            return parsed
    return None


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


_INT_RE = re.compile(r"-?[0-9]+")
_FLOAT_RE = re.compile(r"-?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?")


def parse_value(text: str) -> Any:
    """Type a command-line value: '' -> None, 'true'/'false' -> bool, integers -> int, decimals
    and exponents -> float, anything else stays a string (also '12abc', which the reference
    truncates to 12, and 'True', 'nan', 'inf')."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    if _INT_RE.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # beyond Python's int-from-str digit limit
            return text
    if _FLOAT_RE.fullmatch(text):
        number = float(text)
        if number not in (float("inf"), float("-inf")):
            return number
    return text


def load_return_codes(spec: Any, source: str | None = None) -> list[ReturnCode]:
    """Register the custom codes of a ``dripline_mesh.return_codes`` value: a list of
    ``{name, value, description}`` mappings, or the path of a YAML/JSON file holding such a list."""
    if isinstance(spec, (str, os.PathLike)):
        source = os.fspath(spec)
        spec = read_data_file(spec)
        if not isinstance(spec, list):
            raise ConfigError(f"return code file {source} must contain a list of "
                              f"{{name, value, description}} entries, not {type(spec).__name__}")
    return register_return_codes(spec, source)
