"""The state and command language of the simulated SCPI instrument, without any I/O.

Kept apart from the TCP server so that the command handling can be tested directly and reused by
other front ends. A line such as ``VOLT 2.5;MEAS:CURR?`` is split on ``;`` into program units; each
unit is a header (``VOLT``, ``MEAS:CURR?``, ``*IDN?``) and optional comma-separated parameters.
Headers follow the SCPI convention: a node declared as ``VOLTage`` matches ``VOLT`` and ``VOLTAGE``
in any case, and a node in brackets (``[SOURce:]VOLTage``) may be left out. The answers of all
queries on one line are joined with ``;`` (one response line), as SCPI instruments do. Errors are
not answered on the line: like a real instrument, the simulator queues them (``SYSTem:ERRor?``)
and an unanswerable query simply gets no answer.
"""
from __future__ import annotations

import itertools
import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from dripline.implementations.scpi_syntax import split_program_units

__all__ = ["InstrumentModel", "Value", "guide_device_values", "parse_value_spec",
           "power_supply_values"]

DEFAULT_IDN = "dripline,SIM-SCPI,0001,1.0"

# SCPI error numbers the simulator queues
ERR_UNDEFINED_HEADER = (-113, "Undefined header")
ERR_MISSING_PARAMETER = (-109, "Missing parameter")
ERR_ILLEGAL_VALUE = (-224, "Illegal parameter value")
ERR_DATA_OUT_OF_RANGE = (-222, "Data out of range")
ERR_QUEUE_OVERFLOW = (-350, "Queue overflow")
MAX_ERRORS = 20

_TRUE_WORDS = {"1", "ON", "TRUE"}
_FALSE_WORDS = {"0", "OFF", "FALSE"}


def _node_forms(node: str) -> tuple[str, str]:
    """(short, long) upper-case forms of a header node written in SCPI mixed case."""
    long_form = node.upper()
    if node == long_form or node.lower() == node:  # no case hint: only the full word matches
        return long_form, long_form
    short = "".join(itertools.takewhile(lambda c: not c.islower(), node)).upper()
    return short, long_form


def _header_patterns(spec: str) -> list[list[tuple[str, str]]]:
    """All node sequences a header spec such as ``[SOURce:]VOLTage[:LEVel]`` stands for."""
    parts = re.findall(r"\[:?([^\]]+?):?\]|([^:\[\]]+)", spec.strip().lstrip(":"))
    nodes: list[tuple[str, bool]] = []
    for optional, required in parts:
        if optional:
            nodes.extend((n, True) for n in optional.strip(":").split(":") if n)
        else:
            nodes.append((required, False))
    if not nodes:
        raise ValueError(f"empty SCPI header {spec!r}")
    optional_idx = [i for i, (_, opt) in enumerate(nodes) if opt]
    patterns = []
    for keep in itertools.product((True, False), repeat=len(optional_idx)):
        dropped = {i for i, k in zip(optional_idx, keep) if not k}
        patterns.append([_node_forms(n) for i, (n, _) in enumerate(nodes) if i not in dropped])
    return patterns


def _format_number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return f"{value:.1f}"
    return repr(value)


@dataclass
class Value:
    """One settable and/or queryable quantity.

    `kind` is ``float``, ``int``, ``bool`` (answers 1/0, accepts ON/OFF/1/0) or ``str``; `limits`
    (min, max) applies to numbers. A read-only value may be computed: `compute(model)` is called
    on every query.
    """

    header: str
    initial: Any = 0.0
    kind: str = "float"
    readonly: bool = False
    limits: tuple[float, float] | None = None
    compute: Callable[["InstrumentModel"], Any] | None = None
    current: Any = field(default=None, init=False)
    _patterns: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int", "bool", "str"):
            raise ValueError(f"{self.header}: unknown kind {self.kind!r}")
        self._patterns = _header_patterns(self.header)
        self.current = self.convert(self.initial) if self.compute is None else None

    def matches(self, tokens: list[str]) -> bool:
        for pattern in self._patterns:
            if len(pattern) == len(tokens) and all(t in forms for t, forms in zip(tokens, pattern)):
                return True
        return False

    def convert(self, text: Any) -> Any:
        """The stored form of a parameter; ValueError when it is not acceptable."""
        if self.kind == "str":
            text = str(text)
            if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
                text = text[1:-1]
            return text
        if self.kind == "bool":
            word = str(text).strip().upper()
            if word in _TRUE_WORDS:
                return True
            if word in _FALSE_WORDS:
                return False
            raise ValueError(text)
        number = float(str(text).strip()) if not isinstance(text, (int, float)) else float(text)
        if not math.isfinite(number):
            raise ValueError(text)
        if self.limits is not None and not self.limits[0] <= number <= self.limits[1]:
            raise OverflowError(text)
        if self.kind == "int":
            if number != int(number):
                raise ValueError(text)
            return int(number)
        return number

    def render(self, value: Any) -> str:
        if self.kind == "bool":
            return "1" if value else "0"
        if self.kind == "float":
            return _format_number(float(value))
        return str(value)


def parse_value_spec(text: str, readonly: bool = False) -> Value:
    """A Value from the command-line form ``HEADer=initial`` (kind inferred from the initial value).

    ``ON``/``OFF`` give a bool, an integer literal an int, any other number a float, anything
    else a str; ``HEADer/kind=initial`` (kind float, int, bool or str) forces the kind.
    """
    if "=" not in text:
        raise ValueError(f"value spec {text!r} must look like HEADer=initial")
    header, initial = text.split("=", 1)
    header = header.strip()
    kind = None
    match = re.fullmatch(r"(.+?)/(float|int|bool|str)", header)
    if match:
        header, kind = match.group(1), match.group(2)
    if kind is None:
        if initial.strip().upper() in ("ON", "OFF"):
            kind = "bool"
        elif re.fullmatch(r"\s*[-+]?\d+\s*", initial):
            kind = "int"
        else:
            try:
                float(initial)
                kind = "float"
            except ValueError:
                kind = "str"
    return Value(header, initial, kind, readonly=readonly)


def power_supply_values(load_ohms: float = 100.0) -> list[Value]:
    """A small bench power supply: set-points, output switch and measured readings."""
    def measured_voltage(m: "InstrumentModel") -> float:
        return m.get("VOLT") if m.get("OUTP") else 0.0

    def measured_current(m: "InstrumentModel") -> float:
        if not m.get("OUTP"):
            return 0.0
        return min(m.get("VOLT") / load_ohms, m.get("CURR"))

    return [
        Value("[SOURce:]VOLTage[:LEVel]", 0.0, "float", limits=(0.0, 60.0)),
        Value("[SOURce:]CURRent[:LEVel]", 0.1, "float", limits=(0.0, 5.0)),
        Value("OUTPut[:STATe]", False, "bool"),
        Value("MEASure:VOLTage", kind="float", readonly=True, compute=measured_voltage),
        Value("MEASure:CURRent", kind="float", readonly=True, compute=measured_current),
        Value("SYSTem:LABel", "bench supply", "str"),
    ]


def guide_device_values() -> list[Value]:
    """The headers the controls guide's SCPI walkthrough configures (``IDN``, ``OPT``, ``READ``,
    ``VOLTage``, ``FREQuency``), so its service file runs against the simulator unchanged.

    The guide's toy device answers ``IDN?`` without the star of ``*IDN?``; here ``IDN?`` gives the
    same text as ``*IDN?``. The other values are settable; their initial values are arbitrary.
    """
    return [
        Value("IDN", kind="str", readonly=True, compute=lambda m: m.idn),
        Value("OPT", "SIM-OPT-A,SIM-OPT-B", "str"),
        Value("READ", 12.5, "float"),
        Value("VOLTage", 3.3, "float"),
        Value("FREQuency", 50.0, "float"),
    ]




def _split_params(text: str) -> list[str]:
    params: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            params.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if current or params:
        params.append("".join(current).strip())
    return params


class InstrumentModel:
    """The instrument's values, identity and error queue; `execute(line)` runs one program line.

    Thread-safe: a lock serialises lines, as an instrument executes one command at a time even
    when several connections talk to it.
    """

    def __init__(self, values: Iterable[Value] | None = None, idn: str = DEFAULT_IDN) -> None:
        self.idn = idn
        self.values: list[Value] = list(values if values is not None else power_supply_values())
        self.errors: list[tuple[int, str]] = []
        self.lines_executed = 0
        self._lock = threading.Lock()

    # ---- programmatic access ---------------------------------------------------------------
    def find(self, header: str) -> Value | None:
        tokens = [t for t in header.strip().lstrip(":").upper().split(":") if t]
        for value in self.values:
            if value.matches(tokens):
                return value
        return None

    def get(self, header: str) -> Any:
        value = self.find(header)
        if value is None:
            raise KeyError(header)
        return value.compute(self) if value.compute is not None else value.current

    def set(self, header: str, new_value: Any) -> None:
        value = self.find(header)
        if value is None:
            raise KeyError(header)
        value.current = value.convert(new_value)

    def reset(self) -> None:
        for value in self.values:
            if value.compute is None:
                value.current = value.convert(value.initial)

    def _error(self, error: tuple[int, str], detail: str = "") -> None:
        if len(self.errors) >= MAX_ERRORS:
            self.errors[-1] = ERR_QUEUE_OVERFLOW
            return
        code, text = error
        self.errors.append((code, f"{text}; {detail}" if detail else text))

    # ---- the command language ------------------------------------------------------------------
    def execute(self, line: str) -> str | None:
        """Run one line; the response text (queries' answers joined by ``;``) or None."""
        with self._lock:
            self.lines_executed += 1
            answers = []
            for unit in split_program_units(line):
                unit = unit.strip()
                if not unit:
                    continue
                answer = self._unit(unit)
                if answer is not None:
                    answers.append(answer)
            return ";".join(answers) if answers else None

    def _unit(self, unit: str) -> str | None:
        header, _, rest = unit.partition(" ")
        header = header.strip()
        params = _split_params(rest.strip()) if rest.strip() else []
        query = header.endswith("?")
        if query:
            header = header[:-1]
        upper = header.upper()
        if upper.startswith("*"):
            return self._common(upper, query, unit)
        if upper.lstrip(":") in ("SYST:ERR", "SYSTEM:ERROR", "SYST:ERR:NEXT", "SYSTEM:ERROR:NEXT") \
                and query:
            code, text = self.errors.pop(0) if self.errors else (0, "No error")
            return f'{code},"{text}"'
        value = self.find(header)
        if value is None:
            self._error(ERR_UNDEFINED_HEADER, unit)
            return None
        if query:
            return value.render(value.compute(self) if value.compute is not None else value.current)
        if value.readonly:
            self._error(ERR_UNDEFINED_HEADER, f"{unit} (read-only)")
            return None
        if not params:
            self._error(ERR_MISSING_PARAMETER, unit)
            return None
        try:
            value.current = value.convert(params[0])
        except OverflowError:
            self._error(ERR_DATA_OUT_OF_RANGE, unit)
        except (TypeError, ValueError):
            self._error(ERR_ILLEGAL_VALUE, unit)
        return None

    def _common(self, header: str, query: bool, unit: str) -> str | None:
        if header == "*IDN" and query:
            return self.idn
        if header == "*OPC":
            return "1" if query else None
        if header == "*RST" and not query:
            self.reset()
            return None
        if header == "*CLS" and not query:
            self.errors.clear()
            return None
        if header == "*WAI" and not query:
            return None
        if header == "*ESR" and query:
            return "0"
        self._error(ERR_UNDEFINED_HEADER, unit)
        return None
