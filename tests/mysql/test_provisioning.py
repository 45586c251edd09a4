"""Connecting, provisioning and deprovisioning a MariaDB database."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import peersync
from peersync import InvalidURL, StorageError, TableError, TransportError

from .conftest import SERVER, raw, sql


def _objects(url: str) -> tuple[set[str], set[str]]:
    conn = raw(url)
    cur = conn.cursor()
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
    tables = {r[0] for r in cur.fetchall()}
    cur.execute("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()")
    triggers = {r[0] for r in cur.fetchall()}
    conn.close()
    return tables, triggers


def test_bad_urls_are_refused_in_one_line(mysql_db: Callable[[], str]) -> None:
    with pytest.raises(InvalidURL, match="name one database"):
        peersync.connect("mysql://root@127.0.0.1:3306/")
    with pytest.raises(InvalidURL, match="no such database"):
        peersync.connect(SERVER + "/ps_no_such_database_here")
    with pytest.raises(TransportError, match="cannot reach"):
        peersync.connect("mariadb://root@127.0.0.1:1/x")


@pytest.mark.parametrize(
    "url", ["mysql://root:s3cret@127.0.0.1:99999/x", "mysql://root:s3cret@h/", "mysql://root:s3/cret@h/db?x=1"]
)
def test_a_bad_url_never_shows_its_password(url: str) -> None:
    with pytest.raises(InvalidURL) as exc:
        peersync.connect(url)
    assert "s3" not in str(exc.value) and "root:***@" in str(exc.value)


def test_provision_tracks_existing_rows_and_deprovision_removes_everything(mysql_db: Callable[[], str]) -> None:
    url = mysql_db()
    sql(url, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))", "INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    before = _objects(url)
    with peersync.connect(url) as db:
        assert db.provision("s", ["items"]) is True
        assert db.provision("s", ["items"]) is False
        (st,) = db.status("s")
        assert st.tracked_rows == 2 and st.tick == 2
        assert db.scopes() == ["s"]
        db.deprovision("s")
        assert db.scopes() == []
    assert _objects(url) == before
    assert sql(url, "SELECT 1") is None


def test_failed_provisioning_leaves_nothing_behind(mysql_db: Callable[[], str]) -> None:
    url = mysql_db()
    # The second table fails after the first one's tracking table, triggers
    # and log entries were created (and committed: DDL commits on MariaDB).
    sql(
        url,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO items VALUES (1, 'a')",
        "CREATE TABLE shapes (id INT PRIMARY KEY, g POINT)",
    )
    before = _objects(url)
    with peersync.connect(url) as db, pytest.raises(TableError, match="cannot sync"):
        db.provision("s", ["items", "shapes"])
    assert _objects(url) == before
    # Provisioning again (without the bad table) works from a clean slate.
    with peersync.connect(url) as db:
        assert db.provision("s", ["items"]) is True


def test_failure_during_backfill_drops_created_objects(mysql_db: Callable[[], str]) -> None:
    url = mysql_db()
    sql(url, "CREATE TABLE a (id INT PRIMARY KEY)", "CREATE TABLE b (id INT PRIMARY KEY)", "INSERT INTO b VALUES (1)")
    before = _objects(url)
    db = peersync.connect(url)
    from peersync._adapters.mysql import peer as P

    real = P.MySQLPeer._track
    calls = []

    def failing(self: P.MySQLPeer, t: P.Tracked, created: list[str]) -> None:
        calls.append(t.name)
        real(self, t, created)
        if len(calls) == 2:
            raise StorageError("injected failure after the second table")

    P.MySQLPeer._track = failing  # type: ignore[method-assign]
    try:
        with pytest.raises(StorageError, match="injected"):
            db.provision("s", ["a", "b"])
    finally:
        P.MySQLPeer._track = real  # type: ignore[method-assign]
    assert calls == ["a", "b"]
    assert _objects(url) == before
    db.close()


def test_keyless_table_is_refused(mysql_db: Callable[[], str]) -> None:
    url = mysql_db()
    sql(url, "CREATE TABLE nokey (x INT)")
    with peersync.connect(url) as db, pytest.raises(TableError, match="primary key"):
        db.provision("s", ["nokey"])
