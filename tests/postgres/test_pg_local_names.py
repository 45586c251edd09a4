"""A PostgreSQL database whose names differ from the scope's global ones (a
table in another schema, snake_case columns) syncs with SQLite through its
names; conflicts speak global names; a bad mapping changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import Outcome, Resolution

from .helpers import sqlite_db, sqlite_rows, sqlite_write

PG = """
CREATE SCHEMA sales;
CREATE TABLE sales.customer_list (customer_id integer PRIMARY KEY, full_name text NOT NULL);
CREATE TABLE sales.orders (order_id integer PRIMARY KEY, customer_id integer NOT NULL
    REFERENCES sales.customer_list (customer_id), total numeric(10, 2));
"""
LITE = """
CREATE TABLE Customer (CustomerId INTEGER PRIMARY KEY, Name TEXT NOT NULL);
CREATE TABLE Orders (OrderId INTEGER PRIMARY KEY, CustomerId INTEGER NOT NULL REFERENCES Customer (CustomerId),
    Total NUMERIC(10, 2));
"""
NAMES = {
    "Customer": {"table": "sales.customer_list", "columns": {"CustomerId": "customer_id", "Name": "full_name"}},
    "Orders": {
        "table": "sales.orders",
        "columns": {"OrderId": "order_id", "CustomerId": "customer_id", "Total": "total"},
    },
}
TABLES = ["Customer", "Orders"]


@pytest.fixture
def pair(make_pg: Callable[..., str], tmp_path: Path) -> tuple[str, Path]:
    url = make_pg(PG)
    path = sqlite_db(tmp_path / "a.db", LITE)
    with peersync.connect(url) as p, peersync.connect(path) as s:
        assert p.provision("shop", TABLES, names=NAMES)
        assert s.provision("shop", TABLES)
    return url, path


def _sync(a: str | Path, b: str | Path, **kw: Any) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "shop", **kw)


def test_postgres_with_its_own_names_syncs_with_sqlite(
    pair: tuple[str, Path], sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    url, path = pair
    with peersync.connect(url) as p:
        info = p.describe("shop")
        assert [t.name for t in info.tables] == TABLES
        assert info.tables[1].columns == ("OrderId", "CustomerId", "Total")
        st = p.status("shop")[0]
        assert st.tables == tuple(TABLES) and st.names["Orders"]["columns"]["Total"] == "total"
    sql(url, "INSERT INTO sales.customer_list VALUES (1, 'Ann'), (2, 'Bo')")
    sql(url, "INSERT INTO sales.orders VALUES (10, 1, 9.99)")
    sqlite_write(path, "INSERT INTO Customer VALUES (3, 'Cy')", "INSERT INTO Orders VALUES (30, 3, 1.5)")
    r = _sync(url, path)
    assert (r.sent_a_to_b, r.sent_b_to_a, r.errors) == (3, 2, 0)
    assert sql(url, "SELECT order_id, customer_id, total::text FROM sales.orders ORDER BY 1") == [
        (10, 1, "9.99"),
        (30, 3, "1.50"),
    ]
    assert sqlite_rows(path, "Customer") == [(1, "Ann"), (2, "Bo"), (3, "Cy")]
    # a parent deleted with its child on PostgreSQL, an update on SQLite
    sql(url, "DELETE FROM sales.orders WHERE order_id = 10")
    sql(url, "DELETE FROM sales.customer_list WHERE customer_id = 1")
    sqlite_write(path, "UPDATE Customer SET Name = 'Bob' WHERE CustomerId = 2")
    _sync(url, path)
    assert sql(url, "SELECT * FROM sales.customer_list ORDER BY 1") == [(2, "Bob"), (3, "Cy")]
    assert sqlite_rows(path, "Customer") == [(2, "Bob"), (3, "Cy")]
    assert [r[0] for r in sqlite_rows(path, "Orders")] == [30]
    assert _sync(url, path).sent_a_to_b == 0


def test_conflicts_on_postgres_speak_global_names(
    pair: tuple[str, Path], sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    url, path = pair
    sql(url, "INSERT INTO sales.customer_list VALUES (1, 'x')")
    _sync(url, path)
    sql(url, "UPDATE sales.customer_list SET full_name = 'postgres' WHERE customer_id = 1")
    sqlite_write(path, "UPDATE Customer SET Name = 'sqlite' WHERE CustomerId = 1")
    seen: list[peersync.Conflict] = []

    def merge(c: peersync.Conflict) -> Resolution:
        seen.append(c)
        return Resolution(Outcome.MERGE, {"CustomerId": 1, "Name": "both"})

    _sync(path, url, direction="push", policy=merge)
    assert seen[0].table == "Customer" and seen[0].local_row == {"CustomerId": 1, "Name": "postgres"}
    assert sql(url, "SELECT * FROM sales.customer_list") == [(1, "both")]
    # an order whose total PostgreSQL's numeric(10, 2) cannot keep: an error conflict in global names
    sqlite_write(path, "INSERT INTO Orders VALUES (5, 1, 1.234)")
    assert _sync(path, url, direction="push").errors == 1
    with peersync.connect(url) as p:
        logged = p.conflicts("shop")
    assert {c.table for c in logged} == {"Customer", "Orders"}
    err = [c for c in logged if c.type is peersync.ConflictType.ERROR]
    assert (
        len(err) == 1 and err[0].remote_row is not None and set(err[0].remote_row) == {"OrderId", "CustomerId", "Total"}
    )
    assert "(table orders here)" in err[0].detail


def test_bad_names_on_postgres_change_nothing(
    make_pg: Callable[..., str], sql: Callable[..., list[tuple[Any, ...]]]
) -> None:
    url = make_pg(PG)
    bad = {**NAMES, "Orders": {"table": "sales.orders", "columns": {"Total": "amount"}}}
    with peersync.connect(url) as p:
        with pytest.raises(peersync.TableError, match="amount"):
            p.provision("shop", TABLES, names=bad)
        with pytest.raises(peersync.TableError):
            p.provision("shop", TABLES, names={**NAMES, "Orders": {"table": "public.orders"}})
        assert p.scopes() == []
    assert sql(url, "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal") == [(0,)]
    assert sql(url, "SELECT to_regclass('_peersync._peersync_names')") == [(None,)]  # one transaction: nothing left


def test_migrate_on_postgres_keeps_the_names(pair: tuple[str, Path], sql: Callable[..., list[tuple[Any, ...]]]) -> None:
    url, path = pair
    sql(url, "ALTER TABLE sales.orders ADD COLUMN note text")
    sqlite_write(path, "ALTER TABLE Orders ADD COLUMN note TEXT")
    with peersync.connect(url) as p, peersync.connect(path) as s:
        assert p.migrate("shop", TABLES).migrated
        assert s.migrate("shop").migrated
        assert p.describe("shop").fingerprint == s.describe("shop").fingerprint
        assert p.describe("shop").tables[1].columns == ("OrderId", "CustomerId", "Total", "note")
    sql(url, "INSERT INTO sales.customer_list VALUES (1, 'Ann')")
    sql(url, "INSERT INTO sales.orders VALUES (1, 1, 2.5, 'hi')")
    assert _sync(url, path).sent_a_to_b == 2
    assert sqlite_rows(path, "Orders") == [(1, 1, 2.5, "hi")]
