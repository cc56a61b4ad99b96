"""``describe``: what an endpoint or service is and what a request may do with it.

The built-in ``cmd <name> -s describe`` answers the payload below, so that a user interface (the
web page, ``dl-agent describe``) can show a mesh without knowing its classes::

    {"name": str, "kind": "service" | "endpoint", "class": "pkg.module.Class",
     "plugin": str | null, "version": str | null, "doc": str,
     "operations": {"get": bool, "set": bool, "cmd": bool},
     "commands": [{"name": str, "doc": str,
                   "parameters": [{"name": str, "default": any | null, "required": bool}]}],
     "settings": {name: plain value}, "calibration": str | dict | null, "units": str | null,
     "description": str | null,
     "limits": {"min": num | null, "max": num | null, "allowed": [...] | null} | null,
     "endpoints": [names]}          # "endpoints" for a service only

It is built from the same `RequestSurface` that dispatch uses, so it never lists what a request
cannot reach. It stays cheap and bounded: no handler runs (only property getters, for the
settings), docstrings are cut, lists are capped, and a setting whose JSON is larger than
`MAX_SETTING_BYTES` is left out (``get <name> -s <setting>`` still reads it).

``operations``: get / set are true when the class provides ``on_get`` / ``on_set`` (or the
reference's ``do_get_request`` / ``do_set_request``); cmd is true when it has commands of its own
besides the built-ins every endpoint answers (``ping``, ``lock``, ``unlock``, ``set_condition``,
``describe``, which are listed too).

``plugin`` / ``version``: a class from ``dripline.extensions.<plugin>`` belongs to that plugin; a
class may also say so itself (``__dripline_plugin__ = "name"``, which the assembly layer may set
for entry-point plugins); otherwise the installed distribution that provides the class's top
package is looked up once. The version is the one the plugin registered, as every message of
the endpoint's service carries it in ``sender_info.versions``; dripline's own classes report
dripline-python's version.
"""
from __future__ import annotations

import inspect
import logging
import re
import weakref
from collections.abc import Mapping
from typing import Any

from dripline.protocol.message import dumps_payload
from dripline.service.surface import RequestSurface, is_plain_data

__all__ = ["describe", "class_origin", "MAX_DOC_CHARS", "MAX_COMMANDS", "MAX_SETTINGS",
           "MAX_SETTING_BYTES"]

logger = logging.getLogger(__name__)

MAX_DOC_CHARS = 1000  # a class's docstring
MAX_COMMAND_DOC_CHARS = 300  # a command's docstring (its first paragraph)
MAX_COMMANDS = 100
MAX_PARAMETERS = 32
MAX_SETTINGS = 100
MAX_SETTING_BYTES = 1024
MAX_ENDPOINTS = 1000

_EXTENSIONS = "dripline.extensions."
# described elsewhere in the payload, so not repeated among the settings
# (a service's children tables appear as "endpoints")
_OWN_KEYS = ("name", "calibration", "units", "description", "min", "max", "allowed",
             "sync_children", "async_children")

_BUILTIN_DOCS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "ping": ("Answer 'Hello, <program>' (a liveness check).", []),
    "lock": ("Lock: sets and commands then need the key this reply carries (lockout_key).", []),
    "unlock": ("Unlock with the key that locked, or with force=true.",
               [{"name": "force", "default": False, "required": False}]),
    "describe": ("This description.", []),
}


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return inspect.cleandoc(doc).split("\n\n", 1)[0].replace("\n", " ")


def _default(value: Any) -> Any:
    if value is inspect.Parameter.empty:
        return None
    return value if is_plain_data(value) else None


def _parameters(method: Any) -> list[dict[str, Any]]:
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return []
    out = []
    for p in list(signature.parameters.values())[:MAX_PARAMETERS]:
        if p.kind is p.VAR_POSITIONAL:
            out.append({"name": f"*{p.name}", "default": None, "required": False})
        elif p.kind is p.VAR_KEYWORD:
            out.append({"name": f"**{p.name}", "default": None, "required": False})
        else:
            out.append({"name": p.name, "default": _default(p.default),
                        "required": p.default is inspect.Parameter.empty})
    return out


def _command(endpoint: Any, name: str) -> dict[str, Any]:
    if name in _BUILTIN_DOCS:
        doc, params = _BUILTIN_DOCS[name]
        return {"name": name, "doc": doc, "parameters": [dict(p) for p in params]}
    method = getattr(endpoint, name, None)
    return {"name": name,
            "doc": _cut(_first_paragraph(getattr(method, "__doc__", None)), MAX_COMMAND_DOC_CHARS),
            "parameters": _parameters(method) if method is not None else []}


def _overrides(cls: type, *names: str) -> bool:
    """Whether `cls` defines any of `names` below the request-handling base class."""
    for name in names:
        for klass in cls.__mro__:
            if name in vars(klass):
                if klass.__module__ != "dripline.service.dispatch":
                    return True
                break
    return False


# ---------------------------------------------------------------------------------------------
# plugin and version

_UNSET = object()
_PLUGINS: "weakref.WeakKeyDictionary[type, str | None | object]" = weakref.WeakKeyDictionary()
_distributions: dict[str, list[str]] | None = None


def _version_text(entry: Any) -> str | None:
    if isinstance(entry, Mapping):
        entry = entry.get("version")
    return str(entry) if entry else None


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _distribution_plugin(module: str, versions: Mapping[str, Any]) -> str | None:
    """The plugin name of an entry-point plugin's distribution that provides `module`."""
    global _distributions
    if _distributions is None:
        try:
            from importlib.metadata import packages_distributions
            _distributions = dict(packages_distributions())
        except Exception:  # pragma: no cover - broken metadata must not break describe
            _distributions = {}
    for dist in _distributions.get(module.split(".", 1)[0], []):
        name = _normalise(dist)
        if _EXTENSIONS + name in versions:
            return name
    return None


def _versions(endpoint: Any) -> Mapping[str, Any]:
    """The versions table every message of the endpoint's service carries (its sender_info).

    Read there rather than from a registry: the service layer reads no registry, and this is
    exactly what the mesh sees of the service."""
    for owner in (endpoint, getattr(endpoint, "_service", None)):
        info = getattr(owner, "sender_info", None)
        versions = info.get("versions") if isinstance(info, Mapping) else None
        if isinstance(versions, Mapping):
            return versions
    import dripline  # not attached: at least dripline's own version is known
    return {"dripline-python": {"version": str(getattr(dripline, "__version__", "") or "")}}


def _plugin_of(cls: type, versions: Mapping[str, Any]) -> str | None:
    cached = _PLUGINS.get(cls, _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[return-value]
    module = cls.__module__ or ""
    declared = getattr(cls, "__dripline_plugin__", None)
    plugin: str | None
    if module.startswith(_EXTENSIONS):
        plugin = module[len(_EXTENSIONS):].split(".", 1)[0]
    elif isinstance(declared, str) and declared:
        plugin = declared
    elif module == "dripline" or module.startswith("dripline."):
        plugin = None
    else:
        plugin = _distribution_plugin(module, versions)
    _PLUGINS[cls] = plugin
    return plugin


def class_origin(cls: type, versions: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(plugin, version) of `cls`, the version read from `versions` (a sender_info table)."""
    plugin = _plugin_of(cls, versions)
    module = cls.__module__ or ""
    if plugin is not None:
        return plugin, _version_text(versions.get(_EXTENSIONS + plugin))
    if module == "dripline" or module.startswith("dripline."):
        return None, _version_text(versions.get("dripline-python"))
    return None, None


# ---------------------------------------------------------------------------------------------

def _small(value: Any) -> bool:
    try:
        return len(dumps_payload(value)) <= MAX_SETTING_BYTES
    except Exception:
        return False


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _limits(endpoint: Any) -> dict[str, Any] | None:
    low, high, allowed = (getattr(endpoint, k, None) for k in ("min", "max", "allowed"))
    if low is None and high is None and allowed is None:
        return None
    return {"min": low, "max": high, "allowed": list(allowed) if allowed is not None else None}


def _children(endpoint: Any) -> list[str] | None:
    sync = getattr(endpoint, "sync_children", None)
    if not isinstance(sync, Mapping):
        return None
    async_ = getattr(endpoint, "async_children", None)
    names = [*sync, *(async_ if isinstance(async_, Mapping) else ())]
    return sorted(str(n) for n in names)[:MAX_ENDPOINTS]


def describe(endpoint: Any) -> dict[str, Any]:
    """The ``describe`` payload of `endpoint` (a service or an endpoint); never runs a handler."""
    cls = type(endpoint)
    surface = RequestSurface.of(endpoint)
    plugin, version = class_origin(cls, _versions(endpoint))
    own_commands = list(surface.commands)[:MAX_COMMANDS]
    commands = [_command(endpoint, n) for n in own_commands]
    commands.append(_command(endpoint, "ping"))
    commands.append(_command(endpoint, "lock"))
    commands.append(_command(endpoint, "unlock"))
    commands.append({"name": "set_condition",
                     "doc": _cut(_first_paragraph(getattr(endpoint.set_condition, "__doc__", "")),
                                 MAX_COMMAND_DOC_CHARS),
                     "parameters": _parameters(endpoint.set_condition)})
    commands.append(_command(endpoint, "describe"))
    settings: dict[str, Any] = {}
    for name, value in surface.settings(endpoint, skip=_OWN_KEYS).items():
        if len(settings) >= MAX_SETTINGS:
            break
        if _small(value):
            settings[name] = value
    calibration = getattr(endpoint, "_calibration", None)
    if not isinstance(calibration, (str, Mapping)) or not _small(calibration):
        calibration = None
    children = _children(endpoint)
    out: dict[str, Any] = {
        "name": str(getattr(endpoint, "name", "")),
        "kind": "service" if children is not None else "endpoint",
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "plugin": plugin,
        "version": version,
        "doc": _cut(inspect.getdoc(cls) or "", MAX_DOC_CHARS),
        "operations": {"get": _overrides(cls, "on_get", "do_get_request"),
                       "set": _overrides(cls, "on_set", "do_set_request"),
                       "cmd": bool(own_commands) or _overrides(cls, "do_cmd_request")},
        "commands": commands,
        "settings": settings,
        "calibration": calibration,
        "units": _text_or_none(getattr(endpoint, "units", None)),
        "description": _text_or_none(getattr(endpoint, "description", None)),
        "limits": _limits(endpoint),
    }
    if children is not None:
        out["endpoints"] = children
    return out
