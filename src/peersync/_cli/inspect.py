"""Read-only subcommands: status and the conflict log."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

import peersync

from .app import ca_option, db_command, json_option, names_lines, open_db, out, token_option


@db_command(json_option, token_option, ca_option, all_scopes=True)
def status(db: str, scope: str | None, as_json: bool, token: str | None, ca: str | None, timeout: float) -> None:
    """Replica id, tick, knowledge, tracked rows, tombstones and conflicts.

    DB may be a served peer (http://host:port): its scopes that the token may read."""
    with open_db(db, timeout, token, ca) as d:
        sts = d.status(scope)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in sts] if scope is None else sts[0].to_dict()))
        return
    if not sts:
        out.print(f"{db}: no scopes")
    for s in sts:
        t = Table(title=f"scope {s.scope} in {db}", show_header=False)
        t.add_column("field", style="bold")
        t.add_column("value")
        t.add_row("replica id", s.replica_id.hex())
        t.add_row("tick", str(s.tick))
        t.add_row("knowledge", s.knowledge.describe())
        t.add_row("forgotten", s.forgotten.describe())
        t.add_row("fingerprint", s.fingerprint)
        t.add_row("tables", ", ".join(s.tables))
        if s.names:
            t.add_row("names here", "\n".join(names_lines(s.names)))
        t.add_row("tracked rows", str(s.tracked_rows))
        t.add_row("tombstones", str(s.tombstones))
        t.add_row("conflicts logged", str(s.conflicts))
        t.add_row("pending rows", f"{s.pending} (failed or deferred; they come again)" if s.pending else "0")
        out.print(t)


@db_command(json_option, token_option, ca_option, all_scopes=True)
def conflicts(db: str, scope: str | None, as_json: bool, token: str | None, ca: str | None, timeout: float) -> None:
    """The conflict log: both sides, type, policy and outcome."""
    with open_db(db, timeout, token, ca) as d:
        cs = d.conflicts(scope)
    if as_json:
        click.echo(json.dumps([c.to_dict() for c in cs], default=str))
        return
    print_conflicts(cs, title=f"conflicts in {db}")


def print_conflicts(cs: list[peersync.Conflict], title: str) -> None:
    if not cs:
        out.print(f"{title}: none")
        return
    t = Table(title=title)
    for col in ("table", "key", "type", "local", "remote", "policy", "outcome"):
        t.add_column(col)
    for c in cs:
        t.add_row(
            c.table,
            ",".join(map(str, c.key)),
            c.type.value,
            _short(c.local_row),
            _short(c.remote_row),
            c.policy,
            (c.outcome.value if c.outcome else "") + (f" ({c.detail})" if c.detail else ""),
        )
    out.print(t)


def _short(row: dict[str, Any] | None) -> str:
    return "(deleted)" if row is None else json.dumps(row, ensure_ascii=False, default=str)
