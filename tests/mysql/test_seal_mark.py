"""The seal's scan starts above its mark (``mysql/schema.py``, ``seal``).

Sealing moves an entry out of the ``seq IS NULL`` part of the log's ``seq``
index, and InnoDB keeps the old index entry until purge, which any read view
open on the server holds off. A seal that scanned ``seq IS NULL`` then walked
every entry sealed since: 0.7 s per seal after an initial sync of a million
rows. The cost is counted here in pages (``ANALYZE FORMAT=JSON``'s
``r_engine_stats``), not in time; and the mark must never pass the entry of a
transaction still open, however long it stays open.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync._adapters.mysql import conn as myconn
from peersync._adapters.mysql import schema as S

from .conftest import pair, raw, sql, sqlite_rows

TABLE = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))"
LITE = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40))"
ROWS = 40_000  # sealed entries left behind in the seq index: about 60 pages of it


def _pair(mysql_db: Callable[[], str], tmp_path: Path) -> tuple[str, str]:
    return pair(mysql_db, tmp_path, TABLE, LITE)


def _sync(a: str, b: str) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", direction="push")


@pytest.fixture
def purge_held(mysql_db: Callable[[], str]) -> Iterator[None]:
    """A read view open on the server for the test's length: InnoDB purges nothing meanwhile."""
    conn = raw(mysql_db())
    cur = conn.cursor()
    cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    cur.execute("SELECT 1")
    yield
    conn.rollback()
    conn.close()


def _log_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SELECT on the change log that peersync's connections run from now on, as sent."""
    seen: list[str] = []
    execute = myconn.Conn.execute

    def spy(self: myconn.Conn, statement: str, params: Any = None) -> Any:
        if statement.lstrip().upper().startswith("SELECT") and S.LOG in statement:
            seen.append(self.raw.cursor().mogrify(statement, params if params else None))
        return execute(self, statement, params)

    monkeypatch.setattr(myconn.Conn, "execute", spy)
    return seen


def _pages(url: str, statement: str) -> int:
    """Index and data pages InnoDB touched to run ``statement``."""
    conn = raw(url)
    try:
        cur = conn.cursor()
        cur.execute("ANALYZE FORMAT=JSON " + statement)
        plan = json.dumps(json.loads(cur.fetchone()[0]))
        return sum(int(n) for n in re.findall(r'"pages_accessed": (\d+)', plan))
    finally:
        conn.close()


def test_a_no_change_session_reads_no_page_of_entries_sealed_long_before(
    mysql_db: Callable[[], str], tmp_path: Path, purge_held: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, path = _pair(mysql_db, tmp_path)
    values = ", ".join(f"({i}, 'n{i}')" for i in range(ROWS))
    sql(url, f"INSERT INTO items VALUES {values}")
    assert _sync(url, path).sent_a_to_b == ROWS  # sealed: ROWS entries stay behind in the seq index
    monkeypatch.setattr(S, "MARK_AGE_MS", 0)  # every id is old enough: the mark moves at the next seals
    _sync(url, path)
    _sync(url, path)
    reads = _log_reads(monkeypatch)
    for a, b in ((url, path), (path, url)):
        assert _sync(a, b).sent_a_to_b == 0
    assert reads
    pages = {st[:90]: _pages(url, st) for st in reads}
    # A few pages per statement; the walk over the sealed entries read about sixty.
    assert sum(pages.values()) <= 4 * len(pages), pages


def _mark(url: str) -> int:
    conn = raw(url)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT seq FROM {S.CLOCK} WHERE id = 1")
        row = cur.fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def test_an_open_transaction_holds_the_mark_below_its_entry(
    mysql_db: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(S, "MARK_AGE_MS", 0)
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "INSERT INTO items VALUES (10, 'a'), (11, 'b')")
    for _ in range(3):
        _sync(url, path)
    before = _mark(url)
    assert before >= 2  # the mark moves past committed entries
    late = raw(url, autocommit=False)
    cur = late.cursor()
    cur.execute("INSERT INTO items VALUES (1, 'late')")  # its log entry, locked until commit
    cur.execute(f"SELECT MAX(id) FROM {S.LOG}")
    (entry,) = cur.fetchone()
    try:
        sql(url, "INSERT INTO items VALUES (2, 'early')")
        for _ in range(4):  # seals enough for the mark to reach every committed entry
            _sync(url, path)
        sql(url, "INSERT INTO items VALUES (3, 'after')")
        _sync(url, path)
        assert [r[0] for r in sqlite_rows(path, "items")] == [2, 3, 10, 11]
        assert before <= _mark(url) < entry
    finally:
        late.commit()
        late.close()
    assert _sync(url, path).sent_a_to_b == 1
    assert [r[0] for r in sqlite_rows(path, "items")] == [1, 2, 3, 10, 11]


@pytest.mark.parametrize("runs", [3, 30])
def test_a_seal_numbers_committed_entries_in_id_order_around_open_ones(
    runs: int, mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    # Runs of committed entries between entries of open transactions: a few
    # runs are numbered by one UPDATE each, many through a temporary table.
    url, path = _pair(mysql_db, tmp_path)
    with peersync.connect(url) as db:
        top = db.describe("s").tick
    open_ones = []
    for r in range(runs):
        sql(url, f"INSERT INTO items VALUES ({3 * r}, 'a'), ({3 * r + 1}, 'b')")
        writer = raw(url, autocommit=False)
        writer.cursor().execute(f"INSERT INTO items VALUES ({3 * r + 2}, 'open')")
        open_ones.append(writer)
    try:
        with peersync.connect(url) as db:
            assert db.describe("s").tick == top + 2 * runs
        sealed = [s for _, s in _query_log(url)]
        assert sealed == list(range(top + 1, top + 2 * runs + 1))  # in id order, no gap
    finally:
        for w in open_ones:
            w.commit()
            w.close()
    assert _sync(url, path).sent_a_to_b == 3 * runs
    # The late ones after them: every tick once, none skipped.
    assert sorted(s for _, s in _query_log(url)) == list(range(top + 1, top + 3 * runs + 1))


def _query_log(url: str) -> list[tuple[int, int]]:
    """The sealed log entries, (id, seq) in id order."""
    conn = raw(url)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT id, seq FROM {S.LOG} WHERE seq IS NOT NULL ORDER BY id")
        return [(int(i), int(s)) for i, s in cur.fetchall()]
    finally:
        conn.close()
