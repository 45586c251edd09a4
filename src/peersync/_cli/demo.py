"""``peersync demo``: the collaboration scenario in one command.

Three SQLite peers each edit the same task list while apart, then sync in a
loop P1 -> P2 -> P3 -> P1 with no server. The demo prints what every session
sent, the conflicts and how they were resolved, and checks that all three
databases end identical.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

import peersync

from .app import cli, handle_errors, out

SCHEMA = """
CREATE TABLE project (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE task (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES project(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    owner TEXT
);
"""
TABLES = ["project", "task"]
SCOPE = "tasks"


def _exec(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    """A plain program writing through sqlite3: peersync's triggers track it."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.close()


def _rows(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    rows = [("project", *r) for r in conn.execute("SELECT * FROM project ORDER BY id")]
    rows += [("task", *r) for r in conn.execute("SELECT * FROM task ORDER BY id")]
    conn.close()
    return rows


def run_demo(out: Console, folder: str | None = None) -> bool:
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="peersync-demo-") as tmp:
            return _run(out, Path(tmp))
    Path(folder).mkdir(parents=True, exist_ok=True)
    return _run(out, Path(folder))


def _run(out: Console, folder: Path) -> bool:
    names = ["P1", "P2", "P3"]
    paths = {n: folder / f"{n.lower()}.db" for n in names}
    for p in paths.values():
        p.unlink(missing_ok=True)
        conn = sqlite3.connect(p)
        conn.executescript(SCHEMA)
        conn.close()
    out.rule("[bold]peersync demo: three peers, no server")
    out.print(f"peers in {folder}: " + ", ".join(f"{n}={p.name}" for n, p in paths.items()))

    _exec(
        paths["P1"],
        ("INSERT INTO project VALUES (?, ?)", ("p-web", "Website")),
        ("INSERT INTO task VALUES (?, ?, ?, 0, ?)", ("t-1", "p-web", "Draft the landing page", "ana")),
        ("INSERT INTO task VALUES (?, ?, ?, 0, ?)", ("t-2", "p-web", "Pick a font", "ben")),
        ("INSERT INTO task VALUES (?, ?, ?, 0, ?)", ("t-3", "p-web", "Write the FAQ", None)),
    )
    dbs = {n: peersync.connect(p) for n, p in paths.items()}
    try:
        for db in dbs.values():
            db.provision(SCOPE, TABLES)
        out.print("provisioned scope [bold]tasks[/] (tables project, task) on every peer; P1 starts with 4 rows")
        ring = [("P1", "P2"), ("P2", "P3"), ("P3", "P1")]
        _round(out, dbs, ring, "first contact: P1's rows travel round the loop")

        out.print("\n[bold]while apart[/], each peer edits through plain SQL:")
        edits = {
            "P1": [
                ("UPDATE task SET title = ? WHERE id = ?", ("Draft the landing page (v2)", "t-1")),
                ("UPDATE task SET done = 1 WHERE id = ?", ("t-2",)),
            ],
            "P2": [
                ("UPDATE task SET title = ? WHERE id = ?", ("Landing page: hero + pricing", "t-1")),
                ("INSERT INTO task VALUES (?, ?, ?, 0, ?)", ("t-4", "p-web", "Set up analytics", "cy")),
            ],
            "P3": [
                ("DELETE FROM task WHERE id = ?", ("t-2",)),
                ("INSERT INTO project VALUES (?, ?)", ("p-app", "Mobile app")),
                ("INSERT INTO task VALUES (?, ?, ?, 0, ?)", ("t-5", "p-app", "Sketch the screens", "ana")),
            ],
        }
        for name, stmts in edits.items():
            _exec(paths[name], *stmts)
            for sql, params in stmts:
                out.print(f"  {name}: {sql.split(' (')[0].split(' WHERE')[0]} {params}")

        _round(out, dbs, ring, "round 1: P1 -> P2 -> P3 -> P1 (each session both ways)")
        _round(out, dbs, ring, "round 2: nothing new, so nothing is sent")

        out.print()
        for name, db in dbs.items():
            cs = db.conflicts(SCOPE)
            if cs:
                _conflict_table(out, name, cs)

        digests = {n: hashlib.sha256(repr(_rows(p)).encode()).hexdigest()[:12] for n, p in paths.items()}
        t = Table(title="final state")
        t.add_column("peer")
        t.add_column("rows", justify="right")
        t.add_column("content hash")
        for n, p in paths.items():
            t.add_row(n, str(len(_rows(p))), digests[n])
        out.print(t)
        same = len(set(digests.values())) == 1
        if same:
            out.print("[bold green]all three peers are identical[/]")
            rows = Table(title="the rows every peer holds")
            for col in ("table", "id", "values"):
                rows.add_column(col)
            for r in _rows(paths["P1"]):
                rows.add_row(str(r[0]), str(r[1]), ", ".join(map(str, r[2:])))
            out.print(rows)
        else:
            out.print("[bold red]the peers differ: this is a bug, please report it[/]")
        return same
    finally:
        for db in dbs.values():
            db.close()


def _round(out: Console, dbs: dict[str, peersync.Database], ring: list[tuple[str, str]], title: str) -> None:
    t = Table(title=title)
    for col in ("session", "sent", "applied", "conflicts", "batches", "bytes"):
        t.add_column(col, justify="left" if col == "session" else "right")
    for a, b in ring:
        r = peersync.sync(dbs[a], dbs[b], SCOPE)  # both ways: push, then pull
        for (src, dst), st in zip([(a, b), (b, a)], r.sessions, strict=True):
            t.add_row(f"{src} -> {dst}", *(str(n) for n in (st.sent, st.applied, st.conflicts, st.batches, st.bytes)))
    out.print(t)


def _conflict_table(out: Console, name: str, cs: list[peersync.Conflict]) -> None:
    t = Table(title=f"conflicts detected at {name}")
    for col in ("row", "type", f"{name} had", "incoming", "policy", "winner"):
        t.add_column(col)
    for c in cs:
        t.add_row(
            f"{c.table} {','.join(map(str, c.key))}",
            c.type.value,
            "(deleted)" if c.local_row is None else str(c.local_row.get("title", c.local_row)),
            "(deleted)" if c.remote_row is None else str(c.remote_row.get("title", c.remote_row)),
            c.policy,
            {"source": "incoming", "destination": f"{name}'s row"}.get(c.outcome.value if c.outcome else "", "?"),
        )
    out.print(t)


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
    sys.exit(0 if run_demo(out.console, keep) else 1)
