"""The gateway's pieces without a broker: status mapping, logins, sessions, throttling, the watcher.

The watcher is driven with a stand-in interface whose replies the test chooses, which is how a
mesh whose services cannot describe themselves (older dripline) is shown to degrade gracefully.
"""
from __future__ import annotations

import asyncio
import base64
import time
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from dripline.web.app import routing_key_from_path
from dripline.web.auth import (Credentials, LoginThrottle, SessionStore, check_hash_format, hash_password,
                               new_token, parse_credentials_group, verify_password)
from dripline.web.mesh import MeshWatcher, Subscriber, numeric_value, rate_heartbeat
from dripline.web.status import http_status


@pytest.mark.parametrize("code,status", [(0, 200), (1, 200), (99, 200), (102, 404), (201, 503), (300, 400),
                                         (303, 422), (304, 422), (306, 501), (307, 403), (308, 423),
                                         (310, 422), (401, 400), (403, 503), (404, 504), (999, 500),
                                         (250, 503), (399, 400), (4000, 500)])
def test_status_mapping(code, status):
    assert http_status(code) == status


def test_routing_keys_from_paths():
    assert routing_key_from_path("a/b/c") == "a.b.c"
    assert routing_key_from_path("/peaches/") == "peaches"
    for bad in ("", "/", "a//b", "a.b", "a#", "a*", "a b", "a\x00", "broadcast", "broadcast/x", "x" * 300):
        with pytest.raises(ValueError):
            routing_key_from_path(bad)


def test_password_hashes():
    stored = hash_password("s3cret")
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert verify_password("s3cret", stored) and not verify_password("S3cret", stored)
    assert hash_password("s3cret") != stored  # salted
    assert check_hash_format("plain") is not None and not verify_password("plain", "plain")
    assert check_hash_format("scrypt$3$8$1$AA==$AA==") is not None  # n not a power of two
    import hashlib
    salt = b"0123456789abcdef"
    pbkdf2 = "pbkdf2_sha256$200000$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(
        hashlib.pbkdf2_hmac("sha256", b"pw", salt, 200000)).decode()
    assert verify_password("pw", pbkdf2) and not verify_password("px", pbkdf2)


def test_credentials_group_is_checked_without_echoing_secrets():
    token, digest = new_token()
    users, tokens = parse_credentials_group({"users": {"alice": {"password_hash": hash_password("x")}},
                                             "tokens": [{"name": "bot", "sha256": digest}]}, "auth.json")
    assert set(users) == {"alice"} and tokens == {digest: "bot"}
    for bad in ({"user": {}}, {"users": {"a:b": {"password_hash": "x"}}}, {"users": {"bob": {"password_hash": "hunter2"}}},
                {"tokens": [{"sha256": "short"}]}, {"tokens": "x"}, "x"):
        with pytest.raises(ValueError) as err:
            parse_credentials_group(bad, "auth.json")
        assert "hunter2" not in str(err.value) and "auth.json" in str(err.value)


async def test_credentials_check_basic_and_bearer():
    token, digest = new_token()
    creds = Credentials({"alice": hash_password("pw")}, {digest: "bot"})
    basic = "Basic " + base64.b64encode(b"alice:pw").decode()
    assert await creds.check_header(basic) == "alice"
    assert await creds.check_header(basic) == "alice"  # from the short-lived cache
    assert await creds.check_header("Basic " + base64.b64encode(b"alice:px").decode()) is None
    assert await creds.check_header("Basic " + base64.b64encode(b"eve:pw").decode()) is None
    assert await creds.check_header("Basic !!!") is None
    assert await creds.check_header(f"Bearer {token}") == "token:bot"
    assert await creds.check_header("Bearer nope") is None
    assert await creds.check_header("Digest x") is None and await creds.check_header(None) is None


def test_sessions_expire_and_are_bounded():
    store = SessionStore(idle_s=60, max_age_s=120, max_sessions=2)
    a, sa = store.create("alice")
    b, _ = store.create("bob")
    assert store.get(a) is sa and sa.csrf and sa.csrf != a
    c, _ = store.create("carol")  # the least recently used (bob) goes
    assert store.get(b) is None and store.get(c) is not None and len(store) == 2
    sa.last_used -= 61
    assert store.get(a) is None
    assert store.get(None) is None and store.get("x" * 200) is None


def test_login_throttle():
    t = LoginThrottle(max_failures=3, window_s=60)
    for _ in range(3):
        assert t.blocked("1.2.3.4") == 0
        t.failed("1.2.3.4")
    assert t.blocked("1.2.3.4") > 0 and t.blocked("5.6.7.8") == 0
    t.succeeded("1.2.3.4")
    assert t.blocked("1.2.3.4") == 0


def test_heartbeat_rating_and_numbers():
    assert [rate_heartbeat(a, 120, 300) for a in (None, 0, 120, 121, 300, 301)] == \
        ["unknown", "alive", "alive", "late", "late", "gone"]
    assert numeric_value({"value_cal": 2.5, "value_raw": 1}) == 2.5
    assert numeric_value({"value_raw": 3}) == 3.0 and numeric_value(True) == 1.0
    assert numeric_value("x") is None and numeric_value(float("nan")) is None and numeric_value({"a": 1}) is None


def test_a_page_that_falls_behind_is_told_and_memory_stays_bounded():
    sub = Subscriber(max_events=3)
    for i in range(10):
        sub.push(b"%d" % i)
    assert sub.overflowed and sub.dropped == 10 and sub.events == []
    fresh = Subscriber(max_events=3)
    fresh.push(b"1")
    assert fresh.take() == [b"1"] and not fresh.wake.is_set()


class FakeInterface:
    """Stands in for AsyncInterface: answers each request with what `answer` says."""

    broadcast_key = "broadcast"

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.core = SimpleNamespace(connection=None, heartbeat_routing_key="heartbeat")
        self.asked: list[tuple[str, str]] = []

    async def start(self) -> "FakeInterface":
        return self

    async def send_request(self, request: Any, timeout_s: Any = None) -> Any:
        self.asked.append((request.routing_key, str(request.specifier)))
        code, payload = self.answer(request)
        return SimpleNamespace(return_code=code, return_message="" if code == 0 else "nope", payload=payload)

    async def send_request_all(self, request: Any, timeout_s: Any = None) -> list:
        return [SimpleNamespace(sender_info={"service_name": "old_svc"}, return_code=0, payload=None)]


def alert(key: str, payload: Any, sender: str = "old_svc") -> Any:
    return SimpleNamespace(routing_key=key, payload=payload, timestamp="2026-01-01T00:00:00Z",
                           sender_info={"service_name": sender}, is_alert=lambda: True)


async def test_services_that_cannot_describe_themselves_are_still_shown():
    def answer(request: Any) -> tuple[int, Any]:
        if str(request.specifier) == "describe":
            return 306, None       # an older service: no describe
        return 0, {"value_raw": 1}
    dl = FakeInterface(answer)
    watcher = MeshWatcher(dl, ping_interval_s=3600)  # type: ignore[arg-type]
    sub = watcher.subscribe()
    await watcher.start()
    try:
        for _ in range(50):
            await asyncio.sleep(0.02)
            if "old_svc" in watcher.services and watcher.services["old_svc"].describe_error:
                break
        service = watcher.services["old_svc"]
        assert service.describe is None and service.describe_error.startswith("306")
        watcher._on_alert(alert("sensor_value.old_ep", {"value_raw": 4, "value_cal": 8}))
        watcher._on_alert(alert("heartbeat.old_svc", {"name": "old_svc"}))
        watcher._on_alert(alert("status_message.hbmon.critical", "pump: heartbeat CRITICAL"))
        watcher._on_alert(alert("sensor_value.old_ep", {"value_raw": 5, "value_cal": 10}, sender="unknown"))
        ep = watcher.endpoints["old_ep"]
        assert ep.service == "old_svc" and ep.value == {"value_raw": 5, "value_cal": 10}
        assert [v for _, v in ep.history] == [8.0, 10.0]
        assert "old_ep" in service.endpoints and service.state == "alive"
        events = [orjson.loads(e) for e in sub.take()]
        kinds = {e["t"] for e in events}
        assert {"svc", "ep", "v", "hb", "alert"} <= kinds
        assert any(e["t"] == "alert" and e["rk"] == "status_message.hbmon.critical" for e in events)
        snap = watcher.snapshot()
        assert {s["name"] for s in snap["services"]} == {"old_svc"}
        assert snap["alerts"][-1]["p"] == "pump: heartbeat CRITICAL"
        # no heartbeat for longer than the thresholds: late, then gone
        service.last_heartbeat = time.monotonic() - 130
        watcher.rate_all()
        assert service.state == "late"
        service.last_heartbeat = time.monotonic() - 301
        watcher.rate_all()
        assert service.state == "gone"
    finally:
        await watcher.close()


async def test_hostile_alert_names_and_huge_payloads_are_bounded():
    watcher = MeshWatcher(FakeInterface(lambda r: (0, None)), ping_interval_s=3600)  # type: ignore[arg-type]
    watcher._on_alert(alert("sensor_value.<script>", 1))
    watcher._on_alert(alert("sensor_value." + "x" * 400, 1))
    watcher._on_alert(alert("heartbeat.a b", None))
    assert watcher.endpoints == {} and watcher.services.keys() <= {"old_svc"}
    watcher._on_alert(alert("sensor_value.big", {"value_raw": "y" * 100000}))
    shown = watcher.endpoints["big"].value
    assert isinstance(shown, str) and len(shown) <= 2001


def test_only_the_watched_services_are_shown_and_read():
    dl = FakeInterface(lambda r: (0, None))
    watcher = MeshWatcher(dl, services=["cryo_*"])  # type: ignore[arg-type]
    watcher._on_alert(alert("heartbeat.other_svc", None, sender="other_svc"))
    watcher._on_alert(alert("sensor_value.other_ep", 1, sender="other_svc"))
    watcher._on_alert(alert("heartbeat.cryo_svc", None, sender="cryo_svc"))
    watcher._on_alert(alert("sensor_value.cryo_temp", 4.2, sender="cryo_svc"))
    watcher._on_alert(alert("status_message.other_svc.warning", "still in the stream", sender="other_svc"))
    assert set(watcher.services) == {"cryo_svc"} and set(watcher.endpoints) == {"cryo_temp"}
    assert orjson.loads(watcher.recent[-1])["p"] == "still in the stream"
    assert dl.asked == []  # nothing was asked of any service before start()
