"""@calibrate (reference §5.4 plus our documented deviations)."""
from __future__ import annotations

import asyncio
import logging
import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dripline.core import ThrowReply, calibrate
import dripline.service.calibrate as calibrate_module


def times3(x):
    return 3 * x


def plus_one(x):
    return x + 1


class Sensor:
    """Minimal stand-in: @calibrate only needs `_calibration` (and `name` for messages)."""

    def __init__(self, raw, calibration=None):
        self.name = "sensor"
        self.raw = raw
        self._calibration = calibration

    @calibrate()
    def on_get(self):
        return self.raw


class FunctionSensor(Sensor):
    @calibrate([times3, plus_one])
    def on_get(self):
        return self.raw


class SingleFunctionSensor(Sensor):
    @calibrate(times3)
    def on_get(self):
        return self.raw


class DictFunctionSensor(Sensor):
    @calibrate({"triple": times3})
    def on_get(self):
        return self.raw


class BareSensor(Sensor):
    @calibrate
    def on_get(self):
        return self.raw


def test_reference_example():
    assert Sensor(0.75, "2*{}").on_get() == {"value_raw": 0.75, "value_cal": 1.5}


def test_no_calibration_gives_only_value_raw():
    assert Sensor(5).on_get() == {"value_raw": 5}


def test_none_result_is_none():
    assert Sensor(None, "2*{}").on_get() is None


def test_list_result_takes_first_element():
    assert Sensor([4, 5], "{}+1").on_get() == {"value_raw": 4, "value_cal": 5}


def test_empty_list_is_304():
    with pytest.raises(ThrowReply) as info:
        Sensor([], "{}").on_get()
    assert info.value.return_code == 304


def test_string_raw_value_is_stripped():
    assert Sensor("  1.5\n", "2*{}").on_get() == {"value_raw": "1.5", "value_cal": 3.0}


def test_all_decorator_spellings():
    assert BareSensor(2, "2*{}").on_get() == {"value_raw": 2, "value_cal": 4}
    assert FunctionSensor(2, "plus_one(times3({}))").on_get() == {"value_raw": 2, "value_cal": 7}
    assert SingleFunctionSensor(2, "times3({})").on_get() == {"value_raw": 2, "value_cal": 6}
    assert DictFunctionSensor(2, "triple({})").on_get() == {"value_raw": 2, "value_cal": 6}
    assert BareSensor.on_get.__name__ == "on_get"


def test_math_functions_and_plain_python_numbers():
    result = Sensor(4, "sqrt({})").on_get()
    assert result == {"value_raw": 4, "value_cal": 2.0}
    assert type(result["value_cal"]) is float  # not numpy.float64
    result = Sensor(2.0, "int({}) * 2").on_get()
    assert result["value_cal"] == 4 and type(result["value_cal"]) is int


def test_dict_calibration():
    table = {1: "low", 2: "high", "on": True}
    assert Sensor(1, table).on_get() == {"value_raw": 1, "value_cal": "low"}
    assert Sensor("on", table).on_get() == {"value_raw": "on", "value_cal": True}


def test_dict_calibration_falls_back_to_string_key():
    assert Sensor(3, {"3": "three"}).on_get() == {"value_raw": 3, "value_cal": "three"}


def test_dict_calibration_missing_key_is_304():
    with pytest.raises(ThrowReply) as info:
        Sensor(7, {1: "a"}).on_get()
    assert info.value.return_code == 304
    assert info.value.return_message == "raw value 7 not in cal dict"


def test_other_calibration_types_warn_and_skip(caplog):
    with caplog.at_level(logging.WARNING, logger="dripline.service.calibrate"):
        assert Sensor(1, 5).on_get() == {"value_raw": 1}
    assert "neither a string nor a dict" in caplog.text


def test_unknown_function_is_304_not_silently_omitted():
    with pytest.raises(ThrowReply) as info:
        Sensor(1, "times3({})").on_get()  # Sensor registers no functions
    assert info.value.return_code == 304
    assert "times3" in info.value.return_message


@pytest.mark.parametrize("expression", ["1/({}-1)", "2*(", "[1][{}]", "'a' + {}"])
def test_evaluation_errors_are_304(expression):
    with pytest.raises(ThrowReply) as info:
        Sensor(1, expression).on_get()
    assert info.value.return_code == 304
    assert expression.format(1) in info.value.return_message


@pytest.mark.parametrize("template", ["{1}", "{name}", "{:d}", "{"])
def test_format_errors_are_304(template):
    with pytest.raises(ThrowReply) as info:
        Sensor(1.5, template).on_get()
    assert info.value.return_code == 304
    assert "cannot be formatted" in info.value.return_message


def test_overflow_is_303():
    with pytest.raises(ThrowReply) as info:
        Sensor(1000.0, "10.0**{}").on_get()
    assert info.value.return_code == 303


def test_no_eval_escape():
    for expression in ["__import__('os').getcwd()", "open('/etc/passwd').read()"]:
        with pytest.raises(ThrowReply) as info:
            Sensor(1, expression).on_get()
        assert info.value.return_code == 304


def test_interpreter_is_built_once_and_reused(monkeypatch):
    import asteval
    built = []
    original = asteval.Interpreter

    def counting(*args, **kwargs):
        built.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(asteval, "Interpreter", counting)

    class Fresh(Sensor):
        @calibrate()
        def on_get(self):
            return self.raw
    for raw in range(5):
        assert Fresh(raw, "{}*2").on_get()["value_cal"] == raw * 2
    assert Fresh(1, "{}+1").on_get()["value_cal"] == 2  # another instance, same interpreter
    assert len(built) == 1


def test_assignments_do_not_leak_between_evaluations():
    class Leaky(Sensor):
        @calibrate()
        def on_get(self):
            return self.raw
    assert "value_cal" not in Leaky(1, "x = {}").on_get()  # an assignment evaluates to None
    with pytest.raises(ThrowReply):
        Leaky(1, "x + {}").on_get()  # x was removed again


def test_concurrent_evaluations_are_consistent():
    sensors = [Sensor(i, "{} * 3 + 1") for i in range(200)]
    results = {}

    def work(chunk):
        for s in chunk:
            results[s.raw] = s.on_get()["value_cal"]
    threads = [threading.Thread(target=work, args=(sensors[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i * 3 + 1 for i in range(200)}


def test_async_getter_is_calibrated():
    class AsyncSensor(Sensor):
        @calibrate()
        async def on_get(self):
            await asyncio.sleep(0)
            return self.raw
    import inspect
    assert inspect.iscoroutinefunction(AsyncSensor.on_get)
    assert asyncio.run(AsyncSensor(3, "{}*2").on_get()) == {"value_raw": 3, "value_cal": 6}


def test_bad_cal_functions_argument():
    with pytest.raises(TypeError):
        calibrate(5)
    with pytest.raises(TypeError):
        calibrate([times3, 5])


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=-1e100, max_value=1e100, allow_nan=False),
       st.floats(min_value=-1e3, max_value=1e3, allow_nan=False))
def test_linear_calibration_matches_python(raw, slope):
    result = Sensor(raw, f"{slope!r}*{{}} + 1").on_get()
    assert result["value_raw"] == raw
    assert math.isclose(result["value_cal"], slope * raw + 1, rel_tol=1e-12, abs_tol=1e-12)


def test_module_has_no_eval():
    import inspect
    source = inspect.getsource(calibrate_module)
    assert "eval(" not in source.replace("interp.eval(", "").replace(".eval(", "")


def test_from_dripline_core_import_calibrate_is_callable_after_submodule_import():
    """Plugins do `from dripline.core import calibrate` after something imported the submodule."""
    import subprocess
    import sys
    code = ("import dripline.service.calibrate\n"
            "from dripline.core import calibrate, Endpoint\n"
            "class E(Endpoint):\n"
            "    _calibration = '2*{}'\n"
            "    @calibrate\n"
            "    def on_get(self):\n"
            "        return 3\n"
            "print(E('e').on_get()['value_cal'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "6"


# ---------------------------------------------------------------------------------------------
# checked once, when the entity is built (issue 10 item 3)

@pytest.mark.parametrize("calibration, error", [
    ("2*{}+", "SyntaxError"),
    ("2*x", "name 'x' is not defined"),
    ("times3({})", "name 'times3' is not defined"),
    ("1/0*{}", "ZeroDivisionError"),
    ("{", "not a valid template"),
    ("{x}*2", "field {x}"),
    (5, "not int"),
    (["2*{}"], "not list"),
])
def test_check_calibration_refuses_what_can_never_work(calibration, error):
    with pytest.raises(ValueError) as info:
        calibrate_module.check_calibration(calibration)
    assert error in str(info.value)


@pytest.mark.parametrize("calibration", [None, "2*{}", "{}", "1/({}-1)", "{:.1f}", "{0}*2+{0}",
                                         "'{}'.upper()", {"1": "on"}, "sqrt({})", "({}).real"])
def test_check_calibration_accepts_what_works_for_some_reading(calibration):
    calibrate_module.check_calibration(calibration)


def test_check_calibration_knows_the_getters_functions():
    calibrate_module.check_calibration("times3({})", FunctionSensor.on_get)
    calibrate_module.check_calibration("triple({})", DictFunctionSensor.on_get)
    with pytest.raises(ValueError):
        calibrate_module.check_calibration("triple({})", FunctionSensor.on_get)
