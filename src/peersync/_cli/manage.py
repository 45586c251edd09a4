"""Subcommands that set a database up and keep its tracking sound: init, deprovision, reidentify, repair."""

from __future__ import annotations

import click

import peersync

from .app import db_command, flag, names_lines, out


@db_command(
    click.option("--table", "-t", "tables", multiple=True, required=True, help="A table of the scope (repeatable)."),
    flag(
        "--migrate",
        "The scope exists and its tables' columns changed: keep every row's tracking (run on every peer).",
    ),
    click.option(
        "--names",
        "names_file",
        type=click.Path(dir_okay=False),
        help="TOML file mapping the scope's table and column names to DB's own, where they differ.",
    ),
)
def init(db: str, scope: str, tables: tuple[str, ...], migrate: bool, names_file: str | None, timeout: float) -> None:
    """Provision SCOPE over the given tables of DB (idempotent).

    Tables are named by the scope's (global) names; with --names, DB's own
    names where they differ (see "Names that differ" in the README)."""
    names = peersync.load_names(names_file) if names_file is not None else None  # a bad file: before connecting
    with peersync.connect(db, timeout=timeout) as d:
        if migrate:
            if names is not None:
                raise peersync.ConfigurationError("--names is given at provisioning; --migrate keeps the stored names")
            report = d.migrate(scope, list(tables))
            st = d.status(scope)[0]
            verb = "migrated" if report.migrated or report.retracked else "nothing to migrate in"
            out.print(f"{verb} scope [bold]{scope}[/] in {db}: {', '.join(st.tables)}; {st.tracked_rows} rows tracked")
            _print_repair(report, db)
            return
        created = d.provision(scope, list(tables), names=names)
        st = d.status(scope)[0]
    verb = "provisioned" if created else "already provisioned, unchanged:"
    out.print(f"{verb} scope [bold]{scope}[/] in {db}: {', '.join(st.tables)}; {st.tracked_rows} rows tracked")
    for line in names_lines(st.names):
        out.print(f"  {line}")


@db_command()
def deprovision(db: str, scope: str, timeout: float) -> None:
    """Remove every peersync object of SCOPE from DB; user data stays."""
    with peersync.connect(db, timeout=timeout) as d:
        d.deprovision(scope)
    out.print(f"deprovisioned scope [bold]{scope}[/] from {db}")


@db_command(flag("--moved", "DB is the same database moved (its old file is no longer used): keep the replica id."))
def reidentify(db: str, scope: str, moved: bool, timeout: float) -> None:
    """Give SCOPE in DB a new replica id (a copied file or a restored backup)."""
    with peersync.connect(db, timeout=timeout) as d:
        rid = d.reidentify(scope, moved=moved)
    if moved:
        out.print(f"scope [bold]{scope}[/] in {db} stays replica {rid.hex()}, recorded at its new place")
    else:
        out.print(f"scope [bold]{scope}[/] in {db} is now replica {rid.hex()}")


@db_command(
    flag(
        "--restamp", "Also make every live row a new local change: rows updated while untracked then reach every peer."
    )
)
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


@db_command(all_scopes=True)
def compact(db: str, scope: str | None, timeout: float) -> None:
    """Drop superseded change-log entries (maintenance; each received session does it too)."""
    with peersync.connect(db, timeout=timeout) as d:
        d.compact(scope)
    out.print(f"compacted {'scope ' + scope if scope else 'every scope'} in {db}")
