"""``peersync serve DB``: one database's scopes over HTTP (docs/protocol.md)."""

from __future__ import annotations

import click

import peersync

from .app import cli, handle_errors, policy_option, timeout_option

# The server's modules (starlette, uvicorn) load only when serving, so every
# other command starts as fast as before.
_DEFAULT_MAX_BODY = 64 * 1024 * 1024
_DEFAULT_BODY_TIMEOUT = 60.0


@cli.command()
@click.argument("db")
@click.option("--scope", "-s", "scopes", multiple=True, help="A scope to serve (repeat; default: every scope).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8484, show_default=True, type=click.IntRange(0, 65535))
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM): serve https.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM) of --cert.")
@policy_option("Conflict policy of every batch applied here.")
@click.option("--tokens", "tokens", default=None, help="Token file (default: DB.peersync-tokens beside a SQLite file).")
@click.option("--insecure", is_flag=True, help="Allow scopes without a token on a non-loopback address.")
@click.option(
    "--max-body",
    type=click.IntRange(1024),
    default=_DEFAULT_MAX_BODY,
    show_default=True,
    help="Most bytes a body may hold.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1),
    default=_DEFAULT_BODY_TIMEOUT,
    show_default=True,
    help="Seconds for a request body to arrive.",
)
@click.option("--connections", type=click.IntRange(1, 256), default=4, show_default=True, help="Database connections.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes (uvicorn's), each with its own connections.",
)
@timeout_option
@handle_errors
def serve(
    db: str,
    scopes: tuple[str, ...],
    host: str,
    port: int,
    cert: str | None,
    key: str | None,
    policy: str,
    tokens: str | None,
    insecure: bool,
    max_body: int,
    body_timeout: float,
    connections: int,
    workers: int,
    timeout: float,
) -> None:
    """Serve DB's scopes over HTTP until stopped (SIGTERM or Ctrl-C finish
    the requests in flight, then exit).

    GET /health needs no token; a scope that has a token ('peersync token
    add') refuses requests without it. Without tokens, only a loopback
    address is served unless --insecure.
    """
    from peersync._transports.http.limits import Limits
    from peersync._transports.http.runner import Listen
    from peersync._transports.http.runner import serve as run_server
    from peersync.server import ServerConfig

    limits = Limits(max_body=max_body, body_timeout=body_timeout)
    config = ServerConfig(
        db,
        scopes=scopes or None,
        policy=peersync.Policy(policy),
        tokens=tokens,
        limits=limits,
        timeout=timeout,
        connections=connections,
    )
    run_server(config, Listen(host, port, cert, key, insecure, workers))
