"""``TRUNCATE TABLE`` on MariaDB fires no trigger: the rows vanish untracked.
Sessions detect it and are refused (``RepairNeeded`` naming ``peersync
repair``); ``repair`` makes the vanished rows local deletes, so peers
converge. A rebuild keeps the rows and is not mistaken for a loss."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync
from peersync import RepairNeeded

from .conftest import rows, sql, sqlite_file, sqlite_rows

TABLE = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))"
LITE = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40))"
BASE = [(1, "a"), (2, "b"), (3, "c"), (4, "d")]


def _pair(mysql_db: Callable[[], str], tmp_path: Path) -> tuple[str, str]:
    url = mysql_db()
    sql(url, TABLE, "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')")
    path = sqlite_file(tmp_path, LITE)
    for u in (url, path):
        with peersync.connect(u) as db:
            db.provision("s", ["items"])
    assert _sync(url, path).sent_a_to_b == 4
    return url, path


def _sync(a: str, b: str) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s")


def test_truncate_is_refused_then_repair_sends_the_deletes(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "TRUNCATE TABLE items", "INSERT INTO items VALUES (2, 'again'), (9, 'new')")
    with pytest.raises(RepairNeeded, match=r"items vanished untracked .*peersync repair"):
        _sync(url, path)
    assert sqlite_rows(path, "items") == BASE  # refused: nothing changed on either side
    assert rows(url, "items") == [(2, "again"), (9, "new")]
    with peersync.connect(url) as db:
        report = db.repair("s")
        assert report.untracked == ("items",) and report.deleted == 3 and report.retracked == ()
        assert db.repair("s").untracked == ()  # idempotent
    _sync(url, path)
    assert sqlite_rows(path, "items") == [(2, "again"), (9, "new")]
    assert _sync(url, path).sent_a_to_b == 0


def test_cli_sync_after_truncate_is_one_line_naming_repair(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "TRUNCATE TABLE items")
    p = subprocess.run(
        [sys.executable, "-m", "peersync", "sync", path, url, "--scope", "s"], capture_output=True, text=True
    )
    assert p.returncode != 0 and len(p.stderr.splitlines()) == 1 and "peersync repair" in p.stderr, p.stderr
    assert sqlite_rows(path, "items") == BASE


REBUILDS = ["OPTIMIZE TABLE items", "ALTER TABLE items FORCE", "ALTER TABLE items ENGINE=InnoDB"]


@pytest.mark.parametrize("rebuild", REBUILDS)
def test_a_rebuild_is_not_taken_for_a_truncate(mysql_db: Callable[[], str], tmp_path: Path, rebuild: str) -> None:
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "DELETE FROM items WHERE id = 4", rebuild)
    with peersync.connect(url) as db:
        db.describe("s")
        assert db.repair("s").untracked == ()
    assert _sync(url, path).sent_a_to_b == 1
    assert sqlite_rows(path, "items") == BASE[:3]


def test_truncate_of_an_untracked_or_emptied_table_changes_nothing(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "CREATE TABLE other (id INT PRIMARY KEY)", "INSERT INTO other VALUES (1), (2)", "TRUNCATE TABLE other")
    assert _sync(url, path).sent_a_to_b == 0
    sql(url, "DELETE FROM items", "TRUNCATE TABLE items")  # every row already deleted, tracked
    with peersync.connect(url) as db:
        db.describe("s")
        assert db.repair("s").untracked == ()
    assert _sync(url, path).sent_a_to_b == 4
    assert sqlite_rows(path, "items") == []


def test_repair_finds_a_truncate_the_session_probe_cannot_see(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    # The README's limit, as documented: the lowest and highest keys come back
    # after the TRUNCATE, so the per-session probe (two index lookups) misses
    # it. Sessions then run, and the rows that vanished untracked stay at the
    # peers (nothing says they went). Checking every row each session would
    # close it at O(rows) per session (bench figures in the README); repair
    # compares every row, once, when asked.
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "TRUNCATE TABLE items", "INSERT INTO items VALUES (1, 'a'), (4, 'd')")
    r = _sync(url, path)
    assert (r.sent_a_to_b, r.sent_b_to_a) == (2, 0)  # the two inserts, tracked as usual
    assert sqlite_rows(path, "items") == BASE  # 2 and 3 are still there
    assert rows(url, "items") == [(1, "a"), (4, "d")]
    with peersync.connect(url) as db:
        report = db.repair("s")
        assert report.untracked == ("items",) and report.deleted == 2
    _sync(url, path)
    assert sqlite_rows(path, "items") == [(1, "a"), (4, "d")]
    assert _sync(url, path).sent_a_to_b == 0
