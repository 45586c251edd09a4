"""An apply racing local writers of the same rows on a server database.

The promise (SEMANTICS.md, "No lost update"; README "Concurrency guarantee"):
a local write committed while an apply runs is never overwritten blindly;
the apply sees it, as a conflict resolved by the policy with the row that
was committed. Each history here is forced deterministically: the local
writer holds the row when the apply reaches it, and commits only once the
apply waits for its lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import peersync

from .servers import Ledger, Server, Writer, sqlite_rows, sqlite_write


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # handed to the test thread
            out.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def _push_while_a_writer_waits(server: Server, w: Writer, push: Callable[[], Any], when: Callable[[], None]) -> None:
    """Run ``push`` in a thread and, once its apply waits for the row lock
    ``w`` holds (the apply has then taken its snapshot and reached that
    row), call ``when`` (e.g. ``w.commit``); then close ``w`` and raise
    what the push raised."""
    t, out = _in_thread(push)
    try:
        deadline = time.monotonic() + 20
        while server.lock_waiters() == 0:
            assert t.is_alive(), "the session ended without waiting for the local writer's lock"
            assert time.monotonic() < deadline, "the apply never waited for the local writer"
            time.sleep(0.02)
        when()
    finally:
        t.join()
        w.close()
    if isinstance(out[0], BaseException):
        raise out[0]


def _shared_row(server: Server, replica: Callable[[str], str], ledger: Ledger, row: str) -> str:
    a = replica("a")
    server.sql(f"INSERT INTO item VALUES {row}")
    ledger.push(server.url, a)
    return a


def test_merge_callback_sees_the_local_write_that_committed_during_the_apply(
    server: Server, replica: Callable[[str], str]
) -> None:
    ledger = Ledger()
    a = _shared_row(server, replica, ledger, "(1, 'base', 0)")
    sqlite_write(a, "UPDATE item SET name = 'remote', qty = 1 WHERE id = 1")
    w = server.writer()
    w.run("UPDATE item SET name = 'local', qty = 2 WHERE id = 1")
    seen: list[dict[str, Any] | None] = []

    def merge(c: peersync.Conflict) -> peersync.Resolution:
        seen.append(c.local_row)
        assert c.local_row is not None and c.remote_row is not None
        body = f"{c.local_row['name']}+{c.remote_row['name']}"
        return peersync.Resolution(peersync.Outcome.MERGE, row={"name": body, "qty": 3})

    _push_while_a_writer_waits(server, w, lambda: ledger.push(a, server.url, policy=merge), w.commit)
    assert server.rows() == [(1, "local+remote", 3)]  # the local write is in the merge, not lost
    assert seen[-1] == {"id": 1, "name": "local", "qty": 2}, seen
    ledger.push(server.url, a)
    assert sqlite_rows(a) == server.rows()
    ledger.check()


def test_destination_wins_keeps_a_local_write_committed_during_the_apply(
    server: Server, replica: Callable[[str], str]
) -> None:
    # The remote row has the content the local row had before the local
    # write: judged against the stale row it looks identical, and the later
    # remote version would replace the local write without a conflict.
    ledger = Ledger()
    a = _shared_row(server, replica, ledger, "(1, 'a', 0)")
    w = server.writer()
    w.run("UPDATE item SET name = 'w', qty = 9 WHERE id = 1")
    time.sleep(0.01)
    sqlite_write(a, "UPDATE item SET name = 'b' WHERE id = 1")
    time.sleep(0.01)
    sqlite_write(a, "UPDATE item SET name = 'a' WHERE id = 1")  # later than w, same content as before w
    _push_while_a_writer_waits(server, w, lambda: ledger.push(a, server.url, policy="destination-wins"), w.commit)
    assert server.rows() == [(1, "w", 9)]
    with peersync.connect(server.url) as db:
        logged = db.conflicts("s")
    assert [(c.key, c.local_row) for c in logged] == [((1,), {"id": 1, "name": "w", "qty": 9})]
    ledger.push(server.url, a)
    assert sqlite_rows(a) == [(1, "w", 9)]
    ledger.check()


@pytest.mark.parametrize("local", ["update", "delete", "insert"])
def test_local_write_committed_during_the_apply_is_a_conflict_never_an_overwrite(
    server: Server, replica: Callable[[str], str], local: str
) -> None:
    ledger = Ledger()
    a = replica("a")
    if local != "insert":
        server.sql("INSERT INTO item VALUES (1, 'base', 0)")
        ledger.push(server.url, a)
    sqlite_write(a, "INSERT OR REPLACE INTO item VALUES (1, 'remote', 1)")
    w = server.writer()
    w.run(
        {
            "update": "UPDATE item SET name = 'local', qty = 2 WHERE id = 1",
            "delete": "DELETE FROM item WHERE id = 1",
            "insert": "INSERT INTO item VALUES (1, 'local', 2)",
        }[local]
    )
    _push_while_a_writer_waits(server, w, lambda: ledger.push(a, server.url, policy="destination-wins"), w.commit)
    expected = [] if local == "delete" else [(1, "local", 2)]
    assert server.rows() == expected  # destination wins: the committed local write stays
    with peersync.connect(server.url) as db:
        assert [c.key for c in db.conflicts("s")] == [(1,)]
    ledger.push(server.url, a)
    ledger.push(a, server.url)
    assert sqlite_rows(a) == server.rows() == expected
    ledger.check()


def test_apply_deadlocked_with_a_local_writer_loses_nothing(server: Server, replica: Callable[[str], str]) -> None:
    # The local writer holds row 2, the apply locks row 1 and waits for row 2,
    # then the writer asks for row 1: a deadlock. Whichever side the server
    # aborts, what committed survives or is a logged conflict, and a round
    # converges.
    ledger = Ledger()
    a = replica("a")
    server.sql("INSERT INTO item VALUES (1, 'base', 0), (2, 'base', 0)")
    ledger.push(server.url, a)
    sqlite_write(a, "UPDATE item SET name = 'remote', qty = 1")
    w = server.writer()
    w.run("UPDATE item SET name = 'local', qty = 2 WHERE id = 2")
    committed = False

    def ask_for_row_1() -> None:
        nonlocal committed
        try:
            w.run("UPDATE item SET name = 'local', qty = 2 WHERE id = 1")
            w.commit()
            committed = True
        except Exception as exc:  # the server chose the writer as the deadlock's victim
            assert "deadlock" in str(exc).lower(), exc
            w.rollback()

    _push_while_a_writer_waits(server, w, lambda: ledger.push(a, server.url, policy="destination-wins"), ask_for_row_1)
    with peersync.connect(server.url) as db:
        logged = {c.key for c in db.conflicts("s")}
    if committed:  # destination wins: the local rows stay, each through a logged conflict
        assert server.rows() == [(1, "local", 2), (2, "local", 2)]
        assert logged == {(1,), (2,)}
    else:
        assert server.rows() == [(1, "remote", 1), (2, "remote", 1)]
    ledger.push(server.url, a)
    assert sqlite_rows(a) == server.rows()
    ledger.check()
