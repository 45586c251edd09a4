"""Every name peersync's generated SQL uses next to a user's columns (trigger aliases, variables,
transition tables, staging aliases) carries the reserved prefix, so a user column may be called
anything else: a table whose columns are named like those internals is provisioned, written by
the application (multi-row inserts, updates of every column and of the key, deletes) and synced,
on SQLite, PostgreSQL and MariaDB. The README: "Any other name is yours"."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peersync
from tests.integration.test_usertest_findings import _mysql, _pg, mysql_db, pg_db

__all__ = ["mysql_db", "pg_db"]  # fixtures, imported to be registered here

# Aliases and variables found in the trigger and apply SQL of the three adapters, and the names
# of the tracking columns.
NAMES = (
    "n", "o", "g", "t", "u", "x", "e", "l", "s", "p", "r", "k", "excluded", "now_ms", "new", "old",
    "new_rows", "old_rows", "tick", "del", "lt", "urep", "utick", "crep", "ctick", "ctime", "scope",
    "mw", "cid", "k0", "ord", "gone", "tbl",
)  # fmt: skip
COLS = ", ".join(f'"{c}"' for c in NAMES)


def _ddl(quote: str, text: str, integer: str) -> str:
    cols = ", ".join(f"{quote}{c}{quote} {integer}" for c in NAMES)
    return f"CREATE TABLE a (id {text} PRIMARY KEY, {cols})"


def _writes(quote: str) -> list[str]:
    cols = ", ".join(f"{quote}{c}{quote}" for c in NAMES)
    row = ", ".join(["1"] * len(NAMES))
    sets = ", ".join(f"{quote}{c}{quote} = {quote}{c}{quote} + 1" for c in NAMES)
    return [
        f"INSERT INTO a (id, {cols}) VALUES ('r1', {row}), ('r2', {row}), ('r3', {row}), ('r4', {row})",
        f"UPDATE a SET {sets}",
        f"UPDATE a SET {quote}n{quote} = 7, {quote}now_ms{quote} = 8 WHERE id IN ('r1', 'r2')",
        "UPDATE a SET id = 'r5' WHERE id = 'r3'",
        "DELETE FROM a WHERE id IN ('r2', 'r4')",
    ]


def _sqlite(path: str, *statements: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        for st in statements:
            conn.execute(st)
        conn.commit()
        return conn.execute(f"SELECT id, {COLS} FROM a ORDER BY id").fetchall()
    finally:
        conn.close()


def _roundtrip(url: str, run: Callable[[str], list[tuple[Any, ...]]], tmp_path: Path) -> None:
    a = str(tmp_path / "a.db")
    _sqlite(a, _ddl('"', "TEXT", "INTEGER"))
    with peersync.connect(url) as db, peersync.connect(a) as da:
        db.provision("s", ["a"])
        da.provision("s", ["a"])
    quote = "`" if url.startswith("mysql") else '"'
    for st in _writes(quote):
        run(st)
    with peersync.connect(url) as db:
        (st,) = db.status("s")
        assert (st.tracked_rows, st.tombstones) == (5, 3)  # r1 r5 live; r2 r3 r4 tombstones
    with peersync.connect(url) as db, peersync.connect(a) as da:
        first = peersync.sync(db, da, "s")
        assert first.sent_a_to_b == 5
    server = run(f"SELECT id, {COLS.replace(chr(34), quote)} FROM a ORDER BY id")
    assert [tuple(r) for r in server] == _sqlite(a)
    assert [r[0] for r in server] == ["r1", "r5"]
    # Writes on the SQLite side, applied on the server (the apply's SQL meets the same names).
    _sqlite(a, f"UPDATE a SET {', '.join(f'{chr(34)}{c}{chr(34)} = 40' for c in NAMES)} WHERE id = 'r1'")
    _sqlite(
        a, f"INSERT INTO a (id, {COLS}) SELECT 'r9', {COLS} FROM a WHERE id = 'r5'", "DELETE FROM a WHERE id = 'r5'"
    )
    with peersync.connect(url) as db, peersync.connect(a) as da:
        back = peersync.sync(da, db, "s")
        assert back.sent_a_to_b == 3 and back.conflicts == 0
        again = peersync.sync(da, db, "s")
        assert (again.sent_a_to_b, again.sent_b_to_a) == (0, 0)
    assert [tuple(r) for r in run(f"SELECT id, {COLS.replace(chr(34), quote)} FROM a ORDER BY id")] == _sqlite(a)


def test_sqlite_columns_named_like_internals_are_tracked_and_sync(tmp_path: Path) -> None:
    b = str(tmp_path / "b.db")
    _sqlite(b, _ddl('"', "TEXT", "INTEGER"))
    _roundtrip(b, lambda st: _sqlite(b, st) if not st.startswith("SELECT") else _sqlite(b), tmp_path)


def test_postgres_columns_named_like_internals_are_tracked_and_sync(
    pg_db: Callable[[str], str], tmp_path: Path
) -> None:
    url = pg_db(_ddl('"', "text", "int"))
    _roundtrip(url, lambda st: _pg(url, st), tmp_path)


def test_mariadb_columns_named_like_internals_are_tracked_and_sync(
    mysql_db: Callable[[str], str], tmp_path: Path
) -> None:
    url = mysql_db(_ddl("`", "varchar(20)", "int"))
    _roundtrip(url, lambda st: _mysql(url, st), tmp_path)


def test_postgres_repair_replaces_trigger_functions_of_an_earlier_text(pg_db: Callable[[str], str]) -> None:
    """Earlier trigger text (aliases ``n``/``o``, a variable ``now_ms``) is accepted as current;
    on a table with a column of one of those names it broke every write, and ``repair`` then
    replaces it with the current text."""
    url = pg_db("CREATE TABLE a (id text PRIMARY KEY, now_ms int)")
    with peersync.connect(url) as db:
        db.provision("s", ["a"])
    (fn, src) = _pg(
        url,
        "SELECT p.proname, p.prosrc FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace"
        " WHERE n.nspname = '_peersync' AND p.proname LIKE '\\_peersync\\_ins\\_%'",
    )[0]
    earlier = src.replace("_peersync_now_ms", "now_ms").replace("_peersync_new_rows AS _peersync_n", "new_rows AS n")
    earlier = earlier.replace("_peersync_n.", "n.")
    _pg(url, f"CREATE OR REPLACE FUNCTION _peersync.{fn}() RETURNS trigger LANGUAGE plpgsql AS $f${earlier}$f$")
    _pg(url, f"DROP TRIGGER _peersync_ins ON a; CREATE TRIGGER _peersync_ins AFTER INSERT ON a"
        f" REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _peersync.{fn}()")  # fmt: skip
    try:
        _pg(url, "INSERT INTO a VALUES ('x', 1)")
    except Exception as exc:  # the earlier text's ambiguity, as users met it
        assert "ambiguous" in str(exc)
    else:
        raise AssertionError("the earlier trigger text should break this table's writes")
    with peersync.connect(url) as db:
        report = db.repair("s")
        assert report.retracked == ("a",)
    _pg(url, "INSERT INTO a VALUES ('x', 1)")
    with peersync.connect(url) as db:
        (st,) = db.status("s")
        assert st.tracked_rows == 1
        assert db.repair("s").retracked == ()  # current text: nothing to do
