"""Options every dripline command shares, and the configuration they assemble.

argparse rather than click: the reference's command lines mix options, positional values (which
may be negative numbers) and `key=value` words in any order, and must keep working unchanged.
Configuration stages (reference §7.3): defaults < -c file < key=value words < options < ENV{...}.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HelpFormatter", "add_common_options", "name_program", "resolve", "Resolved", "setup_logging",
           "stdout_gone", "version_string", "write_stdout"]

MESH_OPTIONS = {  # option dest -> dripline_mesh key
    "broker": "broker", "port": "broker_port", "requests_exchange": "requests_exchange",
    "alerts_exchange": "alerts_exchange", "max_payload": "max_payload_size",
    "heartbeat_routing_key": "heartbeat_routing_key",
    "max_connection_attempts": "max_connection_attempts",
}


def _terminal_columns() -> int:
    """What shutil.get_terminal_size().columns says: $COLUMNS, else the terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter (descriptions and epilogs kept as written) that reads the terminal
    width itself: argparse builds a formatter for every add_argument call, and the stock one
    imports shutil for the width, about 2 ms of every command's start (dl-agent's budget is
    0.15 s from spawn to exit)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


def version_string(prog: str) -> str:
    from dripline import __version__
    return f"{prog} (dripline-python, pure Python) {__version__}; dripline protocol 3.0.0"


def add_common_options(parser: argparse.ArgumentParser, prog: str) -> None:
    g = parser.add_argument_group("configuration")
    g.add_argument("-c", "--config", metavar="FILE", help="YAML or JSON configuration file")
    g.add_argument("--config-encoding", choices=["yaml", "json"], help="force the config file format")
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="more log output on stderr (repeatable; -vv adds the AMQP library's debug log)")
    g.add_argument("-q", "--quiet", action="count", default=0,
                   help="less log output on stderr (repeatable); results and the one-line error "
                        "report are still printed")
    g.add_argument("-V", "--version", action="version", version=version_string(prog))
    a = parser.add_argument_group("authentication")
    a.add_argument("-u", "--username", help="broker user name (default guest, env DRIPLINE_USER)")
    a.add_argument("--password", help="broker password. Visible to every user of this machine in `ps`: prefer "
                                     "--auth-file, --password-file or the DRIPLINE_PASSWORD environment variable")
    a.add_argument("--password-file", metavar="FILE", help="file whose content is the broker password")
    a.add_argument("--auth-file", metavar="FILE", help='JSON/YAML file {"dripline": {"username": .., "password": ..}}')
    m = parser.add_argument_group("mesh")
    m.add_argument("-b", "--broker", help="broker host[:port] (default localhost); several nodes of a cluster "
                   "separated by commas: -b rabbit-0,rabbit-1,rabbit-2")
    m.add_argument("-p", "--port", type=int, help="broker port (default 5672)")
    m.add_argument("--requests-exchange")
    m.add_argument("--alerts-exchange")
    m.add_argument("--max-payload", type=int, metavar="BYTES", help="chunk size of message bodies")
    m.add_argument("--heartbeat-routing-key")
    m.add_argument("--max-connection-attempts", type=int)


@dataclass
class Resolved:
    config: dict
    mesh: dict
    auth: Any
    ordered: list = field(default_factory=list)
    config_path: str | None = None
    auth_file: str | None = None  # resolved path (dl-http-server reads its own 'http' group)


def resolve(args: argparse.Namespace, words: list[str], defaults: dict | None = None,
            extra_auth_groups: dict | None = None) -> Resolved:
    """Assemble the configuration and credentials; raises ConfigError (nothing is connected)."""
    from dripline.assembly import config as cfg
    config: dict = dict(defaults or {})
    path = getattr(args, "config", None)
    if path:
        config = cfg.merge(config, cfg.load_config_file(path))
    keywords, ordered = cfg.parse_cli_args(words)
    config = cfg.merge(config, keywords)
    mesh_over = {MESH_OPTIONS[k]: v for k in MESH_OPTIONS if (v := getattr(args, k, None)) is not None}
    if mesh_over:
        config = cfg.merge(config, {"dripline_mesh": mesh_over})
    config = cfg.substitute_env(config)
    mesh = cfg.mesh_config(config.get("dripline_mesh"), source=path)
    block = config.get("runtime-config")
    legacy: dict = block if isinstance(block, dict) else {}
    auth_file = args.auth_file or config.get("auth_file") or legacy.get("auth_file")
    if auth_file and not os.path.isabs(auth_file) and path and not os.path.exists(auth_file):
        candidate = os.path.join(os.path.dirname(os.path.abspath(path)), auth_file)
        if os.path.exists(candidate):
            auth_file = candidate
    auth = cfg.build_authentication(auth_file=auth_file, username=args.username,
                                    password=args.password, password_file=args.password_file,
                                    extra_groups=extra_auth_groups)
    return Resolved(config, mesh, auth, ordered, path, auth_file)


def setup_logging(verbose: int, quiet: int, default: int = logging.WARNING) -> None:
    level = default - 10 * verbose + 10 * quiet
    level = min(max(level, logging.DEBUG), logging.CRITICAL)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pika logs every failed connection step at ERROR (seven lines for one refused connection);
    # dripline's own message already says what happened, so pika is heard only with -vv
    debug = verbose >= 2 and level <= logging.DEBUG
    logging.getLogger("pika").setLevel(logging.DEBUG if debug else logging.CRITICAL)


def name_program(prog: str) -> None:
    """Put this command into sender_info.exe (shown by a ping's reply and by dl-mon).

    The console script's own path when that is what runs (as dl-cpp reports its binary), else the
    command's name (`python -m dripline.cli.agent`), never the Python interpreter.
    """
    from dripline.client.identity import set_program
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) == prog and os.path.isfile(script):
        set_program(os.path.abspath(script))
    else:
        set_program(prog)


def write_stdout(text: str) -> bool:
    """Print `text` to stdout; False when the reader has gone (`dl-agent ... | head -1`).

    A closed pipe is the reader saying it has seen enough, not an error: stdout is pointed at
    /dev/null so that the interpreter's final flush raises nothing either.
    """
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        stdout_gone()
        return False


def stdout_gone() -> None:
    """After a BrokenPipeError on stdout: point stdout at /dev/null, so that nothing more (nor the
    interpreter's final flush) raises."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
