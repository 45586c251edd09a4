"""Promise 7 on PostgreSQL: a session's cost follows the changes, not the
table, even before the server has statistics on a tracking table that was
just filled (as after an initial sync): describing the scope (which every
session does, both ways) reads no tracking table whole."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

import peersync

from .helpers import provision

# The planner reads a stats-less table whole for ``lt > tick`` from about this size on
# (a parallel sequential scan; below it, a bitmap index scan).
ROWS = 1_000_000


def _seq_read(url: str) -> int:
    """Rows of the tracking table read by sequential scans so far, by every backend."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT seq_tup_read FROM pg_stat_user_tables WHERE schemaname = '_peersync' AND relname = '_peersync_t_1'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_describing_a_just_filled_table_reads_no_whole_tracking_table(make_pg: Callable[..., str]) -> None:
    url = make_pg("CREATE TABLE item (id integer PRIMARY KEY, name text, qty integer, price double precision)")
    provision(url, ["item"])
    with psycopg.connect(url, autocommit=True) as conn:
        # No statistics, as on a table an initial sync just filled before autovacuum came by.
        conn.execute("ALTER TABLE _peersync._peersync_t_1 SET (autovacuum_enabled = false)")
        conn.execute(f"INSERT INTO item SELECT g, 'n', g, 0.5 FROM generate_series(1, {ROWS}) AS g")
    before = _seq_read(url)
    with peersync.connect(url) as pg:
        for _ in range(3):
            assert pg.describe("s").tick >= ROWS
    time.sleep(1)  # the closed backend's counters reach the shared statistics
    read = _seq_read(url) - before
    assert read < ROWS // 10, f"three descriptions scanned {read} tracking rows"
