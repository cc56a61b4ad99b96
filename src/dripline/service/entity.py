"""Entity: an endpoint with a value worth recording (a sensor reading, a set-point).

On top of `Endpoint` an entity can

* answer a set with a fresh get (``get_on_set``);
* send its value as an alert after each set (``log_on_set``);
* check its value every ``log_interval`` and send it as an alert when it is due: the first time,
  when more than ``max_interval`` seconds have passed since the last logged value, or when the value
  changed by more than ``max_absolute_change`` or (relatively) ``max_fractional_change``;
* carry a ``calibration`` used by ``@calibrate`` on its ``on_get``.

Alerts go to ``<log_routing_key_prefix>.<name>`` through ``self.service.send_alert``; the periodic
check is registered with ``self.service.schedule(callable, interval, start)`` /
``self.service.unschedule(id)``.

Fixed with respect to the reference (its §11.1 item 12):

* ``log_on_set`` does not require ``get_on_set``: it logs the on_get result when there is one
  (on_get not implemented or failing -> ``{"value_raw": <set value>}``).
* The compared value is ``result[check_field]``, else ``result["value_raw"]``, else the whole
  result (a non-dict result, or a dict with neither key); the usual decision then applies to it
  (a value that is not a number is logged when it differs from the last one). No KeyError.
* Any exception in the periodic check is logged and the check stays scheduled.
* Setting ``get_on_set`` while ``log_on_set`` is on works; changing ``log_interval`` while logging
  reschedules the check (0 stops it).
* A failure to send the log alert after a successful set is logged; the set still succeeds.
* An on_get returning None has nothing to log and is skipped.
* ``on_get`` / ``on_set`` may be ``async def``: the set wrapper is then a coroutine function, and
  `scheduled_log` returns a coroutine that the scheduler must await on the service's loop.
"""
from __future__ import annotations

import functools
import inspect
import logging
import math
import time
from datetime import timedelta
from numbers import Real
from typing import Any

from dripline.protocol.throw_reply import ThrowReply
from dripline.service.calibrate import check_calibration
from dripline.service.endpoint import Endpoint

__all__ = ["Entity", "should_log"]

logger = logging.getLogger(__name__)

_INVALID_VALUE = 304
_NOT_SET = object()


def _interval(value: Any, option: str) -> timedelta:
    """timedelta from a number of seconds, a dict of timedelta keywords or a timedelta."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, Real) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ThrowReply(_INVALID_VALUE, f"{option} must be finite, got {value!r}")
        result = timedelta(seconds=float(value))
    elif isinstance(value, dict):
        try:
            result = timedelta(**value)
        except TypeError as err:
            raise ThrowReply(_INVALID_VALUE, f"invalid {option} {value!r}: {err}") from None
    else:
        raise ThrowReply(_INVALID_VALUE, f"{option} must be a number of seconds, a dict of "
                                         f"timedelta keywords or a timedelta; got {value!r}")
    if result < timedelta(0):
        raise ThrowReply(_INVALID_VALUE, f"{option} must not be negative, got {value!r}")
    return result


def _non_negative(value: Any, option: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, Real) or not float(value) >= 0:
        raise ThrowReply(_INVALID_VALUE, f"{option} must be a non-negative number, got {value!r}")
    return float(value)


def _as_number(value: Any) -> float | None:
    if isinstance(value, (dict, list, tuple)) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def should_log(last_value: Any, seconds_since_last: float | None, value: Any, *,
               max_interval: float = 0, max_absolute_change: float = 0,
               max_fractional_change: float = 0) -> bool:
    """Whether a newly read `value` is logged (the reference's 5.1 rules, in order).

    `seconds_since_last` is None when nothing was logged yet. Numbers (anything ``float()``
    accepts) are compared numerically; other values are logged when they differ from the last.
    """
    if seconds_since_last is None:
        return True
    if max_interval <= 0 or seconds_since_last > max_interval:
        return True
    new, old = _as_number(value), _as_number(last_value)
    if new is None or old is None:
        return new is not None or old is not None or value != last_value
    if abs(old - new) > max_absolute_change:
        return True
    if 2 * abs(old - new) > max_fractional_change * abs(old + new):
        return True
    return False


class Entity(Endpoint):
    """An endpoint whose value can be logged as alerts and calibrated (see module docstring).

    Requests may read and set its options (``set peaches -s log_interval 10``; each is
    validated as the constructor validates it), read ``is_logging``, and call
    ``start_logging``, ``stop_logging`` and ``scheduled_log``. A ``calibration`` is checked when
    the entity is built and when it is set: one that cannot work (a syntax error, an unknown
    name, a division by zero for every reading) is refused with 304 naming the error, and a
    refused set keeps the old one.
    """

    #: the options and logging controls requests may reach (framework names are otherwise not)
    __dripline_expose__ = ("get_on_set", "log_on_set", "log_routing_key_prefix", "log_interval",
                           "max_interval", "max_absolute_change", "max_fractional_change",
                           "check_field", "calibration", "is_logging", "start_logging",
                           "stop_logging", "scheduled_log")

    def __init__(self, get_on_set: bool = False, log_on_set: bool = False,
                 log_routing_key_prefix: str = "sensor_value", log_interval: Any = 0,
                 max_interval: Any = 0, max_absolute_change: Any = 0,
                 max_fractional_change: Any = 0, check_field: str = "value_cal",
                 calibration: Any = None, **kwargs: Any) -> None:
        """
        Args:
            get_on_set: answer a set with a fresh get, so the reply carries the value read back.
            log_on_set: send the value as an alert after each set (no get_on_set needed).
            log_routing_key_prefix: the logged alerts go to ``<prefix>.<endpoint name>``.
            log_interval: check the value this often (seconds, a dict of timedelta keywords or a
                timedelta; 0: never) and send it as an alert when it is due.
            max_interval: with it, a checked value is logged only when this many seconds passed
                since the last logged one, or when it changed by more than the limits below;
                0 logs every check.
            max_absolute_change: log a checked value that moved by more than this.
            max_fractional_change: log a checked value that moved by more than this fraction
                (of the mean of the old and new values).
            check_field: the field of the get result compared: ``value_cal``, else
                ``value_raw``, else the whole result.
            calibration: how ``@calibrate`` turns the raw value into ``value_cal``: an
                expression with ``{}`` for the raw value (``'2*{}'``) or a dict from raw to
                calibrated values; checked when the entity is built.
        """
        Endpoint.__init__(self, **kwargs)
        self._get_on_set = bool(get_on_set)
        self._log_on_set = bool(log_on_set)
        self._log_routing_key_prefix = str(log_routing_key_prefix)
        self._log_interval = _interval(log_interval, "log_interval")
        self._max_interval = _non_negative(max_interval, "max_interval")
        self._max_absolute_change = _non_negative(max_absolute_change, "max_absolute_change")
        self._max_fractional_change = _non_negative(max_fractional_change, "max_fractional_change")
        self._check_field = str(check_field)
        self._calibration = self._checked_calibration(calibration)
        self._log_action_id: int | None = None
        self._last_log_monotonic: float | None = None  # for elapsed-time decisions
        self._last_log_value: Any = None
        self._wrap_on_set()

    # ---- options (settable through a set request with a specifier) -----------------------

    @property
    def get_on_set(self) -> bool:
        return self._get_on_set

    @get_on_set.setter
    def get_on_set(self, value: Any) -> None:
        self._get_on_set = bool(value)
        self._wrap_on_set()

    @property
    def log_on_set(self) -> bool:
        return self._log_on_set

    @log_on_set.setter
    def log_on_set(self, value: Any) -> None:
        self._log_on_set = bool(value)
        self._wrap_on_set()

    @property
    def log_routing_key_prefix(self) -> str:
        return self._log_routing_key_prefix

    @log_routing_key_prefix.setter
    def log_routing_key_prefix(self, value: Any) -> None:
        self._log_routing_key_prefix = str(value)

    @property
    def log_interval(self) -> timedelta:
        return self._log_interval

    @log_interval.setter
    def log_interval(self, value: Any) -> None:
        self._log_interval = _interval(value, "log_interval")
        if self._log_action_id is not None:  # logging: follow the new period
            if self._log_interval > timedelta(0):
                self.start_logging()
            else:
                self.stop_logging()

    @property
    def max_interval(self) -> float:
        return self._max_interval

    @max_interval.setter
    def max_interval(self, value: Any) -> None:
        self._max_interval = _non_negative(value, "max_interval")

    @property
    def max_absolute_change(self) -> float:
        return self._max_absolute_change

    @max_absolute_change.setter
    def max_absolute_change(self, value: Any) -> None:
        self._max_absolute_change = _non_negative(value, "max_absolute_change")

    @property
    def max_fractional_change(self) -> float:
        return self._max_fractional_change

    @max_fractional_change.setter
    def max_fractional_change(self, value: Any) -> None:
        self._max_fractional_change = _non_negative(value, "max_fractional_change")

    @property
    def check_field(self) -> str:
        return self._check_field

    @check_field.setter
    def check_field(self, value: Any) -> None:
        self._check_field = str(value)

    @property
    def calibration(self) -> Any:
        return self._calibration

    @calibration.setter
    def calibration(self, value: Any) -> None:
        self._calibration = self._checked_calibration(value)

    def _checked_calibration(self, value: Any) -> Any:
        """`value` once it is known to work with this entity's calibrated getter (else 304)."""
        if isinstance(value, dict):
            value = dict(value)  # a request's payload view: keep a plain dict
        try:
            check_calibration(value, inspect.getattr_static(type(self), "on_get", None))
        except ValueError as err:
            raise ThrowReply(_INVALID_VALUE, f"endpoint {self.name}: calibration {value!r:.200} "
                                             f"{err}") from None
        return value

    @property
    def is_logging(self) -> bool:
        return self._log_action_id is not None

    # ---- set wrapping (get_on_set / log_on_set) ------------------------------------------

    def _wrap_on_set(self) -> None:
        """(Re)install the instance-level on_set around the class's on_set.

        Done on the instance, like the reference, so that ``entity.on_set(v)`` called directly
        behaves like a set request.
        """
        self.__dict__.pop("on_set", None)
        if not (self._get_on_set or self._log_on_set):
            return
        base = self.on_set  # the class's (possibly subclass-overridden) on_set, bound
        if inspect.iscoroutinefunction(base) or inspect.iscoroutinefunction(self.on_get):
            @functools.wraps(base)
            async def on_set_async(value: Any) -> Any:
                result = base(value)
                if inspect.isawaitable(result):
                    result = await result
                reading: Any = _NOT_SET
                try:
                    reading = self.on_get()
                    if inspect.isawaitable(reading):
                        reading = await reading
                except Exception as err:
                    if self._get_on_set:
                        raise
                    logger.debug("%s: on_get after set failed (%s)", self.name, err)
                    reading = _NOT_SET
                return self._after_set(value, result, reading)
            # a user handler: whatever on_set it wraps, it is awaited on the service's loop
            on_set_async.__module__ = type(self).__module__
            self.on_set = on_set_async  # type: ignore[method-assign]
            return

        @functools.wraps(base)
        def on_set(value: Any) -> Any:
            result = base(value)
            reading: Any = _NOT_SET
            try:
                reading = self.on_get()
            except Exception as err:
                if self._get_on_set:
                    raise
                logger.debug("%s: on_get after set failed (%s)", self.name, err)
            return self._after_set(value, result, reading)
        self.on_set = on_set  # type: ignore[method-assign]

    def _after_set(self, value: Any, result: Any, reading: Any) -> Any:
        if self._log_on_set:
            if isinstance(reading, dict):
                to_log = reading
            elif reading is _NOT_SET or reading is None or (isinstance(reading, list)
                                                            and reading == [""]):
                to_log = {"value_raw": value}
            else:
                to_log = {"value_raw": reading}
            try:
                self._remember(to_log)
                self.log_a_value(to_log)
            except Exception:
                logger.exception("%s: the set succeeded but its value could not be logged",
                                 self.name)
        if self._get_on_set:
            return reading
        return result

    # ---- logging --------------------------------------------------------------------------

    def _check_value(self, result: Any) -> Any:
        if isinstance(result, dict):
            if self._check_field in result:
                return result[self._check_field]
            if "value_raw" in result:
                return result["value_raw"]
        return result

    def _remember(self, result: Any) -> None:
        value = self._check_value(result)
        number = _as_number(value)
        self._last_log_value = number if number is not None else value

    def log_a_value(self, value: Any) -> None:
        """Send `value` as an alert ``<log_routing_key_prefix>.<name>`` through the service."""
        self._last_log_monotonic = time.monotonic()
        routing_key = f"{self._log_routing_key_prefix}.{self.name}"
        self.service.send_alert(routing_key, value)

    def _seconds_since_last_log(self) -> float | None:
        if self._last_log_monotonic is None:
            return None
        return time.monotonic() - self._last_log_monotonic

    def _log_if_due(self, result: Any) -> bool:
        if result is None:
            logger.debug("%s: on_get returned None; nothing to log", self.name)
            return False
        value = self._check_value(result)
        if not should_log(self._last_log_value, self._seconds_since_last_log(), value,
                          max_interval=self._max_interval,
                          max_absolute_change=self._max_absolute_change,
                          max_fractional_change=self._max_fractional_change):
            return False
        self._remember(result)
        self.log_a_value(result)
        return True

    def scheduled_log(self) -> Any:
        """The periodic check: read with on_get and log the value when it is due.

        Never raises (a failure is logged; the check stays scheduled). With an ``async def``
        on_get it returns a coroutine doing the same, to be awaited on the service's loop.
        """
        try:
            result = self.on_get()
        except Exception:
            logger.exception("%s: on_get failed in the scheduled logging check", self.name)
            return None
        if inspect.isawaitable(result):
            return self._finish_scheduled_log(result)
        try:
            self._log_if_due(result)
        except Exception:
            logger.exception("%s: scheduled logging failed", self.name)
        return None

    async def _finish_scheduled_log(self, awaitable: Any) -> None:
        try:
            self._log_if_due(await awaitable)
        except Exception:
            logger.exception("%s: scheduled logging failed", self.name)

    def start_logging(self) -> None:
        """(Re)start the periodic check every log_interval; ValueError when it is zero."""
        if self._log_interval <= timedelta(0):
            raise ValueError(f"{self.name}: cannot start logging with a zero log_interval")
        if self._log_action_id is not None:
            self.stop_logging()
        self._log_action_id = self.service.schedule(self.scheduled_log, self._log_interval, None)
        logger.debug("%s: logging checks every %s", self.name, self._log_interval)

    def stop_logging(self) -> None:
        """Stop the periodic check (no error when not logging)."""
        action_id, self._log_action_id = self._log_action_id, None
        if action_id is not None:
            try:
                self.service.unschedule(action_id)
            except Exception:
                logger.exception("%s: could not unschedule the logging check", self.name)
