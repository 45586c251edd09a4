"""``peersync serve``: check what is to be served, then run the app on uvicorn.

Checks before listening: the database opens, every named scope exists, TLS
needs both a certificate and its key, and a scope without a token is served
only on a loopback address unless the caller says ``insecure`` (an open
scope on a network address is anyone's to read and write). The socket is
bound here, before the "serving" line, and handed to uvicorn: a busy port is
one error line.

uvicorn stops on SIGTERM or SIGINT by refusing new connections and letting
requests in flight finish (an ``apply`` in hand commits or rolls back in its
own transaction), then closes the database connections.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from peersync._engine.errors import ConfigurationError, ScopeError
from peersync._engine.registry import is_loopback, open_url

from .app import create_app
from .config import ServerConfig
from .limits import Limits
from .tokens import TokenStore


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8484
    cert: str | None = None
    key: str | None = None
    insecure: bool = False
    workers: int = 1


CONFIG_ENV = "PEERSYNC_SERVE_CONFIG"


def _to_env(config: ServerConfig) -> str:
    data = dataclasses.asdict(config)
    data["policy"] = config.policy.value
    return json.dumps(data)


def app_from_env() -> Starlette:
    """The app of a worker process (``serve --workers N``): its config comes
    from the parent through :data:`CONFIG_ENV`."""
    from peersync._engine.model import Policy

    data = json.loads(os.environ[CONFIG_ENV])
    data["policy"] = Policy(data["policy"])
    data["limits"] = Limits(**data["limits"])
    data["scopes"] = tuple(data["scopes"]) if data["scopes"] is not None else None
    return create_app(ServerConfig(**data))


def check(config: ServerConfig, listen: Listen) -> tuple[str, ...]:
    """The scopes to serve, after the checks above. Raises
    :class:`~peersync.ConfigurationError` or :class:`~peersync.ScopeError`."""
    if (listen.cert is None) != (listen.key is None):
        raise ConfigurationError("TLS needs both --cert and --key")
    with open_url(config.database, timeout=config.timeout) as db:
        present = db.scopes()
    if config.scopes is not None:
        missing = [s for s in config.scopes if s not in present]
        if missing:
            raise ScopeError(f"{config.database} has no scope {', '.join(map(repr, missing))}")
    scopes = config.scopes if config.scopes is not None else tuple(present)
    if not scopes:
        raise ScopeError(f"{config.database} has no scopes to serve; run 'peersync init' first")
    store = TokenStore(config.token_file())
    open_scopes = [s for s in scopes if not store.guarded(s)]
    if open_scopes and not is_loopback(listen.host) and not listen.insecure:
        raise ConfigurationError(
            f"refusing to serve scope {', '.join(map(repr, open_scopes))} without a token on {listen.host}"
            " (anyone who reaches it could read and write): add one with 'peersync token add',"
            " listen on 127.0.0.1, or pass --insecure"
        )
    return scopes


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on ``host`` (an address, or a name: each of its
    addresses) and ``port`` (0: one free port for all). Bound here, before
    anything is announced, so a busy port is one clear error, not a
    "serving" line followed by uvicorn's. Raises
    :class:`~peersync.ConfigurationError`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot listen on {host}: {exc.strerror}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in infos:
            if any(s.family == family and s.getsockname()[0] == addr[0] for s in sockets):
                continue  # a name may list one address twice
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if sockets[0] is not sock:  # port 0: the port the first one got
                addr = (addr[0], sockets[0].getsockname()[1], *addr[2:])
            try:
                sock.bind(addr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigurationError(f"port {port} on {host} is in use") from exc
                raise ConfigurationError(f"cannot listen on {host} port {port}: {exc.strerror}") from exc
            sock.listen(2048)
            sock.set_inheritable(True)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def serve(config: ServerConfig, listen: Listen) -> None:
    """Serve until SIGTERM or SIGINT. Prints one line when listening."""
    scopes = check(config, listen)
    sockets = bind(listen.host, listen.port)
    scheme = "https" if listen.cert else "http"
    logging.basicConfig(level=logging.WARNING, format="peersync serve: %(message)s")
    options: dict[str, Any] = dict(
        host=listen.host,
        port=listen.port,
        ssl_certfile=listen.cert,
        ssl_keyfile=listen.key,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    port = sockets[0].getsockname()[1]
    workers = f", {listen.workers} worker processes" if listen.workers > 1 else ""
    print(
        f"serving {config.database} ({', '.join(scopes)}) on {scheme}://{host}:{port}"
        f" with policy {config.policy.value}{workers}",
        file=sys.stderr,
        flush=True,
    )
    if listen.workers > 1:
        # uvicorn's supervisor starts the workers (each imports the app
        # through the factory and reads the config from the environment),
        # restarts one that dies, and stops them all on SIGTERM or SIGINT.
        # The sockets bound above are handed to it, as to the single server.
        os.environ[CONFIG_ENV] = _to_env(config)
        supervised = uvicorn.Config(f"{__name__}:app_from_env", factory=True, workers=listen.workers, **options)
        try:
            Multiprocess(supervised, sockets=sockets).run()
        finally:
            for sock in sockets:
                sock.close()
        return
    server = uvicorn.Server(uvicorn.Config(create_app(config), **options))
    # uvicorn handles SIGTERM and SIGINT while it runs (no new connections,
    # requests in flight finish), then raises the signal again for the
    # handler found before it: this one, so the process ends with status 0.
    stopped: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopped.append(signum))
    try:
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
    if stopped:
        print(f"stopped by {signal.Signals(stopped[0]).name}", file=sys.stderr, flush=True)
