"""Configuration: the mesh block, config files, ``key=value`` arguments, ENV{} and credentials.

Configuration mistakes are the most common way a service fails to start, so everything here fails
early with a ConfigError that names the file, the key and what was expected (with a "did you mean"
for misspelt keys), and nothing here ever puts a password into a message, a repr or a log.

The assembly order of the command-line tools (reference §7.3) is: defaults (including
``~/.dripline_mesh.yaml``) < ``-c`` file < ``key=value`` arguments < options, then ``ENV{VAR}``
substitution; the functions below are the pieces the CLI modules chain together.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dripline.protocol.errors import ConfigError

__all__ = [
    "MESH_DEFAULTS", "MESH_KEYS", "MESH_FILE_NAME", "DriplineConfig", "mesh_config",
    "read_data_file", "load_config_file", "parse_cli_args", "parse_value", "MAX_CLI_INDEX", "merge",
    "substitute_env", "suggest", "did_you_mean",
    "Authentication", "build_authentication", "DEFAULT_AUTH_SPEC", "POSTGRES_AUTH_SPEC",
    "redact", "register_secret", "MASK",
]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# the dripline_mesh block (reference §7.1)

#: Hard-coded mesh defaults; ``make_connection`` and ``return_codes`` have no default (absent).
MESH_DEFAULTS: dict[str, Any] = {
    "broker": "localhost",
    "broker_port": 5672,
    "requests_exchange": "requests",
    "alerts_exchange": "alerts",
    "max_payload_size": 10000,
    "heartbeat_routing_key": "heartbeat",
    "max_connection_attempts": 10,
}

# Keys the reference's documentation lists under dripline_mesh although its code reads them at the
# service level. We accept them so documented configs load; the service layer decides what to use.
_TOLERATED_MESH_KEYS = ("loop_timeout_ms", "message_wait_ms", "heartbeat_interval_s")

#: Every key accepted inside ``dripline_mesh``.
MESH_KEYS: tuple[str, ...] = (*MESH_DEFAULTS, "make_connection", "return_codes",
                              *_TOLERATED_MESH_KEYS)

MESH_FILE_NAME = ".dripline_mesh.yaml"

# expected type of each mesh key, for early and readable errors
_MESH_TYPES: dict[str, str] = {
    "broker": "str", "requests_exchange": "str", "alerts_exchange": "str",
    "heartbeat_routing_key": "str",
    "broker_port": "port", "max_payload_size": "positive", "max_connection_attempts": "count",
    "make_connection": "bool", "return_codes": "codes",
    "loop_timeout_ms": "number", "message_wait_ms": "number", "heartbeat_interval_s": "number",
}


def mesh_config(overrides: Mapping[str, Any] | None = None, home: str | os.PathLike | None = None,
                source: str | None = None) -> dict[str, Any]:
    """The effective ``dripline_mesh`` block: defaults < ``<home>/.dripline_mesh.yaml`` < overrides.

    `home` defaults to the user's home directory (``$HOME``). `source` names where `overrides` came
    from (e.g. the config file path) for error messages. Keys whose value is None (``broker:``
    left empty, an unset CLI option) are treated as not given instead of wiping the default.
    Unknown keys raise ConfigError naming the key, its source and the closest valid names.
    """
    result = dict(MESH_DEFAULTS)
    mesh_file = _home_dir(home) / MESH_FILE_NAME
    if mesh_file.is_file():
        result.update(_check_mesh(load_config_file(mesh_file), str(mesh_file)))
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"dripline_mesh (from {source or 'the configuration'}) must be a "
                              f"mapping, not {type(overrides).__name__}")
        result.update(_check_mesh(overrides, source or "the given configuration"))
    return result


def _home_dir(home: str | os.PathLike | None) -> Path:
    if home is not None:
        return Path(home)
    try:
        return Path.home()
    except RuntimeError:  # no HOME and no passwd entry (some containers): no mesh file then
        return Path("/nonexistent")


def DriplineConfig() -> dict[str, Any]:  # noqa: N802 - the reference's name
    """The default mesh configuration (defaults + ``~/.dripline_mesh.yaml``) as a plain dict."""
    return mesh_config()


def _check_mesh(block: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Validated copy of `block` without its None values (None means "not given")."""
    checked = {}
    for key, value in block.items():
        if key not in MESH_KEYS:
            raise ConfigError(f"unknown dripline_mesh key {key!r} in {source}"
                              f"{did_you_mean(str(key), MESH_KEYS)}")
        if value is not None:
            checked[key] = _coerce_mesh_value(key, value, source)
    return checked


def _coerce_mesh_value(key: str, value: Any, source: str) -> Any:
    """Check a mesh value's type; numeric strings (e.g. from ENV{} substitution) become numbers."""
    kind = _MESH_TYPES[key]
    if kind == "str":
        if isinstance(value, str) and value:
            return value
        expected = "a non-empty string"
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        expected = "true or false"
    elif kind == "codes":
        if isinstance(value, (list, str)):
            return value
        expected = "a list of {name, value, description} or a file path"
    elif kind == "number":
        number = _as_number(value, float)
        if number is not None and number >= 0:
            return number
        expected = "a non-negative number"
    else:
        number = _as_number(value, int)
        low, high, expected = {"port": (1, 65535, "a port number (1-65535)"),
                               "positive": (1, None, "a positive integer"),
                               "count": (0, None, "a non-negative integer")}[kind]
        if number is not None and number >= low and (high is None or number <= high):
            return number
    raise ConfigError(f"dripline_mesh key {key!r} in {source} must be {expected}, "
                      f"not {_describe(value)}")


def _as_number(value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (kind is float and isinstance(value, float)):
        return value
    if isinstance(value, str):
        parsed = parse_value(value)
        if isinstance(parsed, int) or (kind is float and isinstance(parsed, float)):
            return parsed
    return None


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


# ---------------------------------------------------------------------------------------------
# "did you mean"


def suggest(key: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """The valid names closest to a misspelt `key` (difflib), best first."""
    import difflib  # only when reporting an error: keeps command start-up short
    return difflib.get_close_matches(key, list(valid), n=n, cutoff=0.6)


def did_you_mean(key: str, valid: Iterable[str]) -> str:
    """A message tail for an unknown key: '; did you mean ...?' or the list of valid names."""
    valid = list(valid)
    close = suggest(key, valid)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "; valid keys are " + ", ".join(valid)


# ---------------------------------------------------------------------------------------------
# files


def read_data_file(path: str | os.PathLike) -> Any:
    """Parse a JSON (``.json``) or YAML (anything else) file and return its content.

    Errors are ConfigErrors naming the file and the position, but never quoting file content
    (the file may hold credentials).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {type(exc).__name__}: "
                          f"{getattr(exc, 'strerror', None) or 'not readable as UTF-8 text'}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON in {path} at line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg}") from None
    import yaml  # imported here: dl-agent without a config file never needs it (~10 ms)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"invalid YAML in {path}{where}: {problem}") from None


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML/JSON configuration file whose top level must be a mapping (empty file -> {})."""
    content = read_data_file(path)
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"the top level of {os.fspath(path)} must be a mapping of keys to "
                          f"values, not a {type(content).__name__}")
    return content


# ---------------------------------------------------------------------------------------------
# key=value arguments (reference §7.3)

_INT_RE = re.compile(r"-?[0-9]+")
_FLOAT_RE = re.compile(r"-?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?")
#: Largest list index accepted in a dotted key (guards against ``x.99999999=1`` eating memory).
MAX_CLI_INDEX = 9999


def parse_value(text: str) -> Any:
    """Type a command-line value: '' -> None, 'true'/'false' -> bool, integers -> int, decimals
    and exponents -> float, anything else stays a string (also '12abc', which the reference
    truncates to 12, and 'True', 'nan', 'inf')."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    if _INT_RE.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # beyond Python's int-from-str digit limit
            return text
    if _FLOAT_RE.fullmatch(text):
        number = float(text)
        if number not in (float("inf"), float("-inf")):
            return number
    return text


def parse_cli_args(args: Iterable[str]) -> tuple[dict[str, Any], list[Any]]:
    """Split non-option arguments into typed keywords and ordered values.

    ``a.b.c=v`` builds nested mappings; an all-digit token after the first indexes a list
    (``endpoints.1.name=x``; unset slots are None, which :func:`merge` treats as holes). Arguments
    without ``=`` are ordered values (typed the same way). An argument starting with ``-`` must be a
    negative number: anything else is an option in the wrong place and raises ConfigError.
    """
    keywords: dict[str, Any] = {}
    ordered: list[Any] = []
    for arg in args:
        if not isinstance(arg, str):
            raise ConfigError(f"command-line arguments must be strings, not {type(arg).__name__}")
        if arg.startswith("-"):
            value = parse_value(arg)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                ordered.append(value)
                continue
            raise ConfigError(f"cannot parse argument {arg!r}: it looks like an option, but "
                              f"options must come before the positional arguments")
        key, sep, text = arg.partition("=")
        if not sep:
            ordered.append(parse_value(arg))
            continue
        _set_path(keywords, key, parse_value(text))
    return keywords, ordered


def _set_path(root: dict[str, Any], key: str, value: Any) -> None:
    tokens = key.split(".")
    if any(t == "" for t in tokens):
        raise ConfigError(f"invalid key {key!r} in a key=value argument: empty name between dots")
    node: Any = root
    for depth, token in enumerate(tokens):
        last = depth == len(tokens) - 1
        index = _list_index(token, key) if depth > 0 else None
        if index is not None:
            if not isinstance(node, list):
                raise ConfigError(f"key {key!r} uses {token!r} as a list index, but "
                                  f"{'.'.join(tokens[:depth])!r} was already given as a mapping")
            node.extend([None] * (index + 1 - len(node)))
            slot: Any = index
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"key {key!r} uses {token!r} as a name, but "
                                  f"{'.'.join(tokens[:depth])!r} was already given as a list")
            slot = token
        if last:
            current = node[slot] if isinstance(node, list) else node.get(slot)
            if isinstance(current, (dict, list)):
                raise ConfigError(f"key {key!r} conflicts with the nested keys given for it "
                                  f"in other arguments")
            node[slot] = value
            return
        child = node[slot] if isinstance(node, list) else node.get(slot)
        if child is None:
            child = [] if _list_index(tokens[depth + 1], key) is not None else {}
            node[slot] = child
        elif not isinstance(child, (dict, list)):
            raise ConfigError(f"key {key!r} conflicts with "
                              f"{'.'.join(tokens[:depth + 1])!r} given as a value")
        node = child


def _list_index(token: str, key: str) -> int | None:
    if not (token.isascii() and token.isdigit()):
        return None
    index = int(token)
    if index > MAX_CLI_INDEX:
        raise ConfigError(f"list index {index} in key {key!r} is too large "
                          f"(at most {MAX_CLI_INDEX})")
    return index


# ---------------------------------------------------------------------------------------------
# merging


def merge(base: Any, over: Any) -> Any:
    """Merge `over` onto `base` and return a new object (inputs are not modified).

    Mappings merge key by key, recursively. Lists merge index by index: ``over[i]`` merges onto
    ``base[i]``, a None element of `over` is a hole that keeps ``base[i]`` (so ``x.1=...`` from the
    command line never wipes element 0, unlike the reference), and extra elements are appended.
    Anything else in `over` replaces `base` (including None as a mapping value: ``key=`` on the
    command line deliberately clears a key).
    """
    if isinstance(base, dict) and isinstance(over, dict):
        result = copy.deepcopy(base)
        for key, value in over.items():
            result[key] = merge(result[key], value) if key in result else copy.deepcopy(value)
        return result
    if isinstance(base, list) and isinstance(over, list):
        result = copy.deepcopy(base)
        for i, value in enumerate(over):
            if i >= len(result):
                result.append(copy.deepcopy(value))
            elif value is not None:
                result[i] = merge(result[i], value)
        return result
    return copy.deepcopy(over)


# ---------------------------------------------------------------------------------------------
# ENV{VAR} substitution

_ENV_RE = re.compile(r"ENV\{([A-Za-z0-9_]+)\}")


def substitute_env(obj: Any, env: Mapping[str, str] | None = None) -> Any:
    """Replace every ``ENV{NAME}`` in every string value (nested in mappings and lists) with the
    environment variable's value; the result stays a string. Returns a new object.

    Substituted text is not scanned again (the reference repeats until no token is left, which can
    loop forever on a value that mentions itself). An unset variable raises ConfigError naming the
    variable and the key, never the value.
    """
    return _substitute(obj, os.environ if env is None else env, "")


def _substitute(obj: Any, env: Mapping[str, str], path: str) -> Any:
    if isinstance(obj, str):
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                where = f" (used by key {path!r})" if path else ""
                raise ConfigError(f"environment variable {name!r} is not set{where}")
            return env[name]
        return _ENV_RE.sub(replace, obj)
    if isinstance(obj, dict):
        return {k: _substitute(v, env, f"{path}.{k}" if path else str(k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, env, f"{path}.{i}" if path else str(i)) for i, v in enumerate(obj)]
    return obj


# ---------------------------------------------------------------------------------------------
# secrets

MASK = "***"
_SECRET_KEY_WORDS = ("password", "secret", "token")
#: Secrets shorter than this are not masked inside free text: masking "ab" everywhere would make
#: logs unreadable while protecting almost nothing. (Values under secret-looking keys are always
#: masked, whatever their length.)
_MIN_TEXT_SECRET = 4
_known_secrets: set[str] = set()
_URL_PASSWORD_RE = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?=@)")


def register_secret(value: Any) -> None:
    """Remember a secret so :func:`redact` masks it wherever it appears in text."""
    if isinstance(value, str) and len(value) >= _MIN_TEXT_SECRET:
        _known_secrets.add(value)


def _is_secret_key(key: Any) -> bool:
    lowered = str(key).lower()
    return any(word in lowered for word in _SECRET_KEY_WORDS)


def redact(obj: Any) -> Any:
    """A copy of `obj` that is safe to log.

    In mappings (at any depth, also inside lists) the value of every key containing 'password',
    'secret' or 'token' is masked; in strings every registered secret and the password part of
    ``scheme://user:password@host`` URLs are masked. An :class:`Authentication` becomes its masked
    dict. Other objects are returned unchanged.
    """
    if isinstance(obj, Authentication):
        return obj.to_dict(redacted=True)
    if isinstance(obj, str):
        return _redact_text(obj)
    if isinstance(obj, Mapping):
        return {k: (MASK if _is_secret_key(k) and v is not None else redact(v))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v) for v in obj)
    return obj


def _redact_text(text: str) -> str:
    for secret in sorted(_known_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _URL_PASSWORD_RE.sub(lambda m: m.group("head") + MASK, text)


# ---------------------------------------------------------------------------------------------
# authentication (reference §7.4)

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
