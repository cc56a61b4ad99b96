"""dl-http-server: the mesh over HTTP, and a live page of it in the browser.

    dl-http-server                                   http://127.0.0.1:8080/ for the mesh of ~/.dripline_mesh.yaml
    dl-http-server -c gateway.yaml --auth-file auth.json
    dl-http-server http_host=0.0.0.0 http_port=9000  (other hosts: put it behind an HTTPS proxy)
    dl-http-server --hash-password                   print a password hash for the auth file
    dl-http-server --new-token NAME                  make a bearer token and print its entry

Configuration keys (file, key=value words or options): the reference's ``http_host`` (default
127.0.0.1, not the reference's 0.0.0.0: the gateway is safe by default), ``http_port`` (8080),
``web_root`` (files served under /web/; none by default), ``dripline_mesh``, ``auth_file``; and
``timeout``, ``max_inflight``, ``max_body_bytes``, ``max_pages``, ``alert_keys``,
``history_points``, ``heartbeat_late_s``, ``heartbeat_gone_s``, ``ping_interval_s``,
``services`` (shell patterns of the services the page shows, described and read; default
``*``), ``allowed_hosts`` (the names the server answers to; by default only loopback names while it
listens on a loopback address, against DNS rebinding).

Logins for sets and cmds come from the ``http`` group of the auth file (see dripline.web.auth).
Exit status: 0 after Ctrl-C / SIGTERM; 2 for a configuration error; 1 when the broker cannot be
reached or the port is taken.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import json
import logging
import signal
import sys
from typing import Any

from .common import HelpFormatter, add_common_options, name_program, resolve, setup_logging

__all__ = ["main", "build_settings"]

logger = logging.getLogger("dripline.http_server")

DEFAULTS: dict[str, Any] = {"http_host": "127.0.0.1", "http_port": 8080}
_NUMBERS = {"http_port": (int, 0, 65535), "timeout": (float, 0.1, 3600), "max_inflight": (int, 1, 100000),
            "max_body_bytes": (int, 16, 100 * 1024 * 1024), "max_pages": (int, 1, 10000),
            "history_points": (int, 2, 100000), "recent_alerts": (int, 1, 100000),
            "heartbeat_late_s": (float, 0.1, 1e7), "heartbeat_gone_s": (float, 0.1, 1e7),
            "ping_interval_s": (float, 1, 1e7), "push_interval_s": (float, 0.0, 10)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dl-http-server", description="HTTP gateway to a dripline mesh, with a live page of it.",
        epilog=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=HelpFormatter)
    parser.add_argument("words", nargs="*", default=[], metavar="key=value",
                        help="configuration words, e.g. http_port=9000")
    add_common_options(parser, "dl-http-server")
    h = parser.add_argument_group("http")
    h.add_argument("--http-host", help="address to listen on (default 127.0.0.1)")
    h.add_argument("--http-port", type=int, help="port to listen on (default 8080)")
    h.add_argument("--web-root", metavar="DIR", help="directory served under /web/")
    h.add_argument("--hash-password", action="store_true",
                   help="read a password (prompt, or one line of stdin) and print its hash for "
                        "the auth file's http.users, then exit")
    h.add_argument("--new-token", metavar="NAME",
                   help="make a bearer token, print it once and the entry for http.tokens, then exit")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_intermixed_args(argv)
    setup_logging(args.verbose, args.quiet)
    name_program("dl-http-server")
    sys.exit(run(args))


def _string_list(value: Any, message: str, *, empty_ok: bool = False) -> list[str]:
    """A string, or a list of non-empty strings (empty only when `empty_ok`), as a list;
    ValueError(message) for anything else."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not (items or empty_ok) \
            or not all(isinstance(item, str) and item for item in items):
        raise ValueError(message)
    return list(items)


def build_settings(config: dict) -> Any:
    """GatewaySettings from the configuration; ValueError naming the key that is wrong."""
    from dripline.web.app import GatewaySettings
    settings = GatewaySettings()
    host = config.get("http_host", settings.http_host)
    if not isinstance(host, str) or not host:
        raise ValueError("http_host must be a host name or address")
    settings.http_host = "127.0.0.1" if host == "localhost" else host
    for key, (kind, low, high) in _NUMBERS.items():
        if key not in config or config[key] is None:
            continue
        value = config[key]
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number, not {value!r}") from None
        if not low <= number <= high:
            raise ValueError(f"{key} must be between {low} and {high}, not {value!r}")
        setattr(settings, "timeout" if key == "timeout" else key, number)
    if config.get("web_root") is not None:
        settings.web_root = str(config["web_root"])
    if config.get("alert_keys") is not None:
        settings.alert_keys = _string_list(
            config["alert_keys"], "alert_keys must be a binding key or a list of them, e.g. ['#']")
    if config.get("services") is not None:
        settings.services = _string_list(
            config["services"],
            "services must be a shell pattern of service names or a list of them, e.g. ['cryo_*']")
    if config.get("allowed_hosts") is not None:
        settings.allowed_hosts = _string_list(
            config["allowed_hosts"], "allowed_hosts must be a host name or a list of them",
            empty_ok=True)
    if settings.heartbeat_gone_s < settings.heartbeat_late_s:
        raise ValueError("heartbeat_gone_s must not be below heartbeat_late_s")
    return settings


def _load_credentials(auth_file: str | None) -> Any:
    from dripline.settings.files import read_data_file
    from dripline.web.auth import Credentials, parse_credentials_group
    if not auth_file:
        return Credentials()
    content = read_data_file(auth_file)
    group = content.get("http") if isinstance(content, dict) else None
    users, tokens = parse_credentials_group(group, str(auth_file))
    return Credentials(users, tokens)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    from dripline.protocol.errors import DriplineError
    if args.hash_password:
        return _hash_password()
    if args.new_token:
        return _new_token(args.new_token)
    try:
        res = resolve(args, list(args.words), defaults=DEFAULTS)
        config = dict(res.config)
        for option, key in (("http_host", "http_host"), ("http_port", "http_port"), ("web_root", "web_root")):
            if getattr(args, option, None) is not None:
                config[key] = getattr(args, option)
        settings = build_settings(config)
        credentials = _load_credentials(res.auth_file)
    except DriplineError as err:
        print(f"dl-http-server: {err.message}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"dl-http-server: {err}", file=sys.stderr)
        return 2
    from dripline.transport.bridge import new_event_loop
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_serve(settings, credentials, res))
    finally:
        loop.close()


async def _serve(settings: Any, credentials: Any, res: Any) -> int:
    from aiohttp import web

    from dripline.client.interface import AsyncInterface
    from dripline.protocol.errors import DriplineError
    from dripline.web.app import create_app

    dl = AsyncInterface(dripline_mesh=res.mesh, auth=res.auth, timeout_s=settings.timeout,
                        name="dl-http-server")
    try:
        await dl.start()
    except DriplineError as err:
        print(f"dl-http-server: {err.message}", file=sys.stderr)
        return 1
    try:
        app = create_app(dl, settings, credentials)
    except ValueError as err:
        await dl.close()
        print(f"dl-http-server: {err}", file=sys.stderr)
        return 2
    runner = web.AppRunner(app, access_log=logging.getLogger("dripline.http_server.access"),
                           handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        await dl.close()
        print(f"dl-http-server: cannot listen on {settings.http_host}:{settings.http_port}: "
              f"{err.strerror or err}", file=sys.stderr)
        return 1
    if not _is_loopback(settings.http_host):
        logger.warning("listening on %s, reachable from other hosts, without TLS: logins travel in "
                       "clear text unless an HTTPS reverse proxy stands in front", settings.http_host)
    if not credentials.configured:
        logger.warning("no logins configured (auth file group 'http'): sets and cmds are refused")
    port = settings.http_port
    for sock in getattr(site._server, "sockets", None) or []:  # the real port when 0 was asked for
        port = sock.getsockname()[1]
        break
    print(f"dl-http-server: serving http://{settings.http_host}:{port}/ for the mesh at "
          f"{res.mesh['broker']}:{res.mesh['broker_port']} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await dl.close()
    return 0


def _hash_password() -> int:
    from dripline.web.auth import hash_password
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("dl-http-server: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("dl-http-server: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def _new_token(name: str) -> int:
    from dripline.web.auth import new_token
    token, digest = new_token()
    print(f"token (shown once; give it to the client, store it nowhere else): {token}", file=sys.stderr)
    print(token)
    print("add to the auth file's http.tokens:", file=sys.stderr)
    print(json.dumps({"name": name, "sha256": digest}), file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
