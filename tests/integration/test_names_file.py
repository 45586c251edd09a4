"""The names file: read at ``init --names``, stored with the scope, shown by
``status``; a bad one is refused with one clear line and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import peersync

from .test_cli import assert_error, invoke, ok, snapshot
from .test_local_names import GLOBAL, LOCAL, NAMES, TOML, make

TABLES = ("--table", "Artist", "--table", "Album")


@pytest.fixture
def local_db(tmp_path: Path) -> Path:
    return make(tmp_path / "b.db", LOCAL)


def names_file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "names.toml"
    p.write_text(text)
    return p


def test_init_with_names_file_stores_and_shows_it(tmp_path: Path, local_db: Path) -> None:
    f = names_file(tmp_path, TOML)
    r = ok(invoke("init", local_db, "--scope", "music", *TABLES, "--names", f))
    assert "provisioned" in r.stdout and "Artist, Album" in r.stdout
    assert "Album -> album (AlbumId -> album_id, Title -> title, ArtistId -> artist_id)" in r.stdout
    r = ok(invoke("status", local_db, "--scope", "music"))
    assert "names here" in r.stdout and "Artist -> artist" in r.stdout
    data = json.loads(ok(invoke("status", local_db, "--scope", "music", "--json")).stdout)
    assert data["tables"] == ["Artist", "Album"]
    assert data["names"] == {g: {"table": e["table"], "columns": e["columns"]} for g, e in NAMES.items()}
    # the same file again: idempotent, nothing written
    before = snapshot(local_db)
    ok(invoke("init", local_db, "--scope", "music", *TABLES, "--names", f))
    assert snapshot(local_db) == before


def test_status_without_names_has_an_empty_mapping(tmp_path: Path) -> None:
    a = make(tmp_path / "a.db", GLOBAL)
    ok(invoke("init", a, "--scope", "music", *TABLES))
    data = json.loads(ok(invoke("status", a, "--scope", "music", "--json")).stdout)
    assert data["names"] == {}
    assert "names here" not in ok(invoke("status", a, "--scope", "music")).stdout


BAD = [
    ("not toml", "[Album\ntable = ", "is not TOML"),
    ("unknown global table", '[Song]\ntable = "album"\n', "names map table Song, which is not among"),
    ("missing local column", '[Album]\ntable = "album"\ncolumns = { Title = "name_of_album" }\n', "does not have"),
    (
        "two globals to one local column",
        '[Album]\ntable = "album"\ncolumns = { Title = "title", ArtistId = "title" }\n',
        "to the same local column title",
    ),
    (
        "two globals to one local table",
        '[Album]\ntable = "album"\n[Artist]\ntable = "album"\n',
        "map to the same local table album",
    ),
    ("missing local table", '[Album]\ntable = "albums"\n', "albums"),
    ("unknown key", '[Album]\ntable = "album"\ncolumn = { Title = "title" }\n', "unknown key 'column'"),
    ("columns not a table", '[Album]\ntable = "album"\ncolumns = "title"\n', "columns must be a table"),
]


@pytest.mark.parametrize(("text", "match"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_names_file_is_one_line_and_changes_nothing(tmp_path: Path, local_db: Path, text: str, match: str) -> None:
    f = names_file(tmp_path, text)
    before = snapshot(local_db)
    assert_error(invoke("init", local_db, "--scope", "music", *TABLES, "--names", f), match)
    assert snapshot(local_db) == before


def test_mapping_for_a_table_outside_the_scope_is_refused(tmp_path: Path, local_db: Path) -> None:
    f = names_file(tmp_path, TOML)
    before = snapshot(local_db)
    assert_error(invoke("init", local_db, "--scope", "music", "--table", "Artist", "--names", f), "not among")
    assert snapshot(local_db) == before


def test_missing_names_file_is_one_line(tmp_path: Path, local_db: Path) -> None:
    assert_error(invoke("init", local_db, "--scope", "music", *TABLES, "--names", tmp_path / "nope.toml"), "nope.toml")


def test_python_api_raises_typed_errors_and_changes_nothing(tmp_path: Path, local_db: Path) -> None:
    before = snapshot(local_db)
    with peersync.connect(local_db) as db:
        with pytest.raises(peersync.ConfigurationError, match="same local table"):
            db.provision("music", ["Artist", "Album"], names={"Album": {"table": "x"}, "Artist": {"table": "X"}})
        with pytest.raises(peersync.ScopeError, match="not among"):
            db.provision("music", ["Album"], names=NAMES)
        with pytest.raises(peersync.TableError, match="does not have"):
            db.provision("music", ["Album"], names={"Album": {"table": "album", "columns": {"Title": "nope"}}})
        with pytest.raises(peersync.TableError, match="same global name"):
            # global Title -> local artist_id, and local title keeps global name "title": fine;
            # but global "title" for artist_id collides with the unmapped local column "title"
            db.provision("music", ["Album"], names={"Album": {"table": "album", "columns": {"title": "artist_id"}}})
        with pytest.raises(peersync.ConfigurationError, match=r"not TOML|cannot read"):
            db.provision("music", ["Album"], names=str(tmp_path))
        with pytest.raises(peersync.ConfigurationError, match="a mapping or a TOML file"):
            db.provision("music", ["Album"], names=42)  # type: ignore[arg-type]
    assert snapshot(local_db) == before


def test_provisioning_again_with_other_names_is_refused_with_advice(tmp_path: Path, local_db: Path) -> None:
    with peersync.connect(local_db) as db:
        db.provision("music", ["Artist", "Album"], names=NAMES)
    before = snapshot(local_db)
    other = {**NAMES, "Album": {"table": "album", "columns": {"AlbumId": "album_id", "Name": "title"}}}
    other["Album"]["columns"]["ArtistId"] = "artist_id"
    with peersync.connect(local_db) as db, pytest.raises(peersync.ScopeError, match="deprovision the scope"):
        db.provision("music", ["Artist", "Album"], names=other)
    assert snapshot(local_db) == before
    with peersync.connect(local_db) as db:
        db.deprovision("music")
        assert db.provision("music", ["Artist", "Album"], names=other)
        assert db.describe("music").tables[1].columns == ("AlbumId", "Name", "ArtistId")


def test_names_without_differences_store_nothing(tmp_path: Path) -> None:
    a = make(tmp_path / "a.db", GLOBAL)
    with peersync.connect(a) as db:
        db.provision("music", ["Album", "Artist"], names={"Album": {"table": "Album", "columns": {"Title": "Title"}}})
        assert db.status("music")[0].names == {}


def test_deprovision_removes_the_names(tmp_path: Path, local_db: Path) -> None:
    with peersync.connect(local_db) as db:
        db.provision("music", ["Artist", "Album"], names=NAMES)
        db.provision("other", ["Artist"], names={"Artist": NAMES["Artist"]})
        db.deprovision("music")
        assert db.status("other")[0].names == {"Artist": NAMES["Artist"]}
        with pytest.raises(peersync.ScopeError):
            db.status("music")
        assert db.provision("music", ["Artist"], names={"Artist": NAMES["Artist"]})
        assert db.status("music")[0].names == {"Artist": NAMES["Artist"]}


def test_migrate_takes_no_names_file(tmp_path: Path, local_db: Path) -> None:
    f = names_file(tmp_path, TOML)
    ok(invoke("init", local_db, "--scope", "music", *TABLES, "--names", f))
    before = snapshot(local_db)
    assert_error(
        invoke("init", local_db, "--scope", "music", *TABLES, "--names", f, "--migrate"), "keeps the stored names"
    )
    assert snapshot(local_db) == before
