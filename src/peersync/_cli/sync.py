"""``peersync sync A B``: one or both one-way sessions between two databases."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

import peersync
from peersync._engine.session import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, INITIAL_BATCH_ROWS, MAX_BATCH

from .app import _fail, ca_option, cli, handle_errors, open_db, out, policy_option, timeout_option, token_option
from .progress import progress_bar


def _limit(name: str, least: int, default: int | str, help: str) -> Callable[[Any], Any]:
    if isinstance(default, str):  # chosen per session: the default is None, shown as ``default``
        return click.option(name, type=click.IntRange(least, MAX_BATCH), default=None, show_default=default, help=help)
    return click.option(name, type=click.IntRange(least, MAX_BATCH), default=default, show_default=True, help=help)


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--scope", "-s", required=True)
@click.option(
    "--direction",
    "-d",
    type=click.Choice(["both", "push", "pull"]),
    default="both",
    show_default=True,
    help="push: A's changes to B; pull: B's to A; both: push then pull.",
)
@_limit(
    "--batch-size",
    1,
    f"{DEFAULT_BATCH_ROWS}; {INITIAL_BATCH_ROWS} while the destination knows none of the source's changes",
    "Most rows per batch (one transaction each).",
)
@_limit("--batch-bytes", 1024, DEFAULT_BATCH_BYTES, "About the most bytes per batch.")
@policy_option("Conflict policy.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@token_option
@ca_option
@timeout_option
@handle_errors
def sync(
    a: str,
    b: str,
    scope: str,
    direction: str,
    batch_size: int | None,
    batch_bytes: int,
    policy: str,
    as_json: bool,
    token: str | None,
    ca: str | None,
    timeout: float,
) -> None:
    """Synchronize SCOPE between databases A and B.

    Each batch commits with the knowledge it teaches: an error keeps what was
    committed before it. If the pull half fails, the push half has completed
    (the error line says what it sent; --json still prints it).

    A or B may be a served peer, http://host:port or https://...: a served
    destination resolves conflicts by its own policy (set at 'peersync serve').
    """
    with open_db(a, timeout, token, ca) as da, open_db(b, timeout, token, ca) as db_:
        names = {da.url: a, db_.url: b}
        try:
            with progress_bar(not as_json, names) as on_progress:
                r = peersync.sync(
                    da,
                    db_,
                    scope,
                    direction=direction,
                    batch_size=batch_size,
                    batch_bytes=batch_bytes,
                    policy=peersync.Policy(policy),
                    on_progress=on_progress,
                )
        except peersync.SyncError as exc:
            if exc.result is None:
                raise
            if as_json:
                click.echo(json.dumps(exc.result.to_dict()))
            push = exc.result.sessions[0]
            _fail(
                f"{exc} (the pull half failed; the push half {a} -> {b} had completed and stays committed:"
                f" {push.sent} rows sent, {push.applied} applied)"
            )
    if as_json:
        click.echo(json.dumps(r.to_dict()))
        return
    from rich.table import Table  # here: a sync printing JSON never imports rich

    t = Table(title=f"sync {scope}: {a} <-> {b}")
    for col in ("session", "sent", "applied", "known", "conflicts", "errors", "batches", "bytes"):
        t.add_column(col, justify="left" if col == "session" else "right")
    for s in r.sessions:
        t.add_row(
            f"{names[s.source]} -> {names[s.destination]}",
            str(s.sent),
            str(s.applied),
            str(s.skipped_known),
            str(s.conflicts),
            str(s.errors),
            str(s.batches),
            str(s.bytes),
        )
    out.print(t)
    if not r.completed:
        out.print("not completed: the source kept changing; what was sent is committed, sync again for the rest")
    out.print(f"done in {r.seconds * 1000:.1f} ms")
