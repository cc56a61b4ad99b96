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
import threading
from typing import Any, Callable

from dripline.protocol.throw_reply import ThrowReply

__all__ = ["calibrate"]

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

    def __call__(self, expression: str) -> Any:
        with self._lock:
            interp = self._interpreter()
            try:
                try:
                    result = interp.eval(expression, show_errors=False, raise_errors=False)
                except OverflowError:
                    raise ThrowReply(_BAD_PAYLOAD, f"overflow evaluating calibration {expression!r}")
                except Exception as err:  # asteval normally records errors instead of raising
                    raise ThrowReply(_INVALID_VALUE, f"calibration {expression!r} failed: "
                                                     f"{type(err).__name__}: {err}") from None
                errors = list(interp.error or [])
                if errors:
                    first = errors[0]
                    exc = getattr(first, "exc", None)
                    try:
                        name, text = first.get_error()
                    except Exception:  # pragma: no cover - defensive against asteval changes
                        name, text = getattr(exc, "__name__", "Error"), str(first)
                    if isinstance(exc, type) and issubclass(exc, OverflowError):
                        raise ThrowReply(_BAD_PAYLOAD,
                                         f"overflow evaluating calibration {expression!r}")
                    detail = text.strip().splitlines()[-1] if text.strip() else name
                    raise ThrowReply(_INVALID_VALUE,
                                     f"calibration {expression!r} failed: {detail}")
                return _plain_number(result)
            finally:
                for leftover in set(interp.symtable) - self._baseline:
                    del interp.symtable[leftover]
                interp.error = []


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
            return async_wrapper

        @functools.wraps(getter)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            return _apply_calibration(self, getter(self, *args, **kwargs), evaluate)
        wrapper.calibrated = True  # type: ignore[attr-defined]
        return wrapper

    return decorator


class _CalibrateModule(__import__("types").ModuleType):
    """`dripline.core` exports its names lazily; once this submodule has been imported, the
    import system binds `dripline.service.calibrate` to the *module*. Making the module callable
    keeps `from dripline.core import calibrate` / `@calibrate(...)` working either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return calibrate(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CalibrateModule
