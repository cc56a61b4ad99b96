"""Keeping secrets out of logs, replies and pages: registered secrets and secret-looking keys are masked."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "register_secret", "redact", "is_secret_key"]

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
    to_dict = getattr(obj, "to_dict", None)
    if getattr(obj, "__redactable__", False) and to_dict is not None:
        return to_dict(redacted=True)
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


is_secret_key = _is_secret_key
