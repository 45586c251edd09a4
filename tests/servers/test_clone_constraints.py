"""A SQLite clone of a PostgreSQL or MariaDB scope enforces what its source
enforces, in the scope's global names: UNIQUE columns and column sets,
plain indexes, foreign keys between the scope's tables with their actions,
and literal defaults. A foreign key to a table outside the scope, a
function default and a foreign key SQLite could not enforce are left out
without error; the clone's fingerprint stays the source's."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import peersync

from .conftest import rows, run, sync

PG = [
    "CREATE TABLE account (id integer PRIMARY KEY)",
    "CREATE TABLE customer (id integer PRIMARY KEY, email varchar(80) NOT NULL UNIQUE,"
    " region varchar(20) NOT NULL DEFAULT 'north', country varchar(2), code integer,"
    " vip boolean DEFAULT false, score numeric(6, 2) DEFAULT 1.50, note varchar(20) DEFAULT 'it''s',"
    " joined timestamp DEFAULT now(), account integer REFERENCES account (id), UNIQUE (country, code))",
    "CREATE INDEX customer_region ON customer (region)",
    "CREATE INDEX customer_account ON customer (account)",
    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL"
    " REFERENCES customer (id) ON DELETE CASCADE, qty integer NOT NULL DEFAULT 1)",
    "CREATE INDEX orders_customer ON orders (customer_id)",
]
MYSQL = [
    "CREATE TABLE account (id int PRIMARY KEY) ENGINE=InnoDB",
    "CREATE TABLE customer (id int PRIMARY KEY, email varchar(80) NOT NULL UNIQUE,"
    " region varchar(20) NOT NULL DEFAULT 'north', country varchar(2), code int,"
    " vip boolean DEFAULT false, score decimal(6, 2) DEFAULT 1.50, note varchar(20) DEFAULT 'it''s',"
    " joined datetime DEFAULT current_timestamp(), account int, UNIQUE KEY customer_cc (country, code),"
    " KEY customer_region (region), KEY customer_account (account),"
    " CONSTRAINT customer_acc FOREIGN KEY (account) REFERENCES account (id)) ENGINE=InnoDB",
    "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, qty int NOT NULL DEFAULT 1,"
    " KEY orders_customer (customer_id),"
    " CONSTRAINT orders_cust FOREIGN KEY (customer_id) REFERENCES customer (id) ON DELETE CASCADE) ENGINE=InnoDB",
]
ROWS = [
    "INSERT INTO account VALUES (1)",
    "INSERT INTO customer (id, email, country, code, account) VALUES (1, 'a@x', 'fr', 7, 1), (2, 'b@x', 'de', 7, NULL)",
    "INSERT INTO orders (id, customer_id) VALUES (10, 1), (11, 1), (20, 2)",
]


def _source(server: Callable[..., str]) -> str:
    url = server(pg=PG + ROWS, mysql=MYSQL + ROWS)
    with peersync.connect(url) as db:
        db.provision("s", ["customer", "orders"])
    return url


def _lite(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:
            return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _indexes(path: Path, table: str) -> set[tuple[bool, tuple[str, ...]]]:
    """``(unique, columns)`` of each index of ``table`` but its key's."""
    out = set()
    for _, name, unique, origin, _ in _lite(path, f"PRAGMA index_list({table})"):
        if origin != "pk":
            cols = tuple(r[2] for r in _lite(path, f"PRAGMA index_info({name})"))
            out.add((bool(unique), cols))
    return out


def _foreign_keys(path: Path, table: str) -> list[tuple[str, str, str, str, str]]:
    """``(parent, column, parent column, on update, on delete)`` per column of each foreign key."""
    return [(r[2], r[3], r[4], r[5], r[6]) for r in _lite(path, f"PRAGMA foreign_key_list({table})")]


def _quiet(a: str | Path, b: str | Path) -> None:
    r = sync(str(a), str(b))
    assert (r.sent_a_to_b, r.sent_b_to_a, r.errors) == (0, 0, 0), r


def test_a_clone_carries_unique_constraints_indexes_foreign_keys_and_literal_defaults(
    server: Callable[..., str], tmp_path: Path
) -> None:
    url = _source(server)
    clone = tmp_path / "clone.db"
    peersync.clone(url, str(clone), "s")
    assert _indexes(clone, "customer") == {
        (True, ("email",)),
        (True, ("country", "code")),
        (False, ("region",)),
        (False, ("account",)),
    }
    assert _indexes(clone, "orders") == {(False, ("customer_id",))}
    # the key to account, outside the scope, is not carried
    assert _foreign_keys(clone, "customer") == []
    assert _foreign_keys(clone, "orders") == [("customer", "customer_id", "id", "NO ACTION", "CASCADE")]
    defaults = {r[1]: r[4] for r in _lite(clone, "PRAGMA table_info(customer)")}
    assert defaults == {
        "id": None, "email": None, "region": "'north'", "country": None, "code": None, "vip": "0",
        "score": "'1.50'", "note": "'it''s'", "joined": None, "account": None,
    }  # fmt: skip
    assert {r[1]: r[4] for r in _lite(clone, "PRAGMA table_info(orders)")}["qty"] == "1"
    # the fingerprint leaves constraints out: the first session sends nothing, status works
    _quiet(clone, url)
    with peersync.connect(str(clone)) as db:
        assert db.status("s")[0].tables == ("customer", "orders")


def test_a_clone_refuses_duplicates_its_source_refuses_and_fills_defaults(
    server: Callable[..., str], tmp_path: Path
) -> None:
    url = _source(server)
    clone = tmp_path / "clone.db"
    peersync.clone(url, str(clone), "s")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        _lite(clone, "INSERT INTO customer (id, email) VALUES (3, 'a@x')")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        _lite(clone, "INSERT INTO customer (id, email, country, code) VALUES (3, 'c@x', 'fr', 7)")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        _lite(clone, "INSERT INTO orders (id, customer_id) VALUES (30, 99)")
    _lite(clone, "INSERT INTO customer (id, email, country, code) VALUES (3, 'c@x', 'it', 7)")
    _lite(clone, "INSERT INTO orders (id, customer_id) VALUES (30, 3)")
    assert _lite(clone, "SELECT region, vip, score, note, joined FROM customer WHERE id = 3") == [
        ("north", 0, 1.5, "it's", None)
    ]
    assert _lite(clone, "SELECT qty FROM orders WHERE id = 30") == [(1,)]
    r = sync(str(clone), url)
    assert (r.sent_a_to_b, r.errors) == (2, 0), r
    assert rows(url, "orders")[-1] == (30, 3, 1)


def test_a_parent_deleted_on_the_clone_takes_its_children_and_the_server_converges(
    server: Callable[..., str], tmp_path: Path
) -> None:
    url = _source(server)
    clone = tmp_path / "clone.db"
    peersync.clone(url, str(clone), "s")
    _lite(clone, "DELETE FROM customer WHERE id = 1")
    assert _lite(clone, "SELECT id FROM orders ORDER BY id") == [(20,)]
    r = sync(str(clone), url)
    assert (r.sent_a_to_b, r.errors, r.conflicts) == (3, 0, 0), r
    assert [c[0] for c in rows(url, "customer")] == [2]
    assert rows(url, "orders") == [(20, 2, 1)]
    _quiet(clone, url)


def test_a_foreign_key_sqlite_cannot_enforce_is_left_out(mysql_db: Callable[[], str], tmp_path: Path) -> None:
    """InnoDB lets a foreign key reference a column that is not unique;
    SQLite refuses every write to the tables of such a key ("foreign key
    mismatch"), so the clone leaves it out and stays writable."""
    url = mysql_db()
    run(
        url,
        "CREATE TABLE team (id int PRIMARY KEY, tag int NOT NULL, KEY team_tag (tag)) ENGINE=InnoDB",
        "CREATE TABLE player (id int PRIMARY KEY, tag int, KEY player_tag (tag),"
        " CONSTRAINT player_team FOREIGN KEY (tag) REFERENCES team (tag)) ENGINE=InnoDB",
        "INSERT INTO team VALUES (1, 5), (2, 5)",
        "INSERT INTO player VALUES (1, 5)",
    )
    with peersync.connect(url) as db:
        db.provision("s", ["team", "player"])
    clone = tmp_path / "clone.db"
    peersync.clone(url, str(clone), "s")
    assert _foreign_keys(clone, "player") == []
    assert _indexes(clone, "player") == {(False, ("tag",))}
    _lite(clone, "INSERT INTO team VALUES (3, 6)")
    _lite(clone, "INSERT INTO player VALUES (2, 6)")
    r = sync(str(clone), url)
    assert (r.sent_a_to_b, r.errors) == (2, 0), r


NAMED = """
CREATE SCHEMA sales;
CREATE TABLE sales.customer_list (customer_id integer PRIMARY KEY, full_name text NOT NULL,
    email_address text UNIQUE, tier text NOT NULL DEFAULT 'basic');
CREATE INDEX customer_list_name ON sales.customer_list (full_name);
CREATE TABLE sales.orders (order_id integer PRIMARY KEY, customer_id integer NOT NULL
    REFERENCES sales.customer_list (customer_id) ON DELETE CASCADE ON UPDATE CASCADE, total numeric(10, 2));
INSERT INTO sales.customer_list VALUES (1, 'Ann', 'ann@x', 'gold'), (2, 'Bo', NULL, 'basic');
INSERT INTO sales.orders VALUES (10, 1, 9.99), (20, 2, 1.50);
"""
NAMES = {
    "Customer": {
        "table": "sales.customer_list",
        "columns": {"CustomerId": "customer_id", "Name": "full_name", "Email": "email_address", "Tier": "tier"},
    },
    "Orders": {"table": "sales.orders", "columns": {"OrderId": "order_id", "CustomerId": "customer_id"}},
}


def test_a_clone_of_a_source_with_its_own_names_carries_constraints_in_global_names(
    make_pg: Callable[..., str], tmp_path: Path
) -> None:
    url = make_pg(NAMED)
    with peersync.connect(url) as db:
        db.provision("shop", ["Customer", "Orders"], names=NAMES)
    clone = tmp_path / "clone.db"
    peersync.clone(url, str(clone), "shop")
    assert _indexes(clone, "Customer") == {(True, ("Email",)), (False, ("Name",))}
    assert _foreign_keys(clone, "Orders") == [("Customer", "CustomerId", "CustomerId", "CASCADE", "CASCADE")]
    assert {r[1]: r[4] for r in _lite(clone, "PRAGMA table_info(Customer)")}["Tier"] == "'basic'"
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        _lite(clone, "INSERT INTO Customer (CustomerId, Name, Email) VALUES (3, 'Cy', 'ann@x')")
    _lite(clone, "DELETE FROM Customer WHERE CustomerId = 1")
    assert _lite(clone, "SELECT OrderId FROM Orders") == [(20,)]
    with peersync.connect(str(clone)) as a, peersync.connect(url) as b:
        r = peersync.sync(a, b, "shop")
        assert (r.sent_a_to_b, r.errors) == (2, 0), r
        assert peersync.sync(a, b, "shop").sent_a_to_b == 0
    assert run(url, "SELECT order_id FROM sales.orders") == [(20,)]
    assert run(url, "SELECT customer_id, tier FROM sales.customer_list") == [(2, "basic")]


def test_a_child_whose_parent_changed_above_the_bound_stays_until_its_parent_arrives(
    make_pg: Callable[..., str], tmp_path: Path
) -> None:
    """The clone leaves out a row whose change lies above the snapshot bound
    (it comes in the first session) while keeping its children, whose
    changes lie below: with the foreign keys enforced while the file is
    written, dropping the parent would cascade to children the clone's
    knowledge claims, and they would never come again."""
    import psycopg

    url = make_pg(";".join(PG + ROWS))
    with peersync.connect(url) as db:
        db.provision("s", ["customer", "orders"])
    held = psycopg.connect(url)  # takes a tick and holds the bound below the update's
    held.execute("INSERT INTO customer (id, email) VALUES (5, 'e@x')")
    run(url, "UPDATE customer SET region = 'south' WHERE id = 1")
    clone = tmp_path / "clone.db"
    peersync.clone(url, str(clone), "s")
    assert _lite(clone, "SELECT id FROM customer") == [(2,)]
    assert _lite(clone, "SELECT id FROM orders ORDER BY id") == [(10,), (11,), (20,)]
    held.commit()
    held.close()
    r = sync(str(clone), url)
    assert (r.sent_b_to_a, r.sent_a_to_b, r.errors) == (2, 0, 0), r
    assert _lite(clone, "SELECT id, region FROM customer ORDER BY id") == [(1, "south"), (2, "north"), (5, "north")]
    assert _lite(clone, "SELECT id FROM orders ORDER BY id") == [(10,), (11,), (20,)]
    _quiet(clone, url)


def test_a_clone_over_http_from_a_postgresql_server_carries_the_constraints(
    make_pg: Callable[..., str], tmp_path: Path
) -> None:
    """A served PostgreSQL database writes the same file for the stream."""
    from tests.http.conftest import Server

    url = _source(lambda **ddl: make_pg(";".join(ddl["pg"])))
    served = Server(url).start()  # type: ignore[arg-type]
    try:
        clone = tmp_path / "clone.db"
        peersync.clone(served.url, str(clone), "s")
    finally:
        served.stop()
    assert _foreign_keys(clone, "orders") == [("customer", "customer_id", "id", "NO ACTION", "CASCADE")]
    assert (True, ("email",)) in _indexes(clone, "customer")
    _quiet(clone, url)


def test_a_unique_index_whose_rows_sqlite_compares_equal_is_kept_without_its_uniqueness(
    make_pg: Callable[..., str], tmp_path: Path
) -> None:
    """Two decimals PostgreSQL holds as distinct, equal in SQLite past 15
    digits (NUMERIC affinity): the clone is made, its index not unique."""
    url = make_pg(
        "CREATE TABLE price (id integer PRIMARY KEY, amount numeric UNIQUE);"
        "INSERT INTO price VALUES (1, 1.0000000000000001), (2, 1.0)"
    )
    with peersync.connect(url) as db:
        db.provision("s", ["price"])
    clone = tmp_path / "clone.db"
    peersync.clone(url, str(clone), "s")
    assert _indexes(clone, "price") == {(False, ("amount",))}
    assert [r[0] for r in _lite(clone, "SELECT id FROM price ORDER BY id")] == [1, 2]
    _quiet(clone, url)
