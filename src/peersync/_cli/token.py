"""``peersync token add|list|revoke DB``: the bearer tokens of a served database.

Run on the server's host. A token is printed once, alone on the last line of
stdout (``TOKEN=$(peersync token add ... | tail -n1)``); only its hash is kept.
"""

from __future__ import annotations

import json
import time

import click
from rich.table import Table

from peersync._engine.errors import ScopeError
from peersync._transports.http.tokens import Right, TokenStore, store_path

from .app import cli, handle_errors, json_option, open_db, out, timeout_option

tokens_option = click.option("--tokens", "tokens", default=None, help="Token file (default: beside a SQLite DB).")


def _store(db: str, tokens: str | None) -> TokenStore:
    """The token file of ``db``, once ``db`` opens: a mistyped path must not
    read as a database without tokens (whose scopes are open)."""
    with open_db(db, 5.0):
        pass
    return TokenStore(tokens if tokens is not None else store_path(db))


@cli.group()
def token() -> None:
    """Bearer tokens for 'peersync serve': add, list, revoke."""


@token.command("add")
@click.argument("db")
@click.option("--scope", "-s", "scopes", multiple=True, required=True, help="A scope it grants (repeat).")
@click.option(
    "--rights", type=click.Choice([r.value for r in Right]), required=True, help="read: pull; write: also push."
)
@tokens_option
@timeout_option
@handle_errors
def add(db: str, scopes: tuple[str, ...], rights: str, tokens: str | None, timeout: float) -> None:
    """Make a token for SCOPEs of DB and print it (once: it is not stored)."""
    with open_db(db, timeout) as d:
        present = d.scopes()
    missing = [s for s in scopes if s not in present]
    if missing:
        raise ScopeError(f"{db} has no scope {', '.join(map(repr, missing))}")
    record, secret = _store(db, tokens).add(scopes, Right(rights))
    click.echo(f"token {record.id}: {rights} on {', '.join(record.scopes)} (shown once; store it now)", err=True)
    click.echo(secret)


@token.command("list")
@click.argument("db")
@tokens_option
@json_option
@handle_errors
def list_(db: str, tokens: str | None, as_json: bool) -> None:
    """The tokens of DB: id, scopes, rights, creation (never the secret)."""
    records = sorted(_store(db, tokens).tokens().values(), key=lambda t: (t.created, t.id))
    if as_json:
        click.echo(json.dumps([t.public() for t in records]))
        return
    if not records:
        out.print(f"{db}: no tokens (its scopes are open to loopback clients)")
        return
    t = Table(title=f"tokens of {db}")
    for col in ("id", "scopes", "rights", "created"):
        t.add_column(col)
    for r in records:
        t.add_row(r.id, ", ".join(r.scopes), r.right.value, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.created)))
    out.print(t)


@token.command()
@click.argument("db")
@click.argument("token_id")
@tokens_option
@handle_errors
def revoke(db: str, token_id: str, tokens: str | None) -> None:
    """Revoke token TOKEN_ID of DB: a running server refuses it at once."""
    record = _store(db, tokens).revoke(token_id)
    click.echo(f"revoked token {record.id} ({record.right.value} on {', '.join(record.scopes)})")
