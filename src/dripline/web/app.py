"""The gateway's HTTP application (aiohttp): routes, limits, logins and the live page's stream.

Routes (reference §6.7, answered correctly):

* ``GET /dl/<a/b/c>`` get ``a.b.c``; ``PUT`` set; ``POST`` cmd. Headers ``specifier`` and
  ``lockout-key`` in; the reply's payload as the JSON body and its code in ``dl_return_code`` out,
  with the HTTP status of `status.http_status`;
* ``/`` the live page, ``/static/…`` its files, ``/events`` its Server-Sent Events, ``/api/mesh``
  its state as JSON; ``/login``, ``/logout``, ``/session``;
* ``/web/…`` the files of `web_root` (when configured), ``/hello``, ``/openapi.json``.

Why aiohttp (measured, docs/design-notes.md): its gateway overhead equals Starlette on uvicorn's
httptools parser, and its own parser bounds request lines, header fields and their number, which
uvicorn does only with its slower pure-Python h11 parser.

Every mesh request goes through the ONE `AsyncInterface` given to `create_app`; at most
`max_inflight` HTTP requests wait for the mesh at a time, and one more is answered 503 at once
(``Retry-After: 1``): a burst never queues work on the mesh.
"""
from __future__ import annotations

import asyncio
import hmac
import importlib.metadata
import importlib.resources
import logging
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from dripline.client.interface import AsyncInterface
from dripline.client.request_sender import build_request
from dripline.protocol.errors import DriplineError
from dripline.protocol.message import op_t
from dripline.web.auth import Credentials, LoginThrottle, SessionStore
from dripline.web.mesh import MeshWatcher
from dripline.web.openapi import openapi_document
from dripline.web.status import http_status

__all__ = ["GatewaySettings", "Gateway", "create_app", "routing_key_from_path", "WATCHER", "GATEWAY"]

logger = logging.getLogger(__name__)

SESSION_COOKIE = "dl_session"
_TOKEN_RE = re.compile(r"^[^\s.#*\x00-\x1f\x7f]+$")
_SPECIFIER_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
_PRINTABLE = re.compile(r"[^\x20-\x7e]")
MAX_ROUTING_KEY = 255
STATIC_FILES = {"app.js": "application/javascript", "style.css": "text/css",
                "favicon.svg": "image/svg+xml"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WATCHER: web.AppKey[MeshWatcher] = web.AppKey("watcher", MeshWatcher)


@dataclass
class GatewaySettings:
    """What dl-http-server reads from its configuration (keys of the same names)."""

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    web_root: str | None = None
    timeout: float = 10.0                 # seconds a mesh request may take
    max_inflight: int = 32                # HTTP requests waiting for the mesh at once
    max_body_bytes: int = 64 * 1024
    max_field_bytes: int = 8190           # one header line / the request line
    max_headers: int = 64
    max_pages: int = 50                   # live pages (event streams) open at once
    push_interval_s: float = 0.02         # at most one event batch per page this often
    alert_keys: list[str] = field(default_factory=lambda: ["#"])
    services: list[str] = field(default_factory=lambda: ["*"])  # shell patterns of the services shown
    history_points: int = 300
    recent_alerts: int = 300
    heartbeat_late_s: float = 120.0
    heartbeat_gone_s: float = 300.0
    ping_interval_s: float = 30.0
    broadcast_key: str = "broadcast"
    #: host names the server answers to (the Host header); None: loopback names when bound to a
    #: loopback address (a defence against DNS rebinding), any name otherwise
    allowed_hosts: list[str] | None = None


def routing_key_from_path(path: str, broadcast_key: str = "broadcast") -> str:
    """``a/b/c`` -> ``a.b.c``; ValueError (with the reason) for anything that is not a plain key."""
    tokens = [t for t in path.strip("/").split("/")]
    if not path.strip("/") or any(not t for t in tokens):
        raise ValueError("the path after /dl/ must name an endpoint (empty name or '//')")
    for token in tokens:
        if not _TOKEN_RE.match(token):
            raise ValueError("routing key names may not contain '.', '#', '*', spaces or control characters")
    key = ".".join(tokens)
    if len(key) > MAX_ROUTING_KEY:
        raise ValueError(f"routing key longer than {MAX_ROUTING_KEY} characters")
    if tokens[0] == broadcast_key:
        raise ValueError("broadcast requests are not served over HTTP")
    return key


def _printable(text: Any, limit: int = 200) -> str:
    return _PRINTABLE.sub("?", str(text))[:limit]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None,
          reason: str | None = None) -> web.Response:
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str)
    return web.Response(body=body, status=status, reason=reason, headers=headers,
                        content_type="application/json")


def _refuse(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"error": text}, status, headers)


class Gateway:
    """The handlers, with the state they share (interface, watcher, logins, limits)."""

    def __init__(self, dl: AsyncInterface, settings: GatewaySettings, credentials: Credentials,
                 version: str) -> None:
        self.dl = dl
        self.settings = settings
        self.credentials = credentials
        self.sessions = SessionStore()
        self.throttle = LoginThrottle()
        self.version = version
        self.watcher = MeshWatcher(dl, alert_keys=settings.alert_keys,
                                   history_points=settings.history_points,
                                   recent_alerts=settings.recent_alerts,
                                   late_s=settings.heartbeat_late_s, gone_s=settings.heartbeat_gone_s,
                                   ping_interval_s=settings.ping_interval_s,
                                   request_timeout_s=min(settings.timeout, 5.0),
                                   services=settings.services)
        self.inflight = 0
        self.pages = 0
        self.busy_refusals = 0
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self.closing = False
        self._openapi = orjson.dumps(openapi_document(version))
        self._allowed_hosts = _allowed_hosts(settings)
        self._page = _package_file("index.html")

    # ------------------------------------------------------------------ middleware
    def _host_allowed(self, request: web.Request) -> bool:
        allowed = self._allowed_hosts
        if allowed is None:
            return True
        host = (request.host or "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.strip("[]") in allowed

    @web.middleware
    async def headers_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if not self._host_allowed(request):
                # a page of another site whose name was pointed at this address (DNS rebinding)
                response: web.StreamResponse = _refuse(421, "this server does not answer to that host name")
            else:
                response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own refusals (404, 405, 413): JSON as ours
            if exc.status >= 400:
                response = _refuse(exc.status, exc.reason)
            else:
                raise
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("Cache-Control", "no-store")
        return response

    # ------------------------------------------------------------------ plain routes
    async def hello(self, request: web.Request) -> web.Response:
        return web.Response(text="Hello, world\n")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = STATIC_FILES.get(name)
        if kind is None:
            return _refuse(404, "no such file")
        response = web.Response(body=_package_file(name), content_type=kind)
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def mesh(self, request: web.Request) -> web.Response:
        return _json(self.watcher.snapshot())

    # ------------------------------------------------------------------ logins
    def _client(self, request: web.Request) -> str:
        return request.remote or "?"

    def _same_origin(self, request: web.Request, required: bool) -> bool:
        """True when the browser says the request comes from this server's own pages."""
        origin = request.headers.get("Origin")
        if origin is None:
            referer = request.headers.get("Referer")
            if referer is None:
                return not required
            origin = referer
        if origin == "null":
            return False
        netloc = origin.split("://", 1)[-1].split("/", 1)[0]
        return hmac.compare_digest(netloc.lower().encode(), (request.host or "").lower().encode())

    async def _user_for_write(self, request: web.Request) -> str | web.Response:
        """The logged-in user allowed to set/cmd, or the refusal to send."""
        client = self._client(request)
        wait = self.throttle.blocked(client)
        if wait:
            return _refuse(429, "too many failed logins; try again later",
                           {"Retry-After": str(int(wait) + 1)})
        header = request.headers.get("Authorization")
        if header:
            user = await self.credentials.check_header(header)
            if user is None:
                self.throttle.failed(client)
                logger.warning("refused a write from %s: wrong credentials", client)
                return _refuse(401, "wrong credentials", {"WWW-Authenticate": 'Bearer realm="dripline"'})
            if not self._same_origin(request, required=False):
                return _refuse(403, "cross-site request refused")
            return user
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            if not self.credentials.configured:
                return _refuse(401, "sets and cmds need a login, and no user is configured "
                                    "(add an 'http' group to the auth file)",
                               {"WWW-Authenticate": 'Bearer realm="dripline"'})
            return _refuse(401, "sets and cmds need a login", {"WWW-Authenticate": 'Bearer realm="dripline"'})
        token = request.headers.get("X-CSRF-Token", "")
        if not hmac.compare_digest(token.encode("utf-8", "replace"), session.csrf.encode()):
            return _refuse(403, "missing or wrong CSRF token")
        if not self._same_origin(request, required=True):
            return _refuse(403, "cross-site request refused")
        return session.user

    async def login(self, request: web.Request) -> web.Response:
        client = self._client(request)
        wait = self.throttle.blocked(client)
        if wait:
            return _refuse(429, "too many failed logins; try again later",
                           {"Retry-After": str(int(wait) + 1)})
        if not self._same_origin(request, required=False):
            return _refuse(403, "cross-site request refused")
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) \
                or not isinstance(body.get("password"), str):
            return _refuse(400, 'expected {"username": ..., "password": ...}')
        username = body["username"]
        if not await self.credentials.check_password(username, body["password"]):
            self.throttle.failed(client)
            logger.warning("failed login for user %r from %s", _printable(username, 64), client)
            return _refuse(401, "wrong user name or password")
        self.throttle.succeeded(client)
        sid, session = self.sessions.create(username)
        logger.info("user %r logged in from %s", _printable(username, 64), client)
        response = _json({"user": session.user, "csrf": session.csrf})
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Strict", path="/",
                            secure=request.secure)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        sid = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(sid)
        if session is not None:
            token = request.headers.get("X-CSRF-Token", "")
            if not hmac.compare_digest(token.encode("utf-8", "replace"), session.csrf.encode()):
                return _refuse(403, "missing or wrong CSRF token")
            self.sessions.drop(sid)
        response = _json({"user": None})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        return _json({"user": session.user if session else None,
                      "csrf": session.csrf if session else None,
                      "logins_configured": self.credentials.configured,
                      "version": self.version})

    # ------------------------------------------------------------------ /dl/
    async def _json_body(self, request: web.Request) -> Any:
        """The parsed JSON body (None when empty), or the refusal to send."""
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            return _refuse(413, f"body larger than {self.settings.max_body_bytes} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(413, f"body larger than {self.settings.max_body_bytes} bytes")
        if not raw.strip():
            return None
        if request.content_type != "application/json":
            return _refuse(415, "the body must be JSON with Content-Type: application/json")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            return _refuse(400, f"invalid JSON body: {_printable(err, 120)}")

    def _payload(self, op: op_t, body: Any) -> dict | web.Response:
        if op == op_t.set:
            if body is None:
                return _refuse(400, 'a set needs a body: {"values": [new value]} or a bare JSON value')
            if isinstance(body, dict):
                values = body.get("values")
                if not isinstance(values, list) or not values:
                    return _refuse(400, 'a set needs "values": a non-empty list whose first item is the new value')
                return body
            return {"values": [body]}
        if body is None:
            return {"values": []}
        if isinstance(body, dict):
            values = body.get("values", [])
            if not isinstance(values, list):
                return _refuse(400, '"values" must be a list (the positional arguments)')
            return {**body, "values": values}
        if isinstance(body, list):
            return {"values": body}
        return {"values": [body]}

    async def dripline(self, request: web.Request) -> web.Response:
        op = {"GET": op_t.get, "PUT": op_t.set, "POST": op_t.cmd}[request.method]
        if self.inflight >= self.settings.max_inflight:
            self.busy_refusals += 1
            return _refuse(503, "too many requests in flight; try again", {"Retry-After": "1"})
        self.inflight += 1
        try:
            return await self._dripline(request, op)
        finally:
            self.inflight -= 1

    async def _dripline(self, request: web.Request, op: op_t) -> web.Response:
        try:
            key = routing_key_from_path(request.match_info["path"], self.settings.broadcast_key)
        except ValueError as err:
            return _refuse(400, str(err))
        specifier = request.headers.get("specifier") or None
        if specifier is not None and not _SPECIFIER_RE.match(specifier):
            return _refuse(400, "the specifier header must be 1-255 printable ASCII characters without spaces")
        lockout = request.headers.get("lockout-key") or None
        if lockout is not None:
            try:
                lockout_key: uuid.UUID | None = uuid.UUID(lockout)
            except ValueError:
                return _refuse(400, "the lockout-key header must be a UUID")
        else:
            lockout_key = None
        payload: Any = None
        user = None
        if op != op_t.get:
            who = await self._user_for_write(request)
            if isinstance(who, web.Response):
                return who
            user = who
            body = await self._json_body(request)
            if isinstance(body, web.Response):
                return body
            payload = self._payload(op, body)
            if isinstance(payload, web.Response):
                return payload
        elif request.can_read_body:
            body = await self._json_body(request)
            if isinstance(body, web.Response):
                return body
        if op == op_t.cmd and not specifier:
            return _refuse(400, "a cmd needs the command name in the specifier header")
        try:
            message = build_request(op, key, specifier, payload, lockout_key)
            reply = await self.dl.send_request(message, self.settings.timeout)
        except DriplineError as err:
            code, text, result = err.return_code, err.message, None
        else:
            code, text, result = reply.return_code, reply.return_message, reply.payload
        if user is not None:
            logger.info("%s %s%s by %s: %s", op.name, key, f" [{_printable(specifier, 60)}]" if specifier else "",
                        _printable(user, 64), code)
        if code == 0 and not specifier:
            if op == op_t.get:
                self.watcher.note_value(key, result, "get")
            elif op == op_t.set:
                self._refresh_soon(key)
        status = http_status(code)
        message_text = _printable(text)
        headers = {"dl_return_code": str(code), "dl_return_message": message_text}
        return _json(result, status, headers, reason=message_text or None)

    def _refresh_soon(self, key: str) -> None:
        """After a set, read the value again so every open page shows it (one read per key at a time)."""
        if key in self._refreshing:
            return
        self._refreshing.add(key)

        async def read() -> None:
            try:
                await self.watcher.refresh(key)
            finally:
                self._refreshing.discard(key)
        task = asyncio.get_running_loop().create_task(read())
        self._tasks.add(task)  # a task nobody references may be collected before it ends
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ live stream
    async def events(self, request: web.Request) -> web.StreamResponse:
        if self.pages >= self.settings.max_pages:
            return _refuse(503, "too many live pages open", {"Retry-After": "5"})
        self.pages += 1
        sub = self.watcher.subscribe()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no",
                                               "X-Content-Type-Options": "nosniff"})
        try:
            await response.prepare(request)
            await response.write(b"event: snapshot\ndata: " + orjson.dumps(
                self.watcher.snapshot(), option=orjson.OPT_NON_STR_KEYS, default=str) + b"\n\n")
            interval = self.settings.push_interval_s
            while True:
                try:
                    await asyncio.wait_for(sub.wake.wait(), 15)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if self.closing:
                    break
                if sub.overflowed:
                    dropped, sub.dropped, sub.overflowed = sub.dropped, 0, False
                    sub.take()
                    await response.write(b"event: snapshot\ndata: " + orjson.dumps(
                        {**self.watcher.snapshot(), "dropped": dropped},
                        option=orjson.OPT_NON_STR_KEYS, default=str) + b"\n\n")
                else:
                    events = sub.take()
                    if events:
                        await response.write(b"data: [" + b",".join(events) + b"]\n\n")
                await asyncio.sleep(interval)
        except ConnectionResetError:
            pass  # the page went away
        finally:
            self.watcher.unsubscribe(sub)
            self.pages -= 1
        return response

    # ------------------------------------------------------------------ lifecycle
    async def on_startup(self, app: web.Application) -> None:
        await self.watcher.start()

    async def on_shutdown(self, app: web.Application) -> None:
        """End the open event streams at once, so that stopping does not wait for them."""
        self.closing = True
        for sub in list(self.watcher.subscribers):
            sub.wake.set()

    async def on_cleanup(self, app: web.Application) -> None:
        await self.watcher.close()


GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "localhost.localdomain"}


def _allowed_hosts(settings: GatewaySettings) -> set[str] | None:
    if settings.allowed_hosts is not None:
        return {h.lower().strip("[]") for h in settings.allowed_hosts}
    import ipaddress
    try:
        loopback = ipaddress.ip_address(settings.http_host.strip("[]")).is_loopback
    except ValueError:
        loopback = settings.http_host in LOOPBACK_NAMES
    return set(LOOPBACK_NAMES) if loopback else None


def _package_file(name: str) -> bytes:
    return importlib.resources.files("dripline.web").joinpath("static", name).read_bytes()


def create_app(dl: AsyncInterface, settings: GatewaySettings | None = None,
               credentials: Credentials | None = None, version: str = "") -> web.Application:
    """The aiohttp application; `dl` is the one AsyncInterface every mesh request goes through."""
    settings = settings or GatewaySettings()
    if not version:
        try:  # not `dripline.__version__`: importing the package root would import the plugins
            version = importlib.metadata.version("dripline")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    gw = Gateway(dl, settings, credentials or Credentials(), version)
    app = web.Application(middlewares=[gw.headers_middleware],
                          client_max_size=settings.max_body_bytes,
                          handler_args={"max_line_size": settings.max_field_bytes,
                                        "max_field_size": settings.max_field_bytes,
                                        "max_headers": settings.max_headers})
    app[WATCHER] = gw.watcher
    app[GATEWAY] = gw
    r = app.router
    r.add_get("/", gw.index)
    r.add_get("/static/{name}", gw.static)
    r.add_get("/hello", gw.hello)
    r.add_get("/openapi.json", gw.openapi)
    r.add_get("/api/mesh", gw.mesh)
    r.add_get("/events", gw.events)
    r.add_post("/login", gw.login)
    r.add_post("/logout", gw.logout)
    r.add_get("/session", gw.session)
    for method in ("GET", "PUT", "POST"):
        r.add_route(method, "/dl/{path:.+}", gw.dripline)
    if settings.web_root:
        root = Path(settings.web_root)
        if not root.is_dir():
            raise ValueError(f"web_root {settings.web_root!r} is not a directory")
        r.add_static("/web/", root, show_index=False, follow_symlinks=False)
    app.on_startup.append(gw.on_startup)
    app.on_shutdown.append(gw.on_shutdown)
    app.on_cleanup.append(gw.on_cleanup)
    return app
