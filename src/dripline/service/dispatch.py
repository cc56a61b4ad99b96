"""Turning one request into exactly one reply: the server-side dispatch of get / set / cmd.

`RequestHandler` is a mix-in shared by `Endpoint` and `Service`. It computes a `MsgReply` from a
`MsgRequest` and does no I/O, so every rule below can be tested in plain pytest and the service
decides where (worker thread or event loop) and whether (a `reply_to` is set) the reply is sent.

The pipeline follows the reference implementation (dripline-python 5.1 on dripline-cpp 2.10):

1. invalid message -> 302; unparsable lockout key -> 308;
2. built-in instructions, chosen by the *first* specifier token: get ``is-locked``, cmd ``lock``,
   ``unlock``, ``ping``, ``set_condition``, ``describe``;
3. lockout: set and (non built-in) cmd are refused with 307 while locked with another key;
4. dispatch: get -> `on_get()` or a setting, set -> `on_set(value)` or a setting,
   cmd -> a command; what a specifier may name is the endpoint's `RequestSurface` (surface.py);
5. outcome: success -> code 0 and an empty message; `ThrowReply` -> its code, message, payload;
   any other exception -> 999 ``"<ExcType>: <message>"``.

Where we go beyond (or fix) the reference, on purpose:

* An exception in user code is answered with 999 and nothing else happens: the reference re-raises
  it and shuts the whole service down.
* A specifier reaches only what the endpoint's request surface lists (its own commands and
  plain-data settings, see surface.py); the reference calls ``getattr`` with whatever a request
  names, which reaches the service, its connection and its lifecycle. Dotted specifiers descend
  into the dict keys and list indices of a setting (``table.nested.b``, ``items.1``), never into
  another object. Refusals are 310 (get/set) or 306 (cmd) and name what is allowed.
* set with a specifier writes a setting of the endpoint itself: a property through its setter
  (a ValueError or TypeError it raises is 304), a plain attribute only with a value of its kind
  (304 otherwise); a read-only setting, a command or a name out of reach is 310.
* set without specifier checks the endpoint's declared limits (``min``/``max``/``allowed``) on
  the value as sent, before ``on_set`` runs (304).
* cmd ``describe`` answers what the endpoint is and offers (describe.py), for user interfaces.
* cmd checks the call against the method's signature before calling it: only a mismatch is 304;
  a TypeError raised *inside* the method is an ordinary unhandled exception (999). A specifier
  naming something that is not callable is 306. A null cmd payload means "no arguments".
* set with a missing or empty ``values`` list is 303 (the reference crashes on an empty list);
  ``values[0]`` may be any JSON value, not only a scalar.
* Results (and ThrowReply payloads) reach the reply through one converter, the codec's: a
  datetime in a result is sent as ISO text inside the JSON, not the whole result as a Python
  repr (the reference's ``to_param`` failure path).
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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generator

from dripline.protocol.message import dumps_payload, loads_payload
from dripline.protocol.throw_reply import ThrowReply
from dripline.service.describe import describe
from dripline.service.surface import RequestSurface
from dripline.transport.ratelimit import LimitedLog

if TYPE_CHECKING:
    from dripline.protocol.message import MsgReply, MsgRequest

__all__ = ["RequestHandler"]

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
# result conversion: the codec's, and only the codec's

_SCALAR_TYPES = (type(None), bool, int, str)


def _wire(value: Any) -> Any:
    """`value` as the codec will put it on the wire: JSON data (datetimes in ISO form, numpy as
    numbers, scarab Params as their data, what JSON cannot hold as its str, value by value).

    One conversion policy: the codec's encoder decides, and its output is parsed back, so a
    handler's result is detached from the endpoint's state before the reply leaves the worker
    thread (the reply is encoded later, on the event loop) and in-memory callers see exactly
    what a client will receive.
    """
    if type(value) in _SCALAR_TYPES:
        return value
    return loads_payload(dumps_payload(value))


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


# ---------------------------------------------------------------------------------------------

class RequestHandler:
    """Mix-in that answers requests; the class using it provides ``self.name``.

    Lock state lives in two attributes with class-level defaults, so a subclass that never calls
    this class's ``__init__`` (it has none) still works.
    """

    name: str = ""
    #: the name routes requests to this handler: a request cannot change it
    __dripline_readonly__: tuple[str, ...] = ("name",)
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
        _log.warning((self._handler_label(), "reply"), "%s received a reply message it does not "
                     "handle (routing key %r); ignored", self._handler_label(),
                     str(getattr(message, "routing_key", None))[:100])
        return None

    def on_alert_message(self, message: Any) -> None:
        """An alert delivered to this handler; the default only logs (the reference raises)."""
        _log.warning((self._handler_label(), "alert"), "%s received an alert message it does not "
                     "handle (routing key %r); ignored", self._handler_label(),
                     str(getattr(message, "routing_key", None))[:100])
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
        # every request asks this: test only the callables among the (mostly plain-data) settings
        return any(callable(value) and not name.startswith("_") and _is_user_coroutine(value)
                   for name, value in vars(self).items())

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
        if op_value == _OP_CMD and first in ("lock", "unlock", "ping", "describe"):
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
        if not tokens:
            return None
        try:
            return RequestSurface.of(self).command(self, tokens)
        except ThrowReply:
            return None

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
                if first == "describe":
                    return self._reply(request, _SUCCESS, "", describe(self))
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
            return self._reply(request, err.return_code, err.return_message, err.return_payload)
        except Exception as err:
            _log.exception("%s: unhandled exception while handling a request (specifier %r)",
                           self._handler_label(), str(getattr(request, "specifier", ""))[:100])
            return self._reply(request, _UNHANDLED, f"{type(err).__name__}: {err}")

    def _reply(self, request: MsgRequest, code: int, message: str = "", payload: Any = None) -> MsgReply:
        try:
            return request.reply(code, message, _wire(payload))
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
            payload["tag"] = self._lockout_tag
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
        # the key is a credential (whoever holds it may set and cmd): it goes to the locker only
        who = (request.sender_info or {}).get("service_name") if isinstance(request.sender_info, Mapping) else None
        logger.info("%s locked by %s", self._handler_label(), who or "a client")
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

    @property
    def request_surface(self) -> RequestSurface:
        """The table of what requests may reach on this handler (built once per class)."""
        return RequestSurface.of(self)

    def _get_path(self, request: MsgRequest, allow_override: bool = True) -> _Pipeline:
        override = self._overridden("do_get_request") if allow_override else None
        if override is not None:
            return (yield from self._run_override(override, request))
        tokens = _tokens(request)
        if not tokens:
            result = self.on_get()
            if inspect.isawaitable(result):
                result = yield result
            return self._reply(request, _SUCCESS, "", result)
        value = RequestSurface.of(self).get(self, tokens)
        return self._reply(request, _SUCCESS, "", {"values": [value]})

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
            self._check_set_limits(value)
            result = self.on_set(value)
            if inspect.isawaitable(result):
                result = yield result
            return self._reply(request, _SUCCESS, "", result)
        RequestSurface.of(self).set(self, tokens, value)
        return self._reply(request, _SUCCESS, "", None)

    def _check_set_limits(self, value: Any) -> None:
        """Hook run before ``on_set``: ThrowReply 304 for a value outside declared limits.

        Nothing is declared here; `Endpoint` checks its ``min``/``max``/``allowed``.
        """

    def _cmd_path(self, request: MsgRequest, allow_override: bool = True) -> _Pipeline:
        override = self._overridden("do_cmd_request") if allow_override else None
        if override is not None:
            return (yield from self._run_override(override, request))
        tokens = _tokens(request)
        if not tokens:
            raise ThrowReply(_INVALID_METHOD, "No specifier was provided for an OP_CMD request")
        method = RequestSurface.of(self).command(self, tokens)
        return (yield from self._call_method(request, ".".join(tokens), method))

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
        return self._reply(request, _SUCCESS, "", result)

    def _type_error_text(self, spec: str, err: TypeError) -> str:
        return (f"A TypeError occurred while calling the requested method for endpoint "
                f"{self.name}: {spec}. Values provided may be invalid.\nOriginal error: {err}")

    #: public names a request may not reach, kept for code written against the earlier deny-list
    #: (`RequestSurface` honours it like ``__dripline_hide__``)
    request_denylist: frozenset[str] = frozenset()

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
            return self._reply(request, _SUCCESS, "", reply)
        return reply
