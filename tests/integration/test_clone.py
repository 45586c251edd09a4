"""``peersync.clone`` / ``peersync clone``: a new replica from a snapshot.

A clone knows exactly what its source knew at the snapshot: their first sync
sends nothing either way, with any other peer it exchanges only what its
source would have, and its own writes carry its own new replica id.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync
from peersync._adapters.sqlite.peer import SQLitePeer
from peersync._cli.main import cli

from ..helpers import peers, push, rows, sync, write
from .test_cli import assert_error, invoke, ok

MakeDb = Callable[..., Path]
SCHEMA = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);"


def sent(a: Path, b: Path) -> tuple[int, int]:
    r = sync(a, b)
    assert r.completed and r.errors == 0 and r.conflicts == 0, r
    return r.sent_a_to_b, r.sent_b_to_a


def knowledge(path: Path, scope: str = "s") -> peersync.Knowledge:
    with peersync.connect(path) as db:
        return db.describe(scope).knowledge


def replica_id(path: Path, scope: str = "s") -> bytes:
    with peersync.connect(path) as db:
        return db.describe(scope).replica_id


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def raw_bytes(*paths: Path) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def history(make_db: MakeDb) -> tuple[Path, Path]:
    """A source with every kind of row: local changes made through peersync
    sessions, rows that arrived from another peer (updates, a delete), and
    foreign writes made after the last peersync write (no session since)."""
    a, other = peers(make_db, SCHEMA, ["item"], "ao")
    write(a, "INSERT INTO item VALUES (1, 'a1', 1)", "INSERT INTO item VALUES (2, 'a2', 2)")
    write(other, "INSERT INTO item VALUES (10, 'o10', 10)", "INSERT INTO item VALUES (11, 'o11', 11)")
    sent(a, other)
    write(other, "UPDATE item SET qty = 100 WHERE id = 1", "DELETE FROM item WHERE id = 11")
    write(a, "UPDATE item SET name = 'a2!' WHERE id = 2")
    sent(a, other)
    # After the last session: peersync never wrote to the file since these.
    write(a, "INSERT INTO item VALUES (3, 'a3', 3)", "DELETE FROM item WHERE id = 10")
    return a, other


# -- the first sync with the source ---------------------------------------------------------------------------
def test_first_sync_with_its_source_sends_nothing_either_way(make_db: MakeDb, tmp_path: Path) -> None:
    a, _ = history(make_db)
    before = knowledge(a)
    st = peersync.clone(a, tmp_path / "c.db", "s")
    c = tmp_path / "c.db"
    assert st.replica_id not in (replica_id(a), b"")
    assert st.conflicts == 0
    # The clone knows exactly what its source knew, and (trivially) itself.
    assert knowledge(c).without(st.replica_id) == before
    assert rows(c, "item") == rows(a, "item")
    assert sent(a, c) == (0, 0)
    assert sent(c, a) == (0, 0)
    assert knowledge(a).without(st.replica_id) == before  # no row, no version of the source's is new to it


def test_a_clone_is_its_own_file_and_a_copy_of_it_is_refused(make_db: MakeDb, tmp_path: Path) -> None:
    a, _ = history(make_db)
    c = tmp_path / "c.db"
    peersync.clone(a, c, "s")
    with peersync.connect(c) as db:
        db.describe("s")  # not refused as a copy of its source
    copy = tmp_path / "copy.db"
    shutil.copyfile(c, copy)
    with peersync.connect(copy) as db, pytest.raises(peersync.RepairNeeded, match=re.escape(f"is a copy of {c} (")):
        db.describe("s")


def test_an_unreidentified_copy_cannot_be_cloned(make_db: MakeDb, tmp_path: Path) -> None:
    a, _ = history(make_db)
    copy = tmp_path / "copy.db"
    shutil.copyfile(a, copy)
    with pytest.raises(peersync.RepairNeeded, match="reidentify"):
        peersync.clone(copy, tmp_path / "c.db", "s")
    assert not (tmp_path / "c.db").exists()


# -- other peers -----------------------------------------------------------------------------------------------
def test_with_another_peer_it_exchanges_only_what_its_source_would(make_db: MakeDb, tmp_path: Path) -> None:
    a, other = history(make_db)
    # The other peer lacks the source's foreign writes (3 inserted, 10 deleted)
    # and has two changes the source lacks.
    write(other, "INSERT INTO item VALUES (20, 'o20', 20)", "UPDATE item SET name = 'o2' WHERE id = 2")
    c = tmp_path / "c.db"
    peersync.clone(a, c, "s")
    r = sync(c, other)
    assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts) == (2, 2, 0)
    assert r.skipped_known == 0
    assert rows(c, "item") == rows(other, "item")
    # The source then hears of nothing twice: only the other peer's two changes.
    assert sent(c, a) == (2, 0)
    assert sent(a, other) == (0, 0)
    assert rows(a, "item") == rows(c, "item") == rows(other, "item")


def test_its_own_writes_reach_every_peer_under_its_new_id(make_db: MakeDb, tmp_path: Path) -> None:
    a, other = history(make_db)
    c = tmp_path / "c.db"
    new = peersync.clone(a, c, "s").replica_id
    # The source's clock runs ahead of the clone's: were the clone to stamp
    # its writes with the source's id, the source would believe it knows them.
    for i in range(5):
        write(a, f"INSERT INTO item VALUES ({100 + i}, 'late', {i})")
    write(c, "INSERT INTO item VALUES (50, 'c50', 50)", "UPDATE item SET qty = 7 WHERE id = 1")
    tick = peersync.status(str(c), "s")[0].tick
    assert sent(c, a) == (2, 5)
    assert knowledge(a).contains(new, tick)
    assert sent(a, other) == (9, 0)  # and the foreign writes made before the clone
    assert rows(other, "item") == rows(a, "item") == rows(c, "item")
    assert (50, "c50", 50) in rows(other, "item")
    assert sent(c, other) == (0, 0)


# -- a clone taken while the source is written -----------------------------------------------------------------
@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_a_clone_taken_while_a_writer_runs_is_consistent_and_converges(
    make_db: MakeDb, tmp_path: Path, journal: str
) -> None:
    (a,) = peers(make_db, SCHEMA, ["item"], "a")
    conn = sqlite3.connect(a)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    with conn:
        conn.executemany("INSERT INTO item VALUES (?, ?, ?)", ((i, "x" * 200, i) for i in range(1, 30_001)))
    conn.close()
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        w = sqlite3.connect(a, timeout=30, isolation_level=None)
        i = 1_000_000
        while not stop.is_set():
            w.execute("INSERT INTO item VALUES (?, 'w', ?)", (i, i))
            w.execute("UPDATE item SET qty = qty + 1 WHERE id = ?", (i % 30_000 + 1,))
            written.append(i)
            i += 1
            # A writer that never pauses starves rollback-journal readers
            # (anyone's, not only the clone's): real writers pause.
            stop.wait(0.001)
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(written) < 20:  # the writer is under way
            stop.wait(0.01)
        c = tmp_path / "c.db"
        peersync.clone(a, c, "s")
        during = len(written)
        while len(written) < during + 20:  # and goes on after the snapshot
            stop.wait(0.01)
    finally:
        stop.set()
        t.join()
    conn = sqlite3.connect(c)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # Every row is tracked and every live tracking row has its row: one snapshot.
    assert conn.execute(
        "SELECT count(*) FROM item LEFT JOIN _peersync_t_item AS t ON t.k0 = item.id WHERE t.k0 IS NULL OR t.del"
    ).fetchone() == (0,)
    live = conn.execute("SELECT count(*) FROM _peersync_t_item WHERE del = 0").fetchone()[0]
    snapshot = conn.execute("SELECT count(*) FROM item").fetchone()[0]
    conn.close()
    assert live == snapshot
    total = len(rows(a, "item"))
    assert 30_000 + 20 <= snapshot < total
    # The source sends exactly what it wrote after the snapshot, the clone nothing.
    r = sync(a, c)
    assert r.sent_b_to_a == 0 and r.conflicts == 0
    assert r.sent_a_to_b >= total - snapshot
    assert rows(a, "item") == rows(c, "item")
    assert sent(a, c) == (0, 0)


# -- clones of clones ---------------------------------------------------------------------------------------------
def test_a_clone_of_a_clone_works(make_db: MakeDb, tmp_path: Path) -> None:
    a, other = history(make_db)
    b, c = tmp_path / "b.db", tmp_path / "c.db"
    peersync.clone(a, b, "s")
    write(b, "INSERT INTO item VALUES (60, 'b60', 60)")
    peersync.clone(b, c, "s")
    ids = {replica_id(a), replica_id(b), replica_id(c)}
    assert len(ids) == 3
    assert sent(c, b) == (0, 0)
    write(c, "UPDATE item SET name = 'c' WHERE id = 60")
    assert sent(c, a) == (1, 0)  # 60 as C last wrote it; B's version of it is superseded
    assert sent(b, a) == (0, 1)  # B gets C's edit; A already holds what B had
    assert sent(other, c) == (0, 3)  # the source's two foreign writes and 60
    assert sent(b, c) == (0, 0)
    for p in (a, b, c):
        assert rows(p, "item") == rows(other, "item")
    assert (60, "c", 60) in rows(other, "item")


# -- what a clone carries ------------------------------------------------------------------------------------------
def test_other_scopes_are_not_carried_and_a_shared_table_stays_exact(make_db: MakeDb, tmp_path: Path) -> None:
    schema = SCHEMA + "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);"
    a, o = (make_db(n, schema) for n in "ao")
    for p in (a, o):
        with peersync.connect(p) as db:
            db.provision("s", ["item"])
            db.provision("t", ["item", "note"])
    # Rows of the shared table arrive at A through scope t only.
    write(o, "INSERT INTO item VALUES (1, 'o1', 1)", "INSERT INTO note VALUES (1, 'n')")
    with peersync.connect(a) as x, peersync.connect(o) as y:
        peersync.sync(x, y, "t")
    write(a, "INSERT INTO item VALUES (2, 'a2', 2)")
    c = tmp_path / "c.db"
    peersync.clone(a, c, "s")
    with peersync.connect(c) as db:
        assert db.scopes() == ["s"]
    assert rows(c, "note") == [(1, "n")]  # the data stays, untracked
    conn = sqlite3.connect(c)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE '_peersync_t_note%'").fetchone() == (0,)
    conn.close()
    assert sent(a, c) == (0, 0)


def test_the_conflict_log_starts_empty_and_pending_rows_still_come(make_db: MakeDb, tmp_path: Path) -> None:
    strict = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT CHECK (name NOT LIKE 'bad%'), qty INTEGER);"
    p, b = make_db("p", SCHEMA), make_db("b", strict)
    for x in (p, b):
        with peersync.connect(x) as db:
            db.provision("s", ["item"])
    write(p, "INSERT INTO item VALUES (1, 'bad', 1)", "INSERT INTO item VALUES (2, 'ok', 2)")
    r = push(p, b)
    assert r.errors == 1
    assert peersync.status(str(b), "s")[0].conflicts == 1
    c = tmp_path / "c.db"
    st = peersync.clone(b, c, "s")
    assert (st.conflicts, st.pending) == (0, 1)
    assert peersync.conflicts(str(c), "s") == []
    assert len(peersync.conflicts(str(b), "s")) == 1  # the source keeps its own
    # The failed row is not in the clone's knowledge: it comes again, only it.
    r = push(p, c)
    assert (r.sent_a_to_b, r.errors) == (1, 1)


# -- refusals -------------------------------------------------------------------------------------------------------
def test_an_existing_destination_is_refused_and_nothing_changes(make_db: MakeDb, tmp_path: Path) -> None:
    a, _ = history(make_db)
    dst = make_db("dst", SCHEMA)
    before = raw_bytes(a, dst)
    names = files(tmp_path)
    with pytest.raises(peersync.ConfigurationError, match="already exists"):
        peersync.clone(a, dst, "s")
    assert raw_bytes(a, dst) == before
    assert files(tmp_path) == names


@pytest.mark.parametrize(
    ("make_src", "error", "match"),
    [
        (lambda d: d / "missing.db", peersync.InvalidURL, "no such database file"),
        (lambda d: _text_file(d / "notes.txt"), peersync.StorageError, "not a usable SQLite database"),
        (lambda d: _plain_db(d / "plain.db"), peersync.ScopeError, "no peersync scopes"),
    ],
)
def test_a_bad_source_is_a_clear_error_and_leaves_no_file(
    tmp_path: Path, make_src: Callable[[Path], Path], error: type[Exception], match: str
) -> None:
    src = make_src(tmp_path)
    names = files(tmp_path)
    with pytest.raises(error, match=match):
        peersync.clone(src, tmp_path / "c.db", "s")
    assert files(tmp_path) == names


def test_an_unknown_scope_is_refused(make_db: MakeDb, tmp_path: Path) -> None:
    a, _ = history(make_db)
    names = files(tmp_path)
    with pytest.raises(peersync.ScopeError, match="unknown scope 'nope'"):
        peersync.clone(a, tmp_path / "c.db", "nope")
    assert files(tmp_path) == names


def test_a_failure_midway_leaves_no_destination(
    make_db: MakeDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = history(make_db)
    before = raw_bytes(a)
    names = files(tmp_path)

    def broken(self: SQLitePeer, scope: str, *, moved: bool = False) -> bytes:
        raise peersync.StorageError("disk full (simulated)")

    monkeypatch.setattr(SQLitePeer, "reidentify", broken)
    with pytest.raises(peersync.StorageError, match="simulated"):
        peersync.clone(a, tmp_path / "c.db", "s")
    assert files(tmp_path) == names
    assert raw_bytes(a) == before


def _text_file(path: Path) -> Path:
    path.write_text("not a database, just some words to make it long enough\n" * 20)
    return path


def _plain_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute(SCHEMA)
    conn.close()
    return path


# -- the command line -----------------------------------------------------------------------------------------------
def test_cli_clone_prints_one_line_and_errors_exit_2(make_db: MakeDb, tmp_path: Path) -> None:
    a, _ = history(make_db)
    c = tmp_path / "c.db"
    r = ok(invoke("clone", a, c, "--scope", "s"))
    assert len(r.stdout.splitlines()) == 1
    assert replica_id(c).hex() in r.stdout
    assert sent(a, c) == (0, 0)
    assert_error(invoke("clone", a, c, "--scope", "s"), "already exists")
    assert_error(invoke("clone", a, tmp_path / "d.db", "--scope", "nope"), "unknown scope")
    assert not (tmp_path / "d.db").exists()
    assert "clone" in cli.commands
    assert os.path.exists(c)
