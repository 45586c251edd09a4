"""Concurrent writers on PostgreSQL: late commits are not skipped (the tick
contract), and a local write racing an apply is never overwritten."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

import peersync
from peersync import Knowledge
from peersync._engine.model import ConflictType, SessionEnd

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
                # Each writer its own keys: two writers of one key record their
                # last write in whatever order the scheduler runs them after
                # their commits, which need not be the order of the commits.
                i = rnd.randrange(seed - 1, n, 2)
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


def test_two_calls_ending_one_session_at_once_merge_and_log_once(make_pg: Callable[..., str], sql: Any) -> None:
    url = make_pg(ITEM_PG)
    provision(url, ["item"])
    source = b"\x02" * 16
    failure = peersync.Conflict(
        scope="s", table="item", key=(7,), type=ConflictType.ERROR, policy="last-writer-wins",
        outcome=peersync.Outcome.FAILED, local_version=None, remote_version=(source, 2), local_row=None,
        remote_row={"id": 7, "name": "x", "qty": None, "price": None}, local_time=None, remote_time=1, detail="x",
    )  # fmt: skip
    end = SessionEnd(uuid.uuid4().hex, Knowledge.empty().add_range(source, 1, 3), Knowledge.empty(), (failure,))
    # Both calls queue behind a lock on the scope's row, then run one after the other.
    holder = psycopg.connect(url)
    holder.execute("SELECT 1 FROM _peersync._peersync_scopes WHERE name = 's' FOR UPDATE")
    results: list[Knowledge] = []
    errors: list[BaseException] = []

    def finish() -> None:
        try:
            with peersync.connect(url) as db:
                results.append(db.finish("s", end))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=finish) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    while sql(url, waiting)[0][0] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    holder.rollback()
    holder.close()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(results) == 2 and results[0] == results[1]
    assert results[0].contains(source, 3)
    with peersync.connect(url) as db:
        assert [c.detail for c in db.conflicts("s")] == ["x"]
