"""Rows never seen here are inserted straight into their tables (``mysql/fresh.py``).

Each case runs the same history twice, once with the fresh path and once with
it turned off (the checked path alone), and asserts that the two databases
end alike: user rows, tracking state (versions named by replica, tombstones,
scope), the conflict log and what the next sessions send. A key held here (a
live row, a tombstone), a UNIQUE collision with another key, a value the
column refuses and a row whose parent is missing must each send the table to
the triage, not past it; an exception halfway through leaves nothing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync._adapters.mysql import fresh
from peersync._adapters.mysql.apply import Apply

from ..helpers import fresh_and_checked
from .conftest import raw, rows, sql, sqlite_file, sqlite_rows

N = 300  # rows per session: above fresh.MIN_ROWS

MY = {
    "item": [
        "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(40), qty INT CHECK (qty >= 0), code VARCHAR(20) UNIQUE)"
    ],
    "family": [
        "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(40))",
        "CREATE TABLE child (id INT PRIMARY KEY, pid INT, name VARCHAR(40), FOREIGN KEY (pid) REFERENCES parent (id))",
    ],
}
LITE = {
    "item": ["CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, code TEXT)"],
    "family": [
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER, name TEXT)",
    ],
}
TABLES = {"item": ["item"], "family": ["parent", "child"]}

# case: (schema, statements run in SQLite after its rows, statements run on
# MariaDB after provisioning, what fresh.write returns for each table offered)
CASES: dict[str, tuple[str, list[str], list[str], list[bool]]] = {
    "nothing here": ("item", [], [], [True]),
    "a live row of one key here": ("item", [], ["INSERT INTO item VALUES (150, 'local', 1, 'local')"], [False]),
    "a tombstone of one key here": (
        "item",
        [],
        ["INSERT INTO item VALUES (150, 'local', 1, 'local')", "DELETE FROM item WHERE id = 150"],
        [False],
    ),
    "a UNIQUE collision with another key": ("item", [], ["INSERT INTO item VALUES (9999, 'x', 1, 'c150')"], [False]),
    "a value the column refuses": ("item", ["UPDATE item SET qty = -1 WHERE id = 150"], [], [False]),
    "a value too long for its column": (
        "item",
        ["UPDATE item SET name = printf('%.50c', 'x') WHERE id = 150"],
        [],
        [False],
    ),
    "parents and children": ("family", [], [], [True, True]),
    "a child whose parent is missing": ("family", ["UPDATE child SET pid = 9999 WHERE id = 150"], [], [True, False]),
}


def _source(path: Path, schema: str, statements: list[str]) -> str:
    src = sqlite_file(path.parent, *LITE[schema], name=path.name)
    conn = sqlite3.connect(src)
    with conn:
        if schema == "item":
            conn.executemany("INSERT INTO item VALUES (?, ?, ?, ?)", [(i, f"n{i}", i, f"c{i}") for i in range(N)])
        else:
            conn.executemany("INSERT INTO parent VALUES (?, ?)", [(i, f"p{i}") for i in range(N)])
            conn.executemany("INSERT INTO child VALUES (?, ?, ?)", [(i, i, f"c{i}") for i in range(N)])
        for st in statements:
            conn.execute(st)
    conn.close()
    with peersync.connect(src) as db:
        db.provision("s", TABLES[schema])
    return src


def _sync(a: str, b: str, **kw: Any) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", direction="push", **kw)


def _rid(url: str) -> bytes:
    with peersync.connect(url) as db:
        return db.status("s")[0].replica_id


def _query(url: str, statement: str) -> list[tuple[Any, ...]]:
    conn = raw(url)
    try:
        cur = conn.cursor()
        cur.execute(statement)
        return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def _tracking(url: str, names: dict[bytes, str]) -> list[tuple[Any, ...]]:
    """Every tracking row, its replicas named by ``names``, without its log
    ids and change time (the clock differs between the two runs)."""
    reps = {int(i): names.get(bytes(r), "?") for i, r in _query(url, "SELECT idx, replica_id FROM _peersync_replicas")}
    out = []
    for tbl, tid in _query(url, "SELECT tbl, id FROM _peersync_tracked ORDER BY tbl"):
        for k0, urep, utick, crep, ctick, cid, ctime, gone, scope, mw in _query(
            url, f"SELECT k0, urep, utick, crep, ctick, cid, ctime, del, scope, mw FROM `_peersync_t_{tbl}`"
        ):
            out.append((tid, k0, reps.get(urep), utick, reps.get(crep), ctick, cid is None, gone, scope, mw is None))
            assert ctime > 0
    return sorted(out)


def _run(tmp: Path, mysql_db: Callable[[], str], case: str) -> dict[str, Any]:
    schema, lite_sql, my_sql, _ = CASES[case]
    url = mysql_db()
    sql(url, *MY[schema])
    src = _source(tmp / "src.db", schema, lite_sql)
    with peersync.connect(url) as db:
        db.provision("s", TABLES[schema])
    if my_sql:
        sql(url, *my_sql)
    first = _sync(src, url, batch_size=N)
    names = {_rid(src): "src", _rid(url): "here"}
    with peersync.connect(url) as db:
        here = url.rsplit("/", 1)[1]
        log = sorted(
            (c.table, c.key, c.type.value, str(c.outcome), c.detail.replace(here, "DB")) for c in db.conflicts("s")
        )
    state = {
        "applied": first.sessions[0].applied if first.sessions else 0,
        "rows": {t: rows(url, t) for t in TABLES[schema]},
        "tracking": _tracking(url, names),
        "conflicts": log,
        "back": _sync(url, src).sent_a_to_b,
        "again": _sync(src, url).sent_a_to_b,
    }
    # A local change after the fresh rows is tracked and travels.
    sql(url, f"UPDATE {TABLES[schema][0]} SET name = 'edited' WHERE id = 7")
    state["edit"] = _sync(url, src).sent_a_to_b
    return state


@pytest.mark.parametrize("case", list(CASES))
def test_never_seen_rows_end_as_the_checked_apply_leaves_them(
    case: str, mysql_db: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clean batch takes the fresh path; a batch with a key held here, a
    # collision, a refused value or a missing parent is offered to it and refused.
    with_fresh, checked = fresh_and_checked(
        monkeypatch, fresh, lambda folder: _run(folder, mysql_db, case), tmp_path, CASES[case][3]
    )
    assert with_fresh == checked
    assert with_fresh["applied"] == N * len(TABLES[CASES[case][0]]) - (0 if CASES[case][3][-1] else 1)
    assert with_fresh["edit"] == 1


def test_a_local_row_is_never_overwritten_by_a_fresh_batch(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url = mysql_db()
    sql(url, *MY["item"])
    src = _source(tmp_path / "src.db", "item", [])
    with peersync.connect(url) as db:
        db.provision("s", ["item"])
    sql(url, "INSERT INTO item VALUES (150, 'mine', 5, 'mine')")
    result = _sync(src, url, batch_size=N, policy=peersync.Policy.DESTINATION_WINS)
    assert result.sessions[0].conflicts == 1
    assert [r for r in rows(url, "item") if r[0] == 150] == [(150, "mine", 5, "mine")]
    assert len(rows(url, "item")) == N


def test_an_exception_halfway_through_a_fresh_batch_leaves_nothing(
    mysql_db: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = mysql_db()
    sql(url, *MY["family"])
    src = _source(tmp_path / "src.db", "family", [])
    with peersync.connect(url) as db:
        db.provision("s", TABLES["family"])
    real = Apply._stamp
    calls: list[str] = []

    def killed(self: Apply, t: Any, rows: Any, *, upsert: bool = True) -> None:
        calls.append(t.name)
        real(self, t, rows, upsert=upsert)
        if t.name == "child":  # the parents and the children are in, their stamps too
            raise KeyboardInterrupt

    monkeypatch.setattr(Apply, "_stamp", killed)
    with pytest.raises(KeyboardInterrupt):
        _sync(src, url, batch_size=2 * N)
    assert calls == ["parent", "child"]
    for table in ("parent", "child", "_peersync_t_parent", "_peersync_t_child", "_peersync_log"):
        assert _query(url, f"SELECT count(*) FROM `{table}`") == [(0,)], table
    monkeypatch.undo()
    assert _sync(src, url, batch_size=2 * N).sent_a_to_b == 2 * N
    assert sqlite_rows(src, "child") == rows(url, "child")


def test_a_key_a_concurrent_writer_holds_is_triaged_not_overwritten(
    mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    # The writer's row is uncommitted when the batch arrives: the fresh insert
    # waits for it, fails on the key once it commits, and the table is triaged.
    url = mysql_db()
    sql(url, *MY["item"])
    src = _source(tmp_path / "src.db", "item", [])
    with peersync.connect(url) as db:
        db.provision("s", ["item"])
    writer = raw(url, autocommit=False)
    writer.cursor().execute("INSERT INTO item VALUES (150, 'mine', 5, 'mine')")
    commit = threading.Timer(1.0, writer.commit)
    commit.start()
    try:
        result = _sync(src, url, batch_size=N, policy=peersync.Policy.DESTINATION_WINS)
    finally:
        commit.join()
        writer.close()
    assert result.sessions[0].conflicts == 1
    assert [r for r in rows(url, "item") if r[0] == 150] == [(150, "mine", 5, "mine")]
    assert len(rows(url, "item")) == N
