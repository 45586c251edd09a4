"""A clone of a PostgreSQL replica holds the values a session into SQLite
would store, storage class included, for every type of the vocabulary;
and a replica with local names is cloned in the scope's global names."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

import peersync

from .helpers import sqlite_db, sqlite_rows, sync
from .test_pg_local_names import LITE, NAMES, PG, TABLES
from .test_pg_types import COLS, ROWS, _pg, _same, _sqlite


def test_a_clone_holds_every_type_as_a_session_into_sqlite_stores_it(
    make_pg: Callable[..., str], tmp_path: Path
) -> None:
    a = _sqlite(tmp_path / "a.db")
    url = _pg(make_pg)
    conn = sqlite3.connect(a)
    with conn:
        conn.executemany(f"INSERT INTO v ({COLS}) VALUES ({', '.join('?' * 21)})", ROWS)
    conn.close()
    sync(a, url)
    c = tmp_path / "c.db"
    peersync.clone(url, c, "s")
    e = _sqlite(tmp_path / "e.db")
    sync(url, e)  # a new replica filled by a session, for comparison
    _same(sqlite_rows(c, "v"), sqlite_rows(e, "v"))
    first = sync(c, url)
    assert (first.sent_a_to_b, first.sent_b_to_a, first.conflicts) == (0, 0, 0)
    assert sync(c, a).sent_a_to_b == 0


def test_a_replica_with_local_names_is_cloned_in_global_names(
    make_pg: Callable[..., str], sql: Callable[..., list[tuple[Any, ...]]], tmp_path: Path
) -> None:
    url = make_pg(PG)
    with peersync.connect(url) as p:
        assert p.provision("shop", TABLES, names=NAMES)
    sql(url, "INSERT INTO sales.customer_list VALUES (1, 'Ann'), (2, 'Bob')")
    sql(url, "INSERT INTO sales.orders VALUES (10, 1, 12.50)")
    c = tmp_path / "c.db"
    st = peersync.clone(url, c, "shop")
    assert st.tables == tuple(TABLES) and st.names == {}
    assert sqlite_rows(c, "Customer") == [(1, "Ann"), (2, "Bob")]
    conn = sqlite3.connect(c)
    assert [r[1] for r in conn.execute("SELECT * FROM pragma_table_info('Orders')")] == [
        "OrderId",
        "CustomerId",
        "Total",
    ]
    conn.close()
    # The same shape as a SQLite replica made with those names by hand.
    lite = sqlite_db(tmp_path / "lite.db", LITE)
    with peersync.connect(lite) as s, peersync.connect(c) as cl:
        s.provision("shop", TABLES)
        assert s.describe("shop").fingerprint == cl.describe("shop").fingerprint
    with peersync.connect(c) as cl, peersync.connect(url) as p:
        assert peersync.sync(cl, p, "shop").sent_a_to_b == 0
    conn = sqlite3.connect(c)
    with conn:
        conn.execute("INSERT INTO Customer VALUES (3, 'Cy')")
    conn.close()
    with peersync.connect(c) as cl, peersync.connect(url) as p:
        r = peersync.sync(cl, p, "shop")
    assert (r.sent_a_to_b, r.sent_b_to_a) == (1, 0)
    with psycopg.connect(url) as pc:
        assert pc.execute("SELECT full_name FROM sales.customer_list WHERE customer_id = 3").fetchone() == ("Cy",)
