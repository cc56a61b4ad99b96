"""SCPI program syntax shared by the SCPI service and the simulated instrument."""
from __future__ import annotations

__all__ = ["split_program_units"]


def split_program_units(line: str) -> list[str]:
    """The ``;``-separated program units of a line, as written (``;`` inside double quotes is
    kept). The service needs them to tell a pure query from a command; the simulator to answer
    each unit."""
    units: list[str] = []
    current: list[str] = []
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            units.append("".join(current))
            current = []
        else:
            current.append(char)
    units.append("".join(current))
    return units
