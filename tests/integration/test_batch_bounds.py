"""Batches are bounded by the rows they send and by bytes, from the first batch
on, in the source's tick order, and each covers exactly the ticks it claims."""

from __future__ import annotations

import sqlite3
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peersync
from peersync.testing import RecordingPeer

from ..helpers import rows, write

MakeDb = Callable[..., Path]
MIB = 1024 * 1024


class Sizes:
    """A destination that notes each batch's size and row count, and keeps nothing else."""

    def __init__(self, peer: peersync.Database) -> None:
        self.peer, self.url = peer, peer.url
        self.batches: list[tuple[int, int]] = []

    def apply(self, scope: str, data: bytes, handler: Any) -> Any:
        report = self.peer.apply(scope, data, handler)
        self.batches.append((len(data), report.received))
        return report

    def __getattr__(self, name: str) -> Any:
        return getattr(self.peer, name)


def test_a_batch_carries_batch_size_rows_sent_not_log_entries_read(make_db: MakeDb) -> None:
    """B holds 100 rows of A's that came through C, and 7 of its own. Sending
    B's changes to A filters the 100 out (A knows them) without counting them:
    batches of 3 carry 3 rows each, so 7 rows take 3 batches, not one batch
    per 3 entries read."""
    a, b, c = make_db("a"), make_db("b"), make_db("c")
    with peersync.connect(a) as da, peersync.connect(b) as dbb, peersync.connect(c) as dc:
        for d in (da, dbb, dc):
            d.provision("s", ["item", "tag"])
        write(a, *(f"INSERT INTO item VALUES ({i}, 'a{i}', {i}, 1.0)" for i in range(1, 101)))
        peersync.sync(da, dc, "s", direction="push")
        peersync.sync(dc, dbb, "s", direction="push")
        write(b, *(f"INSERT INTO item VALUES ({i}, 'b{i}', {i}, 2.0)" for i in range(101, 108)))
        recorder = RecordingPeer(da)
        result = peersync.run_session(dbb, recorder, "s", batch_size=3)
        assert (result.sent, result.skipped_known) == (7, 0)
        counts = [sum(len(c) for c in sent.batch.changes.values()) for sent in recorder.received]
        assert counts == [3, 3, 1]
        assert rows(a, "item") == rows(b, "item")


def test_batches_follow_source_ticks_across_tables_and_claim_exactly_what_they_covered(make_db: MakeDb) -> None:
    """Changes interleaved over two tables, sent in batches of 4 rows: each batch
    holds its rows' ticks in order, within ``first..last``; the next batch
    starts right after ``last``, and a batch cut by its row bound ends at its
    last row's tick, claiming no tick it did not look at."""
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        for d in (da, dbb):
            d.provision("s", ["item", "tag"])
        statements = []
        for i in range(1, 16):
            statements.append(f"INSERT INTO item VALUES ({i}, 'n{i}', {i}, 1.0)")
            statements.append(f"INSERT INTO tag VALUES ({i}, 'red')")
            if i % 3 == 0:
                statements.append(f"UPDATE tag SET label = 'blue' WHERE item_id = {i - 1}")
                statements.append(f"DELETE FROM tag WHERE item_id = {i - 2}")
        write(a, *statements)
        recorder = RecordingPeer(dbb)
        result = peersync.run_session(da, recorder, "s", batch_size=4)
        assert result.errors == 0
        batches = [sent.batch for sent in recorder.received]
        assert len(batches) == -(-result.sent // 4)
        for prev, batch in zip([None, *batches], batches, strict=False):
            ticks = sorted(change[0] for changes in batch.changes.values() for change in changes)
            assert len(ticks) <= 4
            assert all(batch.first <= t <= batch.last for t in ticks)
            if prev is not None:
                assert batch.first == prev.last + 1
            if not batch.final:
                assert len(ticks) == 4 and batch.last == ticks[-1]
        assert batches[-1].final
        assert rows(a, "item") == rows(b, "item") and rows(a, "tag") == rows(b, "tag")


def test_the_byte_bound_holds_from_the_first_batch_and_memory_stays_flat(make_db: MakeDb) -> None:
    """200 rows of 1 MiB with ``batch_bytes`` of 4 MiB: no batch, the first one
    included, goes past 4 MiB by more than one row, and a whole sync holds a
    few batches in memory, not the rows (200 MiB)."""
    schema = "CREATE TABLE blob (id INTEGER PRIMARY KEY, data BLOB);"
    a, b = make_db("a", schema), make_db("b", schema)
    conn = sqlite3.connect(a)
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)"
        f" INSERT INTO blob SELECT i, randomblob({MIB}) FROM n"
    )
    conn.commit()
    conn.close()
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        for d in (da, dbb):
            d.provision("s", ["blob"])
        sizes = Sizes(dbb)
        tracemalloc.start()
        try:
            result = peersync.run_session(da, sizes, "s", batch_bytes=4 * MIB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.sent == 200
        assert max(size for size, _ in sizes.batches) <= 5 * MIB + 4096
        assert all(n in (3, 4) for _, n in sizes.batches[:-1]), sizes.batches
        assert peak < 40 * MIB, f"peak {peak / MIB:.0f} MiB"
        check = sqlite3.connect(b)
        assert check.execute("SELECT count(*), sum(length(data)) FROM blob").fetchone() == (200, 200 * MIB)
        check.close()


def test_a_row_larger_than_the_byte_bound_travels_alone(make_db: MakeDb) -> None:
    schema = "CREATE TABLE blob (id INTEGER PRIMARY KEY, data BLOB);"
    a, b = make_db("a", schema), make_db("b", schema)
    write(a, *(f"INSERT INTO blob VALUES ({i}, randomblob({MIB}))" for i in range(1, 6)))
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        for d in (da, dbb):
            d.provision("s", ["blob"])
        sizes = Sizes(dbb)
        result = peersync.run_session(da, sizes, "s", batch_bytes=64 * 1024)
        assert result.sent == 5
        assert [n for _, n in sizes.batches] == [1, 1, 1, 1, 1]
        assert rows(a, "blob") == rows(b, "blob")
