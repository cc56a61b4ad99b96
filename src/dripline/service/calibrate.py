"""``@calibrate``: turn a raw reading into ``{"value_raw": raw, "value_cal": calibrated}``.

Decorates an endpoint's ``on_get``. The calibration is taken from ``self._calibration`` (the
``calibration`` option of an Entity):

* a string: a format template for the raw value, e.g. ``"2*{}"`` or ``"times3({})"``, evaluated
  by an `asteval` interpreter (a safe expression evaluator, never :func:`eval`) that also knows the
  decorator's calibration functions;
* a dict: a lookup table from raw value to calibrated value;
* None: no ``value_cal``.

Usable as ``@calibrate``, ``@calibrate()``, ``@calibrate(fn)``, ``@calibrate([fn1, fn2])`` or
``@calibrate({"name": fn})``. A lone callable is taken to be the *getter* (bare ``@calibrate``)
when its first parameter is called ``self``, and a calibration function otherwise.

Deviations from the reference, on purpose:

* A calibration template that cannot be formatted with the raw value is 304 (the reference
  answers 999 and stops the service).
* An expression that asteval fails to evaluate (unknown function, division by zero, syntax
  error...) is 304 with asteval's error text; the reference silently omits ``value_cal``.
  An overflow is 303, as in the reference.
* A dict calibration whose key is missing is also tried with ``str(raw)`` (YAML keys vs. the
  string an instrument returns) before giving 304.
* An empty list from the getter is 304 (the reference raises IndexError -> 999).
* The getter may be ``async def``; the wrapper is then a coroutine function too.
* numpy results are converted to plain Python numbers.

The interpreter is built once per decorator use and reused (building one is comparatively slow);
a lock serialises evaluations and names an expression assigns are removed afterwards, so one
evaluation cannot leak state into the next. asteval's read-only ``open`` is removed: a calibration
has no reason to read files.
"""
from __future__ import annotations

import functools
import inspect
import logging
import string
import sys
import threading
import types
from collections.abc import Mapping
from typing import Any, Callable

from dripline.protocol.throw_reply import ThrowReply

__all__ = ["calibrate", "check_calibration"]

logger = logging.getLogger(__name__)

_BAD_PAYLOAD = 303
_INVALID_VALUE = 304
_NO_FILES = ("open",)


def _looks_like_getter(fn: Callable) -> bool:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] == "self"


def _function_table(cal_functions: Any) -> dict[str, Callable]:
    if cal_functions is None:
        return {}
    if isinstance(cal_functions, dict):
        return dict(cal_functions)
    if callable(cal_functions):
        return {cal_functions.__name__: cal_functions}
    if isinstance(cal_functions, (list, tuple)):
        table = {}
        for fn in cal_functions:
            if not callable(fn):
                raise TypeError(f"calibration functions must be callable, got {fn!r}")
            table[fn.__name__] = fn
        return table
    raise TypeError("cal_functions must be None, a callable, a list of callables or a dict "
                    f"name -> callable, got {cal_functions!r}")


def _plain_number(value: Any) -> Any:
    if type(value).__module__.startswith("numpy") and hasattr(value, "tolist"):
        return value.tolist()
    return value


class _Evaluator:
    """One lazily built, reused asteval interpreter with the calibration functions."""

    def __init__(self, functions: dict[str, Callable]) -> None:
        self._functions = functions
        self._interp: Any = None
        self._baseline: set[str] = set()
        self._lock = threading.Lock()

    def _interpreter(self) -> Any:
        if self._interp is None:
            from asteval import Interpreter  # imported on first use: services without it start faster
            self._interp = Interpreter(user_symbols=dict(self._functions))
            for name in _NO_FILES:  # a calibration maps numbers; it has no business reading files
                if name not in self._functions:
                    self._interp.symtable.pop(name, None)
            self._baseline = set(self._interp.symtable)
        return self._interp

    def _run(self, expression: str) -> tuple[Any, type | None, str]:
        """(result, None, "") or (None, exception type, error text); never raises."""
        with self._lock:
            interp = self._interpreter()
            try:
                try:
                    result = interp.eval(expression, show_errors=False, raise_errors=False)
                except Exception as err:  # asteval normally records errors instead of raising
                    return None, type(err), f"{type(err).__name__}: {err}"
                errors = list(interp.error or [])
                if not errors:
                    return _plain_number(result), None, ""
                first = errors[0]
                exc = getattr(first, "exc", None)
                try:
                    name, text = first.get_error()
                except Exception:  # pragma: no cover - defensive against asteval changes
                    name, text = getattr(exc, "__name__", "Error"), str(first)
                detail = text.strip().splitlines()[-1] if text.strip() else name
                return None, exc if isinstance(exc, type) else Exception, detail
            finally:
                for leftover in set(interp.symtable) - self._baseline:
                    del interp.symtable[leftover]
                interp.error = []

    def __call__(self, expression: str) -> Any:
        result, exc, detail = self._run(expression)
        if exc is None:
            return result
        if issubclass(exc, OverflowError):
            raise ThrowReply(_BAD_PAYLOAD, f"overflow evaluating calibration {expression!r}")
        raise ThrowReply(_INVALID_VALUE, f"calibration {expression!r} failed: {detail}")

    def check(self, calibration: Any) -> None:
        """ValueError when `calibration` cannot work for any reading (see check_calibration)."""
        if calibration is None or isinstance(calibration, Mapping):
            return
        if not isinstance(calibration, str):
            raise ValueError(f"must be a format template such as '2*{{}}' or a dict from raw to "
                             f"calibrated values, not {type(calibration).__name__}")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(calibration) if f is not None]
        except ValueError as err:
            raise ValueError(f"is not a valid template ({err}; write a literal brace as {{{{ "
                             f"or }}}})") from None
        for field in fields:
            if field.split(".")[0].split("[")[0] not in ("", "0"):
                raise ValueError(f"uses the field {{{field}}}, which is never given: the raw "
                                 f"value is {{}}")
        failures: list[tuple[type, str]] = []
        for probe in _PROBES:
            try:
                expression = calibration.format(probe)
            except (IndexError, KeyError, ValueError, TypeError, AttributeError) as err:
                failures.append((type(err), f"{type(err).__name__}: {err}"))
                continue
            _, exc, detail = self._run(expression)
            if exc is None:
                return
            if issubclass(exc, (SyntaxError, NameError)):  # the same whatever the reading
                raise ValueError(f"cannot be evaluated: {detail}")
            failures.append((exc, detail))
        if failures and all(issubclass(exc, ArithmeticError) for exc, _ in failures):
            raise ValueError(f"fails for every reading tried: {failures[0][1]}")


#: raw values a calibration is tried with when it is checked (it must work for at least one;
#: a template meant for text readings is not refused for failing on numbers, only for a syntax
#: error, an unknown name or an arithmetic error on every probe)
_PROBES = (2, 1.5, 1)

_default_evaluator: _Evaluator | None = None


def check_calibration(calibration: Any, getter: Any = None) -> None:
    """Refuse (ValueError naming the problem) a calibration that cannot work.

    Why at construction: a calibration that cannot be evaluated fails every get, and the
    reference only finds out then. Checked here: the type (a template string, a dict or None), the
    template's fields, and the expression, evaluated with a few probe readings by the same
    interpreter (and calibration functions) the decorated `getter` uses: a syntax error or an
    unknown name is refused, and so is an arithmetic error (``1/0*{}``) for every probe. A
    template that works for some probe is accepted; one meant for text readings may fail on
    numbers without being refused.
    """
    global _default_evaluator
    evaluator = getattr(getter, "_dl_evaluator", None)
    if not isinstance(evaluator, _Evaluator):
        if _default_evaluator is None:
            _default_evaluator = _Evaluator({})
        evaluator = _default_evaluator
    evaluator.check(calibration)


def _apply_calibration(endpoint: Any, very_raw: Any, evaluate: _Evaluator) -> Any:
    raw = very_raw
    if isinstance(raw, list):
        if not raw:
            raise ThrowReply(_INVALID_VALUE, f"{getattr(endpoint, 'name', '')}: the getter "
                                             f"returned an empty list")
        raw = raw[0]
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.strip()
    raw = _plain_number(raw)
    result: dict[str, Any] = {"value_raw": raw}
    calibration = getattr(endpoint, "_calibration", None)
    if calibration is None:
        return result
    if isinstance(calibration, str):
        try:
            expression = calibration.format(raw)
        except (IndexError, KeyError, ValueError, TypeError, AttributeError) as err:
            raise ThrowReply(_INVALID_VALUE,
                             f"calibration {calibration!r} cannot be formatted with raw value "
                             f"{raw!r}: {type(err).__name__}: {err}") from None
        value_cal = evaluate(expression)
        if value_cal is not None:
            result["value_cal"] = value_cal
        return result
    if isinstance(calibration, dict):
        if _hashable(raw) and raw in calibration:
            result["value_cal"] = calibration[raw]
        elif str(raw) in calibration:
            result["value_cal"] = calibration[str(raw)]
        else:
            raise ThrowReply(_INVALID_VALUE, f"raw value {raw!r} not in cal dict")
        return result
    logger.warning("%s: calibration of type %s is neither a string nor a dict; not applied",
                   getattr(endpoint, "name", endpoint), type(calibration).__name__)
    return result


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def calibrate(cal_functions: Any = None) -> Any:
    """Decorator for ``on_get`` adding calibration (see the module docstring)."""
    if callable(cal_functions) and not isinstance(cal_functions, dict) \
            and _looks_like_getter(cal_functions):
        return calibrate(None)(cal_functions)  # bare @calibrate
    evaluate = _Evaluator(_function_table(cal_functions))

    def decorator(getter: Callable) -> Callable:
        if inspect.iscoroutinefunction(getter):
            @functools.wraps(getter)
            async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                return _apply_calibration(self, await getter(self, *args, **kwargs), evaluate)
            async_wrapper.calibrated = True  # type: ignore[attr-defined]
            async_wrapper._dl_evaluator = evaluate  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(getter)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            return _apply_calibration(self, getter(self, *args, **kwargs), evaluate)
        wrapper.calibrated = True  # type: ignore[attr-defined]
        wrapper._dl_evaluator = evaluate  # type: ignore[attr-defined]
        return wrapper

    return decorator


class _CalibrateModule(types.ModuleType):
    """`dripline.core` exports its names lazily; once this submodule has been imported, the
    import system binds `dripline.service.calibrate` to the *module*. Making the module callable
    keeps `from dripline.core import calibrate` / `@calibrate(...)` working either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return calibrate(*args, **kwargs)


sys.modules[__name__].__class__ = _CalibrateModule
