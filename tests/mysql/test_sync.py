"""Sessions between MariaDB and SQLite: foreign writers, convergence both
ways, conflicts, late commits, a concurrent writer, bad batches."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

import peersync
from peersync import ConflictType, Policy, ProtocolError

from .conftest import pair, raw, rows, sql, sqlite_file, sqlite_rows

TABLE = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), qty INT, code VARCHAR(10) UNIQUE)"
LITE = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40), qty INT, code VARCHAR(10) UNIQUE)"


def _pair(mysql_db: Callable[[], str], tmp_path: Path) -> tuple[str, str]:
    return pair(mysql_db, tmp_path, TABLE, LITE)


def _sync(a: str, b: str, **kw: object) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", **kw)  # type: ignore[arg-type]


def test_foreign_multirow_upsert_and_replace_are_tracked(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    sql(
        url,
        "INSERT INTO items VALUES (1, 'a', 1, 'A'), (2, 'b', 2, 'B'), (3, 'c', 3, 'C')",
        # multi-row upsert: one row updated, one inserted
        "INSERT INTO items VALUES (1, 'a2', 10, 'A'), (4, 'd', 4, 'D') ON DUPLICATE KEY UPDATE name = VALUES(name),"
        " qty = VALUES(qty)",
        # REPLACE on the key, and one evicting row 3 through the UNIQUE code
        "REPLACE INTO items VALUES (2, 'b2', 20, 'B')",
        "REPLACE INTO items VALUES (5, 'e', 5, 'C')",
        "DELETE FROM items WHERE id = 4",
    )
    _sync(url, path)
    assert sqlite_rows(path, "items") == [(1, "a2", 10, "A"), (2, "b2", 20, "B"), (5, "e", 5, "C")]
    assert _sync(url, path).sent_a_to_b == 0


def test_sqlite_and_mariadb_converge_both_ways(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "INSERT INTO items VALUES (1, 'from maria', 1, NULL), (2, 'x', 2, NULL)")
    lite = sqlite_file(tmp_path, name="unused.db")
    del lite
    import sqlite3

    c = sqlite3.connect(path)
    c.execute("INSERT INTO items VALUES (10, 'from lite', 10, 'L'), (11, 'y', 11, NULL)")
    c.commit()
    _sync(url, path)
    sql(url, "UPDATE items SET qty = 99 WHERE id = 10", "DELETE FROM items WHERE id = 2")
    c.execute("UPDATE items SET name = 'edited' WHERE id = 1")
    c.execute("DELETE FROM items WHERE id = 11")
    c.commit()
    c.close()
    _sync(url, path)
    want = [(1, "edited", 1, None), (10, "from lite", 99, "L")]
    assert rows(url, "items") == want
    assert sqlite_rows(path, "items") == want
    result = _sync(url, path)
    assert result.sent_a_to_b == 0 and result.sent_b_to_a == 0


@pytest.mark.parametrize(
    ("policy", "winner"),
    [(Policy.SOURCE_WINS, "maria"), (Policy.DESTINATION_WINS, "lite"), (Policy.LAST_WRITER_WINS, "lite")],
)
def test_update_update_conflict_under_each_policy(
    mysql_db: Callable[[], str], tmp_path: Path, policy: Policy, winner: str
) -> None:
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "INSERT INTO items VALUES (1, 'base', 1, NULL)")
    _sync(url, path)
    sql(url, "UPDATE items SET name = 'maria' WHERE id = 1")
    import sqlite3
    import time

    time.sleep(0.01)  # the SQLite edit is the later one
    c = sqlite3.connect(path)
    c.execute("UPDATE items SET name = 'lite' WHERE id = 1")
    c.commit()
    c.close()
    # MariaDB is the source: its row reaches SQLite first.
    r = _sync(url, path, policy=policy)
    assert r.conflicts >= 1
    _sync(url, path, policy=policy)
    assert rows(url, "items")[0][1] == winner
    assert sqlite_rows(path, "items")[0][1] == winner
    with peersync.connect(path) as db:
        logged = db.conflicts("s")
    assert logged and logged[0].type is ConflictType.UPDATE_UPDATE


def test_update_delete_conflict_is_logged_at_mariadb(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "INSERT INTO items VALUES (1, 'base', 1, NULL)")
    _sync(url, path)
    import sqlite3

    c = sqlite3.connect(path)
    c.execute("DELETE FROM items WHERE id = 1")
    c.commit()
    c.close()
    sql(url, "UPDATE items SET name = 'kept' WHERE id = 1")
    _sync(path, url, policy=Policy.DESTINATION_WINS)
    with peersync.connect(url) as db:
        (conflict,) = db.conflicts("s")
    assert conflict.type is ConflictType.UPDATE_DELETE
    assert rows(url, "items") == [(1, "kept", 1, None)]
    _sync(path, url, policy=Policy.DESTINATION_WINS)
    assert sqlite_rows(path, "items") == [(1, "kept", 1, None)]


def test_late_commit_is_sent_by_the_next_session(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    t1 = raw(url, autocommit=False)
    t1.cursor().execute("INSERT INTO items VALUES (1, 'x', 1, NULL)")  # takes its tick first, stays open
    sql(url, "INSERT INTO items VALUES (2, 'y', 2, NULL)")  # takes a later tick and commits
    first = _sync(url, path)
    assert first.sent_a_to_b == 1
    assert sqlite_rows(path, "items") == [(2, "y", 2, None)]
    t1.commit()
    t1.close()
    second = _sync(url, path)
    assert second.sent_a_to_b == 1
    assert sqlite_rows(path, "items") == [(1, "x", 1, None), (2, "y", 2, None)]
    assert _sync(url, path).sent_a_to_b == 0


def test_concurrent_writer_during_apply_loses_nothing(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    import sqlite3

    c = sqlite3.connect(path)
    c.executemany("INSERT INTO items VALUES (?, ?, ?, NULL)", [(i, f"lite {i}", i) for i in range(2000)])
    c.commit()
    _sync(path, url)
    c.execute("UPDATE items SET qty = qty + 1000")
    c.commit()
    c.close()
    stop = threading.Event()
    written: dict[int, int] = {}

    def writer() -> None:
        conn = raw(url)
        n = 0
        while not stop.is_set():
            key = n % 2000
            conn.cursor().execute("UPDATE items SET qty = %s WHERE id = %s", (-n - 1, key))
            written[key] = -n - 1
            n += 1
        conn.close()

    th = threading.Thread(target=writer)
    th.start()
    try:
        _sync(path, url, batch_size=100)
    finally:
        stop.set()
        th.join()
    with peersync.connect(url) as db:
        logged = {c.key[0] for c in db.conflicts("s")}
    final = dict((r[0], r[2]) for r in rows(url, "items"))
    for key, qty in written.items():
        # Either the local write is still there, or its loss is a logged conflict.
        assert final[key] == qty or key in logged
    _sync(url, path)
    _sync(path, url)
    assert rows(url, "items") == sqlite_rows(path, "items")


def test_bad_batch_changes_nothing(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    import sqlite3

    c = sqlite3.connect(path)
    c.execute("INSERT INTO items VALUES (1, 'x', 1, NULL)")
    c.commit()
    c.close()
    with peersync.connect(path) as src, peersync.connect(url) as dst:
        info = dst.describe("s")
        data = src.changes("s", info.knowledge, 0, src.describe("s").tick, max_rows=100, max_bytes=1 << 20)
        before = dst.status("s")[0]
        for bad in (data[:-3], data[:10] + b"\xff" + data[11:], b"junk"):
            with pytest.raises(ProtocolError):
                dst.apply("s", bad, Policy.LAST_WRITER_WINS)
        assert rows(url, "items") == []
        assert dst.status("s")[0].knowledge == before.knowledge


def test_types_round_trip_through_sqlite(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url = mysql_db()
    sql(
        url,
        "CREATE TABLE t (id BIGINT PRIMARY KEY, d DECIMAL(20,6), f DOUBLE, b BLOB, dt DATE, tm TIME(6),"
        " ts DATETIME(6), tz TIMESTAMP(6) NULL, ok BOOLEAN, s VARCHAR(20), j JSON)",
        "INSERT INTO t VALUES (9223372036854775807, '12345678.123456', -1.5, x'00ff', '2024-02-29',"
        " '23:59:59.000001', '2024-01-01 00:00:00.5', '2024-03-01 09:30:00', TRUE, 'h\u00e9 \U0001f600',"
        " '{\"a\": 1}'), (2, NULL, 1e300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
        " (3, '12345678901234.123456', 0.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    mid = mysql_db()
    sql(
        mid,
        "CREATE TABLE t (id BIGINT PRIMARY KEY, d DECIMAL(20,6), f DOUBLE, b BLOB, dt DATE, tm TIME(6),"
        " ts DATETIME(6), tz TIMESTAMP(6) NULL, ok BOOLEAN, s VARCHAR(20), j JSON)",
    )
    path = sqlite_file(
        tmp_path,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, d DECIMAL(20,6), f DOUBLE, b BLOB, dt DATE, tm TIME, ts DATETIME,"
        " tz TIMESTAMPTZ, ok BOOLEAN, s VARCHAR(20), j JSON)",
    )
    for u in (url, mid, path):
        with peersync.connect(u) as db:
            db.provision("s", ["t"])
    # Row 3 holds what SQLite cannot: a 20-digit decimal (NUMERIC affinity
    # makes it a REAL): an error conflict there (-0.0 and the rest:
    # tests/servers/test_type_round_trip.py).
    assert _sync(url, path).errors == 1
    assert [r[0] for r in sqlite_rows(path, "t")] == [2, 9223372036854775807]
    big = sqlite_rows(path, "t")[1]
    assert big[0] == 9223372036854775807
    assert big[1:3] == (12345678.123456, -1.5)
    assert big[3:] == (
        b"\x00\xff", "2024-02-29", "23:59:59.000001", "2024-01-01 00:00:00.500000", "2024-03-01 09:30:00+00:00", 1,
        "h\u00e9 \U0001f600", '{"a": 1}',
    )  # fmt: skip
    # MariaDB to MariaDB keeps every value exactly, row 3 included.
    _sync(url, mid)
    assert rows(mid, "t") == rows(url, "t")
    assert rows(mid, "t")[1][1] == Decimal("12345678901234.123456")


def test_value_that_does_not_fit_becomes_an_error_conflict(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    import sqlite3

    c = sqlite3.connect(path)
    c.execute("INSERT INTO items VALUES (1, ?, 1, NULL)", ("x" * 100,))
    c.execute("INSERT INTO items VALUES (2, 'fits', 2, NULL)")
    c.commit()
    c.close()
    r = _sync(path, url)
    assert r.errors == 1
    assert rows(url, "items") == [(2, "fits", 2, None)]
    with peersync.connect(url) as db:
        (conflict,) = db.conflicts("s")
        assert conflict.type is ConflictType.ERROR and "name" in conflict.detail
        assert db.status("s")[0].pending == 1


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_sessions_with_mariadb_read_ahead(
    direction: str, mysql_db: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MariaDB works on one batch while this process reads or applies the
    next (peersync._engine.ahead), either way: same rows, same result, in
    many batches."""
    from peersync._engine import session

    streams: list[int] = []
    real = session.read_ahead

    def counted(stream: object) -> object:
        streams.append(1)
        return real(stream)  # type: ignore[arg-type]

    monkeypatch.setattr(session, "read_ahead", counted)
    url, path = _pair(mysql_db, tmp_path)
    src, dst = (path, url) if direction == "push" else (url, path)
    if direction == "push":
        lite_rows = [(i, f"s{i}", i, None) for i in range(1, 301)]
        import sqlite3

        c = sqlite3.connect(path)
        c.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", lite_rows)
        c.commit()
        c.close()
    else:
        sql(url, *(f"INSERT INTO items VALUES ({i}, 's{i}', {i}, NULL)" for i in range(1, 301)))
    r = _sync(src, dst, direction="push", batch_size=29)
    assert streams and r.sent_a_to_b == 300
    assert rows(url, "items") == sqlite_rows(path, "items")
