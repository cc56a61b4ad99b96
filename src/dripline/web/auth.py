"""Who may set and command through the gateway: users, tokens, browser sessions, CSRF, throttling.

Gets are open; a set or cmd needs a login. The logins live in the ``http`` group of the
authentication file that every dripline command reads (``--auth-file``), next to the broker
credentials, and hold only hashes::

    {"dripline": {"username": "...", "password": "..."},
     "http": {"users": {"alice": {"password_hash": "scrypt$16384$8$1$<salt>$<hash>"}},
              "tokens": [{"name": "grafana-bot", "sha256": "<hex digest of the token>"}]}}

``dl-http-server --hash-password`` prints a password hash, ``dl-http-server --new-token NAME``
makes a token and prints the entry to add (the token itself is shown once and stored nowhere).

Why these choices:

* scrypt (hashlib, no dependency) makes a stolen auth file expensive to brute-force; checking one
  costs tens of milliseconds, so checks run in a thread, at most two at a time, and a verified
  Basic login is remembered for a few minutes (under a keyed digest, never the password) so a
  script that sends Basic auth on every request does not pay that cost each time;
* tokens are long random strings, so a plain SHA-256 of them is enough;
* a browser logs in once (``POST /login``) and gets an HttpOnly, SameSite=Strict session cookie;
  every set/cmd it sends must also carry the session's CSRF token in ``X-CSRF-Token`` (which a
  page of another site cannot read) and, when the browser says where it comes from, a same-origin
  ``Origin``;
* failed logins are throttled per client address, so a password cannot be guessed at speed.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["hash_password", "verify_password", "new_token", "Credentials", "Session", "SessionStore",
           "LoginThrottle", "parse_credentials_group"]

logger = logging.getLogger(__name__)

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_MAX_SCRYPT_N = 2 ** 20
PBKDF2_MIN_ITERATIONS = 100_000
MAX_PASSWORD_BYTES = 1024
MAX_USERNAME_CHARS = 64


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """A salted scrypt hash of `password`: ``scrypt$N$r$p$<salt b64>$<hash b64>``."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=_SCRYPT_MAXMEM, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(stored: str) -> str | None:
    """None when `stored` is a hash this module can verify, else what is wrong (no secret in it)."""
    parts = stored.split("$") if isinstance(stored, str) else []
    try:
        if len(parts) == 6 and parts[0] == "scrypt":
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            if not (2 <= n <= _MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
                return "scrypt parameters out of range"
            base64.b64decode(parts[4], validate=True)
            base64.b64decode(parts[5], validate=True)
            return None
        if len(parts) == 4 and parts[0] == "pbkdf2_sha256":
            if int(parts[1]) < PBKDF2_MIN_ITERATIONS:
                return f"pbkdf2_sha256 needs at least {PBKDF2_MIN_ITERATIONS} iterations"
            base64.b64decode(parts[2], validate=True)
            base64.b64decode(parts[3], validate=True)
            return None
    except (ValueError, binascii.Error):
        return "malformed hash"
    return "unknown hash format (expected scrypt$... as printed by dl-http-server --hash-password)"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the `stored` hash (scrypt, or pbkdf2_sha256$iter$salt$hash)."""
    if check_hash_format(stored) is not None:
        return False
    parts = stored.split("$")
    secret = password.encode("utf-8")
    if parts[0] == "scrypt":
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        expected = base64.b64decode(parts[5])
        digest = hashlib.scrypt(secret, salt=base64.b64decode(parts[4]), n=n, r=r, p=p,
                                maxmem=max(_SCRYPT_MAXMEM, 256 * n * r), dklen=len(expected))
    else:
        expected = base64.b64decode(parts[3])
        digest = hashlib.pbkdf2_hmac("sha256", secret, base64.b64decode(parts[2]), int(parts[1]),
                                     dklen=len(expected))
    return hmac.compare_digest(digest, expected)


def new_token() -> tuple[str, str]:
    """A fresh bearer token and the SHA-256 hex digest to store for it."""
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode("ascii")).hexdigest()


def parse_credentials_group(group: Any, source: str) -> tuple[dict[str, str], dict[str, str]]:
    """``({user: password_hash}, {token sha256: token name})`` from the auth file's ``http`` group.

    Raises ValueError naming what is wrong (never a hash or a token).
    """
    if group is None:
        return {}, {}
    if not isinstance(group, Mapping):
        raise ValueError(f"{source}: 'http' must be a mapping with 'users' and/or 'tokens'")
    unknown = set(group) - {"users", "tokens"}
    if unknown:
        raise ValueError(f"{source}: unknown item(s) {sorted(unknown)} in 'http' "
                         "(valid items: users, tokens)")
    users: dict[str, str] = {}
    raw_users = group.get("users") or {}
    if not isinstance(raw_users, Mapping):
        raise ValueError(f"{source}: http.users must map user names to {{'password_hash': ...}}")
    for name, entry in raw_users.items():
        if not isinstance(name, str) or not name or len(name) > MAX_USERNAME_CHARS or ":" in name:
            raise ValueError(f"{source}: http.users has an invalid user name (1-{MAX_USERNAME_CHARS} "
                             "characters, no ':')")
        stored = entry.get("password_hash") if isinstance(entry, Mapping) else None
        problem = check_hash_format(stored) if isinstance(stored, str) else "missing password_hash"
        if problem:
            raise ValueError(f"{source}: http.users.{name}: {problem}")
        users[name] = stored  # type: ignore[assignment]
    tokens: dict[str, str] = {}
    raw_tokens = group.get("tokens") or []
    if not isinstance(raw_tokens, list):
        raise ValueError(f"{source}: http.tokens must be a list of {{'name': ..., 'sha256': ...}}")
    for i, entry in enumerate(raw_tokens):
        digest = entry.get("sha256") if isinstance(entry, Mapping) else None
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise ValueError(f"{source}: http.tokens[{i}] needs 'sha256': the 64-hex-digit digest "
                             "printed by dl-http-server --new-token")
        name = entry.get("name") if isinstance(entry.get("name"), str) else f"token-{i}"
        tokens[digest.lower()] = name[:MAX_USERNAME_CHARS]
    return users, tokens


class Credentials:
    """Checks a request's Authorization header against the configured users and tokens."""

    BASIC_CACHE_S = 300.0
    _CACHE_SIZE = 256

    def __init__(self, users: Mapping[str, str] | None = None, tokens: Mapping[str, str] | None = None) -> None:
        self.users = dict(users or {})
        self.tokens = dict(tokens or {})
        self._cache_key = os.urandom(32)
        self._cache: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._hashing = asyncio.Semaphore(2)
        self._dummy_hash = hash_password(secrets.token_hex(8))

    @property
    def configured(self) -> bool:
        return bool(self.users or self.tokens)

    def check_token(self, token: str) -> str | None:
        """The token's name (the acting 'user'), or None."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        for stored, name in self.tokens.items():
            if hmac.compare_digest(stored, digest):
                return f"token:{name}"
        return None

    async def check_password(self, username: str, password: str) -> bool:
        """True when `username` exists and `password` is right; slow on purpose (scrypt)."""
        if len(password.encode("utf-8", "replace")) > MAX_PASSWORD_BYTES or len(username) > MAX_USERNAME_CHARS:
            return False
        key = hmac.new(self._cache_key, f"{username}\0{password}".encode("utf-8", "replace"),
                       hashlib.sha256).digest()
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now and hit[0] == username:
            return True
        stored = self.users.get(username)
        async with self._hashing:
            # an unknown user costs the same hashing time as a known one: no user enumeration
            ok = await asyncio.to_thread(verify_password, password, stored or self._dummy_hash)
        ok = ok and stored is not None
        if ok:
            self._cache[key] = (username, now + self.BASIC_CACHE_S)
            while len(self._cache) > self._CACHE_SIZE:
                self._cache.popitem(last=False)
        return ok

    async def check_header(self, header: str | None) -> str | None:
        """The user named by an ``Authorization: Bearer|Basic`` header, or None."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return self.check_token(value)
        if scheme.lower() == "basic" and value:
            try:
                text = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            username, sep, password = text.partition(":")
            if not sep:
                return None
            return username if await self.check_password(username, password) else None
        return None


@dataclass
class Session:
    user: str
    csrf: str
    created: float
    last_used: float


class SessionStore:
    """Browser sessions kept in memory (a restart logs everybody out, which is fine for a console).

    Bounded: at most `max_sessions` (the least recently used goes first); a session ends after
    `idle_s` without use or `max_age_s` in all.
    """

    def __init__(self, idle_s: float = 8 * 3600, max_age_s: float = 24 * 3600,
                 max_sessions: int = 1000) -> None:
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        now = time.monotonic()
        session = Session(user, secrets.token_urlsafe(32), now, now)
        self._sessions[sid] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_used > self.idle_s or now - session.created > self.max_age_s:
            self._sessions.pop(sid, None)
            return None
        session.last_used = now
        self._sessions.move_to_end(sid)
        return session

    def drop(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)


class LoginThrottle:
    """At most `max_failures` failed logins per client address within `window_s`."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0, max_clients: int = 10000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        if times:
            self._failures[client] = times
        else:
            self._failures.pop(client, None)
        return times

    def blocked(self, client: str) -> float:
        """Seconds until `client` may try again (0: now)."""
        now = time.monotonic()
        times = self._recent(client, now)
        if len(times) < self.max_failures:
            return 0.0
        return max(0.0, self.window_s - (now - times[0]))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        times = self._recent(client, now)
        times.append(now)
        self._failures[client] = times[-self.max_failures:]
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
