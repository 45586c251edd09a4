"""A MariaDB database whose names differ from the scope's global ones syncs
with SQLite through its names: rows, updates, deletes of a parent with its
children, conflicts shown in global names; a bad mapping changes nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync
from peersync import Outcome, Resolution

from .conftest import raw, rows, sql, sqlite_file, sqlite_rows

GLOBAL = (
    "CREATE TABLE Artist (ArtistId INTEGER PRIMARY KEY, Name TEXT)",
    "CREATE TABLE Album (AlbumId INTEGER PRIMARY KEY, Title VARCHAR(50) NOT NULL,"
    " ArtistId INTEGER NOT NULL REFERENCES Artist (ArtistId))",
)
LOCAL = (
    "CREATE TABLE artist (artist_id INT PRIMARY KEY, name TEXT)",
    "CREATE TABLE album (album_id INT PRIMARY KEY, title VARCHAR(50) NOT NULL, artist_id INT NOT NULL,"
    " FOREIGN KEY (artist_id) REFERENCES artist (artist_id))",
)
NAMES = {
    "Artist": {"table": "artist", "columns": {"ArtistId": "artist_id", "Name": "name"}},
    "Album": {"table": "album", "columns": {"AlbumId": "album_id", "Title": "title", "ArtistId": "artist_id"}},
}


def lite(path: str, *statements: str | tuple[str, tuple[object, ...]]) -> None:
    """A foreign writer on the SQLite side, foreign keys on."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    for st in statements:
        conn.execute(*((st,) if isinstance(st, str) else st))
    conn.commit()
    conn.close()


def _pair(mysql_db: Callable[[], str], tmp_path: Path) -> tuple[str, str]:
    url = mysql_db()
    sql(url, *LOCAL)
    path = sqlite_file(tmp_path, *GLOBAL)
    with peersync.connect(url) as m, peersync.connect(path) as s:
        assert m.provision("music", ["Artist", "Album"], names=NAMES)
        assert s.provision("music", ["Artist", "Album"])
    return url, path


def _sync(a: str, b: str, **kw: object) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "music", **kw)  # type: ignore[arg-type]


def test_mariadb_with_its_own_names_syncs_with_sqlite(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    with peersync.connect(url) as m:
        info = m.describe("music")
        assert [t.name for t in info.tables] == ["Artist", "Album"]
        assert info.tables[1].columns == ("AlbumId", "Title", "ArtistId")
        st = m.status("music")[0]
        assert st.tables == ("Artist", "Album") and st.names["Album"]["table"] == "album"
    sql(url, "INSERT INTO artist VALUES (1, 'AC/DC')", "INSERT INTO album VALUES (1, 'Back in Black', 1)")
    lite(path, "INSERT INTO Artist VALUES (2, 'Queen')", "INSERT INTO Album VALUES (2, 'Jazz', 2)")
    r = _sync(url, path)
    assert (r.sent_a_to_b, r.sent_b_to_a, r.errors) == (2, 2, 0)
    assert rows(url, "album") == [(1, "Back in Black", 1), (2, "Jazz", 2)]
    assert sqlite_rows(path, "Album") == rows(url, "album")
    # a parent deleted with its child on MariaDB, an update on SQLite
    sql(url, "DELETE FROM album WHERE album_id = 1", "DELETE FROM artist WHERE artist_id = 1")
    lite(path, "UPDATE Album SET Title = 'Jazz (live)' WHERE AlbumId = 2")
    _sync(url, path)
    assert rows(url, "album") == sqlite_rows(path, "Album") == [(2, "Jazz (live)", 2)]
    assert rows(url, "artist") == sqlite_rows(path, "Artist") == [(2, "Queen")]


def test_conflicts_on_mariadb_speak_global_names(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    url, path = _pair(mysql_db, tmp_path)
    sql(url, "INSERT INTO artist VALUES (1, 'x')")
    _sync(url, path)
    sql(url, "UPDATE artist SET name = 'mariadb' WHERE artist_id = 1")
    lite(path, "UPDATE Artist SET Name = 'sqlite' WHERE ArtistId = 1")
    seen: list[peersync.Conflict] = []

    def merge(c: peersync.Conflict) -> Resolution:
        seen.append(c)
        return Resolution(Outcome.MERGE, {"ArtistId": 1, "Name": "both"})

    _sync(path, url, direction="push", policy=merge)
    assert seen[0].table == "Artist" and seen[0].local_row == {"ArtistId": 1, "Name": "mariadb"}
    assert rows(url, "artist") == [(1, "both")]
    with peersync.connect(url) as m:
        logged = m.conflicts("music")
    assert logged[-1].table == "Artist" and "table artist here" in logged[-1].detail
    # a value too long for the local column: an error conflict, in global names
    lite(path, ("INSERT INTO Album VALUES (9, ?, 1)", ("x" * 80,)))
    assert _sync(path, url, direction="push").errors == 1
    with peersync.connect(url) as m:
        err = [c for c in m.conflicts("music") if c.type is peersync.ConflictType.ERROR]
    assert err and err[0].table == "Album" and err[0].remote_row is not None
    assert set(err[0].remote_row) == {"AlbumId", "Title", "ArtistId"}


def test_bad_names_on_mariadb_change_nothing(mysql_db: Callable[[], str]) -> None:
    url = mysql_db()
    sql(url, *LOCAL)
    bad = {**NAMES, "Album": {"table": "album", "columns": {"Title": "no_such_column"}}}
    with peersync.connect(url) as m:
        with pytest.raises(peersync.TableError, match="no_such_column"):
            m.provision("music", ["Artist", "Album"], names=bad)
        assert m.scopes() == []
    conn = raw(url)
    cur = conn.cursor()
    cur.execute("SHOW TABLES")
    assert sorted(r[0] for r in cur.fetchall()) == ["album", "artist"]
    cur.execute("SHOW TRIGGERS")
    assert cur.fetchall() == ()
    conn.close()
