"""``peersync clone``: a new replica from a snapshot of an existing one."""

from __future__ import annotations

import click

import peersync

from .app import ca_option, cli, handle_errors, timeout_option, token_option


@cli.command()
@click.argument("src")
@click.argument("dst")
@click.option("--scope", "-s", required=True, help="The scope DST becomes a new replica of.")
@timeout_option
@token_option
@ca_option
@handle_errors
def clone(src: str, dst: str, scope: str, timeout: float, token: str | None, ca: str | None) -> None:
    """Make DST, a new SQLite database, from a consistent snapshot of SRC
    (which may be in use): a new replica of SCOPE that knows what SRC knew, so
    their first sync sends nothing. Other scopes of SRC are not replicas in DST
    (their tables stay as plain data). SRC may be a PostgreSQL or MariaDB
    database (the scope's tables alone are made in DST) or a server
    (http://host:8484, a read token suffices): it streams the scope's tables
    alone. DST must not exist."""
    st = peersync.clone(src, dst, scope, timeout=timeout, token=token, ca=ca)
    click.echo(
        f"cloned scope {scope} of {src} into {dst}: replica {st.replica_id.hex()},"
        f" {st.tracked_rows} rows tracked, tick {st.tick}"
    )
