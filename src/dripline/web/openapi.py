"""The OpenAPI 3.1 description of dl-http-server's routes, served at ``/openapi.json``.

Written out by hand rather than generated: the gateway has few routes, and what matters to a
client (the dripline headers, the status mapping, which calls need a login) is prose a generator
would not know.
"""
from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_PATH_PARAM = {"name": "path", "in": "path", "required": True,
               "description": "routing key with '/' for '.', e.g. my_store/peaches for my_store.peaches",
               "schema": {"type": "string"}}
_HEADERS_IN = [
    {"name": "specifier", "in": "header", "required": False,
     "description": "dripline specifier (attribute or command name)", "schema": {"type": "string"}},
    {"name": "lockout-key", "in": "header", "required": False,
     "description": "lockout key (a UUID) of a locked endpoint", "schema": {"type": "string", "format": "uuid"}},
]
_CSRF = {"name": "X-CSRF-Token", "in": "header", "required": False,
         "description": "with a browser session (cookie): the session's CSRF token from /session",
         "schema": {"type": "string"}}
_REPLY_HEADERS = {
    "dl_return_code": {"description": "the dripline return code of the reply", "schema": {"type": "integer"}},
    "dl_return_message": {"description": "the reply's return message (printable ASCII, cut)",
                          "schema": {"type": "string"}},
}
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _reply(description: str) -> dict[str, Any]:
    return {"description": description, "headers": _REPLY_HEADERS,
            "content": {"application/json": {"schema": {"description": "the reply payload"}}}}


def _refusal(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


_STATUS_TEXT = ("The HTTP status follows the dripline return code (dl_return_code): 0 and warnings "
                "(1-99) 200; 102 404; 201-203 503; 300-302 400; 303/304/310 422; 305 503; 306 501; "
                "307 403; 308 423; 401 400; 403 (nobody bound to the key) 503; 404 (timeout) 504; "
                "other codes by their hundred (1xx/4xx/999 500, 2xx 503, 3xx 400).")


def _operation(op: str, summary: str, body: dict | None, write: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": _reply("the endpoint answered with return code 0 (or a warning)"),
        "default": _reply("the endpoint answered with an error code, or the request could not be "
                          "delivered (dl_return_code 403) or timed out (404)"),
        "400": _refusal("bad routing key, specifier, lockout key or JSON body"),
        "413": _refusal("body too large"),
        "503": _refusal("too many requests in flight: try again (Retry-After)"),
    }
    if write:
        responses["401"] = _refusal("no valid login (Bearer token, Basic auth or session)")
        responses["403"] = _refusal("cross-site request or missing CSRF token")
        responses["415"] = _refusal("the body must be application/json")
    operation: dict[str, Any] = {
        "summary": summary, "operationId": op, "description": _STATUS_TEXT,
        "parameters": [_PATH_PARAM, *_HEADERS_IN, *([_CSRF] if write else [])],
        "responses": responses,
    }
    if write:
        operation["security"] = [{"bearer": []}, {"basic": []}, {"session": []}]
    if body is not None:
        operation["requestBody"] = {"required": op == "set", "content": {"application/json": {"schema": body}}}
    return operation


def openapi_document(version: str) -> dict[str, Any]:
    """The document (a plain dict, JSON-serialisable)."""
    values = {"type": "array", "items": {}}
    set_body = {"oneOf": [
        {"type": "object", "properties": {"values": {**values, "minItems": 1}}, "required": ["values"],
         "description": "values[0] is the new value; further keys are sent as they are"},
        {"not": {"type": "object"}, "description": "a bare JSON value: the new value"}]}
    cmd_body = {"oneOf": [
        {"type": "object", "properties": {"values": values},
         "description": "values: positional arguments; every other key: a keyword argument"},
        {"type": "array", "description": "the positional arguments"}]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "dl-http-server", "version": version,
                 "description": "HTTP gateway to a dripline mesh: get, set and cmd over HTTP, and a "
                                "live page of the mesh at /. Gets are open; sets and cmds need a login."},
        "paths": {
            "/dl/{path}": {
                "get": _operation("get", "dripline get", None, False),
                "put": _operation("set", "dripline set", set_body, True),
                "post": _operation("cmd", "dripline cmd (specifier header: the command)", cmd_body, True),
            },
            "/hello": {"get": {"summary": "liveness", "operationId": "hello", "responses": {
                "200": {"description": "Hello, world", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/api/mesh": {"get": {"summary": "the live page's state: services, endpoints, values, recent alerts",
                                  "operationId": "mesh", "responses": {"200": {
                                      "description": "snapshot", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/events": {"get": {"summary": "Server-Sent Events: a snapshot, then batches of changes",
                                "operationId": "events", "responses": {
                                    "200": {"description": "event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                                    "503": _refusal("too many pages open")}}},
            "/login": {"post": {"summary": "browser login: sets an HttpOnly session cookie",
                                "operationId": "login",
                                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                                    "type": "object", "required": ["username", "password"],
                                    "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}}}},
                                "responses": {"200": {"description": "logged in; the body holds the CSRF token",
                                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                                              "401": _refusal("wrong user name or password"),
                                              "429": _refusal("too many failed logins from this address")}}},
            "/logout": {"post": {"summary": "end the browser session", "operationId": "logout",
                                 "parameters": [_CSRF],
                                 "responses": {"200": {"description": "logged out"}}}},
            "/session": {"get": {"summary": "who is logged in, and the session's CSRF token",
                                 "operationId": "session", "responses": {"200": {
                                     "description": "session", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/openapi.json": {"get": {"summary": "this document", "operationId": "openapi", "responses": {
                "200": {"description": "OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "a token listed (as its SHA-256) under http.tokens in the auth file"},
            "basic": {"type": "http", "scheme": "basic",
                      "description": "a user of http.users in the auth file"},
            "session": {"type": "apiKey", "in": "cookie", "name": "dl_session",
                        "description": "browser session from /login; writes also need X-CSRF-Token"},
        }},
    }
