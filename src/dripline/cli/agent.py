"""dl-agent: send one request (or reply, or alert) to the mesh and print what comes back.

Command line as the reference's (reference §8.1):
    dl-agent [options] get|set|cmd|reply|alert ROUTING_KEY [values...] [key=value...]
    dl-agent [options] describe NAME    (what an endpoint or service offers, readably)
Exit status: the reply's return code // 100 (0 success or warning, 2 resource, 3 service,
9 unhandled exception in the handler); 1 when the broker cannot be reached within -t or refuses
the credentials; 4 for a client-side failure (no reply within -t, nobody bound to the routing
key, a bad lockout key or configuration, `set` without a value); 0 after `reply`, `alert` or
--dry-run-msg; 130 after Ctrl-C (the reference exits 0 there); 2 for a command-line usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .common import HelpFormatter, add_common_options, name_program, resolve, setup_logging, write_stdout

__all__ = ["main"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped with Ctrl-C

# configuration keys that steer dl-agent itself and are not part of the payload (reference §8.1)
NON_PAYLOAD_KEYS = {"dripline_mesh", "auth_file", "auth_groups", "timeout", "json_print",
                    "pretty_print", "suppress_output", "rk", "specifier", "lockout_key", "return",
                    "save", "values", "option_values", "dry_run_msg"}


EPILOG = """\
examples:
  dl-agent get peaches
  dl-agent set peaches 0.8
  dl-agent cmd pump -s start 3 rate=fast        (payload {"values": [3], "rate": "fast"})
  dl-agent cmd my_service -s lock               (the reply's payload holds the lockout key)
  dl-agent set peaches 0.8 -k 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
  dl-agent cmd my_service -s unlock -k 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
  dl-agent get peaches --json-print
  dl-agent describe peaches                     (its commands, settings, units and limits)
"""


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}: a number of seconds") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError("timeout must be >= 0 seconds; 0 waits forever")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dl-agent", description="Send a dripline request and print the reply.",
        epilog=EPILOG, formatter_class=HelpFormatter)
    parser.add_argument("operation", choices=["get", "set", "cmd", "reply", "alert", "describe"])
    parser.add_argument("routing_key", help="target endpoint (or reply_to / alert routing key)")
    # default=[]: without a default argparse counts a nargs='*' positional as required and names
    # it among the missing arguments although it may be empty
    parser.add_argument("words", nargs="*", default=[], metavar="value|key=value",
                        help="positional values become payload 'values'; key=value adds payload keys")
    add_common_options(parser, "dl-agent")
    r = parser.add_argument_group("request")
    r.add_argument("-s", "--specifier", help="specifier header (attribute or command name)")
    r.add_argument("-t", "--timeout", type=_timeout, default=None, help="seconds to wait for the reply "
                   "(default 10; 0 waits forever)")
    r.add_argument("-k", "--lockout-key", help="lockout key (uuid) for a locked endpoint")
    r.add_argument("-P", "--payload", nargs="+", metavar="TEXT", help="strings stored under the payload key 'payload'")
    r.add_argument("--values", nargs="+", dest="option_values", metavar="TEXT",
                   help="values appended (as strings) after the positional values: "
                        "`set x 5 --values 6` sends [5, \"6\"] (the reference sends only [\"6\"])")
    r.add_argument("--return-code", type=int, default=0, help="return code of a 'reply'")
    r.add_argument("--return-msg", default="", help="return message of a 'reply'")
    o = parser.add_argument_group("output")
    o.add_argument("--suppress-output", action="store_true", help="print nothing on success")
    o.add_argument("--json-print", action="store_true", help="print the whole reply as compact JSON")
    o.add_argument("--pretty-print", action="store_true", help="print the whole reply as indented JSON")
    o.add_argument("--dry-run-msg", action="store_true", help="print the message instead of sending it")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_intermixed_args(argv)
        setup_logging(args.verbose, args.quiet)
        name_program("dl-agent")
        code = run(args)
    except KeyboardInterrupt:
        # one line and the shell's code for SIGINT: a script must not take Ctrl-C for success
        print("dl-agent: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(min(code // 100, 255))


def run(args: argparse.Namespace) -> int:
    """Send what the command line asks for; the dripline return code (exit status = code // 100).

    KeyboardInterrupt (Ctrl-C) propagates, after the connection was closed."""
    from dripline.protocol.errors import DriplineError
    try:
        res = resolve(args, list(args.words))
        message = build_message(args, res)
    except DriplineError as err:
        print(f"dl-agent: {err.message}", file=sys.stderr)
        return err.return_code if err.return_code >= 100 else 400
    if args.dry_run_msg:
        write_stdout(_render(message, args, dry=True))
        return 3
    try:
        reply = _send(args, res, message)
    except DriplineError as err:
        print(f"dl-agent: {err.message}", file=sys.stderr)
        return err.return_code
    if reply is None:  # a reply or an alert was sent; nothing comes back
        return 0
    if not args.suppress_output:
        write_stdout(_render(reply, args))
    _save(reply, res.config.get("save"))
    return reply.return_code


def build_message(args: argparse.Namespace, res: Any):
    from dripline.protocol.errors import DriplineError
    from dripline.protocol.message import MsgAlert, MsgReply
    from dripline.client.request_sender import build_request
    from dripline.protocol.message import op_t
    config = res.config
    payload = {k: v for k, v in config.items() if k not in NON_PAYLOAD_KEYS}
    if args.payload:
        payload["payload"] = list(args.payload)
    values = list(config.get("values") or []) + list(res.ordered) + list(args.option_values or [])
    if values or args.operation in ("set", "cmd"):
        payload["values"] = values
    if args.operation == "set" and not values:
        raise DriplineError('"set" needs a value: dl-agent set ENDPOINT VALUE', 401)
    specifier = args.specifier if args.specifier is not None else config.get("specifier")
    if args.operation == "describe":  # the built-in cmd every service and endpoint answers
        key = args.lockout_key or config.get("lockout_key")
        return build_request(op_t.cmd, args.routing_key, "describe", {}, key)
    if args.operation in ("get", "set", "cmd"):
        if args.operation == "get" and payload == {}:
            payload = {}
        key = args.lockout_key or config.get("lockout_key")
        return build_request(op_t[args.operation], args.routing_key, specifier, payload, key)
    if args.operation == "reply":
        return MsgReply.create(args.return_code, args.return_msg, payload or None,
                               routing_key=args.routing_key, specifier=specifier or "")
    return MsgAlert.create(payload=payload or None, routing_key=args.routing_key,
                           specifier=specifier or "")


def _send(args: argparse.Namespace, res: Any, message: Any) -> Any:
    """Connect, send, and wait for the reply (None for a reply or alert); everything, the
    connection included, within the timeout. Ctrl-C closes the connection, then raises
    KeyboardInterrupt."""
    import asyncio
    import signal

    from dripline.client.interface import AsyncInterface

    timeout = args.timeout if args.timeout is not None else res.config.get("timeout", 10)
    timeout = float(timeout) if timeout else None  # 0: wait forever

    async def go() -> Any:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        client = AsyncInterface(dripline_mesh=res.mesh, auth=res.auth, name="dl-agent")
        try:
            await client.start(timeout)
            if not message.is_request():
                # wait until the broker took it: a refused alert is an error, not exit 0
                left = 10.0 if deadline is None else max(deadline - loop.time(), 0.001)
                await client.send(message, left)
                return None
            # the whole reply (dl-agent prints its code and message), 0 = no deadline
            left = 0 if deadline is None else max(deadline - loop.time(), 0.001)
            return await client.send_request(message, left)
        finally:
            await client.close()

    # the standard loop, not uvloop: one request gains nothing from uvloop, whose import alone
    # costs a few ms of this command's start-up
    loop = asyncio.new_event_loop()
    task = loop.create_task(go())
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()  # the task's finally closes the connection

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        pass
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        loop.close()


def _save(reply: Any, path: str | None) -> None:
    if not path or reply.payload is None:
        return
    from dripline.protocol.errors import DriplineError
    try:
        with open(path, "w") as fh:
            if path.endswith((".yaml", ".yml")):
                import yaml
                from dripline.protocol.payload import plain  # views are not YAML-safe types
                yaml.safe_dump(plain(reply.payload), fh)
            else:
                json.dump(reply.payload, fh, indent=2)
    except OSError as err:
        raise DriplineError(f"cannot save the reply payload to {path}: {err}", 402) from None


def _render(message: Any, args: argparse.Namespace, dry: bool = False) -> str:
    if args.json_print:
        return json.dumps(message.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
    if args.pretty_print:
        return json.dumps(message.to_dict(), sort_keys=True, indent=2, default=str)
    if args.operation == "describe" and message.is_reply() and message.return_code == 0 \
            and isinstance(message.payload, dict):
        return render_description(message.payload)
    return render_text(message, dry)


def render_text(message: Any, dry: bool = False) -> str:
    """Human-readable: return code and message first, then the payload as indented JSON."""
    from dripline.protocol.return_codes import get_return_codes_map
    lines = []
    if message.is_reply():
        code = get_return_codes_map().get(message.return_code)
        label = code.name if code is not None else "application-specific"
        lines.append(f"{message.return_code} ({label}){': ' + message.return_message if message.return_message else ''}")
        who = (message.sender_info or {}).get("service_name")
        if who and who != "unknown":
            lines.append(f"from service {who}")
    else:
        head = "would send" if dry else "sent"
        op = getattr(message, "message_operation", None)
        lines.append(f"{head} {message.message_type.name}"
                     f"{' ' + op.name if op is not None else ''} to {message.routing_key}"
                     f"{' (specifier ' + str(message.specifier) + ')' if message.specifier else ''}")
    lines.append(json.dumps(message.payload, indent=2, sort_keys=True, default=str))
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def render_description(d: dict) -> str:
    """A ``describe`` payload for people: who it is, what it holds, what it can be asked."""
    kind = d.get("kind") or "endpoint"
    origin = d.get("plugin") and f"plugin {d['plugin']}" or "dripline"
    version = f" {d['version']}" if d.get("version") else ""
    lines = [f"{d.get('name')} ({kind}) - {d.get('class')} [{origin}{version}]"]
    doc = str(d.get("doc") or "").strip().split("\n\n", 1)[0]  # its first paragraph
    if doc:
        lines += ["  " + line for line in doc.splitlines()[:8]]
    for key in ("description", "units"):
        if d.get(key) is not None:
            lines.append(f"{key}: {d[key]}")
    limits = d.get("limits")
    if isinstance(limits, dict):
        parts = [f"{k} {_shown(limits[k])}" for k in ("min", "max", "allowed")
                 if limits.get(k) is not None]
        lines.append("limits: " + ", ".join(parts))
    if d.get("calibration") is not None:
        lines.append(f"calibration: {_shown(d['calibration'])}")
    ops = d.get("operations") or {}
    lines.append("operations: " + (", ".join(op for op in ("get", "set", "cmd") if ops.get(op))
                                   or "built-in commands only"))
    settings = d.get("settings") or {}
    if settings:
        lines.append("settings:")
        lines += [f"  {name} = {_shown(value)}" for name, value in sorted(settings.items())]
    commands = d.get("commands") or []
    if commands:
        lines.append("commands (dl-agent cmd NAME -s COMMAND [values] [key=value]):")
        for c in commands:
            params = ", ".join(p.get("name", "?") + ("" if p.get("required") or str(
                p.get("name", "")).startswith("*") else f"={_shown(p.get('default'))}")
                for p in c.get("parameters") or [])
            text = f"  {c.get('name')}({params})"
            lines.append(f"{text:<40} {c['doc']}" if c.get("doc") else text)
    if "endpoints" in d:
        lines.append("endpoints: " + (", ".join(d["endpoints"]) or "none"))
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    main()
