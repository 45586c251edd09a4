"""Rows never seen here are copied straight into their tables (``postgres/fresh.py``).

Each case runs the same history twice, once with the fresh path and once with
it turned off (the staged path alone), and asserts the two databases end
alike: user rows, tracking state (versions named by replica, times,
tombstones, scope), the conflict log and what the next sessions send. A key
held here (a live row, a tombstone), a row its column refuses and a row whose
parent is missing must each send the batch to the triage, not past it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import peersync
from peersync._adapters.postgres import fresh

from ..helpers import fresh_and_checked
from .helpers import pg_rows, provision, sqlite_db, sqlite_rows, sync

N = 300  # rows per session: above fresh.MIN_ROWS

PG = {
    "item": "CREATE TABLE item (id integer PRIMARY KEY, name text, qty integer CHECK (qty >= 0), price float8)",
    "family": "CREATE TABLE parent (id integer PRIMARY KEY, name text);"
    " CREATE TABLE child (id integer PRIMARY KEY, pid integer REFERENCES parent (id), name text)",
}
LITE = {
    "item": "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL)",
    "family": "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);"
    " CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER, name TEXT)",
}
TABLES = {"item": ["item"], "family": ["parent", "child"]}

# case: (schema, rows written in SQLite, statements run on PostgreSQL after
# provisioning, what fresh.write returns for each batch it is offered)
CASES: dict[str, tuple[str, list[str], list[str], list[bool]]] = {
    "nothing here": ("item", [], [], [True]),
    "a live row of one key here": ("item", [], ["INSERT INTO item VALUES (150, 'local', 1, 1.5)"], [False]),
    "a tombstone of one key here": (
        "item",
        [],
        ["INSERT INTO item VALUES (150, 'local', 1, 1.5)", "DELETE FROM item WHERE id = 150"],
        [False],
    ),
    "a row the column refuses": ("item", ["UPDATE item SET qty = -1 WHERE id = 150"], [], [False]),
    "parents and children": ("family", [], [], [True, True]),
    "a child whose parent is missing": ("family", ["UPDATE child SET pid = 9999 WHERE id = 150"], [], [True, False]),
}


def _source(path: Path, schema: str, statements: list[str]) -> Path:
    sqlite_db(path, LITE[schema])
    conn = sqlite3.connect(path)
    with conn:
        if schema == "item":
            conn.executemany("INSERT INTO item VALUES (?, ?, ?, ?)", [(i, f"n{i}", i, i / 4) for i in range(N)])
        else:
            conn.executemany("INSERT INTO parent VALUES (?, ?)", [(i, f"p{i}") for i in range(N)])
            conn.executemany("INSERT INTO child VALUES (?, ?, ?)", [(i, i, f"c{i}") for i in range(N)])
        for st in statements:
            conn.execute(st)
    conn.close()
    provision(path, TABLES[schema])
    return path


def _rid(url: str | Path) -> bytes:
    with peersync.connect(url) as db:
        return db.status("s")[0].replica_id


def _tracking(url: str, names: dict[bytes, str]) -> list[tuple[Any, ...]]:
    """Every tracking row, its replicas named by ``names``, without its local
    tick and change time (the clock differs between the two runs)."""
    with psycopg.connect(url) as conn:
        reps = {
            int(i): names.get(bytes(r), "?")
            for i, r in conn.execute("SELECT idx, replica_id FROM _peersync._peersync_replicas")
        }
        out = []
        for (tid,) in conn.execute("SELECT id FROM _peersync._peersync_tracked ORDER BY tbl"):
            for k0, urep, utick, crep, ctick, ctime, gone, scope, mw in conn.execute(
                f"SELECT k0, urep, utick, crep, ctick, ctime, del, scope, mw FROM _peersync._peersync_t_{tid}"
            ):
                out.append((tid, k0, reps.get(urep), utick, reps.get(crep), ctick, gone, scope, mw is None))
                assert ctime > 0
    return sorted(out)


def _run(tmp: Path, make_pg: Callable[..., str], case: str) -> dict[str, Any]:
    schema, lite_sql, pg_sql, _ = CASES[case]
    url = make_pg(PG[schema])
    src = _source(tmp / "src.db", schema, lite_sql)
    provision(url, TABLES[schema])
    if pg_sql:
        with psycopg.connect(url, autocommit=True) as conn:
            for st in pg_sql:
                conn.execute(st)
    first = sync(src, url, direction="push", batch_size=N)
    names = {_rid(src): "src", _rid(url): "here"}
    with peersync.connect(url) as db:
        log = sorted((c.table, c.key, c.type.value, str(c.outcome)) for c in db.conflicts("s"))
    state = {
        "applied": first.sessions[0].applied if first.sessions else 0,
        "rows": {t: pg_rows(url, t) for t in TABLES[schema]},
        "tracking": _tracking(url, names),
        "conflicts": log,
        "back": sync(url, src, direction="push").sent_a_to_b,
        "again": sync(src, url, direction="push").sent_a_to_b,
    }
    # A local change after the fresh rows is tracked and travels.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"UPDATE {TABLES[schema][0]} SET name = 'edited' WHERE id = 7")
    state["edit"] = sync(url, src, direction="push").sent_a_to_b
    assert all(pg_rows(url, t) == sqlite_rows(src, t) for t in TABLES[schema]) or state["conflicts"]
    return state


@pytest.mark.parametrize("case", list(CASES))
def test_never_seen_rows_end_as_the_staged_apply_leaves_them(
    case: str, make_pg: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clean batch takes the fresh path; a batch with a key held here, a
    # refused value or a missing parent is offered to it and refused.
    with_fresh, staged = fresh_and_checked(
        monkeypatch,
        fresh,
        lambda folder: _run(folder, make_pg, case),
        tmp_path,
        CASES[case][3],
        ("write", "write_short"),  # rows of the full form, of the short form (from SQLite)
    )
    assert with_fresh == staged
    assert with_fresh["again"] == (1 if case in ("a row the column refuses", "a child whose parent is missing") else 0)
    assert with_fresh["edit"] == 1
