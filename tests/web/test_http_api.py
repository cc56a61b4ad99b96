"""dl-http-server's HTTP API against the real broker and a real service.

Every route, the return-code -> HTTP status mapping, the dripline headers, bad input, logins,
CSRF, size limits, the in-flight limit and /web/ path traversal.
"""
from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import re
import uuid

import pytest

from .conftest import PASSWORD, wait_for


def basic(user: str = "alice", password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------- plain routes
def test_hello(gateway):
    r = gateway.call("GET", "/hello")
    assert (r.status, r.body) == (200, b"Hello, world\n")


def test_openapi_is_a_valid_openapi_document(gateway):
    from openapi_spec_validator import validate
    r = gateway.call("GET", "/openapi.json")
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    validate(doc)
    assert set(doc["paths"]["/dl/{path}"]) == {"get", "put", "post"}
    assert "security" in doc["paths"]["/dl/{path}"]["put"]
    assert "security" not in doc["paths"]["/dl/{path}"]["get"]


def test_live_page_and_its_files_are_served_with_a_strict_policy(gateway):
    page = gateway.call("GET", "/")
    assert page.status == 200 and b"<title>dripline mesh</title>" in page.body
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert b"http://" not in page.body and b"https://" not in page.body  # nothing from outside
    for name, kind in (("app.js", "application/javascript"), ("style.css", "text/css")):
        r = gateway.call("GET", f"/static/{name}")
        assert r.status == 200 and r.headers["Content-Type"].startswith(kind)
    assert gateway.call("GET", "/static/../app.py").status == 404
    assert gateway.call("GET", "/static/nothere.js").status == 404


def test_other_host_names_are_refused_on_loopback(gateway):
    # DNS rebinding: a page of evil.example whose name now points at 127.0.0.1
    r = gateway.call("GET", "/api/mesh", headers={"Host": f"evil.example:{gateway.port}"})
    assert r.status == 421
    assert gateway.call("GET", "/hello", headers={"Host": f"localhost:{gateway.port}"}).status == 200


# ---------------------------------------------------------------------------- get
def test_get_returns_the_payload_and_the_return_code(gateway, mesh_service):
    r = gateway.call("GET", f"/dl/{mesh_service.peaches}")
    assert r.status == 200
    assert r.headers["dl_return_code"] == "0"
    assert set(r.json()) == {"value_raw", "value_cal"}


def test_get_with_a_specifier_header(gateway, mesh_service):
    r = gateway.call("GET", f"/dl/{mesh_service.peaches}", headers={"specifier": "calibration"})
    assert (r.status, r.json()) == (200, {"values": ["2*{}"]})  # an attribute comes as {"values": [...]}


def test_slashes_in_the_path_are_dots_of_the_routing_key(gateway, mesh_service):
    # /dl/<service>/<endpoint> is the routing key "<service>.<endpoint>": the service's binding
    # "<service>.#" takes it (no 403 unroutable), and the service itself answers
    r = gateway.call("GET", f"/dl/{mesh_service.service}/{mesh_service.peaches}")
    assert r.headers["dl_return_code"] not in (None, "403")
    assert r.headers["dl_return_code"] == "306" and r.status == 501  # a plain service has no on_get


def test_unknown_endpoint_is_unroutable_403_mapped_to_503(gateway):
    r = gateway.call("GET", f"/dl/{uuid.uuid4().hex}")
    assert r.status == 503
    assert r.headers["dl_return_code"] == "403"
    assert "NO_ROUTE" in r.headers["dl_return_message"]
    assert r.json() is None


def test_unknown_specifier_is_310_mapped_to_422(gateway, mesh_service):
    r = gateway.call("GET", f"/dl/{mesh_service.peaches}", headers={"specifier": "no_such_thing"})
    assert r.headers["dl_return_code"] == "310"
    assert r.status == 422
    assert r.reason == r.headers["dl_return_message"] and r.reason


@pytest.mark.parametrize("path", ["/dl/", "/dl/a//b", "/dl/a%23b", "/dl/a*b", "/dl/a.b", "/dl/broadcast",
                                  "/dl/broadcast/ping", "/dl/" + "x" * 300])
def test_bad_routing_keys_are_refused_before_the_mesh(gateway, path):
    r = gateway.call("GET", path)
    assert r.status in (400, 404)
    assert "dl_return_code" not in r.headers
    assert "error" in r.json()


def test_bad_specifier_and_lockout_headers_are_400(gateway, mesh_service):
    r = gateway.call("GET", f"/dl/{mesh_service.peaches}", headers={"specifier": "has space"})
    assert r.status == 400
    r = gateway.call("GET", f"/dl/{mesh_service.peaches}", headers={"lockout-key": "not-a-uuid"})
    assert r.status == 400 and "UUID" in r.json()["error"]


# ---------------------------------------------------------------------------- set
def test_set_needs_a_login(gateway, mesh_service):
    r = gateway.call("PUT", f"/dl/{mesh_service.peaches}", {"values": [1.0]})
    assert r.status == 401 and "WWW-Authenticate" in r.headers
    r = gateway.call("PUT", f"/dl/{mesh_service.peaches}", {"values": [1.0]}, basic(password="wrong"))
    assert r.status == 401
    r = gateway.call("PUT", f"/dl/{mesh_service.peaches}", {"values": [1.0]}, bearer("not-a-token"))
    assert r.status == 401
    r = gateway.call("PUT", f"/dl/{mesh_service.peaches}", {"values": [1.0]}, basic(user="mallory"))
    assert r.status == 401
    # nothing was set
    assert gateway.call("GET", f"/dl/{mesh_service.peaches}").json()["value_raw"] != 1.0


def test_set_with_basic_auth_and_with_a_token(gateway, mesh_service):
    r = gateway.call("PUT", f"/dl/{mesh_service.peaches}", {"values": [1.25]}, basic())
    assert r.status == 200 and r.headers["dl_return_code"] == "0"
    assert r.json() == {"value_raw": 1.25, "value_cal": 2.5}  # get_on_set: the new value
    r = gateway.call("PUT", f"/dl/{mesh_service.peaches}", 3.5, bearer(gateway.token))  # a bare JSON value
    assert r.status == 200
    assert gateway.call("GET", f"/dl/{mesh_service.peaches}").json()["value_raw"] == 3.5


def test_set_body_errors(gateway, mesh_service):
    url = f"/dl/{mesh_service.peaches}"
    auth = basic()
    r = gateway.call("PUT", url, b"{not json", {**auth, "Content-Type": "application/json"})
    assert r.status == 400 and "invalid JSON" in r.json()["error"]
    r = gateway.call("PUT", url, b'{"values": [1]}', {**auth, "Content-Type": "text/plain"})
    assert r.status == 415
    r = gateway.call("PUT", url, {"values": []}, auth)
    assert r.status == 400
    r = gateway.call("PUT", url, {"value": 3}, auth)
    assert r.status == 400
    r = gateway.call("PUT", url, None, auth)
    assert r.status == 400


def test_set_outside_declared_limits_is_304_mapped_to_422(gateway, mesh_service):
    r = gateway.call("PUT", f"/dl/{mesh_service.limited}", {"values": [11]}, basic())
    assert r.headers["dl_return_code"] == "304"
    assert r.status == 422
    assert gateway.call("GET", f"/dl/{mesh_service.limited}").json()["value_raw"] == 5
    r = gateway.call("PUT", f"/dl/{mesh_service.limited}", {"values": [7]}, basic())
    assert r.status == 200


def test_body_larger_than_the_limit_is_413(gateway, mesh_service):
    big = {"values": ["x" * (70 * 1024)]}
    r = gateway.call("PUT", f"/dl/{mesh_service.peaches}", big, basic())
    assert r.status == 413


def test_oversized_headers_are_refused(gateway, mesh_service):
    huge = b"GET /dl/" + mesh_service.peaches.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + \
        b"a" * 20000 + b"\r\n\r\n"
    answer = gateway.raw(huge)
    assert re.match(rb"HTTP/1\.[01] 4\d\d ", answer), answer[:200]
    many = b"GET /hello HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(200)) + b"\r\n"
    answer = gateway.raw(many)
    assert re.match(rb"HTTP/1\.[01] 4\d\d ", answer), answer[:200]
    # and the gateway still serves
    assert gateway.call("GET", "/hello").status == 200


# ---------------------------------------------------------------------------- cmd
def test_cmd_ping_and_a_failing_command(gateway, mesh_service):
    r = gateway.call("POST", f"/dl/{mesh_service.peaches}", None, {**basic(), "specifier": "ping"})
    assert (r.status, r.headers["dl_return_code"]) == (200, "0")
    assert r.headers["dl_return_message"].startswith("Hello")
    r = gateway.call("POST", f"/dl/{mesh_service.peaches}", {"values": []},
                     {**basic(), "specifier": "throw_something"})
    assert r.headers["dl_return_code"] == "200"   # resource_error
    assert r.status == 500


def test_cmd_with_positional_and_keyed_arguments(gateway, mesh_service):
    url = f"/dl/{mesh_service.slow}"
    r = gateway.call("POST", url, {"values": [3], "factor": 4}, {**basic(), "specifier": "scale"})
    assert (r.status, r.json()) == (200, 12)
    r = gateway.call("POST", url, [3], {**basic(), "specifier": "scale"})  # a list: the positional arguments
    assert (r.status, r.json()) == (200, 6)
    wrong = gateway.call("POST", url, {"values": [], "nonsense": 1}, {**basic(), "specifier": "scale"})
    assert wrong.headers["dl_return_code"] == "304" and wrong.status == 422
    r = gateway.call("POST", url, {"values": 3}, {**basic(), "specifier": "scale"})
    assert r.status == 400 and "dl_return_code" not in r.headers


def test_cmd_needs_a_specifier_and_a_login(gateway, mesh_service):
    r = gateway.call("POST", f"/dl/{mesh_service.peaches}", None, basic())
    assert r.status == 400
    r = gateway.call("POST", f"/dl/{mesh_service.peaches}", None, {"specifier": "ping"})
    assert r.status == 401


def test_describe_through_the_gateway(gateway, mesh_service):
    r = gateway.call("POST", f"/dl/{mesh_service.peaches}", None, {**basic(), "specifier": "describe"})
    assert r.status == 200
    d = r.json()
    assert (d["name"], d["units"], d["description"]) == (mesh_service.peaches, "kg", "peaches in the fridge")


# ---------------------------------------------------------------------------- lockout
def test_lockout_key_header(gateway, mesh_service):
    url = f"/dl/{mesh_service.limited}"
    lock = gateway.call("POST", url, None, {**basic(), "specifier": "lock"})
    assert lock.status == 200
    key = lock.json()["key"]
    try:
        refused = gateway.call("PUT", url, {"values": [3]}, basic())
        assert refused.headers["dl_return_code"] == "307"
        assert refused.status == 403
        other = gateway.call("PUT", url, {"values": [3]}, {**basic(), "lockout-key": str(uuid.uuid4())})
        assert other.status == 403
        ok = gateway.call("PUT", url, {"values": [3]}, {**basic(), "lockout-key": key})
        assert ok.status == 200
    finally:
        unlock = gateway.call("POST", url, None, {**basic(), "specifier": "unlock", "lockout-key": key})
    assert unlock.status == 200
    assert gateway.call("PUT", url, {"values": [4]}, basic()).status == 200


# ---------------------------------------------------------------------------- browser logins
def login(gateway, password: str = PASSWORD) -> tuple[str, str]:
    r = gateway.call("POST", "/login", {"username": "alice", "password": password},
                     {"Origin": gateway.origin})
    assert r.status == 200, r.body
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return cookie.split(";", 1)[0], r.json()["csrf"]


def test_session_cookie_needs_the_csrf_token_and_the_same_origin(gateway, mesh_service):
    cookie, csrf = login(gateway)
    url = f"/dl/{mesh_service.peaches}"
    session = gateway.call("GET", "/session", headers={"Cookie": cookie})
    assert session.json()["user"] == "alice" and session.json()["csrf"] == csrf
    same = {"Cookie": cookie, "Origin": gateway.origin}
    assert gateway.call("PUT", url, {"values": [0.5]}, same).status == 403            # no CSRF token
    assert gateway.call("PUT", url, {"values": [0.5]}, {**same, "X-CSRF-Token": "x" * 43}).status == 403
    cross = {"Cookie": cookie, "Origin": "http://evil.example", "X-CSRF-Token": csrf}
    assert gateway.call("PUT", url, {"values": [0.5]}, cross).status == 403
    no_origin = {"Cookie": cookie, "X-CSRF-Token": csrf}
    assert gateway.call("PUT", url, {"values": [0.5]}, no_origin).status == 403
    r = gateway.call("PUT", url, {"values": [0.5]}, {**same, "X-CSRF-Token": csrf})
    assert r.status == 200 and r.json()["value_raw"] == 0.5
    out = gateway.call("POST", "/logout", headers={**same, "X-CSRF-Token": csrf})
    assert out.status == 200
    assert gateway.call("PUT", url, {"values": [0.6]}, {**same, "X-CSRF-Token": csrf}).status == 401


def test_basic_auth_from_another_site_is_refused(gateway, mesh_service):
    r = gateway.call("PUT", f"/dl/{mesh_service.peaches}", {"values": [0.5]},
                     {**basic(), "Origin": "http://evil.example"})
    assert r.status == 403


def test_wrong_login_is_401_and_no_secret_reaches_the_log(gateway):
    r = gateway.call("POST", "/login", {"username": "alice", "password": "not the password"},
                     {"Origin": gateway.origin})
    assert r.status == 401
    r = gateway.call("POST", "/login", b"{bad", {"Content-Type": "application/json"})
    assert r.status == 400
    log = gateway.log.read_text()
    assert PASSWORD not in log and "not the password" not in log and gateway.token not in log


# ---------------------------------------------------------------------------- /web/
def test_web_root_is_served_without_path_traversal(gateway):
    r = gateway.call("GET", "/web/hello.txt")
    assert (r.status, r.body) == (200, b"served from web_root\n")
    for path in ("/web/../secret.txt", "/web/%2e%2e/secret.txt", "/web/..%2fsecret.txt",
                 "/web/%2e%2e%2fsecret.txt", "/web//etc/passwd", "/web/"):
        answer = gateway.raw(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert b"TOP-SECRET" not in answer and b"root:" not in answer, path
        assert not answer.startswith(b"HTTP/1.1 200"), (path, answer[:100])


# ---------------------------------------------------------------------------- the live state
def test_mesh_state_lists_the_service_its_endpoints_and_their_descriptions(gateway, mesh_service):
    def described() -> dict | None:
        state = gateway.call("GET", "/api/mesh").json()
        eps = {e["name"]: e for e in state["endpoints"]}
        svcs = {s["name"]: s for s in state["services"]}
        svc = svcs.get(mesh_service.service)
        ep = eps.get(mesh_service.peaches)
        if svc and ep and ep["describe"] and svc["state"] == "alive" and ep["value"] is not None:
            return {"svc": svc, "ep": ep}
        return None
    found = wait_for(described, timeout=40)
    assert mesh_service.peaches in found["svc"]["endpoints"]
    assert found["ep"]["describe"]["units"] == "kg"
    assert found["ep"]["service"] == mesh_service.service


def test_event_stream_pushes_a_snapshot_then_new_values(gateway, mesh_service):
    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=30)
    conn.request("GET", "/events")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")

    def next_data() -> tuple[str, object]:
        event, data = "message", []
        while True:
            line = resp.fp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                return event, json.loads("\n".join(data))

    try:
        kind, snapshot = next_data()
        assert kind == "snapshot" and "services" in snapshot and "endpoints" in snapshot
        value = 4.0 + uuid.uuid4().int % 1000 / 1000
        assert gateway.call("PUT", f"/dl/{mesh_service.peaches}", {"values": [value]}, basic()).status == 200
        for _ in range(200):
            kind, batch = next_data()
            hits = [e for e in batch if e.get("t") == "v" and e.get("n") == mesh_service.peaches
                    and isinstance(e.get("p"), dict) and e["p"].get("value_raw") == value]
            if hits:
                break
        else:
            raise AssertionError("the new value never arrived on the event stream")
    finally:
        conn.close()


# ---------------------------------------------------------------------------- limits and throttling
def test_burst_beyond_max_inflight_gets_503_at_once(own_gateway, mesh_service):
    gw = own_gateway(words=["max_inflight=2"])

    def one(_: int):
        return gw.call("GET", f"/dl/{mesh_service.slow}", timeout=60)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(one, range(8)))
    statuses = sorted(r.status for r in replies)
    assert statuses.count(200) >= 2, statuses
    busy = [r for r in replies if r.status == 503]
    assert busy, statuses
    assert all(r.headers["Retry-After"] == "1" and "dl_return_code" not in r.headers for r in busy)
    assert gw.call("GET", f"/dl/{mesh_service.peaches}").status == 200  # and it recovers


def test_without_configured_users_writes_are_refused(own_gateway, mesh_service):
    gw = own_gateway(users=False)
    r = gw.call("PUT", f"/dl/{mesh_service.peaches}", {"values": [1]}, basic())
    assert r.status == 401
    r = gw.call("PUT", f"/dl/{mesh_service.peaches}", {"values": [1]})
    assert r.status == 401 and "no user is configured" in r.json()["error"]
    assert gw.call("GET", f"/dl/{mesh_service.peaches}").status == 200


def test_failed_logins_are_throttled(own_gateway):
    gw = own_gateway()
    codes = [gw.call("POST", "/login", {"username": "alice", "password": f"guess{i}"}).status
             for i in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    # even the right password waits now
    r = gw.call("POST", "/login", {"username": "alice", "password": PASSWORD})
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1


def test_configuration_errors_exit_2(tmp_path):
    import subprocess
    import sys
    for words in (["http_port=notanumber"], ["heartbeat_late_s=10", "heartbeat_gone_s=5"],
                  ["web_root=/no/such/dir/x", "http_port=0"]):
        proc = subprocess.run([sys.executable, "-m", "dripline.cli.http_server", *words],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (words, proc.stderr)
        assert proc.stderr.startswith("dl-http-server: ")
    bad = tmp_path / "auth.json"
    bad.write_text(json.dumps({"http": {"users": {"bob": {"password_hash": "plain"}}}}))
    proc = subprocess.run([sys.executable, "-m", "dripline.cli.http_server", "--auth-file", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "http.users.bob" in proc.stderr and "plain" not in proc.stderr
