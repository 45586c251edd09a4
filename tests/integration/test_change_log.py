"""The change log grows with the rows, not with their history: whatever was
written and synced, it holds about one entry per tracked row (tombstones
included), so a new peer's first sync costs what the rows cost."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import peersync

from ..helpers import rows, write
from .test_cli import invoke, ok

MakeDb = Callable[..., Path]
ROWS = 100
SCHEMA = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL);"


def log_entries(path: Path) -> int:
    conn = sqlite3.connect(path)
    (n,) = conn.execute("SELECT count(*) FROM _peersync_log").fetchone()
    conn.close()
    return int(n)


def tracked_rows(db: peersync.Database) -> int:
    return db.status("s")[0].tracked_rows


def test_the_log_holds_one_entry_per_tracked_row_after_a_long_history(make_db: MakeDb) -> None:
    """100 rows updated again and again on both sides, with deletes, re-inserts
    and key changes, and a sync after each round: the log stays at about one
    entry per tracked row on both peers (it was rows x rounds)."""
    a, b = make_db("a", SCHEMA), make_db("b", SCHEMA)
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        for d in (da, dbb):
            d.provision("s", ["item"])
        write(a, *(f"INSERT INTO item VALUES ({i}, 'n{i}', 0, 1.0)" for i in range(1, ROWS + 1)))
        peersync.sync(da, dbb, "s")
        rounds = 20
        for r in range(rounds):
            write(a, f"UPDATE item SET qty = qty + 1, name = 'a{r}'")
            if r % 3 == 0:
                write(b, f"UPDATE item SET price = price + 1 WHERE id % 7 = {r % 7}")
            if r % 10 == 5:
                write(a, "DELETE FROM item WHERE id = 1", "UPDATE item SET id = 1 WHERE id = 2")
                write(a, "INSERT INTO item VALUES (2, 'back', 0, 0.0)")
            result = peersync.sync(da, dbb, "s")
            assert result.errors == 0
        assert rows(a, "item") == rows(b, "item")
        for path, db in ((a, da), (b, dbb)):
            tracked = tracked_rows(db)
            assert tracked == ROWS
            # One entry per tracked row; at most one more, the clock's last tick.
            assert log_entries(path) <= tracked + 1, f"{path.name}: {log_entries(path)} entries for {tracked} rows"


def test_a_new_peers_first_sync_after_a_long_history_takes_one_batch(make_db: MakeDb) -> None:
    """After 100 rows were each updated many times (synced every round), a new
    peer's first sync of those 100 rows with a batch size of 100 takes one
    batch (two at most), not one per round."""
    a, b, c = make_db("a", SCHEMA), make_db("b", SCHEMA), make_db("c", SCHEMA)
    with peersync.connect(a) as da, peersync.connect(b) as dbb, peersync.connect(c) as dc:
        for d in (da, dbb, dc):
            d.provision("s", ["item"])
        write(a, *(f"INSERT INTO item VALUES ({i}, 'n{i}', 0, 1.0)" for i in range(1, ROWS + 1)))
        for r in range(10):
            write(a, f"UPDATE item SET qty = qty + 1, name = 'r{r}'")
            peersync.sync(da, dbb, "s")
        for source in (da, dbb):
            result = peersync.sync(source, dc, "s", direction="push", batch_size=ROWS)
            assert result.sent_a_to_b == (ROWS if source is da else 0)
            assert result.batches <= 2, f"{result.batches} batches for {ROWS} rows"
        assert rows(c, "item") == rows(a, "item")


def test_the_log_stays_near_one_entry_per_row_when_a_few_of_many_rows_change_often(make_db: MakeDb) -> None:
    """400 rows of which 10 random ones change between syncs, 50 times: entries
    superseded after they were compacted once lie anywhere below the last
    compaction, and are still found (the log was 400 + 10 x 50 entries)."""
    a, b = make_db("a", SCHEMA), make_db("b", SCHEMA)
    n, hot, rounds = 400, 10, 50
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        write(a, *(f"INSERT INTO item VALUES ({i}, 'n{i}', 0, 1.0)" for i in range(1, n + 1)))
        for d in (da, dbb):
            d.provision("s", ["item"])
        rnd = random.Random(4)
        for r in range(rounds):
            write(a, *(f"UPDATE item SET qty = {r} WHERE id = {k}" for k in rnd.sample(range(1, n + 1), hot)))
            assert peersync.sync(da, dbb, "s").errors == 0
        assert rows(a, "item") == rows(b, "item")
        for path in (a, b):
            assert log_entries(path) <= 1.5 * n, f"{path.name}: {log_entries(path)} entries for {n} rows"


def test_a_database_that_only_sends_compacts_on_request(make_db: MakeDb) -> None:
    """Reads never write, so a database that is only ever a source keeps its
    superseded entries until maintenance: ``compact`` (API and CLI) brings the
    log back to one entry per row, and the next sync still sends nothing new."""
    a, b = make_db("a", SCHEMA), make_db("b", SCHEMA)
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        for d in (da, dbb):
            d.provision("s", ["item"])
        write(a, *(f"INSERT INTO item VALUES ({i}, 'n{i}', 0, 1.0)" for i in range(1, ROWS + 1)))
        for r in range(5):
            write(a, f"UPDATE item SET qty = {r}")
            peersync.sync(da, dbb, "s", direction="push")
        assert log_entries(a) >= 5 * ROWS  # pushing never compacted the source
        da.compact("s")
        assert log_entries(a) <= ROWS + 1
        assert peersync.sync(da, dbb, "s").sent_a_to_b == 0
        assert rows(a, "item") == rows(b, "item")
    for r in range(5, 8):
        write(a, f"UPDATE item SET qty = {r}")
    ok(invoke("compact", a))
    assert log_entries(a) <= ROWS + 1
