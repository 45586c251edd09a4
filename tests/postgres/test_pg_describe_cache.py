"""An open PostgreSQL peer describes a scope from what it read before, as long
as one catalog query (``schema.shape_signature``) says nothing it was read
from changed: every schema change between two sessions on the same open
connections must still be caught, as a fresh connection would catch it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import peersync
from peersync._adapters.postgres import schema as pg_schema

from .helpers import ITEM_PG, pg_rows, provision, sqlite_db, sqlite_rows, sqlite_write

Pair = tuple[str, Path, peersync.Database, peersync.Database]


@pytest.fixture
def pair(make_pg: Callable[..., str], tmp_path: Path) -> Iterator[Pair]:
    """A PostgreSQL and a SQLite replica of ``item`` with three rows, synced
    once (so the PostgreSQL peer holds its scope), both peers left open."""
    url = make_pg(ITEM_PG)
    path = sqlite_db(tmp_path / "a.db")
    provision(url, ["item"])
    provision(path, ["item"])
    sqlite_write(path, *(f"INSERT INTO item VALUES ({i}, 'n{i}', {i}, 0.5)" for i in range(3)))
    with peersync.connect(url) as pg, peersync.connect(path) as lite:
        peersync.sync(lite, pg, "s")
        yield url, path, pg, lite


def _on_server(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for st in statements:
            conn.execute(st)


def test_nothing_changed_reads_no_table_shape_again(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    url, path, pg, lite = pair
    calls: list[str] = []
    real = pg_schema.introspect

    def counted(conn: Any, table: str) -> Any:
        calls.append(table)
        return real(conn, table)

    monkeypatch.setattr(pg_schema, "introspect", counted)
    for i in range(3):
        sqlite_write(path, f"UPDATE item SET qty = qty + 1 WHERE id = {i}")  # an apply writes the scope's row
        assert peersync.sync(lite, pg, "s").sent_a_to_b == 1
        assert peersync.sync(pg, lite, "s").sent_a_to_b == 0
    assert calls == []
    _on_server(url, "ALTER TABLE item ALTER COLUMN name SET DEFAULT 'x'")  # not the shape: a reload, same scope
    assert peersync.sync(pg, lite, "s").sent_a_to_b == 0
    assert len(calls) == 1


@pytest.mark.parametrize(
    "ddl",
    [
        "ALTER TABLE item ADD COLUMN extra integer",
        "ALTER TABLE item RENAME COLUMN name TO title",
        "ALTER TABLE item DROP COLUMN price",
    ],
)
def test_a_reshaped_table_between_sessions_is_refused(pair: Pair, ddl: str) -> None:
    url, _, pg, lite = pair
    _on_server(url, ddl)
    with pytest.raises(peersync.SchemaMismatch):
        peersync.sync(pg, lite, "s")
    with pytest.raises(peersync.SchemaMismatch):
        peersync.sync(lite, pg, "s")


@pytest.mark.parametrize(
    ("ddl", "value", "error"),
    [
        ("ALTER TABLE item ALTER COLUMN qty TYPE bigint", "UPDATE item SET qty = 1099511627776 WHERE id = 1", ""),
        ("ALTER TABLE item ALTER COLUMN qty TYPE smallint", "UPDATE item SET qty = 40000 WHERE id = 1", "out of range"),
        (
            "ALTER TABLE item ALTER COLUMN name TYPE varchar(4)",
            "UPDATE item SET name = 'longer' WHERE id = 1",
            "too long",
        ),
    ],
)
def test_a_retyped_column_between_sessions_judges_values_by_its_new_type(
    pair: Pair, ddl: str, value: str, error: str
) -> None:
    """A column whose type changed within the same kind keeps the scope's
    shape; the values it can hold are those of its new type."""
    url, path, pg, lite = pair
    _on_server(url, ddl)
    sqlite_write(path, value)
    result = peersync.sync(lite, pg, "s", direction="push")
    if not error:
        assert result.errors == 0 and pg_rows(url) == sqlite_rows(path)
    else:
        (failed,) = pg.conflicts("s")
        # Refused by peersync's check of the new type, naming the column (not PostgreSQL's own error).
        assert error in failed.detail and failed.detail.startswith("column "), failed.detail


@pytest.mark.parametrize(
    "ddl",
    [
        ["ALTER TABLE item DISABLE TRIGGER _peersync_upd"],
        ["ALTER TABLE item ENABLE TRIGGER _peersync_ins"],  # no longer ALWAYS: replica-role writers go untracked
        ["DROP TABLE item", ITEM_PG],
    ],
)
def test_a_lost_trigger_between_sessions_needs_repair(pair: Pair, ddl: list[str]) -> None:
    url, _, pg, lite = pair
    _on_server(url, *ddl)
    with pytest.raises(peersync.RepairNeeded):
        peersync.sync(pg, lite, "s")


def test_a_user_trigger_created_between_sessions_is_seen_by_the_next_apply(pair: Pair) -> None:
    url, path, pg, lite = pair
    _on_server(
        url,
        "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$",
        "CREATE TRIGGER shout BEFORE INSERT OR UPDATE ON item FOR EACH ROW EXECUTE FUNCTION shout()",
    )
    sqlite_write(path, "INSERT INTO item VALUES (9, 'quiet', 9, 0.5)")
    peersync.sync(lite, pg, "s")
    # The row the trigger changed became a local change and came back.
    peersync.sync(lite, pg, "s")
    assert (9, "QUIET", 9, 0.5) in pg_rows(url)
    assert pg_rows(url) == sqlite_rows(path)


def test_a_no_change_session_asks_the_server_twice(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound's two statements go as one query, and so do the snapshot's
    signature and knowledge reads: each round trip waits for a busy server."""
    _, _, pg, lite = pair
    sent: list[str] = []
    real = psycopg.Cursor.execute

    def counted(self: Any, query: Any, *args: Any, **kw: Any) -> Any:
        sent.append(str(query))
        return real(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    for a, b in ((lite, pg), (pg, lite)):
        sent.clear()
        assert peersync.sync(a, b, "s", direction="push").sent_a_to_b == 0
        assert len(sent) == 2, sent


def test_a_dropped_peersync_schema_is_noticed_by_an_open_peer(pair: Pair) -> None:
    """The bound stops reading peersync's sequence once it saw it on this
    connection; a schema dropped behind its back must not break the bound."""
    url, _, pg, _ = pair
    assert pg.describe("s").tick > 0
    _on_server(url, "DROP SCHEMA _peersync CASCADE")
    assert pg.bound() == 0  # nothing tracked, as on a database never provisioned
    with pytest.raises(peersync.StorageError):
        pg.describe("s")
    with peersync.connect(url) as again, pytest.raises(peersync.ScopeError):
        again.describe("s")
