"""The ASGI application that serves one database's scopes (docs/protocol.md).

Starlette, because it is a small, typed ASGI toolkit with streaming bodies
both ways and nothing else (no ORM, no validation layer we would bypass: our
codecs are the validation); any ASGI server runs it, and ``peersync serve``
uses uvicorn, the standard production server for ASGI. The app is
importable, so users can mount it in their own ASGI application::

    from starlette.routing import Mount
    from peersync.server import ServerConfig, create_app
    routes = [Mount("/sync", app=create_app(ServerConfig("shop.db")))]

Every refusal is rendered here, once: a status code and an ``error`` message
whose code the client turns back into the same exception class.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response

from peersync._engine import codec
from peersync._engine.database import Database
from peersync._engine.errors import (
    AccessDenied,
    ConfigurationError,
    DatabaseLocked,
    ProtocolError,
    RepairNeeded,
    ReplicaOutdated,
    SchemaMismatch,
    ScopeError,
    SyncError,
    TransportError,
)
from peersync._engine.registry import open_url

from .config import ServerConfig, State
from .limits import Refusal
from .media import COMPRESS_MIN, ERROR, ERROR_HEADER, PREFIX, PROTOCOL
from .pool import Pool
from .routes import routes
from .tokens import TokenStore

log = logging.getLogger("peersync.server")


def status_of(exc: SyncError) -> int:
    """The HTTP status of an error raised while serving a request."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


_STATUS: list[tuple[type[SyncError], int]] = [
    (AccessDenied, 403),
    (ScopeError, 404),
    (ProtocolError, 400),
    (ConfigurationError, 400),
    (SchemaMismatch, 409),
    (ReplicaOutdated, 409),
    (RepairNeeded, 409),
    (DatabaseLocked, 503),
    (TransportError, 502),
]


def error_response(status: int, exc: SyncError, scrub: tuple[str, str] | None = None) -> Response:
    """``exc`` as the reply; ``scrub`` replaces a text (the database's path on
    the server's disk, which clients have no business knowing) by another."""
    headers = {ERROR_HEADER: type(exc).code}
    if status == 401:
        headers["www-authenticate"] = 'Bearer realm="peersync"'
    if status == 503:
        headers["retry-after"] = "1"
    one_line = str(exc).replace("\r", " ").replace("\n", " ")
    if scrub is not None:
        one_line = one_line.replace(*scrub)
    return Response(codec.ERROR.encode(type(exc)(one_line)), status_code=status, media_type=ERROR, headers=headers)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return error_response(exc.status, exc.error)


async def _failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SyncError)
    status = status_of(exc)
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(status, exc, request.app.state.peersync.scrub)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if exc.status_code == 404 and not (path.startswith(PREFIX + "/") or path == "/health"):
        msg = f"no such endpoint {path!r}: this server speaks protocol v{PROTOCOL} (paths under {PREFIX}/)"
    elif exc.status_code == 405:
        msg = f"{request.method} is not allowed on {path}"
    else:
        msg = f"{exc.status_code}: {exc.detail}"
    return error_response(exc.status_code, ProtocolError(msg))


def create_app(config: ServerConfig) -> Starlette:
    """The ASGI application serving ``config.database``. Opening a database
    connection is lazy: a bad database URL shows on the first request (the
    ``peersync serve`` command checks it before listening)."""

    def open_db() -> Database:
        return open_url(config.database, timeout=config.timeout)

    state = State(config, Pool(open_db, config.connections), TokenStore(config.token_file()))
    if "://" not in config.database:  # a file path: error messages name it by its file name only
        state.scrub = (os.path.abspath(config.database), os.path.basename(config.database))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.pool.close()

    app = Starlette(
        routes=routes(state),
        middleware=[Middleware(GZipMiddleware, minimum_size=COMPRESS_MIN)],
        exception_handlers={Refusal: _refused, SyncError: _failed, HTTPException: _http},
        lifespan=lifespan,
    )
    app.state.peersync = state
    return app
