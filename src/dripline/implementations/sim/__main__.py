"""Command line of the simulated SCPI instrument (``python -m dripline.implementations.sim``).

Exit status: 0 when stopped with Ctrl-C / SIGTERM; 1 when it cannot listen on the port (in use,
or not allowed); 2 for a usage error or an invalid value, terminator or fault option.
"""
from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
from typing import Any

from .model import (DEFAULT_IDN, InstrumentModel, guide_device_values, parse_value_spec,
                    power_supply_values)
from .server import FAULT_MODES, SimulatedSCPIInstrument, decode_escapes

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dl-sim-scpi",
        description="A simulated SCPI instrument on a TCP port (default: a bench power supply).",
        epilog="Values: HEADer=initial, e.g. --value 'FREQuency=1e3' --readonly 'TEMPerature=4.2'; "
               "append /float, /int, /bool or /str to the header to force a kind. Faults and delay "
               "can be changed while running with SIM:FAULt <mode>[,<count>] and SIM:DELay <s>.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    parser.add_argument("--port", type=int, default=5025, help="TCP port (0: any free port; default 5025)")
    parser.add_argument("--idn", default=DEFAULT_IDN, help="answer to *IDN?")
    parser.add_argument("--profile", choices=("psu", "guide", "empty"), default="psu",
                        help="built-in values: a power supply (psu), the headers of the controls "
                             "guide's SCPI walkthrough (guide: IDN, OPT, READ, VOLTage, FREQuency) "
                             "or none (empty)")
    parser.add_argument("--load-ohms", type=float, default=100.0,
                        help="resistance of the simulated load of the power supply (default 100)")
    parser.add_argument("--value", action="append", default=[], metavar="HEADER=INITIAL",
                        help="a settable and queryable value (repeatable)")
    parser.add_argument("--readonly", action="append", default=[], metavar="HEADER=VALUE",
                        help="a query-only value (repeatable)")
    parser.add_argument("--terminator", default="\\n", help="response terminator (escapes allowed; default \\n)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--echo", action="store_true", help="echo every received line before answering")
    parser.add_argument("--greeting", help="a line sent to every new connection")
    parser.add_argument("--fault", choices=FAULT_MODES, default="none", help="fault to start with")
    parser.add_argument("--fault-count", type=int, default=0,
                        help="number of lines the starting fault applies to (0: all)")
    parser.add_argument("--one-query-per-connection", action="store_true",
                        help="behave like the controls guide's toy device: serve one connection at "
                             "a time, answer one line on it, then leave it open but unread until "
                             "the next connection arrives")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    from dripline import __version__  # the simulator stands below the CLI layer: no dripline.cli import
    parser.add_argument("-V", "--version", action="version",
                        version=f"dl-sim-scpi (dripline-python, pure Python) {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else
                        logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        profiles = {"psu": lambda: power_supply_values(args.load_ohms),
                    "guide": guide_device_values, "empty": list}
        values = profiles[args.profile]()
        values += [parse_value_spec(v) for v in args.value]
        values += [parse_value_spec(v, readonly=True) for v in args.readonly]
        sim = SimulatedSCPIInstrument(
            args.host, args.port, model=InstrumentModel(values, idn=args.idn),
            terminator=decode_escapes(args.terminator), delay=args.delay, echo=args.echo,
            greeting=args.greeting, fault=args.fault, fault_count=args.fault_count,
            one_query_per_connection=args.one_query_per_connection)
    except ValueError as err:
        print(f"dl-sim-scpi: {err}", file=sys.stderr)
        return 2
    try:
        sim.start()
    except OSError as err:
        print(f"dl-sim-scpi: {listen_error(args.host, args.port, err)}", file=sys.stderr)
        return 1

    def on_signal(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # the port line is what scripts wait for (port 0 picks a free one)
    print(f"dl-sim-scpi listening on {sim.host}:{sim.port}", flush=True)
    try:
        sim.serve_forever()
    except SystemExit:
        pass
    finally:
        sim.stop()
    return 0


def listen_error(host: str, port: int, err: OSError) -> str:
    """One line saying why the simulator cannot listen on host:port, and what to do."""
    if err.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use; choose another with --port "
                "(--port 0 picks a free one)")
    if err.errno == errno.EACCES:
        return (f"no permission to listen on port {port} on {host}; choose a port above 1023 "
                "with --port")
    return f"cannot listen on {host}:{port}: {err.strerror or err}; check --host and --port"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
