"""Bulk statements of foreign writers in transactions that stay open while
sessions run: ``COPY`` and ``TRUNCATE`` on PostgreSQL, multi-row
``INSERT ... ON DUPLICATE KEY UPDATE``, ``REPLACE`` and ``TRUNCATE`` on
MariaDB (SEMANTICS.md promises 6 and 8: late commits are not skipped,
foreign writers count)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import peersync

from .servers import SCOPE, Ledger, Server, sqlite_rows


def _settle(server: Server, ledger: Ledger, a: str) -> None:
    ledger.push(server.url, a)
    assert sqlite_rows(a) == server.rows()
    assert ledger.push(server.url, a).sent_a_to_b == 0
    ledger.check()


def test_bulk_load_in_an_open_transaction_arrives_whole_after_commit(
    server: Server, replica: Callable[[str], str]
) -> None:
    a = replica("a")
    ledger = Ledger()
    server.sql("INSERT INTO item VALUES (1, 'base', 0), (2, 'base', 0)")
    w = server.writer()
    if server.kind == "pg":
        with w.conn.cursor() as cur, cur.copy("COPY item (id, name, qty) FROM STDIN") as cp:
            for i in range(100, 150):
                cp.write_row((i, "copied", i))
    else:
        w.run("INSERT INTO item VALUES " + ", ".join(f"({i}, 'bulk', {i})" for i in range(100, 150)))
        w.run("INSERT INTO item VALUES (1, 'dup', 1), (150, 'dup', 0) ON DUPLICATE KEY UPDATE name = VALUES(name)")
        w.run("REPLACE INTO item VALUES (2, 'replaced', 2), (151, 'replaced', 0)")
    server.sql("INSERT INTO item VALUES (3, 'quick', 0)")
    ledger.push(server.url, a)
    time.sleep(0.01)
    w.run("UPDATE item SET qty = -1 WHERE id = 120")
    server.sql("INSERT INTO item VALUES (4, 'quick', 0)")
    ledger.push(server.url, a)
    w.commit()
    w.close()
    _settle(server, ledger, a)
    assert len(sqlite_rows(a)) >= 54


def test_truncate_by_a_foreign_writer_reaches_every_replica(server: Server, replica: Callable[[str], str]) -> None:
    # The truncating transaction re-inserts a row and stays open while a
    # session runs (on PostgreSQL the session waits for TRUNCATE's lock, and
    # the writer commits once it does). MariaDB's TRUNCATE commits at once and
    # fires no trigger: the session is refused (RepairNeeded) until `repair`
    # turns the vanished rows into local deletes.
    a = replica("a")
    ledger = Ledger()
    server.sql("INSERT INTO item VALUES (1, 'base', 0), (2, 'base', 0), (3, 'base', 0)")
    ledger.push(server.url, a)
    server.sql("INSERT INTO item VALUES (4, 'unsynced', 0)")
    w = server.writer()
    w.run("TRUNCATE TABLE item")
    w.run("INSERT INTO item VALUES (2, 'again', 1)")
    if server.kind == "pg":
        errors: list[BaseException] = []

        def session() -> None:
            try:
                ledger.push(server.url, a)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=session)
        t.start()
        deadline = time.monotonic() + 20
        while server.lock_waiters() == 0 and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        w.commit()
        t.join()
        assert not errors, errors
    else:
        with pytest.raises(peersync.RepairNeeded, match="peersync repair"):
            ledger.push(server.url, a)
        w.commit()
        with pytest.raises(peersync.RepairNeeded, match="TRUNCATE"):
            ledger.push(server.url, a)
        with peersync.connect(server.url) as db:
            report = db.repair(SCOPE)
        assert report.untracked == ("item",) and report.deleted == 3  # 1, 3 and the unsynced 4
    w.close()
    _settle(server, ledger, a)
    assert sqlite_rows(a) == [(2, "again", 1)]


def test_writer_in_replica_role_is_tracked(pg_server: Server, replica: Callable[[str], str]) -> None:
    server = pg_server
    a = replica("a")
    ledger = Ledger()
    server.sql("INSERT INTO item VALUES (1, 'base', 0)")
    ledger.push(server.url, a)
    w = server.writer()
    w.run("SET LOCAL session_replication_role = replica")
    w.run("UPDATE item SET name = 'replicated' WHERE id = 1")
    w.run("INSERT INTO item VALUES (2, 'replicated', 0)")
    w.commit()
    w.close()
    _settle(server, ledger, a)
