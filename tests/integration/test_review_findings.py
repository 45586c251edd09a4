"""Reproductions of correctness bugs found in review. Tests named ``test_bug_*`` FAIL until
the bug is fixed (the ``row-per-batch`` case of the trigger test is a passing control);
``test_ok_*`` PASSES and covers a risky path nobody tested.

Every test uses real SQLite files through the public API (``peersync.connect``,
``sync``/``run_session``, the Peer methods ``describe``/``changes``/``apply``) and the
``peersync.testing`` wrappers.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

import peersync
from peersync import Knowledge, Policy
from peersync.testing import FaultyPeer

from ..helpers import rows, write

MakeDb = Callable[..., Path]


def open_all(*paths: Path) -> list[peersync.Database]:
    return [peersync.connect(p) for p in paths]


def first_batch(src: peersync.Database, scope: str) -> list[Any]:
    """The source's first batch for an empty destination, decoded to its envelope list."""
    tick = src.describe(scope).tick
    data = src.changes(scope, Knowledge.empty(), 0, tick, max_rows=100, max_bytes=1 << 20)
    env: list[Any] = msgpack.unpackb(data, raw=False)
    return env


# -- BUG (crash): temp tables ps_in_<i> are reused across scopes with another width ---------------------------------
@pytest.mark.parametrize("how", ["two-scopes", "reprovision"])
def test_bug_one_connection_applying_a_narrow_then_a_wider_table_at_the_same_position(
    make_db: MakeDb, how: str
) -> None:
    """Found by review. ``_sqlite_apply._In.create`` uses ``CREATE TEMP TABLE IF NOT EXISTS ps_in_<i>``
    keyed only by the table's position in its scope; the temp table outlives the batch on
    the connection, so a later batch whose i-th table has more columns (another scope, or
    the same scope provisioned again) fails with StorageError 'table temp.ps_in_0 has no
    column named c2'."""
    schema = (
        "CREATE TABLE narrow (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE wide (id INTEGER PRIMARY KEY, a, b, c);"
    )
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = open_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("n", ["narrow"])
        write(pa, "INSERT INTO narrow VALUES (1, 'x')", "INSERT INTO wide VALUES (1, 1, 2, 3)")
        peersync.sync(a, b, "n")
        if how == "two-scopes":
            scope = "w"
        else:
            scope = "n"
            for d in (a, b):
                d.deprovision("n")
        for d in (a, b):
            d.provision(scope, ["wide"])
        peersync.sync(a, b, scope)  # raises StorageError today
        assert rows(pb, "wide") == [(1, 1, 2, 3)]
    finally:
        a.close()
        b.close()


# -- BUG (convergence / data loss): non-binary collations -------------------------------------------------------------
def test_bug_case_only_edit_of_a_nocase_column_is_never_synced(make_db: MakeDb) -> None:
    """Found by review. The update trigger (``Tracked.trigger_sql``) fires only ``WHEN NOT (OLD.c IS
    NEW.c AND ...)``; ``IS`` compares with the column's collation, so a case-only edit of a
    ``COLLATE NOCASE`` column (or a trailing-space edit under RTRIM) is not a change: it is
    never tracked nor sent, and the peers diverge for good."""
    schema = "CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT COLLATE NOCASE);"
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = open_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["u"])
        write(pa, "INSERT INTO u VALUES (1, 'bob@x.org')")
        peersync.sync(a, b, "s")
        write(pa, "UPDATE u SET email = 'Bob@X.org' WHERE id = 1")
        peersync.sync(a, b, "s")
        assert rows(pb, "u") == rows(pa, "u") == [(1, "Bob@X.org")]
    finally:
        a.close()
        b.close()


# -- BUG (false conflict -> lost update / resurrection): destination's own partial rows ---------------------------
@pytest.mark.parametrize("x_change", ["update", "delete"])
def test_bug_destination_row_from_unfinished_session_conflicts_with_an_older_version(
    make_db: MakeDb, x_change: str
) -> None:
    """Found by review. Commit c1d9365 made rows applied in an unfinished session carry the source's
    knowledge (``_peersync_partial``) when they travel ON, but triage
    (``_In.triage``/``SetApply``) never consults the DESTINATION's own record: D holds X's
    edit (made knowing S's v2) from a session whose reply was lost, so D's knowledge lacks
    v2; when S then sends v2, D raises a false conflict (SEMANTICS 5: a bug). Under
    source-wins the stale v2 overwrites X's later edit (or resurrects X's delete) at D, is
    written as a new local version, and undoes X's change at X as well."""
    ps, px, pd = make_db("s"), make_db("x"), make_db("d")
    s, x, d = open_all(ps, px, pd)
    try:
        for db in (s, x, d):
            db.provision("s", ["item"])
        write(ps, "INSERT INTO item VALUES (1, 'v1', 1, 1.0)")
        peersync.sync(s, x, "s")
        peersync.sync(s, d, "s")
        write(ps, "UPDATE item SET name = 'v2' WHERE id = 1")
        peersync.sync(s, x, "s", direction="push")
        change = "UPDATE item SET qty = 3 WHERE id = 1" if x_change == "update" else "DELETE FROM item WHERE id = 1"
        write(px, change)  # X's change is made knowing v2
        expected = rows(px, "item")
        with pytest.raises(peersync.TransportError):
            peersync.run_session(x, FaultyPeer(d, lose_reply_after=0), "s")  # D commits X's row, no completion
        assert rows(pd, "item") == expected
        res = peersync.run_session(s, d, "s", policy=Policy.SOURCE_WINS)
        assert (res.conflicts, d.conflicts("s")) == (0, [])
        assert rows(pd, "item") == expected
        peersync.sync(d, x, "s", policy=Policy.SOURCE_WINS)
        assert rows(px, "item") == expected
    finally:
        for db in (s, x, d):
            db.close()


# -- BUG (convergence): a user's trigger at the destination touching a row of the same batch ------------------------
@pytest.mark.parametrize(
    "batch_size",
    [
        pytest.param(1, id="row-per-batch"),
        pytest.param(100, id="one-batch"),
    ],
)
def test_bug_destination_trigger_side_effect_on_a_row_of_the_same_batch_is_not_tracked(
    make_db: MakeDb, batch_size: int
) -> None:
    """FAILS for one-batch. While a batch is applied the triggers skip every row stamped in
    it (``guard``: tracking ``lt > floor``). A trigger only B has, fired by row 2, updates
    row 1 of the same batch: B's row 1 changes but keeps A's version, so the change is
    never sent to A while C receives it under that same version: same version, two
    contents, forever. With one row per batch the side effect is tracked and all converge."""
    plain = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);"
    trig = plain + (
        "CREATE TRIGGER touch AFTER INSERT ON item WHEN NEW.id = 2 BEGIN"
        " UPDATE item SET name = 'touched' WHERE id = 1; END;"
    )
    pa, pb, pc = make_db("a", plain), make_db("b", trig), make_db("c", plain)
    dbs = open_all(pa, pb, pc)
    a, b, c = dbs
    try:
        for d in dbs:
            d.provision("s", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'one'), (2, 'two')")
        peersync.sync(a, b, "s", batch_size=batch_size)
        for _ in range(2):
            peersync.sync(b, c, "s")
            peersync.sync(c, a, "s")
            peersync.sync(a, b, "s")
        assert rows(pa, "item") == rows(pb, "item") == rows(pc, "item")
    finally:
        for d in dbs:
            d.close()


# -- BUG (data loss): foreign key naming the parent's key in another letter case -------------------------------------
def test_bug_parent_delete_cascades_onto_a_moved_child_when_the_fk_names_the_key_in_another_case(
    make_db: MakeDb,
) -> None:
    """Found by review. ``SetApply._postpone`` (hold back a parent's delete while children the source
    knew still reference it) compares the FK's parent columns with the key case-sensitively
    (``set(pcols) != set(key)``), so ``REFERENCES folder(ID)`` for key ``id`` is skipped.
    Same scenario as test_parent_delete_does_not_cascade_onto_a_child_that_moved_away
    (which passes with ``folder(id)``): the folder's delete cascades onto the document that
    moved away, and the document is deleted everywhere although nobody deleted it."""
    schema = (
        "CREATE TABLE folder (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE doc (id INTEGER PRIMARY KEY,"
        " folder_id INTEGER NOT NULL REFERENCES folder(ID) ON DELETE CASCADE, title TEXT);"
    )
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = open_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["folder", "doc"])
        write(pa, "INSERT INTO folder VALUES (1, 'old'), (2, 'new')", "INSERT INTO doc VALUES (10, 1, 'report')")
        peersync.sync(a, b, "s")
        write(
            pa,
            "UPDATE doc SET folder_id = 2 WHERE id = 10",
            "DELETE FROM folder WHERE id = 1",
            "UPDATE doc SET title = 'report v2' WHERE id = 10",
        )
        for _ in range(2):
            peersync.sync(a, b, "s", batch_size=1)
        assert rows(pa, "doc") == rows(pb, "doc") == [(10, 2, "report v2")]
    finally:
        a.close()
        b.close()


# -- BUG (reidentify) --------------------------------------------------------------------------------------------------
def test_bug_reidentify_crashes_when_its_replica_id_is_in_the_replica_table(make_db: MakeDb) -> None:
    """Found by review. ``SQLitePeer.reidentify`` calls ``_rep_index(sc.rid)`` without
    ``_load_replicas()``. A database with two scopes receives, through one scope, batches
    listing every replica the source knows, including this database's id in the other
    scope, which lands in ``_peersync_replicas``; reidentify on a fresh connection then
    INSERTs that id again: StorageError 'UNIQUE constraint failed'."""
    pa, pb = make_db("a"), make_db("b")
    a, b = open_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s1", ["item"])
            d.provision("s2", ["item", "tag"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        peersync.sync(a, b, "s1")
        write(pb, "INSERT INTO item VALUES (2, 'y', 1, 1.0)")
        peersync.sync(a, b, "s2")
    finally:
        a.close()
        b.close()
    with peersync.connect(pa) as fresh:
        old = fresh.describe("s1").replica_id
        assert fresh.reidentify("s1") != old


@pytest.mark.xfail(
    strict=True,
    reason="limit (README): reidentify of a copy whose scopes share a table re-sends rows (needs per-scope id epochs)",
)
def test_bug_reidentify_relabels_rows_of_another_scope_sharing_the_table(make_db: MakeDb, tmp_path: Path) -> None:
    """Found by review. ``reidentify`` runs ``UPDATE tracking SET urep = old, utick = lt, scope = <this
    scope> WHERE scope IS NOT <this scope>``: rows that arrived through ANOTHER scope sharing
    the table lose their origin there. Reidentifying both scopes of a copied file (needed, as
    both ids are copied) thus makes every row of s1 a brand-new version: the copy resends
    rows its peer holds (no-redundancy broken) and a peer's later edit meets a false
    conflict; under source-wins the copy's stale row undoes that edit."""
    pa, pb, pe = make_db("a"), make_db("b"), make_db("e")
    a, b, e = open_all(pa, pb, pe)
    try:
        a.provision("s1", ["item"])
        a.provision("s2", ["item"])
        b.provision("s1", ["item"])
        e.provision("s2", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)", "INSERT INTO item VALUES (2, 'y', 1, 1.0)")
        write(pb, "INSERT INTO item VALUES (3, 'b', 1, 1.0)")
        write(pe, "INSERT INTO item VALUES (4, 'e', 1, 1.0)")
        for _ in range(2):
            peersync.sync(a, b, "s1")
            peersync.sync(a, e, "s2")
        pc = tmp_path / "c.db"
        shutil.copy(pa, pc)
        with peersync.connect(pc) as c:
            c.reidentify("s1")
            c.reidentify("s2")
            write(pb, "UPDATE item SET name = 'edited at B' WHERE id = 1")  # made knowing the copied row
            expected = rows(pb, "item")
            r1 = peersync.run_session(c, b, "s1", policy=Policy.SOURCE_WINS)
            r2 = peersync.run_session(c, e, "s2", policy=Policy.SOURCE_WINS)
            assert (r1.sent, r1.conflicts, r2.sent, r2.conflicts) == (0, 0, 0, 0)
            assert rows(pb, "item") == expected
    finally:
        for d in (a, b, e):
            d.close()


# -- BUG (foreign writers): INTEGER PRIMARY KEY DESC is not a rowid alias ---------------------------------------------
def test_bug_integer_primary_key_desc_is_not_a_rowid_alias(make_db: MakeDb) -> None:
    """Found by review. ``introspect`` treats any single INTEGER key of a rowid table as the rowid
    (``rowid_key``), so its tracking table gets ``k0 INTEGER PRIMARY KEY``. But
    ``INTEGER PRIMARY KEY DESC`` is not an alias (SQLite quirk): the column accepts any value,
    and after provisioning a foreign writer's valid insert fails with 'datatype mismatch'
    inside peersync's trigger."""
    schema = "CREATE TABLE t (id INTEGER PRIMARY KEY DESC, v TEXT);"
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = open_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["t"])
        write(pa, "INSERT INTO t VALUES ('k1', 'text key')", "INSERT INTO t VALUES (2.5, 'real key')")
        peersync.sync(a, b, "s")
        assert sorted(rows(pb, "t"), key=repr) == sorted(rows(pa, "t"), key=repr)
    finally:
        a.close()
        b.close()


# -- BUG / limitation (convergence): swapping unique values never applies ------------------------------------------
@pytest.mark.xfail(
    strict=True,
    reason="limit (README): two rows swapping UNIQUE values in one transaction cannot be applied row by row",
)
def test_bug_swapped_unique_values_never_converge(make_db: MakeDb) -> None:
    """Found by review. Two rows swap a UNIQUE column's values at the source (through a temporary
    value, a consistent state at every commit). ``SetApply._write`` writes rows one by one
    (group, then row by row, then retries): each single write collides with the other row,
    every session logs 2 errors and the peers never converge (promise 1)."""
    schema = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE);"
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = open_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["t"])
        write(pa, "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        peersync.sync(a, b, "s")
        write(
            pa,
            "UPDATE t SET name = 'tmp' WHERE id = 1",
            "UPDATE t SET name = 'a' WHERE id = 2",
            "UPDATE t SET name = 'b' WHERE id = 1",
        )
        for _ in range(3):
            peersync.sync(a, b, "s")
        assert rows(pb, "t") == rows(pa, "t") == [(1, "b"), (2, "a")]
    finally:
        a.close()
        b.close()


# -- BUG (bad input changes nothing) -----------------------------------------------------------------------------------
def test_bug_batch_claiming_source_ticks_it_never_made_is_accepted(make_db: MakeDb) -> None:
    """Found by review. ``SQLitePeer.apply`` / ``SetApply.run`` learn ``(source, first..last)`` without
    checking that ``last`` lies within the source's own ticks in ``made_with`` (rows are
    checked against made_with, the range is not). A batch with last = 10**6 is accepted and
    the destination claims a million future ticks of the source: its later changes are never
    sent (lost updates). It should be refused with ProtocolError, changing nothing."""
    pa, pb = make_db("a"), make_db("b")
    a, b = open_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        env = first_batch(a, "s")
        env[7], env[8] = 1_000_000, False  # last far beyond any tick the source made; not final
        before = b.describe("s").knowledge
        with pytest.raises(peersync.ProtocolError):
            b.apply("s", msgpack.packb(env, use_bin_type=True), Policy.LAST_WRITER_WINS)
        assert b.describe("s").knowledge == before
    finally:
        a.close()
        b.close()


def test_bug_change_time_overflow_is_accepted_and_blocks_every_later_session(make_db: MakeDb) -> None:
    """Found by review. A batch whose base_time + time_offset overflows int64 passes validation
    (both are checked only to be ints); SQLite turns ``:base + x.dtime`` into a REAL, stored
    as the row's ctime. From then on every batch this destination sends carries a float
    base time and its peers refuse it ('bad rows for item'): one bad batch blocks the
    replica's outgoing syncs for good. It should be refused, changing nothing."""
    pa, pb, pc = make_db("a"), make_db("b"), make_db("c")
    a, b, c = open_all(pa, pb, pc)
    try:
        for d in (a, b, c):
            d.provision("s", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        env = first_batch(a, "s")
        env[10][0][1] = 2**63 - 1  # the table's base time
        env[10][0][2][0][6] = 10  # the row's time offset
        with contextlib.suppress(peersync.ProtocolError):  # refusing it is the expected behaviour
            b.apply("s", msgpack.packb(env, use_bin_type=True), Policy.LAST_WRITER_WINS)
        peersync.sync(b, c, "s")  # raises ProtocolError today
        peersync.sync(a, c, "s")
        assert rows(pc, "item") == rows(pa, "item")
    finally:
        for d in (a, b, c):
            d.close()


def test_bug_made_with_tick_at_int64_max_raises_overflow_error_not_protocol_error(make_db: MakeDb) -> None:
    """FAILS (low severity). ``SetApply._maps`` stores ranges as ``hi + 1``: a made_with
    range ending at 2**63 - 1 makes executemany raise a bare OverflowError instead of a
    clear ProtocolError (nothing is committed)."""
    pa, pb = make_db("a"), make_db("b")
    a, b = open_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        env = first_batch(a, "s")
        env[5] = Knowledge.from_wire(env[5]).add(env[3], 2**63 - 1).to_wire()
        with pytest.raises(peersync.ProtocolError):
            b.apply("s", msgpack.packb(env, use_bin_type=True), Policy.LAST_WRITER_WINS)
    finally:
        a.close()
        b.close()


# -- PASSES (coverage of a risky path): odd names, keys of every storage class, evictions -------------------------
def test_ok_odd_identifiers_and_keys_of_every_storage_class_round_trip(make_db: MakeDb) -> None:
    """PASSES. Quoted/space/keyword/unicode table and column names, an untyped key holding
    integers at the int64 bounds, text (empty, with NUL), blobs, reals (inf, -0.0), a
    composite WITHOUT ROWID key whose column changes, and an INSERT OR REPLACE eviction
    through a UNIQUE column: everything syncs and a second sync sends nothing."""
    schema = """
    CREATE TABLE "we""ird tab" ("k ey" PRIMARY KEY, "select" TEXT, "v""q" UNIQUE);
    CREATE TABLE "Ünï" ("a b" INTEGER, "c-d" TEXT, "order", PRIMARY KEY ("c-d", "a b")) WITHOUT ROWID;
    """
    weird, uni = 'we"ird tab', "Ünï"
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = open_all(pa, pb)

    def dump(p: Path) -> list[list[tuple[object, ...]]]:
        conn = sqlite3.connect(p)
        out = [
            sorted(conn.execute('SELECT *, typeof("k ey") FROM "we""ird tab"').fetchall(), key=repr),
            sorted(conn.execute('SELECT * FROM "Ünï"').fetchall(), key=repr),
        ]
        conn.close()
        return out

    try:
        for d in (a, b):
            d.provision("s", [weird, uni])
        keys: list[object] = [1, "1", b"\x01", 1.5, -(2**63), 2**63 - 1, "", "x\x00y", float("inf"), -0.0]
        write(
            pa,
            *(('INSERT INTO "we""ird tab" VALUES (?, ?, ?)', (k, "s", repr(k))) for k in keys),
            ('INSERT INTO "Ünï" VALUES (?, ?, ?)', (1, "z", 3)),
            ('INSERT INTO "Ünï" VALUES (?, ?, ?)', ("2", b"\x00", 3)),
        )
        peersync.sync(a, b, "s", batch_size=3)
        assert dump(pa) == dump(pb)
        write(
            pb,
            ('DELETE FROM "we""ird tab" WHERE "k ey" = ?', (1,)),
            ('UPDATE "we""ird tab" SET "select" = ? WHERE "k ey" = ?', ("t", "1")),
            ('INSERT OR REPLACE INTO "we""ird tab" VALUES (?, ?, ?)', (99, "new", repr(1.5))),  # evicts key 1.5
            ('UPDATE "Ünï" SET "a b" = 5 WHERE "c-d" = ?', ("z",)),
        )
        peersync.sync(a, b, "s", batch_size=3)
        assert dump(pa) == dump(pb)
        assert 1.5 not in [r[0] for r in dump(pa)[0]]
        again = peersync.sync(a, b, "s")
        assert (again.sent_a_to_b, again.sent_b_to_a) == (0, 0)
    finally:
        a.close()
        b.close()
