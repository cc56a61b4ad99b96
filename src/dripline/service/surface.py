"""The request surface: the explicit table of what a request may reach on an endpoint.

Why a table: the reference resolves a specifier with ``getattr(endpoint, specifier)``, and a
dotted walk over attributes (which we used to have) reaches everything an endpoint holds:
``get peaches -s service.core.connection.address.password`` read the broker password and
``cmd peaches -s service.cancel`` stopped the service. Here a request reaches only

* ``on_get`` / ``on_set`` (a get or set without specifier) and the built-in commands
  (`BUILTIN_COMMANDS`, plus get ``is-locked``), which dispatch.py handles itself;
* **commands**: the public methods that the endpoint's *own* classes define (classes outside the
  framework packages: a plugin's, an example's, ``dripline.implementations``'), so reference-era
  plugins keep working (``update_seed`` of the jitter example, methods of
  ``EthernetSCPIService`` subclasses). A public method that overrides a framework method is a
  framework name and not a command (a logger's ``on_alert_message`` cannot be called to inject
  alerts);
* **settings**: public properties the endpoint's own classes define, public instance attributes
  and own-class attributes, as long as their value is plain data (numbers, strings, bools, None,
  lists and dicts of those; datetimes, UUIDs and numpy values count as data too);
* whatever a class names explicitly: ``__dripline_expose__ = ("name", ...)`` or ``@expose`` on a
  method or property makes a name reachable (this is how `Entity` offers ``log_interval`` and
  ``calibration``); ``__dripline_hide__`` or ``@hide`` removes one; ``__dripline_readonly__``
  makes a setting gettable but not settable.

Unreachable, always: names starting with ``_`` (so ``__class__`` too), and any value that is not
plain data — the service, its core, connections, loops, locks, threads, the auth object.
Secrets, as a safety net for code that keeps one in a public attribute: a setting whose name
says it holds one (``password``, ``token``, ``secret``, ``api_key``, ``credentials``...) is
hidden unless a class exposes it by name, and a value holding a URL with a password
(``postgresql://user:pw@host/db``) or a secret-named key is never answered or described. A
dotted specifier descends only into plain data (dict keys, list indices) of a setting, never
into another object. A set writes only a setting of the endpoint itself: a property through its
setter (which validates, as the constructor does), a plain attribute only with a value of the
same kind (a number for a number, a string for a string...; an attribute holding None takes
anything).

The class part of the table is built once per class (classes do not change after creation in
practice) and cached; instance attributes are looked at when a request names them, because
endpoints add attributes after construction.
"""
from __future__ import annotations

import datetime
import decimal
import enum
import functools
import inspect
import re
import uuid
import weakref
from collections.abc import Mapping
from typing import Any, Callable, Iterable, TypeVar

from dripline.protocol.throw_reply import ThrowReply

__all__ = ["RequestSurface", "expose", "hide", "is_plain_data", "holds_secret",
           "is_framework_class", "BUILTIN_COMMANDS", "BUILTIN_GETS", "SECRET_NAME"]

_INVALID_VALUE = 304
_INVALID_METHOD = 306
_INVALID_SPECIFIER = 310

#: commands every endpoint answers itself (chosen by the first specifier token)
BUILTIN_COMMANDS: tuple[str, ...] = ("ping", "lock", "unlock", "set_condition", "describe")
#: gets every endpoint answers itself
BUILTIN_GETS: tuple[str, ...] = ("is-locked",)

#: how many names a refusal lists
REFUSAL_NAMES = 20
#: deepest nesting accepted as plain data (deeper is refused rather than walked)
MAX_DATA_DEPTH = 64

#: setting names that say they hold a secret (a safety net, see the module docstring)
SECRET_NAME = re.compile(r"(^|_)(pass(word|wd|phrase)?|secrets?|tokens?|credentials?|"
                         r"(api|access|private|secret)_?keys?|auth)($|_)", re.IGNORECASE)
_URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@", re.IGNORECASE)

_EXPOSE_FLAG = "__dripline_expose__"
_HIDE_FLAG = "__dripline_hide__"

_F = TypeVar("_F")


# ---------------------------------------------------------------------------------------------
# author-facing markers

def _mark(obj: Any, flag: str) -> None:
    target = obj
    if isinstance(obj, (staticmethod, classmethod)):
        target = obj.__func__
    elif isinstance(obj, property):
        target = obj.fget
    elif isinstance(obj, functools.cached_property):
        target = obj.func
    try:
        setattr(target, flag, True)
    except (AttributeError, TypeError):
        raise TypeError(f"@{flag.strip('_').split('_')[-1]} cannot mark {obj!r}; list the name "
                        f"in the class's {flag} instead") from None


def expose(obj: _F) -> _F:
    """Make a method or property reachable by requests even where the rules would not.

    Use it on a framework subclass's hook or on a method that overrides a framework name, e.g.
    an Entity subclass that wants ``cmd <name> -s scheduled_log`` to call its own override.
    Put it above ``@property``. The same can be said with a class attribute
    ``__dripline_expose__ = ("name", ...)``.
    """
    _mark(obj, _EXPOSE_FLAG)
    return obj


def hide(obj: _F) -> _F:
    """Keep a public method or property out of reach of requests (and out of ``describe``).

    For code that must be public in Python but not on the mesh (a method that writes to the
    instrument's flash, a property that holds a token). Put it above ``@property``. The same can
    be said with a class attribute ``__dripline_hide__ = ("name", ...)``.
    """
    _mark(obj, _HIDE_FLAG)
    return obj


def _marked(attr: Any, flag: str) -> bool:
    for candidate in (attr, getattr(attr, "__func__", None), getattr(attr, "fget", None),
                      getattr(attr, "func", None)):
        if candidate is not None and getattr(candidate, flag, False) is True:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# what counts as framework and as data

def is_framework_class(cls: type) -> bool:
    """True for classes of dripline itself, except ``dripline.implementations`` (whose classes
    are ready-made user-level endpoints) and plugins under ``dripline.extensions``."""
    module = getattr(cls, "__module__", "") or ""
    if module == "dripline":
        return True
    if not module.startswith("dripline."):
        return False
    return not (module.startswith("dripline.implementations")
                or module.startswith("dripline.extensions"))


_SCALARS = (str, int, float, bool, type(None), datetime.date, datetime.time, datetime.timedelta,
            uuid.UUID, decimal.Decimal)


def is_plain_data(value: Any, _depth: int = 0) -> bool:
    """Whether `value` is data a request may read: JSON-like, never an object with behaviour.

    numpy scalars and arrays, scarab ``Param`` objects, datetimes, UUIDs and enum members
    holding data count; sets do not (JSON has none).
    """
    if _depth > MAX_DATA_DEPTH:
        return False
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, Mapping):
        return all(isinstance(k, (str, int, float, bool, type(None)))
                   and is_plain_data(v, _depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(is_plain_data(v, _depth + 1) for v in value)
    if isinstance(value, enum.Enum):
        return is_plain_data(value.value, _depth + 1)
    module = type(value).__module__ or ""
    if module.startswith("numpy"):
        return hasattr(value, "tolist") and getattr(value, "dtype", None) is not None \
            and getattr(value.dtype, "kind", "O") != "O"
    if module.startswith("scarab") and callable(getattr(value, "to_python", None)):
        return True
    return False


def holds_secret(value: Any, _depth: int = 0) -> bool:
    """Whether plain data carries a credential: a URL with a password, or a non-empty value
    under a secret-named key (at any depth)."""
    if _depth > MAX_DATA_DEPTH:
        return True
    if isinstance(value, str):
        return _URL_WITH_PASSWORD.search(value) is not None
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and SECRET_NAME.search(k) and v not in (None, "", {}, []):
                return True
            if holds_secret(v, _depth + 1):
                return True
        return False
    if isinstance(value, (list, tuple)):
        return any(holds_secret(v, _depth + 1) for v in value)
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float, decimal.Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    return type(value).__name__


def _plain_copy(value: Any) -> Any:
    """A request value as builtin containers (payload views are dict/list subclasses)."""
    if isinstance(value, Mapping):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_copy(v) for v in value]
    return value


def _names(names: Iterable[str], limit: int = REFUSAL_NAMES) -> str:
    names = list(names)
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} (and {len(names) - limit} more)"


_MISSING = object()


def _static(obj: Any, name: str) -> Any:
    """The attribute `name` of `obj` without running any code (no property, no __getattr__)."""
    try:
        return inspect.getattr_static(obj, name, _MISSING)
    except Exception:  # pragma: no cover - exotic metaclasses
        return _MISSING


# ---------------------------------------------------------------------------------------------
# the table

class RequestSurface:
    """What requests may reach on instances of one class (see the module docstring).

    Build it with `RequestSurface.of(endpoint)` (cached per class). `commands` maps command
    names to the attribute they call; `properties` maps gettable property names to whether a set
    may write them; `class_attributes` are own-class (or exposed) plain attributes; `hidden` and
    `readonly` are the names the classes declared.
    """

    _cache: "weakref.WeakKeyDictionary[type, RequestSurface]" = weakref.WeakKeyDictionary()

    def __init__(self, cls: type) -> None:
        self.cls = cls
        mro = [c for c in cls.__mro__ if c is not object]
        framework_names: set[str] = set()
        exposed: set[str] = set()
        hidden: set[str] = set()
        readonly: set[str] = set()
        for c in mro:
            own = vars(c)
            if is_framework_class(c):
                framework_names.update(own)
            exposed.update(self._declared(own, "__dripline_expose__"))
            hidden.update(self._declared(own, "__dripline_hide__"))
            readonly.update(self._declared(own, "__dripline_readonly__"))
        # a Service's legacy deny-list of lifecycle names stays honoured
        hidden.update(str(n) for n in getattr(cls, "request_denylist", ()) or ())
        resolved: dict[str, Any] = {}
        for c in mro:
            for name, attr in vars(c).items():
                if name not in resolved and not name.startswith("_"):
                    resolved[name] = attr
        for name, attr in resolved.items():
            if _marked(attr, _HIDE_FLAG):
                hidden.add(name)
            elif _marked(attr, _EXPOSE_FLAG):
                exposed.add(name)
        commands: dict[str, str] = {}
        properties: dict[str, bool] = {}
        class_attributes: set[str] = set()
        for name, attr in resolved.items():
            if name in hidden or name in BUILTIN_COMMANDS:
                continue
            if name in framework_names and name not in exposed:
                continue
            if SECRET_NAME.search(name) and name not in exposed and not inspect.isroutine(attr) \
                    and not isinstance(attr, (staticmethod, classmethod)):
                continue  # a secret-named setting: only an explicit exposure offers it
            if isinstance(attr, property):
                properties[name] = attr.fset is not None and name not in readonly
            elif isinstance(attr, functools.cached_property):
                properties[name] = False
            elif isinstance(attr, type):
                continue  # a nested class is not a command
            elif isinstance(attr, (staticmethod, classmethod)) or inspect.isroutine(attr) \
                    or callable(attr):
                commands[name] = name
            elif hasattr(type(attr), "__get__"):  # some other descriptor: read it, never set it
                properties[name] = False
            else:
                class_attributes.add(name)
        self.commands: dict[str, str] = dict(sorted(commands.items()))
        self.properties: dict[str, bool] = dict(sorted(properties.items()))
        self.class_attributes: frozenset[str] = frozenset(class_attributes)
        self.hidden: frozenset[str] = frozenset(hidden)
        self.readonly: frozenset[str] = frozenset(readonly)
        self.framework_names: frozenset[str] = frozenset(framework_names - exposed)
        self.exposed: frozenset[str] = frozenset(exposed)

    @staticmethod
    def _declared(namespace: Mapping[str, Any], key: str) -> list[str]:
        value = namespace.get(key, ())
        if isinstance(value, str):
            return [value]
        try:
            return [str(v) for v in value]
        except TypeError:
            return []

    @classmethod
    def of(cls, endpoint: Any) -> RequestSurface:
        """The surface of `endpoint`'s class, built on first use and cached."""
        klass = type(endpoint)
        surface = cls._cache.get(klass)
        if surface is None:
            surface = cls._cache[klass] = cls(klass)
        return surface

    # ---- what is there -------------------------------------------------------------------

    def _instance_names(self, obj: Any) -> list[str]:
        try:
            names = vars(obj)
        except TypeError:
            return []
        return [n for n, v in names.items()
                if not n.startswith("_") and n not in self.hidden and n not in self.commands
                and n not in self.properties and not callable(v) and not self._secret_name(n)]

    def _secret_name(self, name: str) -> bool:
        return SECRET_NAME.search(name) is not None and name not in self.exposed

    def _is_setting_name(self, obj: Any, name: str) -> bool:
        if name.startswith("_") or name in self.hidden:
            return False
        if name in self.properties or name in self.class_attributes:
            return True
        if self._secret_name(name):
            return False
        try:
            return name in vars(obj) and name not in self.commands
        except TypeError:
            return False

    def setting_names(self, obj: Any) -> list[str]:
        """Every name a get with a specifier may read.

        Properties are listed without running their code; attributes only when they hold a
        scalar or a container (a shallow look: a full check happens when one is read).
        """
        names = set(self.properties)
        for name in (*self.class_attributes, *self._instance_names(obj)):
            value = _static(obj, name)
            if isinstance(value, (*_SCALARS, list, tuple, dict)):
                names.add(name)
        return sorted(names)

    def settable_names(self, obj: Any) -> list[str]:
        out = []
        for name in self.setting_names(obj):
            if name in self.readonly:
                continue
            if name in self.properties and not self.properties[name]:
                continue
            out.append(name)
        return out

    def command_names(self) -> list[str]:
        """The endpoint's own commands, then the built-ins."""
        return list(self.commands) + list(BUILTIN_COMMANDS)

    def read_setting(self, obj: Any, name: str) -> Any:
        """The value of setting `name` (property code runs); `_MISSING` when there is none."""
        if name in self.properties or name in self.class_attributes:
            return getattr(obj, name)
        try:
            namespace = vars(obj)
        except TypeError:
            return _MISSING
        return namespace.get(name, _MISSING)

    def settings(self, obj: Any, skip: Iterable[str] = ()) -> dict[str, Any]:
        """{name: value} of the settings holding plain data now (for ``describe``)."""
        out: dict[str, Any] = {}
        skipped = set(skip)
        for name in self.setting_names(obj):
            if name in skipped:
                continue
            try:
                value = self.read_setting(obj, name)
            except Exception:  # a property that fails to read is left out of the listing
                continue
            if value is not _MISSING and is_plain_data(value) and not holds_secret(value):
                out[name] = value
        return out

    # ---- refusals ----------------------------------------------------------------------------

    def _label(self, obj: Any) -> str:
        return str(getattr(obj, "name", "") or type(obj).__name__)

    def _check_token(self, obj: Any, name: str, spec: str, verb: str, code: int) -> None:
        if name.startswith("_"):
            if code == _INVALID_METHOD:
                raise ThrowReply(code, f"endpoint {self._label(obj)} refuses to {verb} private "
                                       f"name {spec!r}; commands: {_names(self.command_names())}")
            raise ThrowReply(code, f"endpoint {self._label(obj)} has no public attribute {spec}, "
                                   f"unable to {verb}; {self._allowed(obj, verb)}")

    def _allowed(self, obj: Any, verb: str) -> str:
        if verb == "set":
            return f"settable: {_names(self.settable_names(obj))}"
        if verb == "call":
            return f"commands: {_names(self.command_names())}"
        return f"gettable: {_names(self.setting_names(obj))}"

    def _plain_setting(self, obj: Any, name: str, spec: str, verb: str, refusal: str) -> Any:
        """The current value of setting `name` for a get or set of it: 310 when there is none,
        or when it holds something other than plain data (`refusal` says what is refused)."""
        try:
            value = self.read_setting(obj, name)
        except AttributeError:
            value = _MISSING
        if value is _MISSING:
            raise self._refuse(obj, name, spec, verb, _INVALID_SPECIFIER)
        if not is_plain_data(value):
            raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {self._label(obj)}: {name!r} does not "
                                                 f"hold plain data and {refusal}; "
                                                 f"{self._allowed(obj, verb)}")
        return value

    def _refuse(self, obj: Any, name: str, spec: str, verb: str, code: int) -> ThrowReply:
        allowed = self._allowed(obj, verb)
        label = self._label(obj)
        if _static(obj, name) is not _MISSING:
            return ThrowReply(code, f"endpoint {label}: {spec!r} is not available through "
                                    f"requests (unable to {verb}); {allowed}")
        if code == _INVALID_METHOD:
            return ThrowReply(code, f"error getting command's corresponding method: endpoint "
                                    f"{label} has no command {spec!r}; {allowed}")
        return ThrowReply(code, f"endpoint {label} has no attribute {spec}, unable to {verb}; "
                                f"{allowed}")

    # ---- get ---------------------------------------------------------------------------------

    def get(self, obj: Any, tokens: list[str]) -> Any:
        """The value a get with specifier `tokens` answers; ThrowReply 310 when out of reach."""
        spec = ".".join(tokens)
        name = tokens[0]
        self._check_token(obj, name, spec, "get", _INVALID_SPECIFIER)
        if name in self.commands:
            raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {self._label(obj)}: {name!r} is a "
                                                 f"command; use cmd to call it; "
                                                 f"{self._allowed(obj, 'get')}")
        if not self._is_setting_name(obj, name):
            raise self._refuse(obj, name, spec, "get", _INVALID_SPECIFIER)
        value = self._plain_setting(obj, name, spec, "get", "is not available through requests")
        value = self._descend(obj, value, tokens, spec, "get")
        if holds_secret(value):
            raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {self._label(obj)}: {spec!r} holds a "
                                                 f"credential and is not available through "
                                                 f"requests; {self._allowed(obj, 'get')}")
        return value

    def _descend(self, obj: Any, value: Any, tokens: list[str], spec: str, verb: str) -> Any:
        for i, token in enumerate(tokens[1:], start=1):
            self._refuse_secret_key(obj, token, spec, verb)
            value = self._step(obj, value, token, ".".join(tokens[:i + 1]), spec, verb)
        return value

    def _refuse_secret_key(self, obj: Any, token: str, spec: str, verb: str) -> None:
        if SECRET_NAME.search(token):
            raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {self._label(obj)}: {spec!r} names a "
                                                 f"credential and is not available through "
                                                 f"requests; {self._allowed(obj, verb)}")

    def _step(self, obj: Any, value: Any, token: str, path: str, spec: str, verb: str) -> Any:
        label = self._label(obj)
        parent = path.rsplit(".", 1)[0]
        if isinstance(value, Mapping):
            if token in value:
                return value[token]
            if _is_index(token) and int(token) in value:
                return value[int(token)]
            raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {label} has no attribute {spec}, "
                                                 f"unable to {verb}: no key {token!r} in {parent}; "
                                                 f"keys: {_names(str(k) for k in value)}")
        if isinstance(value, (list, tuple)) and _is_index(token):
            try:
                return value[int(token)]
            except IndexError:
                raise ThrowReply(_INVALID_SPECIFIER,
                                 f"endpoint {label} has no attribute {spec}, unable to {verb}: "
                                 f"{parent} has indices 0 to {len(value) - 1}") from None
        raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {label}: {spec!r} cannot be reached: a "
                                             f"specifier descends only into dict keys and list "
                                             f"indices, and {parent!r} holds a {_kind(value)}; "
                                             f"{self._allowed(obj, verb)}")

    # ---- set ---------------------------------------------------------------------------------

    def set(self, obj: Any, tokens: list[str], value: Any) -> None:
        """Write `value` to the setting `tokens` names; ThrowReply 310 or 304 when refused."""
        spec = ".".join(tokens)
        name = tokens[0]
        label = self._label(obj)
        self._check_token(obj, name, spec, "set", _INVALID_SPECIFIER)
        if name in self.commands:
            raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {label}: {name!r} is a command and "
                                                 f"cannot be replaced by a set; "
                                                 f"{self._allowed(obj, 'set')}")
        if not self._is_setting_name(obj, name):
            raise self._refuse(obj, name, spec, "set", _INVALID_SPECIFIER)
        if name in self.readonly or (name in self.properties and not self.properties[name]):
            raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {label}: {name!r} is read-only "
                                                 f"(unable to set); {self._allowed(obj, 'set')}")
        value = _plain_copy(value)
        if name in self.properties:
            if len(tokens) > 1:
                raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {label}: {spec!r}: a property is "
                                                     f"set as a whole (set {name}); "
                                                     f"{self._allowed(obj, 'set')}")
            self._set_property(obj, name, value, label)
            return
        current = self._plain_setting(obj, name, spec, "set", "cannot be set through requests")
        if len(tokens) == 1:
            self._check_kind(label, spec, current, value)
            setattr(obj, name, value)
            return
        parent = self._descend(obj, current, tokens[:-1], spec, "set")
        last = tokens[-1]
        self._refuse_secret_key(obj, last, spec, "set")
        if isinstance(parent, dict):
            key: Any = last if last in parent else (int(last) if _is_index(last) and int(last)
                                                    in parent else _MISSING)
            if key is _MISSING:
                raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {label} has no attribute {spec}, "
                                                     f"unable to set (a set changes existing keys "
                                                     f"only); keys: {_names(str(k) for k in parent)}")
            self._check_kind(label, spec, parent[key], value)
            parent[key] = value
            return
        if isinstance(parent, list) and _is_index(last):
            try:
                old = parent[int(last)]
            except IndexError:
                raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {label} has no attribute {spec}, "
                                                     f"unable to set: indices are 0 to "
                                                     f"{len(parent) - 1}") from None
            self._check_kind(label, spec, old, value)
            parent[int(last)] = value
            return
        raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {label}: {spec!r} cannot be set: only "
                                             f"existing dict keys and list items are writable; "
                                             f"{self._allowed(obj, 'set')}")

    @staticmethod
    def _check_kind(label: str, spec: str, current: Any, value: Any) -> None:
        """A plain attribute keeps its kind: what its code expects is what it was given."""
        if current is None:
            return
        have, new = _kind(current), _kind(value)
        if have == new and have in ("bool", "number", "string", "list", "dict"):
            return
        raise ThrowReply(_INVALID_VALUE, f"endpoint {label}: {spec} holds a {have}; a set must "
                                         f"give a {have}, got {new} {value!r:.80}")

    def _set_property(self, obj: Any, name: str, value: Any, label: str) -> None:
        try:
            setattr(obj, name, value)
        except ThrowReply:
            raise
        except AttributeError as err:
            raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {label}: attribute {name} cannot be "
                                                 f"set ({err}); {self._allowed(obj, 'set')}") \
                from None
        except (ValueError, TypeError, ArithmeticError) as err:
            raise ThrowReply(_INVALID_VALUE, f"endpoint {label}: invalid {name} {value!r:.80}: "
                                             f"{err}") from None

    # ---- cmd ---------------------------------------------------------------------------------

    def command(self, obj: Any, tokens: list[str]) -> Callable[..., Any]:
        """The bound method a cmd with specifier `tokens` calls; ThrowReply 306 otherwise."""
        spec = ".".join(tokens)
        name = tokens[0]
        self._check_token(obj, name, spec, "call", _INVALID_METHOD)
        for token in tokens[1:]:
            self._check_token(obj, token, spec, "call", _INVALID_METHOD)
        if name in self.commands and len(tokens) == 1:
            method = getattr(obj, name)
            if callable(method):
                return method
        if name in self.commands:  # a dotted path below a command: there is nothing below it
            raise self._refuse(obj, spec, spec, "call", _INVALID_METHOD)
        if self._is_setting_name(obj, name):
            raise ThrowReply(_INVALID_METHOD, f"{spec!r} of endpoint {self._label(obj)} is not a "
                                              f"method and cannot be called; commands: "
                                              f"{_names(self.command_names())}")
        raise self._refuse(obj, name, spec, "call", _INVALID_METHOD)


def _is_index(token: str) -> bool:
    return token.isdigit() or (token.startswith("-") and token[1:].isdigit())
