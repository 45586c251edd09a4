"""Rows that fail to apply at the destination: each becomes one ``error``
conflict (kept out of knowledge, sent again next session) and costs about its
own work, whatever the size of the batch; every other row of the batch applies.

Work is counted as the statements the destination's connection executes
(``sqlite3.Connection.set_trace_callback``: each statement, and each trigger
run per row, is one call), never as time.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import peersync

from ..helpers import rows, write

MakeDb = Callable[..., Path]

NODE = "CREATE TABLE node (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES node(id), name TEXT UNIQUE);"


@contextmanager
def counting(db: peersync.Database) -> Iterator[list[int]]:
    """Count the statements ``db``'s connection executes inside the block."""
    n = [0]

    def count(_: str) -> None:
        n[0] += 1

    db.conn.set_trace_callback(count)
    try:
        yield n
    finally:
        db.conn.set_trace_callback(None)


def error_keys(db: peersync.Database) -> list[tuple[object, ...]]:
    return sorted(c.key for c in db.conflicts() if c.type is peersync.ConflictType.ERROR)


# -- cost: one failing row costs about one row ---------------------------------------------------------------------
def chain_push(make_db: MakeDb, name: str, n: int, b_row: tuple[int, str]) -> tuple[int, Path, Path]:
    """A chain 1 <- 2 <- ... <- n made on A, then renamed leaf first (``m<i>``),
    so the destination receives every node before its parent. B holds one row of
    its own, ``b_row`` (id, name). Pushes A to B once; returns the statements B
    executed, and both paths."""
    pa, pb = make_db(f"{name}a", NODE), make_db(f"{name}b", NODE)
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        a.provision("s", ["node"])
        b.provision("s", ["node"])
        write(
            pa,
            "INSERT INTO node VALUES (1, NULL, 'n1')",
            *((f"INSERT INTO node VALUES ({i}, {i - 1}, 'n{i}')") for i in range(2, n + 1)),
        )
        write(pa, *(f"UPDATE node SET name = 'm{i}' WHERE id = {i}" for i in range(n, 0, -1)))
        write(pb, ("INSERT INTO node VALUES (?, NULL, ?)", b_row))
        with counting(b) as work:
            peersync.sync(a, b, "s", direction="push")
        return work[0], pa, pb


@pytest.mark.parametrize("n", [100, 400])
def test_one_row_colliding_on_a_unique_index_costs_a_few_statements_whatever_the_batch(make_db: MakeDb, n: int) -> None:
    """The chain's leaf takes a name B already uses: the leaf fails, every other
    node applies, and the extra work does not grow with the batch (it used to
    be a pass over the failed rows per row: quadratic)."""
    clean, _, _ = chain_push(make_db, "clean", n, (n + 1, "other"))
    work, pa, pb = chain_push(make_db, "dirty", n, (n + 1, f"m{n}"))
    with peersync.connect(pb) as b:
        assert error_keys(b) == [(n,)]
        assert "UNIQUE" in (b.conflicts()[0].detail or "")
    assert rows(pb, "node") == [r for r in rows(pa, "node") if r[0] != n] + [(n + 1, None, f"m{n}")]
    # The failed row's own attempts, and the session's retry pass that carries only it.
    assert work - clean <= 100, (work, clean)


@pytest.mark.parametrize("n", [100, 400])
def test_rows_whose_parent_failed_fail_with_it_at_the_cost_of_their_own_rows(make_db: MakeDb, n: int) -> None:
    """A node in the middle collides: it fails, and so do the nodes below it (their
    parent never arrived); the nodes above apply. The extra work is a few
    statements per failed row."""
    mid = n // 2
    clean, _, _ = chain_push(make_db, "clean", n, (n + 1, "other"))
    work, pa, pb = chain_push(make_db, "dirty", n, (n + 1, f"m{mid}"))
    with peersync.connect(pb) as b:
        assert error_keys(b) == [(i,) for i in range(mid, n + 1)]
    assert rows(pb, "node") == [r for r in rows(pa, "node") if r[0] < mid] + [(n + 1, None, f"m{mid}")]
    failed = n - mid + 1
    assert work - clean <= 25 * failed + 100, (work, clean, failed)


def test_a_row_failing_a_check_only_the_destination_has_is_isolated_in_log_n_statements(make_db: MakeDb) -> None:
    """A failure no pre-check can foresee (a CHECK constraint on B only): the
    batch's statement fails, and halving it isolates the row. At most about
    one more write of the batch, plus a few statements per halving."""
    n = 400
    loose = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);"
    strict = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT CHECK (name NOT LIKE 'bad%'));"

    def push(name: str, bad: int | None) -> tuple[int, Path, Path]:
        pa, pb = make_db(f"{name}a", loose), make_db(f"{name}b", strict)
        write(pa, *(f"INSERT INTO item VALUES ({i}, '{'bad' if i == bad else 'ok'}{i}')" for i in range(1, n + 1)))
        with peersync.connect(pa) as a, peersync.connect(pb) as b:
            a.provision("s", ["item"])
            b.provision("s", ["item"])
            with counting(b) as work:
                r = peersync.sync(a, b, "s", direction="push")
            assert r.errors == (bad is not None)
        return work[0], pa, pb

    clean, _, _ = push("clean", None)
    work, pa, pb = push("dirty", n // 2)
    assert rows(pb, "item") == [r for r in rows(pa, "item") if r[0] != n // 2]
    assert work - clean <= clean + 30 * math.log2(n), (work, clean)


# -- foreign keys are checked once, after the batch's writes -------------------------------------------------------
def test_deferrable_foreign_key_violated_between_batches_is_retried_like_any_other(make_db: MakeDb) -> None:
    """``DEFERRABLE INITIALLY DEFERRED``: a child whose parent comes in a later
    batch no longer fails the COMMIT of its batch; it fails alone, is retried in
    the session's next pass, and applies. No lock is kept."""
    schema = (
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE child (id INTEGER PRIMARY KEY,"
        " pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);"
    )
    pa, pb = make_db("a", schema), make_db("b", schema)
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        for d in (a, b):
            d.provision("s", ["parent", "child"])
        write(pa, "INSERT INTO parent VALUES (1, 'p')", "INSERT INTO child VALUES (1, 1)")
        write(pa, "UPDATE parent SET name = 'p2' WHERE id = 1")  # the parent's tick is now after the child's
        r = peersync.sync(a, b, "s", batch_size=1)
        assert r.errors == 0
        other = sqlite3.connect(pb, timeout=0.2)  # another writer does not find the file locked
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()
    assert rows(pb, "parent") == [(1, "p2")] and rows(pb, "child") == [(1, 1)]


def test_a_foreign_key_broken_by_a_destination_trigger_fails_only_the_row_that_fired_it(make_db: MakeDb) -> None:
    """B's trigger writes an orphan into a table outside the scope when a
    certain row arrives. The apply's own check after the writes (the scope has
    a foreign key, so the order of rows does not matter) does not look there;
    the COMMIT finds the violation, and the batch is applied again checking
    each statement: that row fails, the others apply."""
    base = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, up INTEGER REFERENCES item(id));"
    extra = (
        "CREATE TABLE owner (id INTEGER PRIMARY KEY);"
        "CREATE TABLE audit (item INTEGER, owner INTEGER REFERENCES owner(id));"
        "CREATE TRIGGER log_item AFTER INSERT ON item BEGIN"
        " INSERT INTO audit VALUES (NEW.id, CASE WHEN NEW.name = 'orphan' THEN 99 END); END;"
    )
    pa, pb = make_db("a", base), make_db("b", base + extra)
    write(pa, "INSERT INTO item VALUES (1, 'ok', NULL), (2, 'orphan', 1), (3, 'ok', 1)")
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        a.provision("s", ["item"])
        b.provision("s", ["item"])
        r = peersync.sync(a, b, "s", direction="push")
        assert (r.applied, r.errors) == (2, 1)
        assert error_keys(b) == [(2,)]
    assert rows(pb, "item") == [(1, "ok", None), (3, "ok", 1)]
    assert rows(pb, "audit") == [(1, None), (3, None)]


# -- writes that end the whole transaction -------------------------------------------------------------------------
TRIGGERS = {
    "insert": "BEFORE INSERT ON item WHEN NEW.name = 'bad'",
    "update": "BEFORE UPDATE ON item WHEN NEW.name = 'bad'",
    "delete": "BEFORE DELETE ON item WHEN OLD.id = 2",
}


def veto(op: str, kind: str) -> str:
    arg = "IGNORE" if kind == "IGNORE" else f"{kind}, 'no bad items'"
    return f"CREATE TRIGGER veto {TRIGGERS[op]} BEGIN SELECT RAISE({arg}); END;"


def three_rows(make_db: MakeDb, op: str, kind: str) -> tuple[Path, Path]:
    """A and B share three rows (for ``update`` and ``delete``); B vetoes, with
    ``RAISE(kind)``, the change A then makes to row 2 (and only to it)."""
    base = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);"
    pa, pb = make_db("a", base), make_db("b", base)
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        a.provision("s", ["item"])
        b.provision("s", ["item"])
        if op != "insert":
            write(pa, "INSERT INTO item VALUES (1, 'x'), (2, 'x'), (3, 'x')")
            peersync.sync(a, b, "s")
    write(pb, veto(op, kind))
    if op == "insert":
        write(pa, "INSERT INTO item VALUES (1, 'ok'), (2, 'bad'), (3, 'ok')")
    elif op == "update":
        write(pa, "UPDATE item SET name = CASE id WHEN 2 THEN 'bad' ELSE 'ok' END")
    else:
        write(pa, "DELETE FROM item")
    return pa, pb


@pytest.mark.parametrize("op", ["insert", "update", "delete"])
@pytest.mark.parametrize("kind", ["ROLLBACK", "ABORT", "FAIL"])
def test_a_trigger_refusing_one_row_fails_that_row_only_and_the_next_session_works(
    make_db: MakeDb, op: str, kind: str
) -> None:
    """``RAISE(ROLLBACK)`` ends the whole transaction (the batch so far is gone):
    the batch is applied again without that row. ``RAISE(ABORT)`` and
    ``RAISE(FAIL)`` end the statement only. Each way the row is one ``error``
    conflict carrying the trigger's message, the other two rows apply, and
    later sessions send only that row, until the trigger lets it through."""
    pa, pb = three_rows(make_db, op, kind)
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        r = peersync.sync(a, b, "s", direction="push")
        assert (r.sent_a_to_b, r.errors) == (3, 1)  # three rows, the failed one counted once though sent again
        assert r.applied == 2
        assert not b.conn.in_transaction
        [c] = b.conflicts()
        assert (c.type, c.key, c.outcome, c.detail) == (
            peersync.ConflictType.ERROR,
            (2,),
            peersync.Outcome.FAILED,
            "no bad items",
        )
        expected = [r for r in rows(pa, "item") if r[0] != 2]
        expected += {"insert": [], "update": [(2, "x")], "delete": [(2, "x")]}[op]
        assert rows(pb, "item") == sorted(expected)
        r = peersync.sync(a, b, "s", direction="push")
        assert (r.sent_a_to_b, r.applied, r.errors) == (1, 0, 1)
        write(pb, "DROP TRIGGER veto")
        r = peersync.sync(a, b, "s")
        assert (r.errors, r.sent_b_to_a) == (0, 0)
        assert rows(pb, "item") == rows(pa, "item")
        r = peersync.sync(a, b, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)


def test_a_trigger_ignoring_a_row_makes_the_destinations_state_a_local_change(make_db: MakeDb) -> None:
    """``RAISE(IGNORE)`` skips the write without an error. peersync sees that the
    row is not what it wrote and records the destination's state as a new local
    change, like any other change a trigger makes: the ignored insert becomes a
    delete that reaches the source too, and the peers converge without errors."""
    pa, pb = three_rows(make_db, "insert", "IGNORE")
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        r = peersync.sync(a, b, "s")
        assert (r.errors, r.sent_a_to_b, r.sent_b_to_a) == (0, 3, 1)
        assert rows(pa, "item") == rows(pb, "item") == [(1, "ok"), (3, "ok")]
        r = peersync.sync(a, b, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)


def test_a_unique_constraint_declared_on_conflict_rollback_fails_only_the_colliding_row(make_db: MakeDb) -> None:
    """A constraint ``ON CONFLICT ROLLBACK`` ends the transaction like
    ``RAISE(ROLLBACK)`` does."""
    loose = "CREATE TABLE person (id INTEGER PRIMARY KEY, email TEXT);"
    strict = "CREATE TABLE person (id INTEGER PRIMARY KEY, email TEXT UNIQUE ON CONFLICT ROLLBACK);"
    pa, pb = make_db("a", loose), make_db("b", strict)
    write(pa, *(f"INSERT INTO person VALUES ({i}, 'p{i}@example.org')" for i in range(1, 11)))
    write(pb, "INSERT INTO person VALUES (100, 'p4@example.org')")
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        a.provision("s", ["person"])
        b.provision("s", ["person"])
        r = peersync.sync(a, b, "s", direction="push")
        assert (r.applied, r.errors) == (9, 1)
        assert error_keys(b) == [(4,)]
    assert rows(pb, "person") == [r for r in rows(pa, "person") if r[0] != 4] + [(100, "p4@example.org")]


def test_a_trigger_ending_the_transaction_on_a_conflicts_outcome_fails_that_row_only(make_db: MakeDb) -> None:
    """Under ``source-wins`` the incoming row of a conflict is written as a new
    local change after the batch; B's trigger refuses it with RAISE(ROLLBACK):
    that conflict becomes an error, the rest of the batch applies."""
    base = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);"
    pa, pb = make_db("a", base), make_db("b", base)
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        a.provision("s", ["item"])
        b.provision("s", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x'), (2, 'x')")
        peersync.sync(a, b, "s")
        write(pb, "UPDATE item SET name = 'mine' WHERE id = 1", veto("update", "ROLLBACK"))
        write(pa, "UPDATE item SET name = 'bad' WHERE id = 1", "INSERT INTO item VALUES (3, 'new')")
        r = peersync.sync(a, b, "s", direction="push", policy=peersync.Policy.SOURCE_WINS)
        assert r.errors == 1
        assert not b.conn.in_transaction
        assert error_keys(b) == [(1,)]
    assert rows(pb, "item") == [(1, "mine"), (2, "x"), (3, "new")]


def test_a_savepoint_is_rolled_back_only_while_its_transaction_is_open(tmp_path: Path) -> None:
    """The one transaction helper: a failing block inside a transaction rolls
    back to its savepoint and keeps the transaction; a block whose transaction
    a trigger ended reports it as ``TransactionLost`` (not "no such
    savepoint"); a failing COMMIT rolls back and keeps no lock."""
    from peersync._adapters.sqlite.txn import TransactionLost, atomic

    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.executescript(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT CHECK (v != 'check'));"
        "CREATE TRIGGER stop BEFORE INSERT ON t WHEN NEW.v = 'stop' BEGIN SELECT RAISE(ROLLBACK, 'stopped'); END;"
        "CREATE TABLE p (id INTEGER PRIMARY KEY);"
        "CREATE TABLE c (pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);"
        "PRAGMA foreign_keys = ON;"
    )
    with atomic(conn):
        conn.execute("INSERT INTO t VALUES (1, 'a')")
        with pytest.raises(sqlite3.IntegrityError), atomic(conn):
            conn.execute("INSERT INTO t VALUES (2, 'b')")
            conn.execute("INSERT INTO t VALUES (3, 'check')")
        assert conn.in_transaction
    assert conn.execute("SELECT id FROM t").fetchall() == [(1,)]
    with pytest.raises(TransactionLost, match="stopped"), atomic(conn):
        conn.execute("INSERT INTO t VALUES (4, 'a')")
        with atomic(conn), atomic(conn):
            conn.execute("INSERT INTO t VALUES (5, 'stop')")
    assert not conn.in_transaction
    assert conn.execute("SELECT id FROM t").fetchall() == [(1,)]
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"), atomic(conn):
        conn.execute("INSERT INTO c VALUES (7)")
    assert not conn.in_transaction
    conn.close()
