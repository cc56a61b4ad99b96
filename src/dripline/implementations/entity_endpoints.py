"""Entities that read and write an instrument through their service's ``send_to_device``.

They work with any service offering ``send_to_device(commands) -> str`` (EthernetSCPIService, or a
plugin's own transport). Gets are calibrated (``calibration`` of Entity).

* `SimpleSCPIEntity(base_str)`: get sends ``<base_str>?``; set sends
  ``<base_str> <value>;<base_str>?`` and answers with what the instrument read back.
* `SimpleSCPIGetEntity`: the same, get only. `SimpleSCPISetEntity`: set only, sending
  ``<base_str> <value>;*OPC?``.
* `FormatEntity`: free-form commands. get sends `get_str`; `extract_raw_regex` picks the raw value
  out of the answer (named group ``value_raw``). set sends ``set_str.format(v)``, where `v` is the
  value, lower-cased when it is a string and `set_value_lowercase` is true, then mapped through
  `set_value_map`: a dict (``{"on": 1, "off": 0}``) or an expression such as ``"{}*1000"``.

An operation the entity does not support is answered 306 (service_error_invalid_method); the
reference names a return code that does not exist and so answers 300.

Every entity here takes `resend_on_timeout` (``auto``, ``always`` or ``never``; default: the
service's choice): whether a command of this entity that got no answer is sent again on a new
connection (see `ethernet_scpi_service`). ``never`` suits a setting that must not be applied
twice even though its command ends in a query; ``always`` a command that is safe to repeat.
"""
from __future__ import annotations

import logging
import re
from typing import Any

from dripline.service.calibrate import _Evaluator, calibrate
from dripline.service.entity import Entity
from dripline.protocol.throw_reply import ThrowReply

from .ethernet_scpi_service import SCPIConfigError, resend_choice

__all__ = ["FormatEntity", "SimpleSCPIEntity", "SimpleSCPIGetEntity", "SimpleSCPISetEntity"]

logger = logging.getLogger(__name__)

_INVALID_VALUE = 304   # service_error_invalid_value
_INVALID_METHOD = 306  # service_error_invalid_method

# YAML 1.1 (PyYAML) reads these unquoted map keys as booleans: `on: 1` has the key True
_YAML_TRUE = {"true", "on", "yes", "y"}
_YAML_FALSE = {"false", "off", "no", "n"}


def _scpi_argument(value: Any) -> str:
    """The text of a set value on the wire; booleans become 1/0 (SCPI booleans)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _unsupported(entity: Entity, operation: str) -> ThrowReply:
    return ThrowReply(_INVALID_METHOD, f"endpoint {entity.name!r} does not support {operation}")


def _entity_resend_choice(value: Any, where: str) -> str | None:
    if value is None:
        return None
    try:
        return resend_choice(value)
    except SCPIConfigError as err:
        raise SCPIConfigError(f"{where}: {err.message}") from None


def _send(entity: Any, commands: list[str]) -> Any:
    """The service's send_to_device, with the entity's resend choice when it has one.

    The keyword is passed only when set, so services whose send_to_device takes no keywords (a
    plugin's own transport) keep working with these entities.
    """
    if entity.resend_on_timeout is None:
        return entity.service.send_to_device(commands)
    return entity.service.send_to_device(commands, resend_on_timeout=entity.resend_on_timeout)


class SimpleSCPIEntity(Entity):
    """A quantity with an SCPI header `base_str` (e.g. ``SOUR:VOLT``): get and set."""

    def __init__(self, base_str: str | None = None, resend_on_timeout: str | None = None,
                 **kwargs: Any) -> None:
        where = f"{type(self).__name__} {kwargs.get('name', '')!r}"
        if not base_str or not isinstance(base_str, str):
            raise SCPIConfigError(f"{where}: base_str (the SCPI command header, e.g. 'SOUR:VOLT') "
                                  f"is required")
        self._resend_on_timeout = _entity_resend_choice(resend_on_timeout, where)
        Entity.__init__(self, **kwargs)
        self.cmd_base = base_str

    @property
    def resend_on_timeout(self) -> str | None:
        """auto, always, never, or None: the service's choice."""
        return self._resend_on_timeout

    @calibrate()
    def on_get(self) -> Any:
        return _send(self, [f"{self.cmd_base}?"])

    def on_set(self, value: Any) -> Any:
        return _send(self, [f"{self.cmd_base} {_scpi_argument(value)};{self.cmd_base}?"])


class SimpleSCPIGetEntity(SimpleSCPIEntity):
    """A read-only SCPI quantity (a measurement): set is refused with 306."""

    def on_set(self, value: Any) -> Any:
        raise _unsupported(self, "set")


class SimpleSCPISetEntity(SimpleSCPIEntity):
    """A write-only SCPI setting: set sends ``<base_str> <value>;*OPC?``; get is refused with 306."""

    def on_get(self) -> Any:
        raise _unsupported(self, "get")

    def on_set(self, value: Any) -> Any:
        return _send(self, [f"{self.cmd_base} {_scpi_argument(value)};*OPC?"])


class FormatEntity(Entity):
    """An entity with free-form get and set commands (see the module docstring).

    `get_str` / `set_str` None: that operation is refused with 306. `extract_raw_regex` is
    searched in the answer; its group ``value_raw`` (else its first group, else the whole match)
    is the raw value; no match is 304. A value missing from a dict `set_value_map` is 304 naming
    the accepted values.
    """

    def __init__(self, get_str: str | None = None, set_str: str | None = None,
                 set_value_lowercase: bool = True, set_value_map: dict | str | None = None,
                 extract_raw_regex: str | None = None, resend_on_timeout: str | None = None,
                 **kwargs: Any) -> None:
        """
        Args:
            set_value_lowercase: lower-case a string value before `set_value_map` and `set_str`.
        """
        where = f"FormatEntity {kwargs.get('name', '')!r}"
        self._resend_on_timeout = _entity_resend_choice(resend_on_timeout, where)
        for option, text in (("get_str", get_str), ("set_str", set_str)):
            if text is not None and not isinstance(text, str):
                raise SCPIConfigError(f"{where}: {option} must be a string, got {text!r}")
        if set_value_map is not None and not isinstance(set_value_map, (dict, str)):
            raise SCPIConfigError(f"{where}: set_value_map must be a dict or an expression string, "
                                  f"got {type(set_value_map).__name__}")
        self._regex: re.Pattern | None = None
        if extract_raw_regex is not None:
            try:
                self._regex = re.compile(extract_raw_regex)
            except (re.error, TypeError) as err:
                raise SCPIConfigError(f"{where}: extract_raw_regex {extract_raw_regex!r} is not a "
                                      f"valid regular expression: {err}") from None
        Entity.__init__(self, **kwargs)
        self._get_str = get_str
        self._set_str = set_str
        self._set_value_lowercase = bool(set_value_lowercase)
        self._set_value_map = set_value_map
        self._extract_raw_regex = extract_raw_regex
        self._evaluate = _Evaluator({}) if isinstance(set_value_map, str) else None

    # read-only views of the configuration (get with a specifier)
    @property
    def get_str(self) -> str | None:
        return self._get_str

    @property
    def set_str(self) -> str | None:
        return self._set_str

    @property
    def set_value_map(self) -> Any:
        return self._set_value_map

    @property
    def extract_raw_regex(self) -> str | None:
        return self._extract_raw_regex

    @property
    def resend_on_timeout(self) -> str | None:
        """auto, always, never, or None: the service's choice."""
        return self._resend_on_timeout

    @calibrate()
    def on_get(self) -> Any:
        if self._get_str is None:
            raise _unsupported(self, "get")
        answer = _send(self, [self._get_str])
        if self._regex is None:
            return answer
        match = self._regex.search(answer)
        if match is None:
            raise ThrowReply(_INVALID_VALUE, f"device returned unparsable result, [{answer}] has no "
                                             f"match to input regex [{self._extract_raw_regex}]")
        groups = match.groupdict()
        if "value_raw" in groups:
            return groups["value_raw"]
        return match.group(1) if match.re.groups else match.group(0)

    def on_set(self, value: Any) -> Any:
        if self._set_str is None:
            raise _unsupported(self, "set")
        if isinstance(value, str) and self._set_value_lowercase:
            value = value.lower()
        mapped = self._map(value)
        try:
            command = self._set_str.format(mapped)
        except (IndexError, KeyError, ValueError, AttributeError) as err:
            raise ThrowReply(_INVALID_VALUE, f"set_str {self._set_str!r} cannot be formatted with "
                                             f"{mapped!r}: {type(err).__name__}: {err}") from None
        return _send(self, [command])

    def _map(self, value: Any) -> Any:
        table = self._set_value_map
        if table is None:
            return value
        if isinstance(table, dict):
            return self._lookup(table, value)
        try:
            expression = table.format(value)
        except (IndexError, KeyError, ValueError, AttributeError) as err:
            raise ThrowReply(_INVALID_VALUE, f"set_value_map {table!r} cannot be formatted with "
                                             f"{value!r}: {type(err).__name__}: {err}") from None
        assert self._evaluate is not None  # built in __init__ for an expression map
        try:
            result = self._evaluate(expression)
        except ThrowReply as err:
            raise ThrowReply(err.return_code, f"set_value_map {table!r} failed for value {value!r}: "
                                              f"{err.message}") from None
        if result is None:
            raise ThrowReply(_INVALID_VALUE, f"set_value_map {table!r} gave no value for {value!r}")
        return result

    def _lookup(self, table: dict, value: Any) -> Any:
        try:
            if value in table:
                return table[value]
        except TypeError:  # an unhashable value (a list from JSON) is simply not a key
            pass
        text = str(value).strip()
        fold = self._set_value_lowercase
        for key, mapped in table.items():
            if isinstance(key, bool) and isinstance(value, str):
                if text.lower() in (_YAML_TRUE if key else _YAML_FALSE):
                    return mapped
                continue
            key_text = str(key).strip()
            if key_text == text or (fold and key_text.lower() == text.lower()):
                return mapped
        valid = ", ".join(repr(k) for k in table)
        raise ThrowReply(_INVALID_VALUE, f"value {value!r} is not in the set_value_map of endpoint "
                                         f"{self.name!r} (valid: {valid})")
