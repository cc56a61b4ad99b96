"""dl-mon: watch requests, replies and alerts on the mesh.

    dl-mon -r 'my_store.#' -a 'sensor_value.#' [--json-print | --pretty-print]

Binds a private queue `monitor_<uuid>` to the given keys and prints every message that arrives
(chunked messages reassembled). Unlike the reference, --json-print / --pretty-print are honoured:
one JSON object per line, or indented JSON. Note that binding request keys makes those requests
routable, so a requester will not get the immediate "unroutable" error while dl-mon runs.

Exit status: 0 when stopped with Ctrl-C / SIGTERM or after --max-messages messages; 1 for a
configuration error, no keys to watch, or a broker that cannot be reached; 2 for a usage error.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import uuid
from typing import Any

from .common import HelpFormatter, add_common_options, name_program, resolve, setup_logging, write_stdout

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dl-mon", description="Print dripline traffic.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("words", nargs="*", metavar="key=value",
                        help="configuration words, e.g. request_key=K alert_key=K")
    add_common_options(parser, "dl-mon")
    parser.add_argument("-r", "--requests", nargs="+", default=[], metavar="KEY",
                        help="binding keys on the requests exchange (wildcards * and # allowed)")
    parser.add_argument("-a", "--alerts", nargs="+", default=[], metavar="KEY",
                        help="binding keys on the alerts exchange, e.g. '#' for everything")
    parser.add_argument("--json-print", action="store_true", help="one compact JSON object per message")
    parser.add_argument("--pretty-print", action="store_true", help="indented JSON per message")
    parser.add_argument("-n", "--max-messages", type=int, default=0,
                        help="exit after this many messages (0: run until Ctrl-C)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    setup_logging(args.verbose, args.quiet)
    name_program("dl-mon")
    try:
        code = run(args)
    except KeyboardInterrupt:  # before the loop's own Ctrl-C handling is in place
        code = 0
    sys.exit(code)


def run(args: argparse.Namespace) -> int:
    from dripline.protocol.errors import DriplineError
    from dripline.transport.bridge import new_event_loop
    try:
        res = resolve(args, list(args.words))
    except DriplineError as err:
        print(f"dl-mon: {err.message}", file=sys.stderr)
        return 1
    request_keys = list(args.requests) + _as_list(res.config.get("request_key")) + _as_list(res.config.get("request_keys"))
    alert_keys = list(args.alerts) + _as_list(res.config.get("alert_key")) + _as_list(res.config.get("alert_keys"))
    if not request_keys and not alert_keys:
        print("dl-mon: no keys to monitor; give -r KEY (requests) and/or -a KEY (alerts)", file=sys.stderr)
        return 1
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_monitor(args, res, request_keys, alert_keys))
    except DriplineError as err:
        print(f"dl-mon: {err.message}", file=sys.stderr)
        return 1
    finally:
        loop.close()


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


async def _monitor(args: argparse.Namespace, res: Any, request_keys: list, alert_keys: list) -> int:
    from dripline.client.interface import AsyncInterface
    from dripline.protocol.errors import DecodeError
    from dripline.transport.ratelimit import RateLimiter
    from dripline.transport.receiver import ChunkReceiver

    client = AsyncInterface(dripline_mesh=res.mesh, auth=res.auth, name="dl-mon")
    await client.start()
    core = client.core
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    count = 0

    def show(msg: Any) -> None:
        nonlocal count
        if not write_stdout(render(msg, args)):  # `dl-mon ... | head`: the reader has gone
            done.set()
            return
        count += 1
        if args.max_messages and count >= args.max_messages:
            done.set()

    receiver = ChunkReceiver(lambda incomplete: show(incomplete.message),
                             max_message_size=core.max_message_size,
                             max_pending_bytes=core.max_pending_bytes, label="dl-mon")

    def summary(key: Any, n: int, seconds: float, text: str) -> None:
        if not write_stdout(f"... {n:,} more undecodable messages like this in the last "
                            f"{seconds:.0f} s (latest: {text[:160]})"):
            done.set()

    # a flood of undecodable messages is shown once per kind, then counted
    undecodable = RateLimiter(summary)

    def on_message(routing_key: str, body: bytes, properties: Any, ack: Any) -> None:
        try:
            msg = receiver.feed(routing_key, body, properties)
        except DecodeError as err:
            text = f"undecodable message on {str(routing_key)[:100]}: {err.message}"
            if undecodable.hit(err.return_code, text) and not write_stdout(text):
                done.set()
            return
        if msg is not None:
            show(msg)

    try:
        queue = await client.watch(f"monitor_{uuid.uuid4()}", request_keys, alert_keys, on_message)
    except BaseException:
        await client.close()
        raise
    print(f"dl-mon: watching {describe_keys(request_keys, alert_keys)} on {core.connection.address} "
          "(Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        await done.wait()
    finally:
        receiver.close()
        undecodable.flush()
        await client.unwatch(queue)
        await client.close()
    return 0


def describe_keys(request_keys: list, alert_keys: list) -> str:
    """"requests 'a.#' and alerts '#'": only the kinds that have keys, keys joined by ", "."""
    parts = [f"{kind} " + ", ".join(f"'{k}'" for k in keys)
             for kind, keys in (("requests", request_keys), ("alerts", alert_keys)) if keys]
    return " and ".join(parts)


def describe_sender(info: Any) -> str:
    """Who sent a message: the service's name, or for a client (dl-agent, a script), whose sender
    name is the protocol's placeholder "unknown", the program and user@host it ran as."""
    if not isinstance(info, dict):
        return "?"
    name = info.get("service_name")
    if isinstance(name, str) and name and name != "unknown":
        return name
    exe = info.get("exe")
    program = os.path.basename(exe) if isinstance(exe, str) and exe else "unknown program"
    user, host = info.get("username"), info.get("hostname")
    where = f"{user}@{host}" if user and host else (user or host or "")
    return f"{program} ({where})" if where else program


def render(msg: Any, args: argparse.Namespace) -> str:
    if args.json_print:
        return json.dumps(msg.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
    if args.pretty_print:
        return json.dumps(msg.to_dict(), sort_keys=True, indent=2, default=str)
    kind = msg.message_type.name
    detail = ""
    if msg.is_request():
        detail = f" {msg.message_operation.name}"
    elif msg.is_reply():
        detail = f" {msg.return_code}{' ' + msg.return_message if msg.return_message else ''}"
    sender = describe_sender(msg.sender_info)
    spec = f" [{msg.specifier}]" if msg.specifier else ""
    payload = json.dumps(msg.payload, sort_keys=True, default=str)
    return f"{msg.timestamp} {kind:7} {msg.routing_key}{spec}{detail} from {sender}: {payload}"


if __name__ == "__main__":  # pragma: no cover
    main()
