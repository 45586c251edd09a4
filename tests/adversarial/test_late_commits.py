"""Late commits on a server database are never skipped, and nothing is sent
twice (SEMANTICS.md promises 3 and 6; docs/design.md, "The tick contract").

Each history pits real transactions of foreign writers (own connections,
autocommit off) against sessions that push the server into a SQLite replica.
Whatever the interleaving, once every writer has ended, one more session
leaves the replica holding exactly the server's rows, and the ledger shows
no change received twice or received when already known.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from .servers import Ledger, Server, Writer, sqlite_rows

# REPEATABLE READ sits between these two (and is MariaDB's default).
ISOLATIONS = ["READ COMMITTED", "SERIALIZABLE"]


def _settle(server: Server, ledger: Ledger, *replicas: str) -> None:
    """One more session into each replica: it must then hold the server's rows
    exactly, and a repeated session must send nothing."""
    for a in replicas:
        ledger.push(server.url, a)
        assert sqlite_rows(a) == server.rows()
        assert ledger.push(server.url, a).sent_a_to_b == 0
    ledger.check()


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_writer_open_across_several_sessions_is_sent_once_after_it_commits(
    server: Server, replica: Callable[[str], str], isolation: str
) -> None:
    # The writer takes its first tick, then sessions run while other writers
    # commit later ticks; it writes again after each (write, sleep, write
    # again), updating its own rows and inserting new ones, and commits last.
    a = replica("a")
    ledger = Ledger()
    w = server.writer(isolation=isolation)
    w.run("INSERT INTO item VALUES (1, 'long', 0)")
    for i in range(3):
        server.sql(f"INSERT INTO item VALUES ({10 + i}, 'quick', {i})")
        ledger.push(server.url, a)
        assert 1 not in {r[0] for r in sqlite_rows(a)}
        time.sleep(0.01)
        w.run("UPDATE item SET qty = qty + 1 WHERE id = 1")
        w.run(f"INSERT INTO item VALUES ({20 + i}, 'long', {i})")
    w.commit()
    w.close()
    _settle(server, ledger, a)
    assert (1, "long", 3) in sqlite_rows(a)


@pytest.mark.parametrize("when", ["before-describe", "after-describe"])
def test_commit_between_the_bound_and_a_batch_is_sent_next_session(
    server: Server, replica: Callable[[str], str], when: str
) -> None:
    # A writer whose first tick comes before the session's describe (or after
    # it, before enumeration) commits while the session reads its batches,
    # after two batches of two rows.
    batch = 2
    # Before describe, its tick is the lowest: batches read before it commits
    # cover ticks above it.
    a = replica("a")
    ledger = Ledger()
    w = server.writer()
    if when == "before-describe":
        w.run("INSERT INTO item VALUES (100, 'late', 0)")
    server.sql("INSERT INTO item VALUES " + ", ".join(f"({i}, 'old', {i})" for i in range(1, 7)))

    done: list[int] = []

    def hook(n: int) -> None:
        if n != batch or done:
            return
        if when == "after-describe":
            w.run("INSERT INTO item VALUES (100, 'late', 0)")
        w.run("UPDATE item SET qty = 99 WHERE id = 3")  # an older row, changed again
        w.commit()
        server.sql("INSERT INTO item VALUES (7, 'after', 7)")
        done.append(n)

    ledger.push(server.url, a, before_batch=hook, batch_size=2)
    # On PostgreSQL the open writer's floor may hold the whole session back:
    # then it reads fewer batches, and the writer commits after it.
    hook(batch)
    w.close()
    _settle(server, ledger, a)
    assert (100, "late", 0) in sqlite_rows(a) and (3, "old", 99) in sqlite_rows(a)


def test_first_tick_after_a_rolled_back_savepoint_still_holds_the_bound(
    server: Server, replica: Callable[[str], str]
) -> None:
    # The writer's first tick is taken in a savepoint that is rolled back
    # (on PostgreSQL that also releases whatever the savepoint took); its
    # next tick must still hold later sessions back until it commits.
    a = replica("a")
    ledger = Ledger()
    w = server.writer()
    w.run("SAVEPOINT a")
    w.run("INSERT INTO item VALUES (1, 'gone', 0)")
    w.run("ROLLBACK TO SAVEPOINT a")
    w.run("INSERT INTO item VALUES (2, 'kept', 0)")
    server.sql("INSERT INTO item VALUES (3, 'other', 0)")
    ledger.push(server.url, a)
    w.run("SAVEPOINT b")
    w.run("SAVEPOINT c")
    w.run("INSERT INTO item VALUES (4, 'gone', 0)")
    w.run("RELEASE SAVEPOINT c")
    w.run("ROLLBACK TO SAVEPOINT b")
    w.run("UPDATE item SET qty = 5 WHERE id = 2")
    server.sql("INSERT INTO item VALUES (5, 'other', 0)")
    ledger.push(server.url, a)
    w.commit()
    w.close()
    _settle(server, ledger, a)
    assert sqlite_rows(a) == [(2, "kept", 5), (3, "other", 0), (5, "other", 0)]


def test_first_tick_in_a_rolled_back_plpgsql_block_still_holds_the_bound(
    pg_server: Server, replica: Callable[[str], str]
) -> None:
    # PL/pgSQL's EXCEPTION clause is a subtransaction rolled back on error.
    server = pg_server
    a = replica("a")
    ledger = Ledger()
    w = server.writer()
    w.run(
        "DO $$ BEGIN BEGIN INSERT INTO item VALUES (1, 'gone', 0); RAISE EXCEPTION 'no';"
        " EXCEPTION WHEN raise_exception THEN NULL; END; INSERT INTO item VALUES (2, 'kept', 0); END $$"
    )
    server.sql("INSERT INTO item VALUES (3, 'other', 0)")
    ledger.push(server.url, a)
    w.commit()
    w.close()
    _settle(server, ledger, a)
    assert sqlite_rows(a) == [(2, "kept", 0), (3, "other", 0)]


@pytest.mark.parametrize("at", ["between-sessions", "mid-session"])
def test_writer_killed_mid_transaction_leaves_nothing_behind_and_holds_nothing_back(
    server: Server, replica: Callable[[str], str], at: str
) -> None:
    a = replica("a")
    ledger = Ledger()
    server.sql("INSERT INTO item VALUES (1, 'base', 0), (2, 'base', 0)")
    w = server.writer()
    w.run("INSERT INTO item VALUES (50, 'doomed', 0)")
    w.run("UPDATE item SET name = 'doomed' WHERE id = 1")
    w.run("DELETE FROM item WHERE id = 2")
    server.sql("INSERT INTO item VALUES (3, 'base', 0)")
    if at == "between-sessions":
        ledger.push(server.url, a)
        server.kill(w)
    else:
        ledger.push(server.url, a, before_batch=lambda n: server.kill(w) if n == 0 else None)
    server.sql("INSERT INTO item VALUES (4, 'after', 0)")
    _settle(server, ledger, a)
    assert sqlite_rows(a) == [(1, "base", 0), (2, "base", 0), (3, "base", 0), (4, "after", 0)]


def test_two_long_writers_committing_in_reverse_order(server: Server, replica: Callable[[str], str]) -> None:
    # Ticks are taken in order w1, w2, w3 and committed w3, w2, w1, each
    # commit followed by a session into one replica, and a session into
    # another replica at the end only.
    a, b = replica("a"), replica("b")
    ledger = Ledger()
    writers: list[Writer] = [server.writer() for _ in range(3)]
    for i, w in enumerate(writers):
        w.run(f"INSERT INTO item VALUES ({i + 1}, 'w{i + 1}', 0)")
        server.sql(f"INSERT INTO item VALUES ({10 + i}, 'auto', 0)")
    for i, w in enumerate(reversed(writers)):
        ledger.push(server.url, a)
        w.run(f"INSERT INTO item VALUES ({20 + i}, 'w{3 - i}', 0)")
        w.commit()
        w.close()
    _settle(server, ledger, a, b)
    ledger.push(a, b)
    ledger.check()
    assert sqlite_rows(a) == sqlite_rows(b) == server.rows()


def test_prepared_xa_transaction_committed_after_a_session_is_sent_next(
    mysql_server: Server, replica: Callable[[str], str]
) -> None:
    # An XA transaction prepared (its rows locked, not visible) while a
    # session seals and sends later commits; XA COMMIT comes after.
    server = mysql_server
    a = replica("a")
    ledger = Ledger()
    w = server.writer()
    w.run("XA START 'x1'")
    w.run("INSERT INTO item VALUES (1, 'xa', 0)")
    w.run("XA END 'x1'")
    w.run("XA PREPARE 'x1'")
    server.sql("INSERT INTO item VALUES (2, 'auto', 0)")
    assert ledger.push(server.url, a).sent_a_to_b == 1
    w.run("XA COMMIT 'x1'")
    w.close()
    _settle(server, ledger, a)
    assert sqlite_rows(a) == [(1, "xa", 0), (2, "auto", 0)]
