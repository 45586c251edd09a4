"""Primary keys of every shape SQLite accepts, and table and column names of every
spelling: tracked, synced and compared exactly as SQLite stores them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import peersync

from ..helpers import connect_all, rows, write

MakeDb = Callable[..., Path]


def test_integer_primary_key_desc_is_not_taken_for_a_rowid_alias(make_db: MakeDb) -> None:
    """``INTEGER PRIMARY KEY DESC`` is not an alias of the rowid (a SQLite quirk): the column
    holds values of any type. Its tracking key is then not a rowid either, so a foreign
    writer's insert of a text or a real key succeeds and syncs (with a rowid tracking key,
    peersync's own trigger failed it with 'datatype mismatch')."""
    schema = "CREATE TABLE t (id INTEGER PRIMARY KEY DESC, v TEXT);"
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = connect_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["t"])
        write(pa, "INSERT INTO t VALUES ('k1', 'text key')", "INSERT INTO t VALUES (2.5, 'real key')")
        peersync.sync(a, b, "s")
        assert sorted(rows(pb, "t"), key=repr) == sorted(rows(pa, "t"), key=repr)
    finally:
        a.close()
        b.close()


def test_odd_identifiers_and_keys_of_every_storage_class_round_trip(make_db: MakeDb) -> None:
    """Quoted, spaced, keyword and unicode table and column names; an untyped key holding
    integers at the int64 bounds, text (empty, with NUL), blobs and reals (inf, -0.0); a
    composite WITHOUT ROWID key whose column changes; an INSERT OR REPLACE eviction through
    a UNIQUE column: everything syncs, and a second sync sends nothing."""
    schema = """
    CREATE TABLE "we""ird tab" ("k ey" PRIMARY KEY, "select" TEXT, "v""q" UNIQUE);
    CREATE TABLE "Ünï" ("a b" INTEGER, "c-d" TEXT, "order", PRIMARY KEY ("c-d", "a b")) WITHOUT ROWID;
    """
    weird, uni = 'we"ird tab', "Ünï"
    pa, pb = make_db("a", schema), make_db("b", schema)
    a, b = connect_all(pa, pb)

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
