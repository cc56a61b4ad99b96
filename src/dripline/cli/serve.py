"""dl-serve: build a service from a YAML file and run it until SIGINT/SIGTERM.

    dl-serve -c service.yaml [key=value ...]      run
    dl-serve service.yaml [key=value ...]         the same (an existing .yaml/.yml/.json file)
    dl-serve --check -c service.yaml              build as a dry run and report (no network)
    dl-serve --list                               every class dl-serve can build
    dl-serve --list KeyValueStore                 one class's keywords, defaults and docs

Exit status: 0 after a clean stop; 2 for a configuration error, or an error while building the
service or one of its endpoints (reported before the service connects), or a configuration error
found when it starts (a database table that is not there); 1 when the broker cannot be reached,
the name (or an endpoint name) is taken by a running service, or the service fails.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from .common import add_common_options, name_program, resolve, setup_logging, stdout_gone

__all__ = ["main"]

logger = logging.getLogger("dripline.serve")

SERVE_DEFAULTS = {"name": "dlpy_service", "enable_scheduling": True}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dl-serve", description="Run a dripline service from a configuration file.")
    parser.add_argument("words", nargs="*", metavar="key=value",
                        help="configuration overrides, e.g. database_server=127.0.0.1 (without -c, "
                             "an existing .yaml/.yml/.json file is taken as the configuration file)")
    add_common_options(parser, "dl-serve")
    s = parser.add_argument_group("service")
    s.add_argument("--heartbeat-interval-s", type=float, metavar="S",
                   help="seconds between heartbeats (0: none; otherwise at least 0.1)")
    s.add_argument("--loop-timeout-ms", type=float, metavar="MS",
                   help="the reference's consumer-loop poll period; accepted for compatibility, "
                        "it changes nothing here (requests are pushed, not polled)")
    s.add_argument("--message-wait-ms", type=float, metavar="MS",
                   help="how long to wait for the rest of a chunked message")
    s.add_argument("--strict", action="store_true", help="unknown service-level keywords are errors too")
    s.add_argument("--check", action="store_true",
                   help="build the service and its endpoints as a dry run, report any error and "
                        "exit: checks the keywords, types and values of every object; the broker, "
                        "instrument and database connections are not tried")
    s.add_argument("--list", nargs="?", const=True, default=None, metavar="MODULE",
                   help="list every class dl-serve can build, and exit; with a class name "
                        "(e.g. --list KeyValueStore), that class's keywords, defaults and docs")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_intermixed_args(argv)
    setup_logging(args.verbose, args.quiet, default=logging.INFO)
    name_program("dl-serve")
    try:
        code = run(args)
        sys.stdout.flush()
    except BrokenPipeError:  # `dl-serve --list | head`: the reader has seen enough
        stdout_gone()
        code = 0
    sys.exit(code)


CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def take_config_word(args: argparse.Namespace) -> str | None:
    """Decide what a positional word that is not `key=value` means; an error text, or None.

    `dl-serve my_store.yaml` is what a newcomer types: when no -c was given and the word names an
    existing YAML/JSON file, it is taken as the configuration file (nothing is printed, as if -c had
    been written). Anything else is refused, naming the word: silently ignoring it once started an
    empty default service instead of the user's.
    """
    loose = [w for w in args.words if "=" not in w]
    if not loose:
        return None
    word = loose[0]
    is_file = os.path.isfile(word) and word.lower().endswith(CONFIG_SUFFIXES)
    if len(loose) == 1 and is_file and not args.config:
        args.config = word
        args.words = [w for w in args.words if w is not word]
        return None
    if args.config and is_file:
        return (f"unexpected argument {word!r}: the configuration file is already given "
                f"(-c {args.config}); one service per dl-serve")
    if is_file:
        return f"unexpected argument {word!r}: give one configuration file, with -c FILE"
    if word.lower().endswith(CONFIG_SUFFIXES) and not os.path.exists(word):
        return f"unexpected argument {word!r}: no such file (the configuration file is given with -c FILE)"
    return (f"unexpected argument {word!r}: dl-serve takes key=value overrides; "
            f"the configuration file is given with -c FILE")


def override_keys(words: list[str]) -> set[str]:
    """The top-level keys of the `key=value` words (`endpoints.0.name=x` gives 'endpoints')."""
    return {w.split("=", 1)[0].split(".", 1)[0] for w in words if "=" in w}


def load_service_config(args: argparse.Namespace) -> tuple[dict, Any, str | None]:
    """The final service configuration and credentials (ConfigError on any problem)."""
    from dripline.assembly.config import merge
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
        from dripline.assembly import plugins
        return plugins.auth_groups()
    except ImportError:
        return {"postgres": {"username": {"default": "postgres", "env": "POSTGRES_USER"},
                             "password": {"default": "postgres", "env": "POSTGRES_PASSWORD"}}}


def run(args: argparse.Namespace) -> int:
    from dripline.protocol.errors import ConfigError, DriplineError
    if args.list is True:
        from .plugin import print_class_list
        return print_class_list() or 0
    if args.list:
        return print_class_keywords(args.list)
    path = None
    problem = take_config_word(args)
    if problem is not None:
        print(f"dl-serve: {problem}", file=sys.stderr)
        return 2
    try:
        config, auth, path = load_service_config(args)
        base_dir = os.path.dirname(os.path.abspath(path)) if path else None
        from dripline.assembly.validation import check_service_config
        problems = check_service_config(config, path, base_dir, strict=args.strict)
        typed = override_keys(args.words)
        for p in problems:  # a key typed on the command line was meant: a typo there is an error
            if p.where.startswith("service ") and p.key in typed:
                p.fatal, p.source = True, "command line"
        fatal = [p for p in problems if p.fatal]
        for p in problems:
            if not p.fatal:
                logger.warning("%s (ignored; --strict makes this an error)", p)
        if fatal:
            for p in fatal:
                print(f"dl-serve: {p}", file=sys.stderr)
            return 2
    except DriplineError as err:
        print(f"dl-serve: {err.message}", file=sys.stderr)
        return 2
    except TypeError as err:
        print(f"dl-serve: {path or 'configuration'}: {err}", file=sys.stderr)
        return 2
    if args.check:
        return _check(config, auth, path, base_dir)
    try:
        if _name_taken(config, auth):
            print(f"dl-serve: cannot start service {config.get('name')!r}: a service with that name is "
                  "already running on this mesh", file=sys.stderr)
            return 1
    except DriplineError as err:  # the broker cannot be reached (or refused the credentials)
        print(f"dl-serve: {err.message}", file=sys.stderr)
        return 1
    service, status = _build(config, auth, path, base_dir)
    if service is None:
        return status
    try:
        service.run()
    except ConfigError as err:  # raised by a start hook (a database table that is not there)
        print(f"dl-serve: {path or 'configuration'}: {err.message}", file=sys.stderr)
        return 2
    except DriplineError as err:
        print(f"dl-serve: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def print_class_keywords(module: str, stream: Any = None) -> int:
    """`dl-serve --list MODULE`: the keywords a `module: MODULE` entry accepts; 2 if unknown.

    The text comes from the same description as the documentation's keyword reference
    (`dripline.assembly.keywords`), so the terminal and the site say the same thing.
    """
    from dripline.assembly.keywords import describe_class
    from dripline.assembly.objects import find_class
    from dripline.protocol.errors import ConfigError
    out = stream or sys.stdout
    try:
        cls = find_class(module)
    except ConfigError as err:
        print(f"dl-serve: {err.message}", file=sys.stderr)
        return 2
    info = describe_class(cls, module)
    if not info.kind:
        print(f"dl-serve: {module!r} is {info.qualname}, which is not a Service or Endpoint class "
              "and cannot be built from a service file", file=sys.stderr)
        return 2
    try:
        _write_class_keywords(info, out)
    except BrokenPipeError:  # `dl-serve --list X | head`: the reader has seen enough
        sys.stdout = open(os.devnull, "w")
    return 0


def _write_class_keywords(info: Any, out: Any) -> None:
    import textwrap
    out.write(f"{info.name}: {info.kind} class {info.qualname}\n")
    if info.summary:
        out.write(textwrap.fill(info.summary, 96, initial_indent="  ", subsequent_indent="  ") + "\n")
    out.write(f"\nKeywords of a `module: {info.name}` entry (most specific class first):\n")
    for kw in info.keywords:
        head = f"  {kw.name} = {kw.default_text()}" if not kw.required else f"  {kw.name}  (required)"
        typed = f"  [{kw.annotation}]" if kw.annotation else ""
        out.write(f"{head}{typed}  from {kw.defined_in}\n")
        if kw.doc:
            out.write(textwrap.fill(kw.doc, 96, initial_indent="      ", subsequent_indent="      ") + "\n")
    out.flush()


def _check(config: dict, auth: Any, path: str | None, base_dir: str | None) -> int:
    """--check: build every object as a dry run and report.

    Constructors do no I/O (instruments and databases are opened by the service's start hook),
    and the service is never started, so neither the broker nor an instrument nor a database is
    contacted.
    """
    config = dict(config)
    config["dripline_mesh"] = {**(config.get("dripline_mesh") or {}), "make_connection": False}
    service, status = _build(config, auth, path, base_dir)
    if service is None:
        return status
    _release(service)
    print(f"dl-serve: {path or 'configuration'} is valid: service {config.get('name')!r} with "
          f"{len(config.get('endpoints') or [])} endpoint(s)")
    return 0


def _build(config: dict, auth: Any, path: str | None, base_dir: str | None) -> tuple[Any, int]:
    """(service, 0), or (None, exit status) after reporting why it could not be built."""
    from dripline.assembly.objects import create_object
    try:
        return create_object(dict(config), "Service", auth, base_dir), 0
    except Exception as err:  # ConfigError, ThrowReply, ValueError, a database driver's error, ...
        return None, _report_build_error(err, path or "configuration", config.get("name"))


def _report_build_error(err: Exception, source: str, name: Any) -> int:
    """Print one line for an error raised while building the service; its exit status."""
    from dripline.protocol.errors import ConfigError, ConnectionError_, DriplineError
    logger.debug("building service %r failed", name, exc_info=err)
    if isinstance(err, ConfigError):  # it names the object and the key itself
        text = err.message if err.message.startswith(f"{source}:") else f"{source}: {err.message}"
        print(f"dl-serve: {text}", file=sys.stderr)
        return 2
    from dripline.assembly.objects import failing_endpoint
    endpoint = failing_endpoint(err)
    where = f"endpoint {endpoint!r}: " if endpoint else ""
    missing = (getattr(err, "name", None) or "").split(".")[0]
    if isinstance(err, DriplineError):
        what = err.message
    elif isinstance(err, ModuleNotFoundError) and missing and missing != "dripline":
        # e.g. a PostgreSQL URL without the driver: say which extra installs it
        from dripline.assembly.objects import missing_dependency
        what = missing_dependency(missing)
    else:
        what = f"{type(err).__name__}: {err}"
    hint = "" if logger.isEnabledFor(logging.DEBUG) else " (run with -v for the traceback)"
    print(f"dl-serve: {source}: cannot build service {name!r}: {where}{what}{hint}", file=sys.stderr)
    return 1 if isinstance(err, ConnectionError_) else 2


def _release(service: Any) -> None:
    """Drop what a --check build holds (database engines); nothing was connected."""
    engine = getattr(service, "engine", None)
    if engine is not None and hasattr(engine, "dispose"):
        engine.dispose()


def _name_taken(config: dict, auth: Any) -> bool:
    """Whether a service called config['name'] is already running on the mesh.

    Asked before the service is built, so that a second copy never opens instrument sockets or
    database connections: a short-lived connection passive-declares the service's queue (an
    exclusive queue held by another connection: taken). A dry-run mesh (make_connection false)
    is not asked. ConnectionError_ when the broker cannot be reached.
    """
    import asyncio
    from dripline.client.session import Core
    from dripline.transport.bridge import new_event_loop
    name = str(config.get("name"))
    core = Core(config.get("dripline_mesh"), auth, service_name=name,
                connection_name=f"dripline:{name}:name-check")
    if not core.make_connection:
        return False
    # the AMQP stack is imported here, not by core.start() inside the loop, where its import time
    # counts as one slow step of the loop (asyncio's debug mode warns about it on stderr)
    import dripline.transport.connection  # noqa: F401

    async def probe() -> bool:
        try:
            await core.start()
            return await core.connection.queue_exists(name)
        finally:
            await core.close()

    loop = new_event_loop()
    try:
        return loop.run_until_complete(probe())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


if __name__ == "__main__":  # pragma: no cover
    main()
