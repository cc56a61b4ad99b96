"""Entity options and logging decisions (reference §5.1-§5.3, with the §11.1 item 12 fixes).

Entities are served in memory (`dripline.testing.memory_endpoint`): alerts pass through the codec
into `alerts`, and the service's scheduler records what is scheduled (nothing fires by itself).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from datetime import timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dripline.core import Entity, MsgRequest, ThrowReply, calibrate, op_t
from dripline.service.entity import should_log
from dripline.testing import MemoryMesh


class Sensor(Entity):
    """An entity whose reading the test controls."""

    def __init__(self, reading=None, **kwargs):
        kwargs.setdefault("name", "sensor")
        super().__init__(**kwargs)
        self.reading = reading
        self.set_values = []

    def on_get(self):
        if isinstance(self.reading, Exception):
            raise self.reading
        return self.reading

    def on_set(self, value):
        self.set_values.append(value)
        self.reading = {"value_raw": value}
        return "set-result"


class Calibrated(Entity):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._value = None

    @calibrate()
    def on_get(self):
        return self._value

    def on_set(self, value):
        self._value = value


class SetOnly(Entity):
    def on_set(self, value):
        self.last = value


def attached(entity, mesh_down=False):
    """The entity served alone in an in-memory mesh; with mesh_down, every alert send fails."""
    handle = MemoryMesh().add_endpoint(entity)
    handle.mesh.down = mesh_down
    return entity, handle


def set_request(specifier, value):
    return MsgRequest.create(payload={"values": [value]}, msg_op=op_t.set, routing_key="sensor",
                             specifier=specifier, reply_to="r")


# ---------------------------------------------------------------------------------------------
# construction and options

def test_defaults():
    e = Sensor()
    assert e.name == "sensor"
    assert (e.get_on_set, e.log_on_set) == (False, False)
    assert e.log_routing_key_prefix == "sensor_value"
    assert e.log_interval == timedelta(0)
    assert (e.max_interval, e.max_absolute_change, e.max_fractional_change) == (0, 0, 0)
    assert e.check_field == "value_cal"
    assert e.calibration is None and e._calibration is None
    assert not e.is_logging


def test_unknown_keywords_are_ignored():
    e = Sensor(name="x", some_future_option=3)
    assert e.name == "x" and not hasattr(e, "some_future_option")


@pytest.mark.parametrize("given_value, expected", [
    (10, timedelta(seconds=10)), (0.5, timedelta(milliseconds=500)),
    ({"minutes": 2, "seconds": 3}, timedelta(minutes=2, seconds=3)),
    (timedelta(hours=1), timedelta(hours=1)), (0, timedelta(0)),
])
def test_log_interval_forms(given_value, expected):
    assert Sensor(log_interval=given_value).log_interval == expected


@pytest.mark.parametrize("bad", ["10", [1], {"fortnights": 1}, -1, float("inf"), True])
def test_invalid_log_interval_is_304(bad):
    with pytest.raises(ThrowReply) as info:
        Sensor(log_interval=bad)
    assert info.value.return_code == 304


@pytest.mark.parametrize("option", ["max_interval", "max_absolute_change",
                                    "max_fractional_change"])
def test_invalid_thresholds_are_304(option):
    with pytest.raises(ThrowReply) as info:
        Sensor(**{option: "a lot"})
    assert info.value.return_code == 304
    with pytest.raises(ThrowReply):
        Sensor(**{option: -1})


# ---------------------------------------------------------------------------------------------
# scheduling

def test_start_and_stop_logging_use_the_service_scheduler():
    e, svc = attached(Sensor(log_interval=5))
    e.start_logging()
    assert e.is_logging
    (job_id, (action, interval)), = svc.scheduled.items()
    assert action == e.scheduled_log and interval == 5
    e.start_logging()  # restarting replaces the job
    (new_id, _), = svc.scheduled.items()
    assert new_id != job_id
    e.stop_logging()
    assert not e.is_logging and svc.scheduled == {}
    e.stop_logging()  # not logging: no error
    assert not e.is_logging and svc.scheduled == {}


def test_a_scheduled_log_fired_sends_the_reading():
    e, svc = attached(Sensor({"value_raw": 2.5}, log_interval=5))
    e.start_logging()
    (job_id, _), = svc.scheduled.items()
    svc.fire(job_id)
    assert svc.alerts == [("sensor_value.sensor", {"value_raw": 2.5})]


def test_start_logging_with_zero_interval_raises_value_error():
    e, svc = attached(Sensor())
    with pytest.raises(ValueError):
        e.start_logging()
    assert svc.scheduled == {}


def test_changing_log_interval_while_logging_reschedules():
    e, svc = attached(Sensor(log_interval=5))
    e.start_logging()
    e.log_interval = {"seconds": 30}
    assert [interval for _, interval in svc.scheduled.values()] == [30]
    e.log_interval = 0
    assert not e.is_logging and svc.scheduled == {}
    e.log_interval = 7  # not logging: just stored
    assert svc.scheduled == {} and e.log_interval == timedelta(seconds=7)


# ---------------------------------------------------------------------------------------------
# log_a_value and scheduled_log

def test_log_a_value_sends_alert_with_prefix_and_name():
    e, svc = attached(Sensor(log_routing_key_prefix="slow_value"))
    e.log_a_value({"value_raw": 5})
    assert svc.alerts == [("slow_value.sensor", {"value_raw": 5})]


def test_first_check_always_logs_then_only_on_change():
    e, svc = attached(Sensor({"value_raw": 1.0, "value_cal": 2.0}, max_interval=3600))
    e.scheduled_log()
    assert svc.alerts == [("sensor_value.sensor", {"value_raw": 1.0, "value_cal": 2.0})]
    e.scheduled_log()
    assert len(svc.alerts) == 1  # unchanged and max_interval not reached
    e.reading = {"value_raw": 1.0, "value_cal": 2.5}
    e.scheduled_log()
    assert len(svc.alerts) == 2


def test_max_interval_zero_logs_every_check():
    e, svc = attached(Sensor({"value_raw": 1}))
    for _ in range(3):
        e.scheduled_log()
    assert len(svc.alerts) == 3


def test_elapsed_max_interval_logs_unchanged_value():
    e, svc = attached(Sensor({"value_cal": 1.0}, max_interval=10))
    e.scheduled_log()
    e.scheduled_log()
    assert len(svc.alerts) == 1
    e._last_log_monotonic = time.monotonic() - 11
    e.scheduled_log()
    assert len(svc.alerts) == 2


def test_absolute_and_fractional_thresholds():
    e, svc = attached(Sensor({"value_cal": 100.0}, max_interval=3600, max_absolute_change=5,
                             max_fractional_change=1))
    e.scheduled_log()
    e.reading = {"value_cal": 104.0}  # |diff| 4 <= 5, 2*4 <= 1*204
    e.scheduled_log()
    assert len(svc.alerts) == 1
    e.reading = {"value_cal": 106.0}  # |diff| 6 > 5
    e.scheduled_log()
    assert len(svc.alerts) == 2
    assert e._last_log_value == 106.0


def test_check_field_falls_back_to_value_raw_then_whole_value():
    e, svc = attached(Sensor({"value_raw": 1}, max_interval=3600))  # no value_cal
    e.scheduled_log()
    e.scheduled_log()
    assert len(svc.alerts) == 1 and e._last_log_value == 1.0
    e.reading = {"other": "a"}  # neither field: the whole dict is compared
    e.scheduled_log()
    assert len(svc.alerts) == 2 and e._last_log_value == {"other": "a"}
    e.scheduled_log()
    assert len(svc.alerts) == 2
    e.reading = 7  # a non-dict result is its own value
    e.scheduled_log()
    assert svc.alerts[-1] == ("sensor_value.sensor", 7)


def test_custom_check_field():
    e, svc = attached(Sensor({"value_raw": 1, "temp": 5}, check_field="temp", max_interval=3600))
    e.scheduled_log()
    e.reading = {"value_raw": 2, "temp": 5}
    e.scheduled_log()
    assert len(svc.alerts) == 1


def test_non_numeric_values_log_when_changed():
    e, svc = attached(Sensor({"value_cal": "open"}, max_interval=3600))
    e.scheduled_log()
    e.scheduled_log()
    e.reading = {"value_cal": "closed"}
    e.scheduled_log()
    assert [p["value_cal"] for _, p in svc.alerts] == ["open", "closed"]


def test_none_reading_is_not_logged():
    e, svc = attached(Sensor(None))
    e.scheduled_log()
    assert svc.alerts == []


def test_scheduled_log_never_raises(caplog):
    e, svc = attached(Sensor(RuntimeError("instrument gone")))
    with caplog.at_level(logging.ERROR, logger="dripline.service.entity"):
        assert e.scheduled_log() is None
    assert "instrument gone" in caplog.text
    e.reading = {"value_raw": 1}
    svc.mesh.down = True
    e.scheduled_log()  # the send fails: logged, not raised
    assert "in-memory mesh is down" in caplog.text


def test_scheduled_log_with_async_on_get_returns_a_coroutine():
    class AsyncSensor(Entity):
        async def on_get(self):
            await asyncio.sleep(0)
            return {"value_raw": 3}
    e, svc = attached(AsyncSensor(name="a"))
    pending = e.scheduled_log()
    assert inspect.iscoroutine(pending)
    asyncio.run(pending)
    assert svc.alerts == [("sensor_value.a", {"value_raw": 3})]


# ---------------------------------------------------------------------------------------------
# get_on_set / log_on_set

def test_get_on_set_returns_on_get_result():
    e = Sensor(get_on_set=True)
    assert e.on_set(4) == {"value_raw": 4}
    assert e.set_values == [4]
    reply = e.on_request_message(set_request("", 5))
    assert (reply.return_code, reply.payload) == (0, {"value_raw": 5})


def test_without_get_on_set_the_on_set_result_is_returned():
    e = Sensor()
    assert e.on_set(4) == "set-result"


def test_log_on_set_does_not_require_get_on_set():
    e, svc = attached(Calibrated(name="c", log_on_set=True))  # default check_field value_cal
    reply = e.on_request_message(set_request("", 2))
    assert (reply.return_code, reply.payload) == (0, None)
    assert svc.alerts == [("sensor_value.c", {"value_raw": 2})]
    e.calibration = "2*{}"
    e.on_set(3)
    assert svc.alerts[-1] == ("sensor_value.c", {"value_raw": 3, "value_cal": 6})
    assert e._last_log_value == 6.0


def test_log_on_set_without_on_get_logs_the_set_value():
    e, svc = attached(SetOnly(name="s", log_on_set=True))
    reply = e.on_request_message(set_request("", 9))
    assert reply.return_code == 0
    assert e.last == 9
    assert svc.alerts == [("sensor_value.s", {"value_raw": 9})]


def test_log_on_set_with_get_on_set_logs_and_returns_the_reading():
    e, svc = attached(Sensor(get_on_set=True, log_on_set=True))
    assert e.on_set(1.5) == {"value_raw": 1.5}
    assert svc.alerts == [("sensor_value.sensor", {"value_raw": 1.5})]


def test_log_on_set_failure_does_not_fail_the_set(caplog):
    e, svc = attached(Sensor(log_on_set=True), mesh_down=True)
    with caplog.at_level(logging.ERROR, logger="dripline.service.entity"):
        reply = e.on_request_message(set_request("", 1))
    assert reply.return_code == 0 and e.set_values == [1]
    assert "could not be logged" in caplog.text


def test_options_toggle_through_set_requests():
    e, svc = attached(Sensor())
    assert e.on_request_message(set_request("get_on_set", True)).return_code == 0
    assert e.on_set(3) == {"value_raw": 3}
    assert e.on_request_message(set_request("log_on_set", True)).return_code == 0
    e.on_set(4)
    assert svc.alerts == [("sensor_value.sensor", {"value_raw": 4})]
    e.get_on_set = False
    assert e.on_set(5) == "set-result"
    assert len(svc.alerts) == 2  # still logging on set
    e.log_on_set = False
    assert "on_set" not in vars(e)  # back to the plain class method
    e.on_set(6)
    assert len(svc.alerts) == 2
    assert e.on_request_message(set_request("max_interval", "x")).return_code == 304


def test_set_with_specifier_does_not_log():
    e, svc = attached(Sensor(log_on_set=True))
    assert e.on_request_message(set_request("check_field", "value_raw")).return_code == 0
    assert e.check_field == "value_raw" and svc.alerts == []


def test_async_on_set_with_get_on_set():
    class AsyncEntity(Entity):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.v = 0

        async def on_get(self):
            return {"value_raw": self.v}

        async def on_set(self, value):
            self.v = value
    e, svc = attached(AsyncEntity(name="ae", get_on_set=True, log_on_set=True))
    assert inspect.iscoroutinefunction(e.on_set)
    assert e.has_async_handlers()
    reply = asyncio.run(e.on_request_message_async(set_request("", 8)))
    assert (reply.return_code, reply.payload) == (0, {"value_raw": 8})
    assert svc.alerts == [("sensor_value.ae", {"value_raw": 8})]


# ---------------------------------------------------------------------------------------------
# the decision rule as a property

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
threshold = st.floats(min_value=0, max_value=1e3, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(last=finite, new=finite, abs_change=threshold, frac_change=threshold,
       max_interval=st.floats(min_value=1, max_value=1e4), elapsed_fraction=st.floats(0, 1))
def test_numeric_decision_within_max_interval(last, new, abs_change, frac_change, max_interval,
                                              elapsed_fraction):
    elapsed = max_interval * elapsed_fraction  # never more than max_interval
    decided = should_log(last, elapsed, new, max_interval=max_interval,
                         max_absolute_change=abs_change, max_fractional_change=frac_change)
    expected = (abs(last - new) > abs_change) or (2 * abs(last - new) > frac_change * abs(last + new))
    assert decided == expected


@settings(max_examples=200, deadline=None)
@given(value=finite, abs_change=threshold, frac_change=threshold,
       max_interval=st.floats(min_value=1, max_value=1e4))
def test_unchanged_value_is_not_logged_before_max_interval(value, abs_change, frac_change,
                                                           max_interval):
    assert not should_log(value, 0.5, value, max_interval=max_interval,
                          max_absolute_change=abs_change, max_fractional_change=frac_change)
    # ... but it is once max_interval has passed, and always the first time
    assert should_log(value, max_interval + 1, value, max_interval=max_interval,
                      max_absolute_change=abs_change, max_fractional_change=frac_change)
    assert should_log(None, None, value, max_interval=max_interval,
                      max_absolute_change=abs_change, max_fractional_change=frac_change)


@settings(max_examples=200, deadline=None)
@given(last=finite, new=finite, abs_change=threshold)
def test_absolute_threshold_alone(last, new, abs_change):
    assume(last + new != 0 or last == new)
    # with a huge fractional threshold only the absolute change matters
    decided = should_log(last, 0.0, new, max_interval=100, max_absolute_change=abs_change,
                         max_fractional_change=1e12)
    assert decided == (abs(last - new) > abs_change)


@settings(max_examples=200, deadline=None)
@given(last=finite, new=finite, frac_change=threshold)
def test_fractional_threshold_alone(last, new, frac_change):
    decided = should_log(last, 0.0, new, max_interval=100, max_absolute_change=1e12,
                         max_fractional_change=frac_change)
    assert decided == (2 * abs(last - new) > frac_change * abs(last + new))


@settings(max_examples=100, deadline=None)
@given(last=finite, new=finite, abs_change=threshold, frac_change=threshold)
def test_entity_follows_the_decision_rule(last, new, abs_change, frac_change):
    e, svc = attached(Sensor({"value_cal": last}, max_interval=3600,
                             max_absolute_change=abs_change, max_fractional_change=frac_change))
    e.scheduled_log()
    e.reading = {"value_cal": new}
    e.scheduled_log()
    expected = should_log(last, 0.0, new, max_interval=3600, max_absolute_change=abs_change,
                          max_fractional_change=frac_change)
    assert len(svc.alerts) == 1 + int(expected)


def test_numeric_strings_compare_as_numbers():
    assert not should_log("1.0", 0.0, "1", max_interval=10)
    assert should_log("1.0", 0.0, "2", max_interval=10)
    assert should_log(1.0, 0.0, "one", max_interval=10)  # type of value changed


def test_async_on_get_without_on_set_gives_306_on_the_async_path():
    class ReadOnly(Entity):
        async def on_get(self):
            return {"value_raw": 1}
    e, svc = attached(ReadOnly(name="ro", get_on_set=True))
    request = set_request("", 1)
    assert e.is_async_request(request)
    reply = asyncio.run(e.on_request_message_async(request))
    assert (reply.return_code, reply.return_message) == (306, "ReadOnly does not implement on_set")


# ---------------------------------------------------------------------------------------------
# calibration checked when built and when set

def test_bad_calibration_is_refused_when_built():
    with pytest.raises(ThrowReply) as info:
        Entity(name="e", calibration="2*{}+")
    assert info.value.return_code == 304
    assert "calibration '2*{}+'" in info.value.return_message
    assert "SyntaxError" in info.value.return_message


def test_bad_calibration_set_keeps_the_old_one():
    e = Entity(name="e", calibration="2*{}")
    with pytest.raises(ThrowReply) as info:
        e.calibration = "1/0*{}"
    assert info.value.return_code == 304 and "ZeroDivisionError" in info.value.return_message
    assert e.calibration == "2*{}"
    e.calibration = {"1": "on"}
    assert e.calibration == {"1": "on"}
