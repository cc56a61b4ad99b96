"""The mesh in a browser: the HTTP gateway (``dl-http-server``) and the live page it serves.

Installed with the ``web`` extra (``pip install 'dripline[web]'``), so that the base install and
``dl-agent``'s start-up never load an HTTP framework. `create_app` builds the aiohttp application
around one `AsyncInterface`; `dripline.cli.http_server` is the command.
"""
from __future__ import annotations

__all__ = ["create_app", "GatewaySettings"]


def __getattr__(name: str):  # lazy: importing dripline.web.auth must not import aiohttp
    if name in __all__:
        from dripline.web import app
        return getattr(app, name)
    raise AttributeError(f"module 'dripline.web' has no attribute {name!r}")
