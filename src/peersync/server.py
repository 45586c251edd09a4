"""Serving a database over HTTP, for users who mount it in their own ASGI
application or run it under their own server (``peersync serve`` runs it on
uvicorn). The protocol is docs/protocol.md.

>>> from peersync.server import ServerConfig, create_app  # doctest: +SKIP
>>> app = create_app(ServerConfig("shop.db", scopes=("shop",)))  # doctest: +SKIP
>>> # uvicorn module:app, or Mount("/sync", app=app) in a Starlette app
"""

from __future__ import annotations

from ._transports.http.app import create_app
from ._transports.http.config import ServerConfig
from ._transports.http.limits import Limits
from ._transports.http.tokens import Right, Token, TokenStore, store_path

__all__ = ["Limits", "Right", "ServerConfig", "Token", "TokenStore", "create_app", "store_path"]
