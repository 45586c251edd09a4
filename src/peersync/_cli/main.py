"""The ``peersync`` command: a thin layer over the public API.

Every :class:`~peersync.SyncError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

import peersync
from peersync._adapters.sqlite.peer import MAX_TIMEOUT
from peersync._engine.session import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, MAX_BATCH

from .clone import clone

F = TypeVar("F", bound=Callable[..., Any])
EXIT_ERROR = 2

out = Console(highlight=False)


def _fail(msg: str) -> None:
    one_line = msg.replace("\r", "\\r").replace("\n", "\\n")  # names may hold line breaks
    click.echo(f"peersync: error: {one_line}", err=True)
    sys.exit(EXIT_ERROR)


def handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except peersync.SyncError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted")

    return wrapper  # type: ignore[return-value]


timeout_option = click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0, max=MAX_TIMEOUT),
    help="Seconds to wait for another writer's lock.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(peersync.__version__, prog_name="peersync")
def cli() -> None:
    """Peer-to-peer, multi-master sync of SQLite databases.

    DB is a path or sqlite:///path. Errors print one line and exit 2.
    """


@cli.command()
@click.argument("db")
@click.option("--scope", "-s", required=True, help="Scope name.")
@click.option("--table", "-t", "tables", multiple=True, required=True, help="A table of the scope (repeatable).")
@click.option(
    "--migrate",
    is_flag=True,
    help="The scope exists and its tables' columns changed: keep every row's tracking (run on every peer).",
)
@timeout_option
@handle_errors
def init(db: str, scope: str, tables: tuple[str, ...], migrate: bool, timeout: float) -> None:
    """Provision SCOPE over the given tables of DB (idempotent)."""
    with peersync.connect(db, timeout=timeout) as d:
        if migrate:
            report = d.migrate(scope, list(tables))
            st = d.status(scope)[0]
            verb = "migrated" if report.migrated or report.retracked else "nothing to migrate in"
            out.print(f"{verb} scope [bold]{scope}[/] in {db}: {', '.join(st.tables)}; {st.tracked_rows} rows tracked")
            _print_repair(report, db)
            return
        created = d.provision(scope, list(tables))
        st = d.status(scope)[0]
    verb = "provisioned" if created else "already provisioned, unchanged:"
    out.print(f"{verb} scope [bold]{scope}[/] in {db}: {', '.join(st.tables)}; {st.tracked_rows} rows tracked")


@cli.command()
@click.argument("db")
@click.option("--scope", "-s", required=True)
@timeout_option
@handle_errors
def deprovision(db: str, scope: str, timeout: float) -> None:
    """Remove every peersync object of SCOPE from DB; user data stays."""
    with peersync.connect(db, timeout=timeout) as d:
        d.deprovision(scope)
    out.print(f"deprovisioned scope [bold]{scope}[/] from {db}")


@cli.command()
@click.argument("db")
@click.option("--scope", "-s", required=True)
@click.option(
    "--moved",
    is_flag=True,
    help="DB is the same database moved (its old file is no longer used): keep the replica id.",
)
@timeout_option
@handle_errors
def reidentify(db: str, scope: str, moved: bool, timeout: float) -> None:
    """Give SCOPE in DB a new replica id (a copied file or a restored backup)."""
    with peersync.connect(db, timeout=timeout) as d:
        rid = d.reidentify(scope, moved=moved)
    if moved:
        out.print(f"scope [bold]{scope}[/] in {db} stays replica {rid.hex()}, recorded at its new place")
    else:
        out.print(f"scope [bold]{scope}[/] in {db} is now replica {rid.hex()}")


@cli.command()
@click.argument("db")
@click.option("--scope", "-s", required=True)
@click.option(
    "--restamp",
    is_flag=True,
    help="Also make every live row a new local change: rows updated while untracked then reach every peer.",
)
@timeout_option
@handle_errors
def repair(db: str, scope: str, restamp: bool, timeout: float) -> None:
    """Recreate SCOPE's lost or outdated triggers (a rebuilt table) and track what changed meanwhile."""
    with peersync.connect(db, timeout=timeout) as d:
        report = d.repair(scope, restamp=restamp)
    if not (report.retracked or report.restamped):
        out.print(f"scope [bold]{scope}[/] in {db}: tracking intact, nothing to repair")
    _print_repair(report, db)


def _print_repair(r: peersync.RepairReport, db: str) -> None:
    if r.retracked:
        out.print(f"triggers recreated on {', '.join(r.retracked)}")
    if r.inserted or r.deleted:
        out.print(f"{r.inserted} rows inserted and {r.deleted} deleted while untracked are now local changes")
    if r.restamped:
        out.print(f"{r.restamped} rows re-stamped as local changes")
    if r.untracked and not r.restamped:
        click.echo(
            f"peersync: warning: rows of {', '.join(r.untracked)} updated while the triggers were missing cannot"
            f" be detected; if any program may have updated them, run 'peersync repair {db} --scope {r.scope}"
            " --restamp'",
            err=True,
        )


cli.command()(timeout_option(handle_errors(clone)))


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
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=MAX_BATCH),
    default=DEFAULT_BATCH_ROWS,
    show_default=True,
    help="Most rows per batch.",
)
@click.option(
    "--batch-bytes",
    type=click.IntRange(min=1024, max=MAX_BATCH),
    default=DEFAULT_BATCH_BYTES,
    show_default=True,
    help="About the most bytes per batch.",
)
@click.option(
    "--policy",
    type=click.Choice([p.value for p in peersync.Policy]),
    default=peersync.Policy.LAST_WRITER_WINS.value,
    show_default=True,
    help="Conflict policy.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@timeout_option
@handle_errors
def sync(
    a: str,
    b: str,
    scope: str,
    direction: str,
    batch_size: int,
    batch_bytes: int,
    policy: str,
    as_json: bool,
    timeout: float,
) -> None:
    """Synchronize SCOPE between databases A and B.

    Each batch commits with the knowledge it teaches: an error keeps what was
    committed before it. If the pull half fails, the push half has completed
    (the error line says what it sent; --json still prints it).
    """
    with peersync.connect(a, timeout=timeout) as da, peersync.connect(b, timeout=timeout) as db_:
        names = {da.url: a, db_.url: b}
        try:
            r = peersync.sync(
                da,
                db_,
                scope,
                direction=direction,
                batch_size=batch_size,
                batch_bytes=batch_bytes,
                policy=peersync.Policy(policy),
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


@cli.command()
@click.argument("db")
@click.option("--scope", "-s", default=None, help="One scope (default: all).")
@click.option("--json", "as_json", is_flag=True)
@timeout_option
@handle_errors
def status(db: str, scope: str | None, as_json: bool, timeout: float) -> None:
    """Replica id, tick, knowledge, tracked rows, tombstones and conflicts."""
    with peersync.connect(db, timeout=timeout) as d:
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
        t.add_row("tracked rows", str(s.tracked_rows))
        t.add_row("tombstones", str(s.tombstones))
        t.add_row("conflicts logged", str(s.conflicts))
        t.add_row("pending rows", f"{s.pending} (failed or deferred; they come again)" if s.pending else "0")
        out.print(t)


@cli.command()
@click.argument("db")
@click.option("--scope", "-s", default=None)
@click.option("--json", "as_json", is_flag=True)
@timeout_option
@handle_errors
def conflicts(db: str, scope: str | None, as_json: bool, timeout: float) -> None:
    """The conflict log: both sides, type, policy and outcome."""
    with peersync.connect(db, timeout=timeout) as d:
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


@cli.command()
@click.option(
    "--keep",
    type=click.Path(file_okay=False),
    default=None,
    help="Build the peers in this folder and keep them (default: a temporary folder).",
)
@handle_errors
def demo(keep: str | None) -> None:
    """Three peers, concurrent edits, a sync loop P1 -> P2 -> P3 -> P1."""
    from .demo import run_demo

    sys.exit(0 if run_demo(out, keep) else 1)


def main() -> None:
    """Entry point: click's own usage errors also become one line and exit 2."""
    try:
        cli.main(prog_name="peersync", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(EXIT_ERROR)
    except click.UsageError as exc:
        hint = f" (see 'peersync {exc.ctx.command.name} --help')" if exc.ctx and exc.ctx.command.name else ""
        _fail(exc.format_message().replace("\n", " ") + hint)
    except click.ClickException as exc:
        _fail(exc.format_message())
    except click.exceptions.Abort:
        _fail("aborted")
