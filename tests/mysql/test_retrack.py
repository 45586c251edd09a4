"""``migrate`` and ``repair`` on MariaDB where its triggers' SQL could be
confused: tables named like the short aliases the triggers use. The promises
of ``migrate``, ``repair`` and ``reidentify`` on every server database are in
tests/servers/test_retrack.py."""

from __future__ import annotations

from collections.abc import Callable

import peersync

from .conftest import sql


def test_tables_named_like_short_aliases_migrate_and_repair(mysql_db: Callable[[], str]) -> None:
    url = mysql_db()
    sql(url, "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE u (id INT PRIMARY KEY, t INT REFERENCES t (id)"
        " ON DELETE CASCADE)", "INSERT INTO t VALUES (1)", "INSERT INTO u VALUES (1, 1)")  # fmt: skip
    with peersync.connect(url) as db:
        db.provision("s", ["t", "u"])
        sql(url, "ALTER TABLE u ADD COLUMN x INT")
        assert db.migrate("s").migrated
        assert db.repair("s", restamp=True).restamped == 2
        sql(url, "DELETE FROM t")
        (st,) = db.status("s")
        assert st.tombstones == 2
