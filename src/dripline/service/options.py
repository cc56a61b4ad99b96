"""Checks of a service's numeric and named options, with messages that name the service and key.

Why here: a YAML file (or an ENV{...} substitution) hands numbers over as text, and a bad value
must be refused when the service is built (``dl-serve --check`` reports it), not when a timer
first fires. Shared by Service and by the runtime pieces it composes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence

from dripline.protocol.errors import ConfigError
from dripline.service.lanes import LANE_POLICIES

__all__ = ["HEARTBEAT_MIN_S", "ServiceOptions", "as_number", "number_option", "count_option",
           "choice_option", "positive_interval"]

#: the shortest heartbeat interval accepted (0 disables heartbeats); shorter ones flood the broker
HEARTBEAT_MIN_S = 0.1


def as_number(value: Any) -> float | int | None:
    """An int or float from a number or a numeric string (as ENV{...} substitution produces)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def number_option(service: str, key: str, value: Any, minimum: float | None = None) -> float | int:
    """A timing option: a finite number > 0, or (when `minimum` is given) 0 or >= minimum."""
    number = as_number(value)
    if minimum is None:
        expected = "a number greater than 0"
        ok = number is not None and 0 < number < float("inf")
    else:
        expected = f"a number of seconds, 0 (disabled) or at least {minimum:g}"
        ok = number is not None and (number == 0 or minimum <= number < float("inf"))
    if not ok or number is None:
        raise ConfigError(f"service {service!r}: {key} must be {expected}; got {value!r}")
    return number


def count_option(service: str, key: str, value: Any, minimum: int = 1) -> int:
    """A whole number of at least `minimum` (100.0 is fine; 2.5, nan and inf are not)."""
    number = as_number(value)
    if isinstance(number, float):
        number = int(number) if number.is_integer() else None
    if number is None or number < minimum:
        raise ConfigError(f"service {service!r}: {key} must be a whole number, at least {minimum}; "
                          f"got {value!r}")
    return int(number)


def choice_option(service: str, key: str, value: Any, choices: Sequence[str]) -> str:
    """One of `choices` (compared as given; YAML hands the word over as a string)."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"service {service!r}: {key} must be one of {', '.join(choices)}; "
                          f"got {value!r}")
    return value


def positive_interval(value: Any) -> bool:
    """Whether an entity's `log_interval` (timedelta, {seconds: ...} or seconds) is above zero."""
    if isinstance(value, timedelta):
        return value.total_seconds() > 0
    if isinstance(value, dict):
        return timedelta(**value).total_seconds() > 0
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class ServiceOptions:
    """A Service's checked numeric and named keywords (ConfigError naming the key otherwise)."""

    heartbeat_interval_s: float
    loop_timeout_ms: float
    message_wait_ms: float
    request_prefetch: int
    max_message_size: int | None
    max_pending_bytes: int | None
    metrics_port: int | None
    worker_lanes: str

    @classmethod
    def check(cls, name: str, heartbeat_interval_s: Any, loop_timeout_ms: Any,
              message_wait_ms: Any, request_prefetch: Any, max_message_size: Any,
              max_pending_bytes: Any, metrics_port: Any, worker_lanes: Any) -> "ServiceOptions":
        return cls(
            heartbeat_interval_s=number_option(name, "heartbeat_interval_s", heartbeat_interval_s,
                                               HEARTBEAT_MIN_S),
            loop_timeout_ms=number_option(name, "loop_timeout_ms", loop_timeout_ms),
            message_wait_ms=number_option(name, "message_wait_ms", message_wait_ms),
            request_prefetch=count_option(name, "request_prefetch", request_prefetch),
            max_message_size=None if max_message_size is None else
            count_option(name, "max_message_size", max_message_size),
            max_pending_bytes=None if max_pending_bytes is None else
            count_option(name, "max_pending_bytes", max_pending_bytes, 4096),
            metrics_port=None if metrics_port is None else
            count_option(name, "metrics_port", metrics_port, 0),
            worker_lanes=choice_option(name, "worker_lanes", worker_lanes, LANE_POLICIES))
