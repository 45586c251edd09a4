"""What an initial sync does differently, and the promises it keeps while doing so.

A session whose destination knows none of the source's changes takes larger
batches by default (fewer transactions, so fewer commits and their fsyncs); an
explicit batch size still bounds it, and later sessions go back to the usual
size. A SQLite apply gives its page cache room for a large batch and restores
the connection's setting after. A batch of rows whose integer keys fall in a
range where the destination tracks no key skips the per-row "seen" probe: any
tracked key in that range (a live row or a tombstone) must still be triaged,
so a conflict there is found and logged as before.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync
from peersync._adapters.sqlite.txn import page_cache
from peersync._engine.session import DEFAULT_BATCH_ROWS, INITIAL_BATCH_ROWS

from ..helpers import at, peers, push, rows, write

SCHEMA = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);"
N = DEFAULT_BATCH_ROWS * 2 + 500  # three batches at the usual size, one at the initial size


def _series(lo: int, hi: int, name: str) -> str:
    """Rows ``lo..hi`` of item, as one statement."""
    return (
        f"WITH RECURSIVE g(v) AS (SELECT {lo} UNION ALL SELECT v + 1 FROM g WHERE v < {hi})"
        f" INSERT INTO item SELECT v, '{name}' || v, v FROM g"
    )


def _fill(path: Path, lo: int, hi: int, name: str = "n") -> None:
    write(path, _series(lo, hi, name))


def test_an_initial_sync_takes_larger_batches_and_later_sessions_the_usual_size(
    make_db: Callable[..., Path],
) -> None:
    assert INITIAL_BATCH_ROWS > N > DEFAULT_BATCH_ROWS
    pa, pb = peers(make_db, SCHEMA, ["item"], names="ab")
    _fill(pa, 1, N)
    first = push(pa, pb)
    assert (first.sent_a_to_b, first.batches) == (N, 1)
    assert rows(pb, "item") == rows(pa, "item")
    write(pa, "UPDATE item SET qty = qty + 1")  # B now knows A's changes: the usual size
    again = push(pa, pb)
    assert (again.sent_a_to_b, again.batches) == (N, 3)
    assert rows(pb, "item") == rows(pa, "item")


def test_an_explicit_batch_size_bounds_an_initial_sync(make_db: Callable[..., Path]) -> None:
    pa, pb = peers(make_db, SCHEMA, ["item"], names="ab")
    _fill(pa, 1, 2500)
    r = push(pa, pb, batch_size=1000)
    assert (r.sent_a_to_b, r.batches) == (2500, 3)


def test_the_cli_takes_the_initial_size_unless_told(make_db: Callable[..., Path]) -> None:
    pa, pb, pc = peers(make_db, SCHEMA, ["item"], names="abc")
    _fill(pa, 1, N)

    def cli(dst: Path, *extra: str) -> dict[str, int]:
        args = [sys.executable, "-m", "peersync", "sync", str(pa), str(dst), "--scope", "s", "--direction", "push"]
        proc = subprocess.run([*args, "--json", *extra], capture_output=True, text=True, check=True)
        out: dict[str, int] = json.loads(proc.stdout)
        return out

    assert cli(pb)["batches"] == 1
    assert cli(pc, "--batch-size", str(DEFAULT_BATCH_ROWS))["batches"] == 3


def test_the_page_cache_grows_for_a_block_and_is_restored(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("PRAGMA cache_size = -3000")
    with page_cache(conn, 50_000):
        assert conn.execute("PRAGMA cache_size").fetchone() == (-50_000,)
    assert conn.execute("PRAGMA cache_size").fetchone() == (-3000,)
    with pytest.raises(RuntimeError), page_cache(conn, 50_000):
        raise RuntimeError
    assert conn.execute("PRAGMA cache_size").fetchone() == (-3000,)
    conn.execute("PRAGMA cache_size = 100000")  # in pages: larger than asked, left as it is
    with page_cache(conn, 50_000):
        assert conn.execute("PRAGMA cache_size").fetchone() == (100_000,)
    assert conn.execute("PRAGMA cache_size").fetchone() == (100_000,)


def test_an_apply_leaves_the_connections_cache_setting_as_it_was(make_db: Callable[..., Path]) -> None:
    pa, pb = peers(make_db, SCHEMA, ["item"], names="ab")
    _fill(pa, 1, N)
    with peersync.connect(pa) as a, peersync.connect(pb) as b:
        b.conn.execute("PRAGMA cache_size = -1500")  # type: ignore[attr-defined]
        assert peersync.sync(a, b, "s", direction="push").sent_a_to_b == N
        assert b.conn.execute("PRAGMA cache_size").fetchone() == (-1500,)  # type: ignore[attr-defined]


@pytest.mark.parametrize("local", ["tombstone", "live row"])
def test_a_tracked_key_inside_an_initial_batchs_key_range_is_still_triaged(
    make_db: Callable[..., Path], local: str
) -> None:
    """B tracks key 1500 (its own row, or its tombstone) and knows none of A's changes;
    A's first batch holds keys 1..3000. B's key must meet A's row as a conflict (logged,
    resolved by last writer: B's change is later), never be overwritten as if unseen."""
    pa, pb = peers(make_db, SCHEMA, ["item"], names="ab")
    at(pa, 1_000_000, _series(1, 3000, "a"))
    at(pb, 2_000_000, "INSERT INTO item VALUES (1500, 'b', -1)")
    if local == "tombstone":
        at(pb, 2_000_001, "DELETE FROM item WHERE id = 1500")
    r = push(pa, pb)
    assert r.conflicts == 1
    with peersync.connect(pb) as b:
        logged = b.conflicts("s")
    assert [(c.table, c.key) for c in logged] == [("item", (1500,))]
    held = {row[0]: row for row in rows(pb, "item")}
    assert len(held) == 2999 + (local == "live row")
    if local == "live row":
        assert held[1500] == (1500, "b", -1)  # the later local change won
    else:
        assert 1500 not in held  # the later delete won: no resurrection


def test_rows_beside_a_tracked_range_apply_as_never_seen(make_db: Callable[..., Path]) -> None:
    """B tracks keys 1..100 of its own; A's rows 1001..4000 are outside that range: they
    apply with nothing to triage, and B's own rows stay."""
    pa, pb = peers(make_db, SCHEMA, ["item"], names="ab")
    _fill(pb, 1, 100, "b")
    _fill(pa, 1001, 4000, "a")
    r = push(pa, pb)
    assert (r.sent_a_to_b, r.conflicts) == (3000, 0)
    assert len(rows(pb, "item")) == 3100
