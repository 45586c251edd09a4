"""The Chinook sample database (11 tables, composite and key-only keys, a
self-referencing table, unicode) provisions and syncs with foreign keys on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import peersync

from ..helpers import write

TABLES = [
    "Album",
    "Artist",
    "Customer",
    "Employee",
    "Genre",
    "Invoice",
    "InvoiceLine",
    "MediaType",
    "Playlist",
    "PlaylistTrack",
    "Track",
]


def load(path: Path, script: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.close()


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    out = {t: conn.execute(f"SELECT * FROM [{t}] ORDER BY 1, 2").fetchall() for t in TABLES}
    conn.close()
    return out


def fk_clean(path: Path) -> bool:
    conn = sqlite3.connect(path)
    ok = conn.execute("PRAGMA foreign_key_check").fetchall() == []
    ok = ok and conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    return ok


def test_chinook_provisions_and_syncs(tmp_path: Path, chinook_sql: str) -> None:
    schema = chinook_sql[: chinook_sql.index("INSERT INTO")]
    full, e1, e2 = tmp_path / "full.db", tmp_path / "empty1.db", tmp_path / "empty2.db"
    for p in (full, e1, e2):
        p.touch()
    load(full, chinook_sql)
    load(e1, schema)
    load(e2, schema)
    original = dump(full)
    assert all(original[t] for t in TABLES)
    assert not any(dump(e1)[t] for t in TABLES)
    total = sum(len(v) for v in original.values())
    assert any("ö" in str(r) or "é" in str(r) for r in original["Artist"])  # unicode is there

    a, b, c = (peersync.connect(p) for p in (full, e1, e2))
    dbs = [a, b, c]
    try:
        for d in dbs:
            assert d.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
            assert d.provision("chinook", TABLES) is True
        st = a.status("chinook")[0]
        assert st.tracked_rows == total and st.tombstones == 0
        assert sorted(st.tables) == sorted(TABLES)
        assert dump(full) == original  # provisioning touches no user data

        # The full copy to an empty peer, in small batches, then on to a third with the default.
        r = peersync.sync(a, b, "chinook", batch_size=97)
        assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts, r.errors) == (total, 0, 0, 0)
        assert r.batches >= total // 97
        r = peersync.sync(b, c, "chinook")
        assert (r.sent_a_to_b, r.sent_b_to_a, r.conflicts, r.errors) == (total, 0, 0, 0)
        assert dump(e1) == dump(e2) == original
        for x, y in ((a, b), (b, c), (c, a)):
            r = peersync.sync(x, y, "chinook")
            assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)

        # Edits on every side.
        write(
            full,
            ("UPDATE Artist SET Name = ? WHERE ArtistId = 1", ("AC/DC — Ünïcødé ✓ 東京",)),
            "DELETE FROM InvoiceLine WHERE InvoiceId = 5",
            "DELETE FROM Invoice WHERE InvoiceId = 5",
            "INSERT INTO Genre (GenreId, Name) VALUES (26, 'Fado')",
        )
        write(
            e1,
            "INSERT INTO PlaylistTrack (PlaylistId, TrackId) VALUES (18, 1)",
            "UPDATE Employee SET ReportsTo = 1 WHERE EmployeeId = 8",
            "INSERT INTO Playlist (PlaylistId, Name) VALUES (19, 'Für Elise & co')",
            "INSERT INTO PlaylistTrack (PlaylistId, TrackId) VALUES (19, 2), (19, 3)",
        )
        write(
            e2,
            "INSERT INTO Artist (ArtistId, Name) VALUES (276, 'Ñandú')",
            "INSERT INTO Album (AlbumId, Title, ArtistId) VALUES (348, 'Primero', 276)",
            "UPDATE Track SET AlbumId = 348 WHERE TrackId = 3",
            "UPDATE Track SET Name = 'Fast As a Shark (remaster)' WHERE TrackId = 3",
            "DELETE FROM PlaylistTrack WHERE PlaylistId = 1 AND TrackId = 3402",
            "UPDATE Customer SET SupportRepId = 4 WHERE CustomerId = 1",
        )
        for _ in range(2):
            for x, y in ((a, b), (b, c), (c, a)):
                r = peersync.sync(x, y, "chinook", batch_size=97)
                assert r.errors == 0 and r.conflicts == 0
        final = dump(full)
        assert dump(e1) == dump(e2) == final
        assert final["Artist"][0] == (1, "AC/DC — Ünïcødé ✓ 東京")
        assert not [r for r in final["Invoice"] if r[0] == 5]
        assert not [r for r in final["InvoiceLine"] if r[1] == 5]
        assert (18, 1) in final["PlaylistTrack"] and (19, 3) in final["PlaylistTrack"]
        assert (1, 3402) not in final["PlaylistTrack"]
        assert [r[4] for r in final["Employee"] if r[0] == 8] == [1]
        assert [r[2] for r in final["Track"] if r[0] == 3] == [348]
        for p in (full, e1, e2):
            assert fk_clean(p)
        for d in dbs:
            assert d.conflicts() == []
            assert d.status("chinook")[0].conflicts == 0
        for x, y in ((a, b), (b, c), (c, a)):
            r = peersync.sync(x, y, "chinook")
            assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)
    finally:
        for d in dbs:
            d.close()
