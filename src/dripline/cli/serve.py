"""dl-serve: build a service from a YAML file and run it until SIGINT/SIGTERM.

    dl-serve -c service.yaml [key=value ...]      run
    dl-serve --check -c service.yaml              validate only (no broker needed)
    dl-serve --list                               every class dl-serve can build

Exit status: 0 after a clean stop; 2 for a configuration error (reported before connecting);
1 when the broker cannot be reached, the name is taken by a running service, or the service fails.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from .common import add_common_options, resolve, setup_logging

__all__ = ["main"]

logger = logging.getLogger("dripline.serve")

SERVE_DEFAULTS = {"name": "dlpy_service", "enable_scheduling": True}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dl-serve", description="Run a dripline service from a configuration file.")
    parser.add_argument("words", nargs="*", metavar="key=value",
                        help="configuration overrides, e.g. database_server=127.0.0.1")
    add_common_options(parser, "dl-serve")
    s = parser.add_argument_group("service")
    s.add_argument("--heartbeat-interval-s", type=float, help="seconds between heartbeats (0: none)")
    s.add_argument("--loop-timeout-ms", type=int)
    s.add_argument("--message-wait-ms", type=int, help="how long to wait for the rest of a chunked message")
    s.add_argument("--strict", action="store_true", help="unknown service-level keywords are errors too")
    s.add_argument("--check", action="store_true", help="validate the configuration and exit (no broker)")
    s.add_argument("--list", action="store_true", help="list every class dl-serve can build, and exit")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_intermixed_args(argv)
    setup_logging(args.verbose, args.quiet, default=logging.INFO)
    sys.exit(run(args))


def load_service_config(args: argparse.Namespace) -> tuple[dict, Any, str | None]:
    """The final service configuration and credentials (ConfigError on any problem)."""
    from dripline.core.config import merge
    res = resolve(args, list(args.words), extra_auth_groups=_auth_groups())
    config = res.config
    legacy = config.pop("runtime-config", None)
    if legacy is not None:
        logger.warning("%s: the 'runtime-config' block is deprecated; move its keys to the top level",
                       res.config_path or "configuration")
        # the block's keys move to the top level; key=value words and options still win over them
        config = merge(legacy, config)
    config = merge(SERVE_DEFAULTS, config)
    for opt, key in (("heartbeat_interval_s", "heartbeat_interval_s"),
                     ("loop_timeout_ms", "loop_timeout_ms"), ("message_wait_ms", "message_wait_ms")):
        if getattr(args, opt, None) is not None:
            config[key] = getattr(args, opt)
    config["dripline_mesh"] = res.mesh
    config.pop("auth_groups", None)
    return config, res.auth, res.config_path


def _auth_groups() -> dict:
    """Credential groups beyond 'dripline': postgres, or whatever a plugin's add_auth_spec adds."""
    try:
        from dripline import plugins
        return plugins.auth_groups()
    except ImportError:
        return {"postgres": {"username": {"default": "postgres", "env": "POSTGRES_USER"},
                             "password": {"default": "postgres", "env": "POSTGRES_PASSWORD"}}}


def run(args: argparse.Namespace) -> int:
    from dripline.core.exceptions import ConfigError, DriplineError
    if args.list:
        from .plugin import print_class_list
        return print_class_list() or 0
    try:
        config, auth, path = load_service_config(args)
        base_dir = os.path.dirname(os.path.abspath(path)) if path else None
        from dripline.core.validation import check_service_config
        problems = check_service_config(config, path, base_dir, strict=args.strict)
        fatal = [p for p in problems if p.fatal]
        for p in problems:
            if not p.fatal:
                logger.warning("%s (ignored; --strict makes this an error)", p)
        if fatal:
            for p in fatal:
                print(f"dl-serve: {p}", file=sys.stderr)
            return 2
        if args.check:
            print(f"dl-serve: {path or 'configuration'} is valid: service {config.get('name')!r} with "
                  f"{len(config.get('endpoints') or [])} endpoint(s)")
            return 0
        from dripline.core.object_creator import create_object
        service = create_object(dict(config), "Service", auth, base_dir)
    except ConfigError as err:
        print(f"dl-serve: {err.message}", file=sys.stderr)
        return 2
    except DriplineError as err:
        print(f"dl-serve: {err.message}", file=sys.stderr)
        return 2
    except TypeError as err:
        print(f"dl-serve: {path or 'configuration'}: {err}", file=sys.stderr)
        return 2
    try:
        service.run()
    except DriplineError as err:
        print(f"dl-serve: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
