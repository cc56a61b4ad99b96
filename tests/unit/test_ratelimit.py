"""Rate-limited reports (dripline.transport.ratelimit): one full report per source, then counts."""
from __future__ import annotations

import logging

import pytest

from dripline.transport.ratelimit import LimitedLog, RateLimiter, exception_site


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(value: int) -> None:
    raise ValueError(f"bad value {value}")


def fail_elsewhere(value: int) -> None:
    raise ValueError(f"other {value}")


@pytest.fixture
def limited(caplog):
    clock = FakeClock()
    logger = logging.getLogger(f"test.ratelimit.{id(clock)}")
    caplog.set_level(logging.DEBUG, logger=logger.name)
    return LimitedLog(logger, window_s=60.0, clock=clock), clock, caplog


def records(caplog, name):
    return [r for r in caplog.records if r.name == name]


def test_one_traceback_per_exception_site_then_a_summary(limited):
    log, clock, caplog = limited
    for i in range(1000):
        try:
            fail(i)
        except ValueError:
            log.exception("handler failed")
    got = records(caplog, log.logger.name)
    assert len(got) == 1
    assert got[0].exc_info is not None and "bad value 0" in got[0].getMessage()
    clock.now += 61
    try:
        fail(1000)
    except ValueError:
        log.exception("handler failed")
    got = records(caplog, log.logger.name)
    assert len(got) == 2
    summary = got[1].getMessage()
    assert "999 more like this in the last 61 s" in summary and got[1].exc_info is None
    assert "bad value 999" in summary  # names the latest one


def test_distinct_sites_each_get_their_traceback(limited):
    log, clock, caplog = limited
    for f in (fail, fail_elsewhere, fail, fail_elsewhere):
        try:
            f(1)
        except ValueError:
            log.exception("x")
    got = records(caplog, log.logger.name)
    assert len(got) == 2 and all(r.exc_info for r in got)


def test_exception_site_is_innermost_frame():
    try:
        fail(3)
    except ValueError as exc:
        path, line, name = exception_site(exc)
    assert path == __file__ and name == "ValueError"
    assert line == fail.__code__.co_firstlineno + 1


def test_counts_above_a_thousand_use_separators_and_flush_reports(limited):
    log, clock, caplog = limited
    for i in range(1235):
        log.warning("undecodable", "undecodable message %d", i)
    log.flush()
    got = records(caplog, log.logger.name)
    assert [r.getMessage().split(" (")[0] for r in got] == [
        "undecodable message 0", "... 1,234 more like this in the last 0 s"]
    log.flush()  # nothing new: nothing more
    assert len(records(caplog, log.logger.name)) == 2


def test_quiet_source_is_reported_in_full_again(limited):
    log, clock, caplog = limited
    log.warning("k", "first")
    clock.now += 61
    log.warning("other", "sweep")  # a sweep forgets the quiet source
    clock.now += 1
    log.warning("k", "again")
    assert [r.getMessage() for r in records(caplog, log.logger.name)] == ["first", "sweep", "again"]


def test_summary_comes_from_any_later_report(limited):
    log, clock, caplog = limited
    for _ in range(5):
        log.warning("a", "a happened")
    clock.now += 60
    log.warning("b", "b happened")
    msgs = [r.getMessage() for r in records(caplog, log.logger.name)]
    assert msgs[0] == "a happened" and msgs[-1] == "b happened"
    assert any(m.startswith("... 4 more like this in the last 60 s") for m in msgs)


def test_number_of_sources_is_bounded():
    clock = FakeClock()
    summaries = []
    limiter = RateLimiter(lambda *a: summaries.append(a), window_s=60, max_keys=10, clock=clock)
    full = sum(limiter.hit(("k", i), "t") for i in range(10_000))
    assert full == 11  # ten sources, then one shared overflow source
    assert len(limiter._sources) == 11
    limiter.flush()
    assert summaries and summaries[0][1] == 10_000 - 11


def test_disabled_level_costs_nothing(limited):
    log, clock, caplog = limited
    log.logger.setLevel(logging.ERROR)
    try:
        assert log.warning("k", "hidden") is False
        assert log.limiter.reported == 0
    finally:
        log.logger.setLevel(logging.NOTSET)
