"""Credentials by group and item (reference §7.4): auth file < environment < explicit values."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dripline.protocol.errors import ConfigError, did_you_mean
from dripline.settings.files import read_data_file
from dripline.settings.secrets import MASK, register_secret

__all__ = ["Authentication", "build_authentication", "DEFAULT_AUTH_SPEC", "POSTGRES_AUTH_SPEC"]

logger = logging.getLogger(__name__)

#: The group every dripline process has: broker credentials.
DEFAULT_AUTH_SPEC: dict[str, dict[str, dict[str, str]]] = {
    "dripline": {
        "username": {"default": "guest", "env": "DRIPLINE_USER"},
        "password": {"default": "guest", "env": "DRIPLINE_PASSWORD"},
    },
}

#: The group dl-serve adds for the PostgreSQL implementations.
POSTGRES_AUTH_SPEC: dict[str, dict[str, dict[str, str]]] = {
    "postgres": {
        "username": {"default": "postgres", "env": "POSTGRES_USER"},
        "password": {"default": "postgres", "env": "POSTGRES_PASSWORD"},
    },
}

_PUBLIC_ITEMS = ("username", "user")  # shown by repr(); every other item is treated as a secret
_SPEC_FIELDS = ("default", "env")


class Authentication:
    """Credentials by group and item, e.g. ``auth.get("dripline", "password")``.

    Only user names are ever shown by ``repr``/``str``; every other item (passwords, tokens, ...)
    is masked and registered with :func:`redact`.
    """

    __redactable__ = True  # redact() masks it through to_dict(redacted=True)

    def __init__(self, groups: Mapping[str, Mapping[str, Any]] | None = None):
        self._groups: dict[str, dict[str, str]] = {}
        for name, items in (groups or {}).items():
            for item, value in _check_group(name, items, "Authentication()").items():
                self.set(name, item, value)

    def set(self, group: str, item: str, value: Any) -> None:
        """Set one item (values are stored as strings; None removes the item)."""
        self._store(group, item, value, is_default=False)

    def _store(self, group: str, item: str, value: Any, is_default: bool) -> None:
        items = self._groups.setdefault(str(group), {})
        if value is None:
            items.pop(str(item), None)
            return
        text = value if isinstance(value, str) else str(value)
        items[str(item)] = text
        # published defaults such as guest/guest are no secret; masking every "guest" or
        # "postgres" in log text would only make the logs harder to read
        if not is_default and str(item).lower() not in _PUBLIC_ITEMS:
            register_secret(text)

    def add_group(self, name: str, spec: Mapping[str, Any],
                  env: Mapping[str, str] | None = None) -> None:
        """Add (or extend) group `name`.

        `spec` maps each item either to a plain value or to ``{"default": ..., "env": "VAR"}``;
        in the latter case a set environment variable wins over the default.
        """
        env = os.environ if env is None else env
        for item, value in _check_group(name, spec, "add_group").items():
            if not isinstance(value, Mapping):
                self.set(name, item, value)
            elif value.get("env") and value["env"] in env:
                self.set(name, item, env[value["env"]])
            else:
                self._store(name, item, value.get("default"), is_default=True)

    def add_groups(self, specs: Mapping[str, Mapping[str, Any]],
                   env: Mapping[str, str] | None = None) -> None:
        """:meth:`add_group` for each ``{group: spec}`` (the scarab name)."""
        for name, spec in specs.items():
            self.add_group(name, spec, env)

    def has(self, group: str, item: str | None = None) -> bool:
        if item is None:
            return group in self._groups
        return item in self._groups.get(group, {})

    def get(self, group: str, item: str) -> str:
        """The value of one item; ConfigError naming group and item when it is missing."""
        try:
            return self._groups[group][item]
        except KeyError:
            raise ConfigError(f"no authentication item {item!r} in group {group!r} "
                              f"(groups: {', '.join(self._groups) or 'none'})") from None

    def groups(self) -> list[str]:
        return list(self._groups)

    def to_dict(self, redacted: bool = True) -> dict[str, dict[str, str]]:
        """``{group: {item: value}}``; secrets masked unless ``redacted=False``."""
        return {g: {i: (MASK if redacted and i.lower() not in _PUBLIC_ITEMS else v)
                    for i, v in items.items()}
                for g, items in self._groups.items()}

    def __contains__(self, group: object) -> bool:
        return group in self._groups

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Authentication):
            return NotImplemented
        return self._groups == other._groups

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Authentication({self.to_dict(redacted=True)!r})"

    __str__ = __repr__


def _check_group(name: Any, items: Any, where: str) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"authentication group names must be non-empty strings ({where})")
    if not isinstance(items, Mapping):
        raise ConfigError(f"authentication group {name!r} ({where}) must be a mapping of items, "
                          f"not {type(items).__name__}")
    for item, value in items.items():
        if isinstance(value, Mapping):
            for field in value:
                if field not in _SPEC_FIELDS:
                    raise ConfigError(f"authentication spec {name}.{item} ({where}) has unknown "
                                      f"field {field!r}{did_you_mean(str(field), _SPEC_FIELDS)}")
    return dict(items)


def build_authentication(auth_file: str | os.PathLike | None = None, username: str | None = None,
                         password: str | None = None,
                         password_file: str | os.PathLike | None = None,
                         extra_groups: Mapping[str, Mapping[str, Any]] | None = None,
                         env: Mapping[str, str] | None = None) -> Authentication:
    """Resolve credentials with the reference precedence (lowest first):

    spec default < auth file < environment variable < `password_file` < explicit `username` /
    `password`.

    `extra_groups` has the spec format ``{group: {item: {"default": ..., "env": ...}}}`` (e.g.
    :data:`POSTGRES_AUTH_SPEC`). The auth file is JSON or YAML ``{group: {item: value}}``; a
    missing file is a ConfigError naming the path, and so is an item of the file that a known group
    (dripline, postgres, `extra_groups`) does not have, e.g. a misspelt ``pasword``; groups dripline
    does not know are kept as they are. The password file's whole content is the
    password, except that ONE trailing newline is removed (``echo secret > file`` adds one; the
    reference keeps it, which makes such files fail to authenticate).
    """
    env = os.environ if env is None else env
    specs: dict[str, dict[str, Any]] = {name: dict(spec) for name, spec in DEFAULT_AUTH_SPEC.items()}
    for name, spec in (extra_groups or {}).items():
        specs.setdefault(name, {}).update(_check_group(name, spec, "extra_groups"))

    auth = Authentication()
    for name, spec in specs.items():  # 1. defaults
        for item, field in spec.items():
            default = field.get("default") if isinstance(field, Mapping) else field
            auth._store(name, item, default, is_default=True)

    if auth_file is not None:  # 2. auth file
        content = _read_auth_file(auth_file)
        _check_auth_items(content, specs, auth_file)
        for name, items in content.items():
            for item, value in items.items():
                auth.set(name, item, value)

    for name, spec in specs.items():  # 3. environment
        for item, field in spec.items():
            var = field.get("env") if isinstance(field, Mapping) else None
            if var and var in env:
                auth.set(name, item, env[var])

    if password_file is not None:  # 4. password file
        auth.set("dripline", "password", _read_password_file(password_file))

    if username is not None:  # 5. explicit values
        auth.set("dripline", "username", username)
    if password is not None:
        auth.set("dripline", "password", password)
    return auth


def _check_auth_items(content: Mapping[str, Mapping[str, Any]],
                      specs: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> None:
    """A misspelt item in a group dripline knows (e.g. ``pasword``) would be ignored silently and
    the default used instead: raise ConfigError naming the file, group, item and the closest valid
    item; never the value. Groups dripline does not know (other tools' credentials) are allowed."""
    known = {name: set(spec) for name, spec in POSTGRES_AUTH_SPEC.items()}
    for name, spec in specs.items():
        known.setdefault(name, set()).update(spec)
    for name, items in content.items():
        valid = known.get(name)
        if valid is None:
            continue
        for item in items:
            if item not in valid:
                raise ConfigError(f"unknown item {str(item)!r} in group {name!r} of authentication "
                                  f"file {os.fspath(path)}"
                                  f"{did_you_mean(str(item), sorted(valid)).replace('valid keys', 'valid items')}")


def _read_auth_file(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    if not Path(path).is_file():
        raise ConfigError(f"authentication file not found: {os.fspath(path)}")
    content = read_data_file(path)
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"authentication file {os.fspath(path)} must contain a mapping "
                          f"{{group: {{item: value}}}}, not a {type(content).__name__}")
    for name, items in content.items():
        if not isinstance(items, dict):
            raise ConfigError(f"group {name!r} in authentication file {os.fspath(path)} must be "
                              f"a mapping of items, not a {type(items).__name__}")
    if "amqp" in content and "dripline" not in content:
        logger.warning("authentication file %s has an 'amqp' group but no 'dripline' group; "
                       "broker credentials are read from 'dripline'", os.fspath(path))
    return content


def _read_password_file(path: str | os.PathLike) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"password file not found: {os.fspath(path)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read password file {os.fspath(path)}: "
                          f"{type(exc).__name__}") from None
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text
