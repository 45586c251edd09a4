"""Chinook in full across SQLite, MariaDB and PostgreSQL, each database made by
its own script (../shared/data/chinook), every constraint on: the PostgreSQL
script names everything in snake_case, so that database is provisioned with a
names file (``chinook_postgres_names.toml``) and syncs through the scope's
global names. The three sync in a loop, then each takes random edits
(inserts, updates, deletes of parents together with their children), and
after syncing until quiet the three hold the same rows, compared through
global names.

Needs the servers of tests/postgres and tests/mysql and the Chinook scripts;
without them the test is skipped with the reason, except under ``CI=true``,
where that fails it.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import peersync

from ..helpers import SHARED, drop_mariadb_database, pg_admin

DATA = SHARED / "data" / "chinook"
NAMES_FILE = Path(__file__).with_name("chinook_postgres_names.toml")
PG_ADMIN = os.environ.get("PEERSYNC_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_SERVER = os.environ.get("PEERSYNC_MYSQL", "mysql://root@127.0.0.1:3306")
TABLES = [
    "Album", "Artist", "Customer", "Employee", "Genre", "Invoice", "InvoiceLine", "MediaType", "Playlist",
    "PlaylistTrack", "Track",
]  # fmt: skip
SCOPE = "chinook"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Chinook across three databases cannot run under CI=true: {reason}")
    pytest.skip(reason)


def _script(name: str) -> str:
    path = DATA / name
    if not path.exists():
        _unavailable(f"Chinook data not found at {path} (../shared is absent in a user's clone)")
    return path.read_text(encoding="utf-8-sig")


def _schema_part(script: str, after: str) -> str:
    """A script's DDL (tables, keys, foreign keys, indexes), without its
    database switching and its rows."""
    start = script.index(after) + len(after) if after else 0
    return script[start : script.index("INSERT INTO")]


@dataclass
class Side:
    """One database of the loop, spoken to by a plain driver in its own names."""

    kind: str
    url: str
    run: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
    quote: str
    param: str
    names: dict[str, Any] = field(default_factory=dict)

    def t(self, table: str) -> str:
        return self.quote % self.names.get(table, {}).get("table", table)

    def c(self, table: str, column: str) -> str:
        return self.quote % self.names.get(table, {}).get("columns", {}).get(column, column)

    def sql(self, text: str, *params: Any) -> list[tuple[Any, ...]]:
        """``text`` with ``{Table}`` and ``{Table.Column}`` in global names, ``?`` for parameters."""

        def name(m: re.Match[str]) -> str:
            table, _, column = m.group(1).partition(".")
            return self.c(table, column) if column else self.t(table)

        return self.run(re.sub(r"\{(\w+(?:\.\w+)?)\}", name, text).replace("?", self.param), params)


def _norm(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, int):
        return v
    if isinstance(v, (float, Decimal)):
        return str(Decimal(str(v)).normalize())
    if hasattr(v, "isoformat"):
        return v.isoformat(sep=" ")
    return v


def dump(side: Side, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows in global column order, sorted, values normalized
    (DECIMAL, REAL and datetime values print the same way everywhere)."""
    out = {}
    for table, cols in columns.items():
        got = side.sql(f"SELECT {', '.join('{' + table + '.' + c + '}' for c in cols)} FROM {{{table}}}")
        out[table] = sorted(tuple(_norm(v) for v in r) for r in got)
    return out


# -- the three databases ---------------------------------------------------------------------------
@pytest.fixture
def sqlite_side(tmp_path: Path) -> Iterator[Side]:
    path = tmp_path / "chinook.db"
    conn = sqlite3.connect(path)
    conn.executescript(_script("Chinook_Sqlite.sql"))
    conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")

    def run(text: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        # NUMERIC affinity keeps 0.99 as a REAL, as the script's own rows are
        return conn.execute(text, tuple(float(p) if isinstance(p, Decimal) else p for p in params)).fetchall()

    yield Side("sqlite", str(path), run, '"%s"', "?")
    conn.close()


@pytest.fixture
def mysql_side() -> Iterator[Side]:
    script = _schema_part(_script("Chinook_MySql.sql"), "USE `Chinook`;")
    try:
        import pymysql
        from pymysql.constants import CLIENT
    except ImportError:
        _unavailable("pymysql is not installed (pip install -e '.[test]')")
    from peersync._adapters.mysql.conn import parse_url

    t = parse_url(MYSQL_SERVER + "/mysql")
    kw = {"host": t.host, "port": t.port, "user": t.user, "password": t.password, "autocommit": True}
    try:
        admin = pymysql.connect(**kw)
    except pymysql.err.OperationalError as exc:
        _unavailable(f"MariaDB server at {MYSQL_SERVER} unreachable: {exc}")
    name = "ps_chinook_" + uuid.uuid4().hex[:12]
    admin.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    try:
        conn = pymysql.connect(**kw, database=name, client_flag=CLIENT.MULTI_STATEMENTS)
        cur = conn.cursor()
        cur.execute(script)
        while cur.nextset():
            pass

        def run(text: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            with conn.cursor() as c:
                c.execute(text, params or None)
                return [tuple(r) for r in c.fetchall()]

        yield Side("mariadb", f"{MYSQL_SERVER}/{name}", run, "`%s`", "%s")
        conn.close()
    finally:
        drop_mariadb_database(admin, name)
        admin.close()


@pytest.fixture
def postgres_side() -> Iterator[Side]:
    script = _schema_part(_script("Chinook_PostgreSql.sql"), "\\c chinook;")
    admin = pg_admin("Chinook across three databases")
    import psycopg  # pg_admin checked it is installed

    name = "peersync_chinook_" + uuid.uuid4().hex[:12]
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_ADMIN.rpartition('/')[0]}/{name}"
    try:
        conn = psycopg.connect(url, autocommit=True)
        conn.execute(script)

        def run(text: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            cur = conn.execute(text, params or None)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []

        names = peersync.load_names(NAMES_FILE).to_mapping()
        yield Side("postgres", url, run, '"%s"', "%s", names)
        conn.close()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# -- random edits ---------------------------------------------------------------------------------
def edit(side: Side, k: int, rng: random.Random) -> None:
    """Random edits on side ``k`` (0, 1, 2), in its own names, foreign keys on.

    Inserts take keys no other side uses; deletes take parents (albums,
    invoices, playlists) of this side's share only, with their children; updates
    touch rows no side deletes. So every change can apply everywhere and the
    loop converges, with update/update conflicts on shared rows on the way."""
    base = 100_000 + 1_000 * k
    stable = [r[0] for r in side.sql("SELECT {Track.TrackId} FROM {Track} WHERE {Track.AlbumId} <= 150")]
    for tid in rng.sample(stable, 25):
        price = rng.choice(["0.99", "1.99", "2.49"])
        side.sql(
            "UPDATE {Track} SET {Track.Name} = ?, {Track.UnitPrice} = ? WHERE {Track.TrackId} = ?",
            f"{side.kind} {tid} ✓ ünïcödé",
            Decimal(price),
            tid,
        )  # fmt: skip (NVARCHAR: no 4-byte UTF-8 on MariaDB)
    for cid in rng.sample(range(1, 60), 5):
        side.sql(
            "UPDATE {Customer} SET {Customer.Email} = ? WHERE {Customer.CustomerId} = ?", f"{side.kind}@x.org", cid
        )
    # a new artist with an album and its tracks, a playlist of old tracks, an invoice with lines
    side.sql("INSERT INTO {Artist} ({Artist.ArtistId}, {Artist.Name}) VALUES (?, ?)", base, f"New on {side.kind}")
    side.sql("INSERT INTO {Album} ({Album.AlbumId}, {Album.Title}, {Album.ArtistId}) VALUES (?, ?, ?)",
             base, f"Album of {side.kind}", base)  # fmt: skip
    for i in range(3):
        side.sql(
            "INSERT INTO {Track} ({Track.TrackId}, {Track.Name}, {Track.AlbumId}, {Track.MediaTypeId},"
            " {Track.GenreId}, {Track.Composer}, {Track.Milliseconds}, {Track.Bytes}, {Track.UnitPrice})"
            " VALUES (?, ?, ?, 1, 1, NULL, ?, ?, ?)",
            base + i, f"song {i}", base, 1000 * (i + 1), 12345 + i, Decimal("0.99"),
        )  # fmt: skip
    side.sql("INSERT INTO {Playlist} ({Playlist.PlaylistId}, {Playlist.Name}) VALUES (?, ?)", base, side.kind)
    for tid in rng.sample(stable, 4):
        side.sql("INSERT INTO {PlaylistTrack} ({PlaylistTrack.PlaylistId}, {PlaylistTrack.TrackId}) VALUES (?, ?)",
                 base, tid)  # fmt: skip
    side.sql(
        "INSERT INTO {Invoice} ({Invoice.InvoiceId}, {Invoice.CustomerId}, {Invoice.InvoiceDate},"
        " {Invoice.BillingCity}, {Invoice.Total}) VALUES (?, 3, ?, ?, ?)",
        base, "2024-02-29 13:14:15", "Zürich", Decimal("1.98"),
    )  # fmt: skip
    for i, tid in enumerate(rng.sample(stable, 2)):
        side.sql(
            "INSERT INTO {InvoiceLine} ({InvoiceLine.InvoiceLineId}, {InvoiceLine.InvoiceId}, {InvoiceLine.TrackId},"
            " {InvoiceLine.UnitPrice}, {InvoiceLine.Quantity}) VALUES (?, ?, ?, ?, 1)",
            base + i, base, tid, Decimal("0.99"),
        )  # fmt: skip
    # deletes of parents with their children, from this side's share
    albums = [a for a in range(200, 348) if a % 3 == k]
    for aid in rng.sample(albums, 3):
        for child in ("InvoiceLine", "PlaylistTrack"):
            side.sql(f"DELETE FROM {{{child}}} WHERE {{{child}.TrackId}} IN"
                     " (SELECT {Track.TrackId} FROM {Track} WHERE {Track.AlbumId} = ?)", aid)  # fmt: skip
        side.sql("DELETE FROM {Track} WHERE {Track.AlbumId} = ?", aid)
        side.sql("DELETE FROM {Album} WHERE {Album.AlbumId} = ?", aid)
    for iid in rng.sample([i for i in range(1, 413) if i % 3 == k], 4):
        side.sql("DELETE FROM {InvoiceLine} WHERE {InvoiceLine.InvoiceId} = ?", iid)
        side.sql("DELETE FROM {Invoice} WHERE {Invoice.InvoiceId} = ?", iid)
    pid = 1 + k * 5  # playlists 1, 6 and 11: big ones, with their tracks
    side.sql("DELETE FROM {PlaylistTrack} WHERE {PlaylistTrack.PlaylistId} = ?", pid)
    side.sql("DELETE FROM {Playlist} WHERE {Playlist.PlaylistId} = ?", pid)


def ring(dbs: list[peersync.Database]) -> int:
    """One sync around the loop (both ways on each link); rows moved."""
    moved = 0
    for a, b in zip(dbs, dbs[1:] + dbs[:1], strict=True):
        r = peersync.sync(a, b, SCOPE)
        assert r.completed and r.errors == 0, r.to_dict()
        moved += r.sent_a_to_b + r.sent_b_to_a
    return moved


def test_chinook_syncs_among_sqlite_mariadb_and_postgres_with_names(
    sqlite_side: Side, mysql_side: Side, postgres_side: Side
) -> None:
    sides = [sqlite_side, mysql_side, postgres_side]
    columns = {t: [c for (c,) in sqlite_side.run(f"SELECT name FROM pragma_table_info('{t}')", ())] for t in TABLES}
    original = dump(sqlite_side, columns)
    assert sum(len(v) for v in original.values()) == 15607
    dbs = [peersync.connect(s.url) for s in sides]
    try:
        assert dbs[0].provision(SCOPE, TABLES)
        assert dbs[1].provision(SCOPE, TABLES)
        assert dbs[2].provision(SCOPE, TABLES, names=NAMES_FILE)
        st = dbs[2].status(SCOPE)[0]
        assert sorted(st.tables) == sorted(TABLES) and st.names["InvoiceLine"]["table"] == "invoice_line"
        assert len({db.describe(SCOPE).fingerprint for db in dbs}) == 1
        assert ring(dbs) == 2 * 15607  # SQLite -> MariaDB -> PostgreSQL
        assert ring(dbs) == 0
        for s in sides:
            assert dump(s, columns) == original, s.kind

        seed = random.randrange(2**32)
        print(f"chinook edits seed {seed}")
        rng = random.Random(seed)
        for k, s in enumerate(sides):
            edit(s, k, rng)
        dumps = [dump(s, columns) for s in sides]
        assert dumps[0] != dumps[1] != dumps[2]
        for _ in range(6):
            if ring(dbs) == 0:
                break
        else:
            raise AssertionError(f"the loop did not go quiet (seed {seed})")
        final = [dump(s, columns) for s in sides]
        assert final[0] == final[1] == final[2], f"seed {seed}"
        for k in range(3):
            assert (100_000 + 1_000 * k, f"Album of {sides[k].kind}", 100_000 + 1_000 * k) in final[0]["Album"]
        assert len(final[0]["Album"]) == len(original["Album"]) + 3 - 9
        for s, db in zip(sides, dbs, strict=True):
            errors = [c for c in db.conflicts(SCOPE) if c.type is peersync.ConflictType.ERROR]
            assert not errors, (s.kind, errors[:3])
            assert all(c.table in TABLES for c in db.conflicts(SCOPE))
            assert db.status(SCOPE)[0].pending == 0
        assert sqlite_side.run("PRAGMA foreign_key_check", ()) == []
    finally:
        for db in dbs:
            db.close()
