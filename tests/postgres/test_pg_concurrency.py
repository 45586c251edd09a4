"""Concurrent writers on PostgreSQL: late commits are not skipped (the tick
contract), and a local write racing an apply is never overwritten."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

import peersync

from .helpers import ITEM_PG, pg_rows, provision, sqlite_db, sqlite_rows, sqlite_write, sync


def test_late_commit_is_sent_by_the_next_session(make_pg: Callable[..., str], tmp_path: Path, sql: Any) -> None:
    url = make_pg(ITEM_PG)
    path = sqlite_db(tmp_path / "a.db")
    provision(url, ["item"])
    provision(path, ["item"])
    t1 = psycopg.connect(url)  # T1 writes x and stays open: its tick comes first
    t1.execute("INSERT INTO item VALUES (1, 'x', 1, 1)")
    sql(url, "INSERT INTO item VALUES (2, 'y', 2, 2)")  # T2 writes y, a later tick, and commits
    with peersync.connect(url) as pg:
        info = pg.describe("s")
    assert sync(url, path, direction="push").sent_a_to_b == 0  # y waits below T1's tick floor
    t1.commit()
    t1.close()
    with peersync.connect(url) as pg:
        assert pg.describe("s").tick > info.tick
    assert sync(url, path, direction="push").sent_a_to_b == 2
    assert sqlite_rows(path) == [(1, "x", 1, 1.0), (2, "y", 2, 2.0)]
    assert sync(url, path, direction="push").sent_a_to_b == 0


def test_late_commit_after_a_session_that_sent_later_rows(
    make_pg: Callable[..., str], tmp_path: Path, sql: Any
) -> None:
    # T1 takes its tick, T2 commits a later one that a session sends once T1
    # is no longer in the way of the bound; T1 (a later transaction) commits
    # after that session: its row must still come in the next one.
    url = make_pg(ITEM_PG)
    path = sqlite_db(tmp_path / "a.db")
    provision(url, ["item"])
    provision(path, ["item"])
    sql(url, "INSERT INTO item VALUES (2, 'y', 2, 2)")
    t1 = psycopg.connect(url)
    t1.execute("INSERT INTO item VALUES (1, 'x', 1, 1)")
    sent = sync(url, path, direction="push").sent_a_to_b
    assert sent == 1  # y, committed below T1's floor
    t1.commit()
    t1.close()
    assert sync(url, path, direction="push").sent_a_to_b == 1
    assert sqlite_rows(path) == [(1, "x", 1, 1.0), (2, "y", 2, 2.0)]


def test_concurrent_writer_during_apply_loses_nothing(make_pg: Callable[..., str], tmp_path: Path) -> None:
    url = make_pg(ITEM_PG)
    path = sqlite_db(tmp_path / "a.db")
    provision(url, ["item"])
    provision(path, ["item"])
    n = 3000
    sqlite_write(path, *(f"INSERT INTO item VALUES ({i}, 'sqlite', {i}, 0)" for i in range(n)))
    stop = threading.Event()
    written: dict[int, int] = {}  # id -> last qty the writer committed

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        with psycopg.connect(url, autocommit=True) as conn:
            k = 0
            while not stop.is_set():
                i = rnd.randrange(n)
                k += 1
                qty = seed * 1_000_000 + k
                try:
                    conn.execute(
                        "INSERT INTO item VALUES (%s, 'local', %s, 1) ON CONFLICT (id) DO UPDATE"
                        " SET name = 'local', qty = excluded.qty",
                        (i, qty),
                    )
                except psycopg.errors.DeadlockDetected:
                    continue
                written[i] = qty
                time.sleep(0.001)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        sync(url, path, direction="push", batch_size=500)  # SQLite -> PostgreSQL while the writers run
        sync(path, url, direction="push", batch_size=500)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert written, "the writers wrote nothing"
    with peersync.connect(url) as pg:
        logged = {c.key for c in pg.conflicts("s")}
    rows = {r[0]: r for r in pg_rows(url)}
    for i, qty in written.items():
        # A committed local write survives, or lost a logged conflict.
        assert rows[i][2] == qty or (i,) in logged, (i, qty, rows[i])
    for _ in range(2):
        sync(url, path)
    assert pg_rows(url) == sqlite_rows(path)
