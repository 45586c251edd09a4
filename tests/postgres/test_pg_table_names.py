"""How a PostgreSQL table is named to ``provision`` and ``--table``: as written first
(``Order Items``, ``OrderItems``: an exact-case match), then as SQL parses it
(``orders``, ``sales.orders``, quoted parts); a name that matches neither is a
:class:`~peersync.TableError` that names the table and how to give it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import peersync


@pytest.mark.parametrize("name", ["Order Items", "OrderItems"])
def test_a_table_named_as_written_is_provisioned(make_pg: Callable[..., str], name: str) -> None:
    url = make_pg(f'CREATE TABLE "{name}" (id text PRIMARY KEY, qty int)')
    with peersync.connect(url) as db:
        assert db.provision("s", [name]) is True
        assert db.scopes() == ["s"]


def test_sql_names_still_resolve(make_pg: Callable[..., str]) -> None:
    url = make_pg(
        "CREATE SCHEMA sales; CREATE TABLE sales.orders (id int PRIMARY KEY);"
        ' CREATE TABLE "Mixed" (id int PRIMARY KEY); CREATE TABLE lower_case (id int PRIMARY KEY)'
    )
    with peersync.connect(url) as db:
        assert db.provision("s", ["sales.orders", '"Mixed"', "LOWER_CASE"]) is True


@pytest.mark.parametrize("name", ["Order Items", "a.b.c.d", "x.y.z", '"unterminated'])
def test_a_missing_table_is_a_table_error_naming_it_and_the_fix(make_pg: Callable[..., str], name: str) -> None:
    url = make_pg("CREATE TABLE item (id int PRIMARY KEY)")
    with peersync.connect(url) as db:
        with pytest.raises(peersync.TableError) as exc:
            db.provision("s", [name])
        assert name in str(exc.value) and "schema-qualified" in str(exc.value)
        assert db.scopes() == []
