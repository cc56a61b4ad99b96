"""Turning one request into exactly one reply: the server-side dispatch of get / set / cmd.

`RequestHandler` is a mix-in shared by `Endpoint` and `Service`. It computes a `MsgReply` from a
`MsgRequest` and does no I/O, so every rule below can be tested in plain pytest and the service
decides where (worker thread or event loop) and whether (a `reply_to` is set) the reply is sent.

The pipeline follows the reference implementation (dripline-python 5.1 on dripline-cpp 2.10):

1. invalid message -> 302; unparsable lockout key -> 308;
2. built-in instructions, chosen by the *first* specifier token: get ``is-locked``, cmd ``lock``,
   ``unlock``, ``ping``, ``set_condition``;
3. lockout: set and (non built-in) cmd are refused with 307 while locked with another key;
4. dispatch: get -> `on_get()` or an attribute, set -> `on_set(value)` or an attribute,
   cmd -> the method named by the specifier;
5. outcome: success -> code 0 and an empty message; `ThrowReply` -> its code, message, payload;
   any other exception -> 999 ``"<ExcType>: <message>"``.

Where we go beyond (or fix) the reference, on purpose:

* An exception in user code is answered with 999 and nothing else happens: the reference re-raises
  it and shuts the whole service down.
* Dotted specifiers resolve attribute paths: ``config.max_rate`` reads ``self.config.max_rate``;
  mappings are indexed by key and lists by integer position along the way. (The reference looks
  up the whole dotted string as one attribute name, which never exists.) This holds for get, set
  and cmd alike.
* A specifier token starting with ``_`` is refused (310 for get/set, 306 for cmd): private state
  and dunder machinery are not part of an endpoint's remote interface.
* set with a specifier never replaces a method or other callable (304), and an attribute whose
  assignment fails with AttributeError (read-only property) is 310 instead of 999.
* cmd checks the call against the method's signature before calling it: only a mismatch is 304;
  a TypeError raised *inside* the method is an ordinary unhandled exception (999). A specifier
  naming something that is not callable is 306. A null cmd payload means "no arguments".
* set with a missing or empty ``values`` list is 303 (the reference crashes on an empty list);
  ``values[0]`` may be any JSON value, not only a scalar.
* `set_condition` is an ordinary method a Python subclass may override (the reference's C++ hook
  is unreachable from Python); the default still answers 0 "No action taken ...".
* Exceptions are recognised by type, so a subclass of `ThrowReply` keeps its code (the reference
  recognises them by the text prefix ``ThrowReply`` and answers 999 otherwise).
* Default `on_reply_message` / `on_alert_message` log a warning (the reference raises, which stops
  the service).
* Handlers may be ``async def`` (on_get, on_set, cmd methods): `on_request_message_async` awaits
  them. The synchronous `on_request_message` answers 300 when it meets an awaitable result.
* No debug print to stdout on every cmd.

Both entry points share one implementation: the pipeline is a generator that *yields* each
awaitable a handler returns and is resumed with its result (or has the handler's exception thrown
in), so the sync and async drivers differ only in what they do with a yielded awaitable.
"""
from __future__ import annotations

import inspect
import logging
import uuid
import weakref
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence
from typing import TYPE_CHECKING, Any, Generator

from dripline.protocol.throw_reply import ThrowReply
from dripline.transport.ratelimit import LimitedLog

if TYPE_CHECKING:
    from dripline.protocol.message import MsgReply, MsgRequest

__all__ = ["RequestHandler", "to_plain_data", "convert_result"]

logger = logging.getLogger(__name__)
# any mesh user can make a handler fail or a request be refused on every message: each exception
# site (and each endpoint's refusal code) is logged in full once, then counted
_log = LimitedLog(logger)

# standard return codes used by the pipeline (fixed by the dripline standard, §2.1)
_SUCCESS = 0
_WARNING_NO_ACTION = 1
_RESOURCE_ERROR = 200
_SERVICE_ERROR = 300
_DECODING_FAIL = 302
_BAD_PAYLOAD = 303
_INVALID_VALUE = 304
_INVALID_METHOD = 306
_ACCESS_DENIED = 307
_INVALID_KEY = 308
_INVALID_SPECIFIER = 310
_UNHANDLED = 999

# wire values of op_t (core/message.py); compared as ints so a plain int header works too
_OP_SET, _OP_GET, _OP_CMD = 0, 1, 9

_NIL_UUID = uuid.UUID(int=0)

_Pipeline = Generator[Any, Any, Any]


# ---------------------------------------------------------------------------------------------
# result conversion

def to_plain_data(obj: Any) -> Any:
    """Return `obj` as JSON-able plain Python data, or raise TypeError.

    Accepted: None, bool, int, float, str, mappings with str (or number) keys, lists and tuples,
    numpy scalars/arrays (via ``.item()`` / ``.tolist()``) and scarab ``Param`` objects
    (via ``.to_python()``), recursively.
    """
    if obj is None:
        return None
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if isinstance(key, bool) or key is None:
                key = {True: "true", False: "false", None: "null"}[key]
            elif isinstance(key, (int, float)):
                key = str(key)
            elif not isinstance(key, str):
                raise TypeError(f"mapping key {key!r} cannot be represented in JSON")
            out[str(key)] = to_plain_data(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_plain_data(item) for item in obj]
    module = type(obj).__module__ or ""
    if module.startswith("numpy"):
        if hasattr(obj, "tolist"):
            return to_plain_data(obj.tolist())
    if module.startswith("scarab") or module.startswith("_dripline"):
        to_python = getattr(obj, "to_python", None)
        if callable(to_python):
            return to_plain_data(to_python())
    raise TypeError(f"{type(obj).__name__} value cannot be represented in JSON")


def convert_result(obj: Any, what: str = "result") -> Any:
    """Plain-data form of a handler result; falls back to ``str(obj)`` with a warning.

    The fallback is the reference behaviour (its ``to_param`` failure path): a client still gets
    something readable rather than an error for, e.g., a datetime or a bound method.
    """
    try:
        return to_plain_data(obj)
    except (TypeError, ValueError, RecursionError) as err:
        logger.warning("%s of type %s is not plain data (%s); sending its str() instead",
                       what, type(obj).__name__, err)
        return str(obj)


# ---------------------------------------------------------------------------------------------
# helpers

class _AwaitableInSyncPath(ThrowReply):
    """Thrown into the pipeline when the synchronous driver meets an awaitable handler result."""


def _discard_awaitable(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)  # a coroutine: avoid "never awaited" warnings
    if callable(close):
        try:
            close()
        except Exception:  # pragma: no cover - defensive
            pass


def _tokens(request: Any) -> list[str]:
    spec = getattr(request, "specifier", None)
    tokens = getattr(spec, "tokens", None)
    if isinstance(tokens, list):
        return [str(t) for t in tokens]
    text = "" if spec is None else str(spec)
    return text.split(".") if text else []


def _is_truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


class _Missing(LookupError):
    """A specifier path step that does not exist (message is the human text)."""


def _step(obj: Any, token: str) -> Any:
    """One step of a dotted specifier: mapping key, list index or attribute."""
    if isinstance(obj, Mapping):
        if token in obj:
            return obj[token]
        raise _Missing(f"key {token!r} not found")
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)) and _is_index(token):
        try:
            return obj[int(token)]
        except IndexError:
            raise _Missing(f"index {token} out of range") from None
    try:
        return getattr(obj, token)
    except AttributeError as err:
        raise _Missing(str(err) or f"no attribute {token!r}") from None


def _is_coroutine_callable(obj: Any) -> bool:
    if obj is None:
        return False
    if inspect.iscoroutinefunction(obj):
        return True
    # an object with ``async def __call__`` (not a class: calling a class builds an instance)
    return (callable(obj) and not isinstance(obj, type) and not inspect.isroutine(obj)
            and inspect.iscoroutinefunction(getattr(type(obj), "__call__", None)))


_FRAMEWORK_PACKAGES = ("dripline.core", "dripline.protocol", "dripline.transport", "dripline.client",
                       "dripline.service")


def _is_framework_module(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _FRAMEWORK_PACKAGES)


def _is_user_coroutine(obj: Any) -> bool:
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if obj is None or isinstance(obj, property) or not _is_coroutine_callable(obj):
        return False
    module = getattr(obj, "__module__", None) or type(obj).__module__ or ""
    return not _is_framework_module(module)


#: class -> whether it defines public coroutine handlers (classes do not change after creation
#: in practice; instance attributes are checked on every call)
_CLASS_ASYNC_CACHE: "weakref.WeakKeyDictionary[type, bool]" = weakref.WeakKeyDictionary()


def _is_index(token: str) -> bool:
    return token.isdigit() or (token.startswith("-") and token[1:].isdigit())


# ---------------------------------------------------------------------------------------------

class RequestHandler:
    """Mix-in that answers requests; the class using it provides ``self.name``.

    Lock state lives in two attributes with class-level defaults, so a subclass that never calls
    this class's ``__init__`` (it has none) still works.
    """

    name: str = ""
    _lockout_key: uuid.UUID = _NIL_UUID  # nil = unlocked
    _lockout_tag: Any = None  # sender_info of the locker

    # ---- overridable handlers (reference API) ----------------------------------------------

    def on_get(self) -> Any:
        """Value for a get without specifier; subclasses override."""
        raise ThrowReply(_INVALID_METHOD, f"{type(self).__name__} does not implement on_get")

    def on_set(self, value: Any) -> Any:
        """Apply a set without specifier; subclasses override."""
        raise ThrowReply(_INVALID_METHOD, f"{type(self).__name__} does not implement on_set")

    def set_condition(self, *args: Any, **kwargs: Any) -> Any:
        """Hook for cmd ``set_condition`` (not subject to lockout); subclasses may override.

        Called like a cmd method: ``values`` positional, other payload keys as keywords.
        """
        raise ThrowReply(_SUCCESS, "No action taken (this is the default method)")

    def on_reply_message(self, message: Any) -> None:
        """A reply addressed to this handler; the default only logs (the reference raises)."""
        logger.warning("%s received a reply message it does not handle (routing key %r); ignored",
                       self._handler_label(), getattr(message, "routing_key", None))
        return None

    def on_alert_message(self, message: Any) -> None:
        """An alert delivered to this handler; the default only logs (the reference raises)."""
        logger.warning("%s received an alert message it does not handle (routing key %r); ignored",
                       self._handler_label(), getattr(message, "routing_key", None))
        return None

    # ---- lock state ----------------------------------------------------------------------

    @property
    def is_locked(self) -> bool:
        return self._lockout_key != _NIL_UUID

    def _authenticate(self, key: uuid.UUID) -> bool:
        return not self.is_locked or key == self._lockout_key

    # ---- entry points ---------------------------------------------------------------------

    def on_request_message(self, request: MsgRequest) -> MsgReply:
        """The reply to `request`; never raises for anything user code does.

        A handler that returns an awaitable cannot be served here: the reply is 300 and the
        service should use `on_request_message_async` for such endpoints (see
        `has_async_handlers`).
        """
        return self._drive_sync(self._pipeline(request))

    async def on_request_message_async(self, request: MsgRequest) -> MsgReply:
        """Like `on_request_message`, awaiting handlers that return awaitables."""
        return await self._drive_async(self._pipeline(request))

    def do_get_request(self, request: MsgRequest) -> MsgReply:
        """Reference API: the success reply to a get; errors are raised as ThrowReply."""
        return self._drive_sync(self._get_path(request, allow_override=False))

    def do_set_request(self, request: MsgRequest) -> MsgReply:
        """Reference API: the success reply to a set; errors are raised as ThrowReply."""
        return self._drive_sync(self._set_path(request, allow_override=False))

    def do_cmd_request(self, request: MsgRequest) -> MsgReply:
        """Reference API: the success reply to a cmd; errors are raised as ThrowReply."""
        return self._drive_sync(self._cmd_path(request, allow_override=False))

    def has_async_handlers(self) -> bool:
        """True when on_get, on_set or any public method is a coroutine function.

        Only user code counts: coroutine methods defined by dripline.core itself (a Service's
        lifecycle methods such as ``start``) are not request handlers. Methods reached through a
        dotted cmd specifier on another object are not inspected; `is_async_request` looks at
        the one handler a given request would call.
        """
        cls = type(self)
        cached = _CLASS_ASYNC_CACHE.get(cls)
        if cached is None:
            cached = any(_is_user_coroutine(inspect.getattr_static(cls, name, None))
                         for name in dir(cls) if not name.startswith("_"))
            _CLASS_ASYNC_CACHE[cls] = cached
        if cached:
            return True
        return any(_is_user_coroutine(value) for name, value in vars(self).items()
                   if not name.startswith("_"))

    def is_async_request(self, request: MsgRequest) -> bool:
        """True when answering `request` would call a coroutine function.

        Lets a service run only those requests on its event loop (with
        `on_request_message_async`) and keep every synchronous handler on its worker thread.
        Never raises: a request that will be refused is reported as synchronous, and so are
        coroutine methods of dripline.core itself (a remote ``cmd <service> -s start`` must not
        run the service's lifecycle; the synchronous path refuses it with 300).
        """
        try:
            return _is_user_coroutine(self._handler_for(request))
        except Exception:
            return False

    def _handler_for(self, request: MsgRequest) -> Any:
        """The callable `request` would reach, or None (built-ins, attributes, errors)."""
        if not getattr(request, "is_valid", True) or not getattr(request, "lockout_key_valid", True):
            return None
        op_value = int(request.message_operation)
        tokens = _tokens(request)
        first = tokens[0] if tokens else None
        names = {_OP_GET: "do_get_request", _OP_SET: "do_set_request", _OP_CMD: "do_cmd_request"}
        if op_value not in names:
            return None
        if op_value == _OP_GET and first == "is-locked":
            return None
        if op_value == _OP_CMD and first in ("lock", "unlock", "ping"):
            return None
        if op_value == _OP_CMD and first == "set_condition":
            return self.set_condition
        override = self._overridden(names[op_value])
        if override is not None:
            return override
        if op_value == _OP_GET:
            return self.on_get if not tokens else None
        if op_value == _OP_SET:
            return self.on_set if not tokens else None
        if not tokens or any(t.startswith("_") for t in tokens):
            return None
        obj: Any = self
        for token in tokens:
            obj = _step(obj, token)
        return obj if callable(obj) else None

    # ---- drivers ----------------------------------------------------------------------------

    def _drive_sync(self, gen: _Pipeline) -> Any:
        """Run the pipeline; an awaitable it yields is closed and answered with 300."""
        try:
            awaitable = gen.send(None)
            while True:
                _discard_awaitable(awaitable)
                awaitable = gen.throw(_AwaitableInSyncPath(
                    _SERVICE_ERROR,
                    f"{self._handler_label()}: the handler returned an awaitable (async def); it "
                    f"can only be served through on_request_message_async"))
        except StopIteration as stop:
            return stop.value
        finally:
            gen.close()

    async def _drive_async(self, gen: _Pipeline) -> Any:
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    awaitable = gen.throw(error) if error is not None else gen.send(value)
                except StopIteration as stop:
                    return stop.value
                try:
                    value, error = await awaitable, None
                except Exception as err:  # CancelledError and other BaseExceptions propagate
                    value, error = None, err
        finally:
            gen.close()

    # ---- the pipeline -----------------------------------------------------------------------

    def _pipeline(self, request: MsgRequest) -> _Pipeline:
        """Generator computing the reply (see the module docstring for the protocol)."""
        try:
            if not getattr(request, "is_valid", True):
                return self._reply(request, _DECODING_FAIL, "Request message was not valid",
                                   request.payload)
            if not getattr(request, "lockout_key_valid", True):
                return self._reply(request, _INVALID_KEY, "Lockout key could not be parsed")
            op = request.message_operation
            op_value = int(op)
            tokens = _tokens(request)
            first = tokens[0] if tokens else None
            if op_value == _OP_GET:
                if first == "is-locked":
                    return self._is_locked_reply(request)
                return (yield from self._get_path(request))
            if op_value == _OP_SET:
                self._check_lockout(request)
                return (yield from self._set_path(request))
            if op_value == _OP_CMD:
                if first == "lock":
                    return self._lock(request)
                if first == "unlock":
                    return self._unlock(request)
                if first == "ping":
                    exe = ""
                    if isinstance(request.sender_info, Mapping):
                        exe = request.sender_info.get("exe", "")
                    return self._reply(request, _SUCCESS, f"Hello, {exe}")
                if first == "set_condition":
                    return (yield from self._call_method(request, "set_condition",
                                                         self.set_condition))
                self._check_lockout(request)
                return (yield from self._cmd_path(request))
            raise ThrowReply(_INVALID_METHOD, f"Unrecognized message operation: <{op_value}>")
        except ThrowReply as err:
            level = logging.INFO if err.return_code == _SUCCESS else logging.WARNING
            _log.log(level, (self._handler_label(), err.return_code), "%s: reply %s %r",
                     self._handler_label(), err.return_code, err.return_message)
            return self._reply(request, err.return_code, err.return_message,
                               convert_result(err.return_payload, "ThrowReply payload"))
        except Exception as err:
            _log.exception("%s: unhandled exception while handling a request (specifier %r)",
                           self._handler_label(), str(getattr(request, "specifier", ""))[:100])
            return self._reply(request, _UNHANDLED, f"{type(err).__name__}: {err}")

    def _reply(self, request: MsgRequest, code: int, message: str = "", payload: Any = None) -> MsgReply:
        try:
            return request.reply(code, message, payload)
        except Exception as err:  # the payload was refused by the codec: still answer
            _log.exception("%s: could not build the reply", self._handler_label())
            return request.reply(_UNHANDLED, f"{type(err).__name__}: {err}", None)

    def _handler_label(self) -> str:
        return f"{type(self).__name__} {getattr(self, 'name', '')!r}"

    # ---- built-ins --------------------------------------------------------------------------

    def _check_lockout(self, request: MsgRequest) -> None:
        key = request.lockout_key
        if not self._authenticate(key):
            raise ThrowReply(_ACCESS_DENIED, f"Request denied due to lockout (key used: {key})")

    def _is_locked_reply(self, request: MsgRequest) -> MsgReply:
        payload: dict[str, Any] = {"is_locked": self.is_locked}
        if self.is_locked:
            payload["tag"] = convert_result(self._lockout_tag, "lock tag")
        return self._reply(request, _SUCCESS, "Checked lock status", payload)

    def _lock(self, request: MsgRequest) -> MsgReply:
        self._check_lockout(request)
        if self.is_locked:
            return self._reply(request, _RESOURCE_ERROR, "Unable to lock server")
        key = request.lockout_key
        if key == _NIL_UUID:
            key = uuid.uuid4()
        self._lockout_key = key
        self._lockout_tag = request.sender_info
        logger.info("%s locked with key %s", self._handler_label(), key)
        return self._reply(request, _SUCCESS, "Server is now locked", {"key": str(key)})

    def _unlock(self, request: MsgRequest) -> MsgReply:
        if not self.is_locked:
            return self._reply(request, _WARNING_NO_ACTION, "Already unlocked")
        payload = request.payload
        force = _is_truthy(payload.get("force", False)) if isinstance(payload, Mapping) else False
        if force or request.lockout_key == self._lockout_key:
            self._lockout_key = _NIL_UUID
            self._lockout_tag = None
            logger.info("%s unlocked%s", self._handler_label(), " (forced)" if force else "")
            return self._reply(request, _SUCCESS, "Server unlocked")
        return self._reply(request, _RESOURCE_ERROR, "Failed to unlock server")

    # ---- get / set / cmd -------------------------------------------------------------------

    def _get_path(self, request: MsgRequest, allow_override: bool = True) -> _Pipeline:
        override = self._overridden("do_get_request") if allow_override else None
        if override is not None:
            return (yield from self._run_override(override, request))
        tokens = _tokens(request)
        if not tokens:
            result = self.on_get()
            if inspect.isawaitable(result):
                result = yield result
            return self._reply(request, _SUCCESS, "", convert_result(result, "on_get result"))
        spec = ".".join(tokens)
        value = self._resolve(tokens, spec, "get", _INVALID_SPECIFIER)
        return self._reply(request, _SUCCESS, "",
                           {"values": [convert_result(value, f"attribute {spec!r}")]})

    def _set_path(self, request: MsgRequest, allow_override: bool = True) -> _Pipeline:
        override = self._overridden("do_set_request") if allow_override else None
        if override is not None:
            return (yield from self._run_override(override, request))
        payload = request.payload
        if not isinstance(payload, Mapping) or "values" not in payload:
            raise ThrowReply(_BAD_PAYLOAD,
                             "setting called without values, but values are required for set")
        values = payload["values"]
        if not isinstance(values, list) or not values:
            raise ThrowReply(_BAD_PAYLOAD, "set requires 'values' to be a non-empty list, got "
                                           f"{values!r}")
        value = values[0]
        tokens = _tokens(request)
        if not tokens:
            result = self.on_set(value)
            if inspect.isawaitable(result):
                result = yield result
            return self._reply(request, _SUCCESS, "", convert_result(result, "on_set result"))
        spec = ".".join(tokens)
        parent = self._resolve(tokens[:-1], spec, "set", _INVALID_SPECIFIER) if len(tokens) > 1 \
            else self
        last = tokens[-1]
        self._refuse_private([last], spec, "set", _INVALID_SPECIFIER)
        self._assign(parent, last, value, spec)
        return self._reply(request, _SUCCESS, "", None)

    def _cmd_path(self, request: MsgRequest, allow_override: bool = True) -> _Pipeline:
        override = self._overridden("do_cmd_request") if allow_override else None
        if override is not None:
            return (yield from self._run_override(override, request))
        tokens = _tokens(request)
        if not tokens:
            raise ThrowReply(_INVALID_METHOD, "No specifier was provided for an OP_CMD request")
        spec = ".".join(tokens)
        self._refuse_private(tokens, spec, "call", _INVALID_METHOD)
        obj: Any = self
        for token in tokens:
            try:
                obj = _step(obj, token)
            except _Missing as err:
                raise ThrowReply(_INVALID_METHOD,
                                 f"error getting command's corresponding method: {err}") from None
        if not callable(obj):
            raise ThrowReply(_INVALID_METHOD,
                             f"{spec!r} of endpoint {self.name} is not a method and cannot be "
                             f"called")
        return (yield from self._call_method(request, spec, obj))

    def _call_method(self, request: MsgRequest, spec: str, method: Any) -> _Pipeline:
        payload = request.payload
        if payload is None:
            payload = {}
        if not isinstance(payload, Mapping):
            raise ThrowReply(_BAD_PAYLOAD, "a cmd payload must be an object (with optional "
                                           f"'values' and keyword arguments), got {payload!r}")
        args = payload.get("values", [])
        if args is None:
            args = []
        if not isinstance(args, list):
            raise ThrowReply(_BAD_PAYLOAD, f"cmd 'values' must be a list, got {args!r}")
        kwargs = {str(k): v for k, v in payload.items() if k != "values"}
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):  # some builtins have no signature: cannot pre-check
            signature = None
        if signature is not None:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as err:
                raise ThrowReply(_INVALID_VALUE, self._type_error_text(spec, err)) from None
            result = method(*args, **kwargs)
        else:
            try:
                result = method(*args, **kwargs)
            except TypeError as err:
                raise ThrowReply(_INVALID_VALUE, self._type_error_text(spec, err)) from None
        if inspect.isawaitable(result):
            result = yield result
        return self._reply(request, _SUCCESS, "", convert_result(result, f"{spec} result"))

    def _type_error_text(self, spec: str, err: TypeError) -> str:
        return (f"A TypeError occurred while calling the requested method for endpoint "
                f"{self.name}: {spec}. Values provided may be invalid.\nOriginal error: {err}")

    # ---- specifier resolution ---------------------------------------------------------------

    #: public names a request may not reach (a Service lists its lifecycle methods here, so that
    #: `cmd my_service -s run` cannot block or stop it)
    request_denylist: frozenset[str] = frozenset()

    def _refuse_private(self, tokens: list[str], spec: str, verb: str, code: int) -> None:
        for i, token in enumerate(tokens):
            private = token.startswith("_")
            if private or (i == 0 and token in self.request_denylist):
                if not private:  # lifecycle/plumbing: public in Python, not reachable from the mesh
                    raise ThrowReply(code, f"endpoint {self.name}: {spec!r} is not available "
                                           f"through requests (unable to {verb})")
                if code == _INVALID_METHOD:
                    raise ThrowReply(code, f"endpoint {self.name} refuses to {verb} private name "
                                           f"{spec!r}")
                raise ThrowReply(code, f"endpoint {self.name} has no public attribute {spec}, "
                                       f"unable to {verb}")

    def _resolve(self, tokens: list[str], spec: str, verb: str, code: int) -> Any:
        self._refuse_private(tokens, spec, verb, code)
        obj: Any = self
        for token in tokens:
            try:
                obj = _step(obj, token)
            except _Missing:
                raise ThrowReply(code, f"endpoint {self.name} has no attribute {spec}, unable to "
                                       f"{verb}") from None
        return obj

    def _assign(self, parent: Any, last: str, value: Any, spec: str) -> None:
        missing = ThrowReply(_INVALID_SPECIFIER,
                             f"endpoint {self.name} has no attribute {spec}, unable to set")
        if isinstance(parent, MutableMapping):
            if last not in parent:
                raise missing
            if callable(parent[last]):
                raise self._no_overwrite(spec)
            parent[last] = value
            return
        if isinstance(parent, MutableSequence) and _is_index(last):
            try:
                current = parent[int(last)]
            except IndexError:
                raise missing from None
            if callable(current):
                raise self._no_overwrite(spec)
            parent[int(last)] = value
            return
        try:
            current = getattr(parent, last)
        except AttributeError:
            raise missing from None
        if callable(current):
            raise self._no_overwrite(spec)
        try:
            setattr(parent, last, value)
        except AttributeError as err:
            raise ThrowReply(_INVALID_SPECIFIER, f"endpoint {self.name}: attribute {spec} cannot "
                                                 f"be set ({err})") from None

    def _no_overwrite(self, spec: str) -> ThrowReply:
        return ThrowReply(_INVALID_VALUE, f"endpoint {self.name}: {spec} is a method (callable) "
                                          f"and cannot be replaced by a set")

    # ---- reference-API overrides ----------------------------------------------------------

    def _overridden(self, name: str) -> Any:
        """The bound `name` method if a subclass overrides it (e.g. a plugin's do_get_request)."""
        method = getattr(self, name)
        if getattr(method, "__func__", None) is getattr(RequestHandler, name):
            return None
        return method

    def _run_override(self, method: Any, request: MsgRequest) -> _Pipeline:
        reply = method(request)
        if inspect.isawaitable(reply):
            reply = yield reply
        if reply is None or not hasattr(reply, "return_code"):
            # an override that returns data rather than a MsgReply: wrap it
            return self._reply(request, _SUCCESS, "", convert_result(reply, "handler result"))
        return reply
