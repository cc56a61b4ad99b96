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
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from dripline.protocol.errors import ConfigError, did_you_mean, suggest
from dripline.settings.auth import DEFAULT_AUTH_SPEC, POSTGRES_AUTH_SPEC, Authentication, build_authentication
from dripline.settings.files import load_config_file, read_data_file
from dripline.settings.mesh import (MESH_DEFAULTS, MESH_FILE_NAME, MESH_KEYS, DriplineConfig, mesh_config,
                                    parse_value)
from dripline.settings.secrets import MASK, redact, register_secret

__all__ = [
    "MESH_DEFAULTS", "MESH_KEYS", "MESH_FILE_NAME", "DriplineConfig", "mesh_config",
    "read_data_file", "load_config_file", "parse_cli_args", "parse_value", "MAX_CLI_INDEX", "merge",
    "substitute_env", "suggest", "did_you_mean",
    "Authentication", "build_authentication", "DEFAULT_AUTH_SPEC", "POSTGRES_AUTH_SPEC",
    "redact", "register_secret", "MASK",
]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# key=value arguments (reference §7.3)

#: Largest list index accepted in a dotted key (guards against ``x.99999999=1`` eating memory).
MAX_CLI_INDEX = 9999


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
        merged = copy.deepcopy(base)
        for key, value in over.items():
            merged[key] = merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(over, list):
        items = copy.deepcopy(base)
        for i, value in enumerate(over):
            if i >= len(items):
                items.append(copy.deepcopy(value))
            elif value is not None:
                items[i] = merge(items[i], value)
        return items
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


