"""A replica is one scope in one file. A copy or a restored backup carries its
original's replica id; it is refused until ``reidentify`` (or ``reidentify
--moved`` for the same database moved), and after that nothing is lost: every
peer gets the original's and the copy's changes."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync
from peersync import Policy

from ..helpers import connect_all, rows, write
from .test_cli import assert_error, invoke, ok

MakeDb = Callable[..., Path]


def backup_api(src: Path, dst: Path) -> None:
    """``sqlite3 .backup``: SQLite's online backup into a new file."""
    s, d = sqlite3.connect(src), sqlite3.connect(dst)
    s.backup(d)
    s.close()
    d.close()


def vacuum_into(src: Path, dst: Path) -> None:
    conn = sqlite3.connect(src)
    conn.execute("VACUUM INTO ?", (str(dst),))
    conn.close()


def converge(*dbs: peersync.Database) -> None:
    for _ in range(2):
        for i, x in enumerate(dbs):
            for y in dbs[i + 1 :]:
                assert peersync.sync(x, y, "s").errors == 0
    for i, x in enumerate(dbs):
        for y in dbs[i + 1 :]:
            r = peersync.sync(x, y, "s")
            assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)


@pytest.mark.parametrize("copy_file", [shutil.copy, backup_api, vacuum_into], ids=["cp", "backup", "vacuum-into"])
def test_copy_is_refused_until_reidentified_then_a_third_peer_gets_both_sides_rows(
    make_db: MakeDb, tmp_path: Path, copy_file: Callable[[Path, Path], None]
) -> None:
    a, third = make_db("a"), make_db("third")
    copy = tmp_path / "copy.db"
    with peersync.connect(a) as da, peersync.connect(third) as dt:
        da.provision("s", ["item", "tag"])
        dt.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'one', 1, 1.0)")
        peersync.sync(da, dt, "s")
        write(a, "INSERT INTO item VALUES (2, 'before the copy, not synced', 2, 2.0)")
    copy_file(a, copy)
    # Both now write with the same replica id and the same next tick.
    write(a, "INSERT INTO item VALUES (10, 'original, after the copy', 1, 1.0)")
    write(copy, "INSERT INTO item VALUES (11, 'copy, after the copy', 1, 1.0)")
    before = {p: p.read_bytes() for p in (a, copy, third)}
    with peersync.connect(a) as da, peersync.connect(third) as dt, peersync.connect(copy) as dc:
        assert dc.status("s")[0].replica_id == da.status("s")[0].replica_id  # reading works, and writes nothing
        for x, y in ((dc, dt), (dt, dc), (da, dc), (dc, da)):
            with pytest.raises(peersync.RepairNeeded, match=f"is a copy of {a}.*peersync reidentify {copy} --scope s"):
                peersync.sync(x, y, "s")
    line = assert_error(invoke("sync", copy, third, "-s", "s"), "copy")
    assert f"run 'peersync reidentify {copy} --scope s'" in line
    assert {p: p.read_bytes() for p in (a, copy, third)} == before

    r = ok(invoke("reidentify", copy, "-s", "s"))
    assert "is now replica" in r.stdout
    with peersync.connect(a) as da, peersync.connect(third) as dt, peersync.connect(copy) as dc:
        assert dc.status("s")[0].replica_id != da.status("s")[0].replica_id
        peersync.sync(da, dt, "s")
        peersync.sync(dc, dt, "s")
        assert [r[0] for r in rows(third, "item")] == [1, 2, 10, 11]
        converge(da, dc, dt)
        assert rows(a, "item") == rows(copy, "item") == rows(third, "item")


def test_file_moved_on_its_filesystem_is_accepted_and_its_new_place_recorded(make_db: MakeDb, tmp_path: Path) -> None:
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'one', 1, 1.0)")
        peersync.sync(da, dbb, "s")
    moved = tmp_path / "elsewhere" / "moved.db"
    moved.parent.mkdir()
    os.rename(a, moved)
    before = moved.read_bytes()
    with peersync.connect(moved) as dm:
        dm.describe("s")  # describing and reading write nothing
        dm.status("s")
        dm.conflicts("s")
    assert moved.read_bytes() == before
    write(moved, "INSERT INTO item VALUES (2, 'two', 2, 2.0)")
    with peersync.connect(moved) as dm, peersync.connect(b) as dbb:
        r = peersync.sync(dm, dbb, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a) == (1, 0)
    # The next write recorded the new place: a copy of the moved file names it.
    copy = tmp_path / "copy.db"
    shutil.copy(moved, copy)
    with peersync.connect(copy) as dc, pytest.raises(peersync.RepairNeeded, match=f"is a copy of {moved}"):
        dc.describe("s")


def test_file_moved_to_another_filesystem_is_confirmed_with_moved(make_db: MakeDb, tmp_path: Path) -> None:
    a, b = make_db("a"), make_db("b")
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'one', 1, 1.0)")
        peersync.sync(da, dbb, "s")
        rid = da.status("s")[0].replica_id
    moved = tmp_path / "moved.db"
    shutil.copy(a, moved)  # what mv does across filesystems: a new file, then the old one removed
    a.unlink()
    assert_error(invoke("sync", moved, b, "-s", "s"), "--moved")
    r = ok(invoke("reidentify", moved, "-s", "s", "--moved"))
    assert "stays replica" in r.stdout
    write(moved, "INSERT INTO item VALUES (2, 'two', 2, 2.0)")
    with peersync.connect(moved) as dm, peersync.connect(b) as dbb:
        assert dm.status("s")[0].replica_id == rid
        r = peersync.sync(dm, dbb, "s")
        assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts) == (1, 0, 0)
        assert rows(moved, "item") == rows(b, "item")


def _restored_scenario(make_db: MakeDb, tmp_path: Path, restore: Callable[[Path, Path], None]) -> tuple[Path, Path]:
    """A backed up, wrote and synced more, then restored from the backup."""
    a, b = make_db("a"), make_db("b")
    backup = tmp_path / "backup.db"
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.provision("s", ["item", "tag"])
        dbb.provision("s", ["item", "tag"])
        write(a, "INSERT INTO item VALUES (1, 'one', 1, 1.0)")
        peersync.sync(da, dbb, "s")
        shutil.copy(a, backup)
        write(a, "INSERT INTO item VALUES (2, 'two', 2, 2.0)", "INSERT INTO item VALUES (3, 'three', 3, 3.0)")
        write(a, "UPDATE item SET name = 'one, edited' WHERE id = 1")
        peersync.sync(da, dbb, "s")
    restore(backup, a)
    write(a, "INSERT INTO item VALUES (20, 'after the restore', 1, 1.0)")  # reuses ticks B knows
    return a, b


@pytest.mark.parametrize(
    ("restore", "message"),
    [(os.replace, "was replaced"), (shutil.copyfile, "behind what .* knows of it")],
    ids=["renamed-over", "written-into-the-same-file"],
)
def test_restored_backup_is_refused_until_reidentified_and_then_loses_nothing(
    make_db: MakeDb, tmp_path: Path, restore: Callable[[Path, Path], None], message: str
) -> None:
    a, b = _restored_scenario(make_db, tmp_path, restore)
    before = a.read_bytes(), b.read_bytes()
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        for x, y in ((da, dbb), (dbb, da)):
            with pytest.raises(peersync.RepairNeeded, match=message):
                peersync.sync(x, y, "s")
    line = assert_error(invoke("sync", b, a, "-s", "s"), message)
    assert "peersync reidentify" in line and str(a) in line
    assert (a.read_bytes(), b.read_bytes()) == before
    with peersync.connect(a) as da, peersync.connect(b) as dbb:
        da.reidentify("s")
        converge(da, dbb)
        expected = [
            (1, "one, edited", 1, 1.0),
            (2, "two", 2, 2.0),
            (3, "three", 3, 3.0),
            (20, "after the restore", 1, 1.0),
        ]
        assert rows(a, "item") == rows(b, "item") == expected


def test_a_database_synced_with_itself_or_its_copy_is_refused_clearly(make_db: MakeDb, tmp_path: Path) -> None:
    a = make_db("a")
    with peersync.connect(a) as da:
        da.provision("s", ["item", "tag"])
        with pytest.raises(peersync.ConfigurationError, match="is the same database on both sides"):
            peersync.sync(da, da, "s")
    # A copy that keeps the file's identity (a hard link is the same file) is still one replica.
    link = tmp_path / "link.db"
    os.link(a, link)
    with (
        peersync.connect(a) as da,
        peersync.connect(link) as dl,
        pytest.raises(peersync.ConfigurationError, match=r"holds the same replica as.*peersync reidentify"),
    ):
        peersync.sync(da, dl, "s")


def test_reidentify_works_when_its_replica_id_is_already_a_known_replica(make_db: MakeDb) -> None:
    """A database with two scopes learns, through one scope's batches, the replica id of its
    other scope (a source lists every replica it knows). ``reidentify`` on a fresh
    connection reads the known replicas before it adds one, so it succeeds instead of
    failing on a duplicate row of ``_peersync_replicas``."""
    pa, pb = make_db("a"), make_db("b")
    a, b = connect_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s1", ["item"])
            d.provision("s2", ["item", "tag"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        peersync.sync(a, b, "s1")
        write(pb, "INSERT INTO item VALUES (2, 'y', 1, 1.0)")
        peersync.sync(a, b, "s2")
    finally:
        a.close()
        b.close()
    with peersync.connect(pa) as fresh:
        old = fresh.describe("s1").replica_id
        assert fresh.reidentify("s1") != old


@pytest.mark.xfail(
    strict=True,
    reason="limit (README): reidentify of a copy whose scopes share a table re-sends rows (needs per-scope id epochs)",
)
def test_reidentify_keeps_the_origin_of_rows_of_another_scope_sharing_the_table(
    make_db: MakeDb, tmp_path: Path
) -> None:
    """Both scopes of a copied file are reidentified (both ids were copied). Rows that arrived
    through one scope must keep their origin when the other scope is reidentified, so the
    copy sends its peers nothing they hold and a peer's later edit meets no conflict (under
    source-wins the copy's stale row would undo it). Known limit (README): ``reidentify``
    relabels the rows of every other scope sharing the table as its own new versions."""
    pa, pb, pe = make_db("a"), make_db("b"), make_db("e")
    a, b, e = connect_all(pa, pb, pe)
    try:
        a.provision("s1", ["item"])
        a.provision("s2", ["item"])
        b.provision("s1", ["item"])
        e.provision("s2", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)", "INSERT INTO item VALUES (2, 'y', 1, 1.0)")
        write(pb, "INSERT INTO item VALUES (3, 'b', 1, 1.0)")
        write(pe, "INSERT INTO item VALUES (4, 'e', 1, 1.0)")
        for _ in range(2):
            peersync.sync(a, b, "s1")
            peersync.sync(a, e, "s2")
        pc = tmp_path / "c.db"
        shutil.copy(pa, pc)
        with peersync.connect(pc) as c:
            c.reidentify("s1")
            c.reidentify("s2")
            write(pb, "UPDATE item SET name = 'edited at B' WHERE id = 1")  # made knowing the copied row
            expected = rows(pb, "item")
            r1 = peersync.run_session(c, b, "s1", policy=Policy.SOURCE_WINS)
            r2 = peersync.run_session(c, e, "s2", policy=Policy.SOURCE_WINS)
            assert (r1.sent, r1.conflicts, r2.sent, r2.conflicts) == (0, 0, 0, 0)
            assert rows(pb, "item") == expected
    finally:
        for d in (a, b, e):
            d.close()
