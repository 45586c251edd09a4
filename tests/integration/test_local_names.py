"""A database whose table and column names differ from the scope's global
names syncs through a names mapping: the wire, schemas and conflicts speak
global names, the database keeps its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import peersync
from peersync import Outcome, Resolution

GLOBAL = (
    "CREATE TABLE Artist (ArtistId INTEGER PRIMARY KEY, Name TEXT);"
    "CREATE TABLE Album (AlbumId INTEGER PRIMARY KEY, Title TEXT NOT NULL,"
    " ArtistId INTEGER NOT NULL REFERENCES Artist (ArtistId));"
)
LOCAL = (
    "CREATE TABLE artist (artist_id INTEGER PRIMARY KEY, name TEXT);"
    "CREATE TABLE album (album_id INTEGER PRIMARY KEY, title TEXT NOT NULL,"
    " artist_id INTEGER NOT NULL REFERENCES artist (artist_id));"
)
NAMES = {
    "Artist": {"table": "artist", "columns": {"ArtistId": "artist_id", "Name": "name"}},
    "Album": {"table": "album", "columns": {"AlbumId": "album_id", "Title": "title", "ArtistId": "artist_id"}},
}
TOML = """\
[Artist]
table = "artist"
columns = { ArtistId = "artist_id", Name = "name" }

[Album]
table = "album"
columns = { AlbumId = "album_id", Title = "title", ArtistId = "artist_id" }
"""


def make(path: Path, script: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.close()
    return path


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def execute(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript(sql)
    conn.close()


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    a, b = make(tmp_path / "a.db", GLOBAL), make(tmp_path / "b.db", LOCAL)
    with peersync.connect(a) as da, peersync.connect(b) as db:
        assert da.provision("music", ["Artist", "Album"])
        assert db.provision("music", ["Artist", "Album"], names=NAMES)
    return a, b


def test_renamed_tables_and_columns_sync_both_ways(pair: tuple[Path, Path]) -> None:
    a, b = pair
    execute(a, "INSERT INTO Artist VALUES (1, 'AC/DC'); INSERT INTO Album VALUES (1, 'Back in Black', 1);")
    execute(b, "INSERT INTO artist VALUES (2, 'Queen'); INSERT INTO album VALUES (2, 'Jazz', 2);")
    with peersync.connect(a) as da, peersync.connect(b) as db:
        assert da.describe("music").fingerprint == db.describe("music").fingerprint
        r = peersync.sync(da, db, "music")
        assert (r.sent_a_to_b, r.sent_b_to_a) == (2, 2)
    assert rows(b, "SELECT album_id, title, artist_id FROM album ORDER BY 1") == [
        (1, "Back in Black", 1),
        (2, "Jazz", 2),
    ]
    assert rows(a, "SELECT AlbumId, Title, ArtistId FROM Album ORDER BY 1") == rows(
        b, "SELECT album_id, title, artist_id FROM album ORDER BY 1"
    )
    # updates and deletes (a parent with its child) travel too
    execute(b, "UPDATE album SET title = 'Jazz (remaster)' WHERE album_id = 2")
    execute(a, "DELETE FROM Album WHERE AlbumId = 1; DELETE FROM Artist WHERE ArtistId = 1;")
    with peersync.connect(a) as da, peersync.connect(b) as db:
        peersync.sync(da, db, "music")
        assert peersync.sync(da, db, "music").sent_a_to_b == 0
    assert rows(b, "SELECT * FROM album") == [(2, "Jazz (remaster)", 2)]
    assert rows(b, "SELECT * FROM artist") == [(2, "Queen")]
    assert rows(a, "SELECT * FROM Album") == [(2, "Jazz (remaster)", 2)]


def test_peer_speaks_global_names(pair: tuple[Path, Path]) -> None:
    _, b = pair
    with peersync.connect(b) as db:
        info = db.describe("music")
        assert [t.name for t in info.tables] == ["Artist", "Album"]
        assert info.tables[1].columns == ("AlbumId", "Title", "ArtistId")
        assert set(db.schemas("music")) == {"Artist", "Album"}
        st = db.status("music")[0]
        assert st.tables == ("Artist", "Album")
        assert st.names["Album"] == {"table": "album", "columns": NAMES["Album"]["columns"]}
        assert st.to_dict()["names"] == st.names


def test_names_file_from_a_path(tmp_path: Path) -> None:
    b = make(tmp_path / "b.db", LOCAL)
    (tmp_path / "names.toml").write_text(TOML)
    assert peersync.provision(str(b), "music", ["Artist", "Album"], names=tmp_path / "names.toml")
    assert peersync.status(str(b), "music")[0].names["Artist"]["table"] == "artist"
    # the same names again: a no-op
    assert not peersync.provision(str(b), "music", ["Artist", "Album"], names=str(tmp_path / "names.toml"))


def test_conflicts_show_global_names_and_callback_merges_in_them(pair: tuple[Path, Path]) -> None:
    a, b = pair
    execute(a, "INSERT INTO Artist VALUES (1, 'AC/DC')")
    with peersync.connect(a) as da, peersync.connect(b) as db:
        peersync.sync(da, db, "music")
    execute(a, "UPDATE Artist SET Name = 'ACDC' WHERE ArtistId = 1")
    execute(b, "UPDATE artist SET name = 'AC-DC' WHERE artist_id = 1")
    seen = []

    def merge(c: peersync.Conflict) -> Resolution:
        seen.append(c)
        assert c.remote_row is not None
        return Resolution(Outcome.MERGE, {**c.remote_row, "Name": "AC/DC merged"})

    with peersync.connect(a) as da, peersync.connect(b) as db:
        peersync.sync(da, db, "music", direction="push", policy=merge)
        logged = db.conflicts("music")
    assert seen and seen[0].table == "Artist"
    assert seen[0].local_row == {"ArtistId": 1, "Name": "AC-DC"}
    assert rows(b, "SELECT * FROM artist") == [(1, "AC/DC merged")]
    assert logged[-1].table == "Artist" and logged[-1].local_row == {"ArtistId": 1, "Name": "AC-DC"}
    assert "table artist here" in logged[-1].detail
    with peersync.connect(a) as da, peersync.connect(b) as db:
        peersync.sync(da, db, "music")
    assert rows(a, "SELECT * FROM Artist") == [(1, "AC/DC merged")]


def test_error_conflict_is_logged_in_global_names(pair: tuple[Path, Path]) -> None:
    a, b = pair
    execute(
        b, "CREATE TRIGGER no_bad BEFORE INSERT ON album WHEN NEW.title = 'bad' BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    execute(a, "INSERT INTO Artist VALUES (1, 'x'); INSERT INTO Album VALUES (1, 'bad', 1);")
    with peersync.connect(a) as da, peersync.connect(b) as db:
        r = peersync.sync(da, db, "music", direction="push")
        assert r.errors == 1
        errors = [c for c in db.conflicts("music") if c.type is peersync.ConflictType.ERROR]
    assert len(errors) == 1 and errors[0].table == "Album"  # one entry: the session's end found the apply's
    assert errors[0].remote_row == {"AlbumId": 1, "Title": "bad", "ArtistId": 1}
    assert errors[0].detail.count("table album here") == 1
    # the database's own log keeps its own names (peersync translates when it reads it)
    assert rows(b, "SELECT tbl, remote_row FROM _peersync_conflicts WHERE type = 'error'") == [
        ("album", '{"album_id": 1, "title": "bad", "artist_id": 1}')
    ]


def test_migrate_keeps_the_names_and_the_global_fingerprint(pair: tuple[Path, Path]) -> None:
    a, b = pair
    execute(a, "ALTER TABLE Album ADD COLUMN Year INTEGER")
    execute(b, "ALTER TABLE album ADD COLUMN Year INTEGER")
    with peersync.connect(a) as da, peersync.connect(b) as db:
        assert da.migrate("music", ["Artist", "Album"]).migrated
        assert db.migrate("music", ["Artist", "Album"]).migrated  # tables by their global names
        assert da.describe("music").fingerprint == db.describe("music").fingerprint
        assert db.describe("music").tables[1].columns == ("AlbumId", "Title", "ArtistId", "Year")
        assert db.status("music")[0].names["Album"]["table"] == "album"
    execute(b, "INSERT INTO artist VALUES (1, 'x'); INSERT INTO album VALUES (1, 't', 1, 1999);")
    with peersync.connect(a) as da, peersync.connect(b) as db:
        assert peersync.sync(da, db, "music").sent_b_to_a == 2
    assert rows(a, "SELECT * FROM Album") == [(1, "t", 1, 1999)]
