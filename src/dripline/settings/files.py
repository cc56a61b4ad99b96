"""Reading YAML/JSON data files with errors that name the file and position, never its content."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dripline.protocol.errors import ConfigError

__all__ = ["read_data_file", "load_config_file"]

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
