"""A simulated SCPI instrument on a TCP port, for tests, demos and benchmarks.

Run it as its own process::

    python -m dripline.implementations.sim --port 5025          # or: dl-sim-scpi --port 5025

or in a thread of a test::

    from dripline.implementations.sim import SimulatedSCPIInstrument
    with SimulatedSCPIInstrument() as sim:        # a free loopback port: sim.port
        ...

By default it is a small bench power supply (``[SOURce:]VOLTage``, ``[SOURce:]CURRent``,
``OUTPut[:STATe]``, ``MEASure:VOLTage?``, ``MEASure:CURRent?``, ``SYSTem:LABel``) that also answers
``*IDN?``, ``*OPC?``, ``*RST``, ``*CLS`` and ``SYSTem:ERRor?``; `--value` / `--readonly` add
quantities. Response delay and faults (silence, garbage, partial answers, dropped or reset
connections) are switchable from Python and over the wire (``SIM:`` commands, see `server`).

``dl-sim-scpi --profile guide --one-query-per-connection --port 24596`` stands in for the toy
device of the controls guide's SCPI walkthrough: the same headers, and one answered line per TCP
connection.
"""
from __future__ import annotations

from .model import (DEFAULT_IDN, InstrumentModel, Value, guide_device_values, parse_value_spec,
                    power_supply_values)
from .server import FAULT_MODES, GARBAGE, SimulatedSCPIInstrument

__all__ = ["DEFAULT_IDN", "FAULT_MODES", "GARBAGE", "InstrumentModel", "SimulatedSCPIInstrument",
           "Value", "guide_device_values", "parse_value_spec", "power_supply_values"]
