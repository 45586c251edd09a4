"""Provisioning a PostgreSQL database: one transaction, idempotent, other schemas, deprovision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import peersync

from .helpers import ITEM_PG


def _peersync_objects(sql: Callable[..., list[tuple[Any, ...]]], url: str) -> list[tuple[Any, ...]]:
    tables = sql(url, "SELECT relname FROM pg_class WHERE relname LIKE '\\_peersync%%' ORDER BY 1")
    triggers = sql(url, "SELECT tgname FROM pg_trigger WHERE tgname LIKE '\\_peersync%%'")
    schema = sql(url, "SELECT nspname FROM pg_namespace WHERE nspname = '_peersync'")
    return tables + triggers + schema


def test_provision_tracks_existing_rows_and_is_idempotent(make_pg: Callable[..., str], sql: Any) -> None:
    url = make_pg(
        ITEM_PG
        + "; CREATE TABLE other (id int PRIMARY KEY); INSERT INTO item VALUES (1, 'a', 1, 1.0), (2, 'b', 2, 2.0)"
    )
    with peersync.connect(url) as db:
        assert db.provision("s", ["item"]) is True
        assert db.provision("s", ["item"]) is False
        (st,) = db.status("s")
        assert (st.tracked_rows, st.tombstones) == (2, 0)
        assert st.tick >= 2
        with pytest.raises(peersync.ScopeError):
            db.provision("s", ["item", "other"])


def test_failed_provisioning_leaves_nothing_behind(make_pg: Callable[..., str], sql: Any) -> None:
    url = make_pg(ITEM_PG + "; CREATE TABLE nokey (a int)")
    with peersync.connect(url) as db:
        with pytest.raises(peersync.TableError):
            db.provision("s", ["item", "nokey"])
        with pytest.raises(peersync.TableError):
            db.provision("s", ["item", "missing"])
    assert _peersync_objects(sql, url) == []


def test_deprovision_removes_tracking_and_keeps_data(make_pg: Callable[..., str], sql: Any) -> None:
    url = make_pg(ITEM_PG + "; INSERT INTO item VALUES (1, 'a', 1, 1.0)")
    with peersync.connect(url) as db:
        db.provision("s", ["item"])
        db.provision("t", ["item"])
        db.deprovision("s")
        # Still tracked for scope t.
        assert sql(url, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '\\_peersync%%'") == [(4,)]
        db.deprovision("t")
        assert db.scopes() == []
        with pytest.raises(peersync.ScopeError):
            db.deprovision("t")
    assert sql(url, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '\\_peersync%%'") == [(0,)]
    assert sql(url, "SELECT * FROM item") == [(1, "a", 1, 1.0)]


def test_table_in_another_schema(make_pg: Callable[..., str], sql: Any) -> None:
    url = make_pg("CREATE SCHEMA sales; CREATE TABLE sales.orders (id int PRIMARY KEY, total numeric(10, 2))")
    with peersync.connect(url) as db:
        db.provision("s", ["sales.orders"])
        assert list(db.schemas("s")) == ["orders"]
    sql(url, "INSERT INTO sales.orders VALUES (1, 9.50)")
    with peersync.connect(url) as db:
        (st,) = db.status("s")
        assert st.tracked_rows == 1


def test_unknown_scope_and_unsupported_type(make_pg: Callable[..., str]) -> None:
    url = make_pg("CREATE TABLE g (id int PRIMARY KEY, p point)")
    with peersync.connect(url) as db:
        with pytest.raises(peersync.ScopeError):
            db.describe("nope")
        with pytest.raises(peersync.TableError, match="point"):
            db.provision("s", ["g"])


def test_dropped_trigger_needs_repair(make_pg: Callable[..., str], sql: Any) -> None:
    url = make_pg(ITEM_PG)
    with peersync.connect(url) as db:
        db.provision("s", ["item"])
    sql(url, "DROP TRIGGER _peersync_upd ON item")
    with peersync.connect(url) as db, pytest.raises(peersync.RepairNeeded):
        db.describe("s")


@pytest.mark.parametrize("how", ["ENABLE TRIGGER", "ENABLE REPLICA TRIGGER", "DISABLE TRIGGER"])
def test_trigger_not_firing_in_every_role_needs_repair(make_pg: Callable[..., str], sql: Any, how: str) -> None:
    # A trigger that fires only in origin (or only in replica) role misses
    # some writers: tracking cannot be trusted.
    url = make_pg(ITEM_PG)
    with peersync.connect(url) as db:
        db.provision("s", ["item"])
        db.describe("s")
    sql(url, f"ALTER TABLE item {how} _peersync_ins")
    with peersync.connect(url) as db:
        with pytest.raises(peersync.RepairNeeded, match="ENABLE ALWAYS"):
            db.describe("s")
        db.repair("s")  # recreates the trigger, ENABLE ALWAYS
        assert db.describe("s").tick >= 0
