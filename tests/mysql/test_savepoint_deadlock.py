"""A deadlock inside a savepoint: MariaDB rolls the whole transaction back,
the savepoint with it, so rolling back to the savepoint fails ("SAVEPOINT
does not exist"). The error that reaches the caller must still be the
deadlock (retryable: ``DatabaseLocked``), not that second failure."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pymysql
import pytest

import peersync
from peersync._adapters.mysql.conn import ER_LOCK_DEADLOCK, Conn, errno, parse_url

from .conftest import raw, sql


def test_a_deadlock_in_a_savepoint_reaches_the_caller_as_a_deadlock(mysql_db: Callable[[], str]) -> None:
    url = mysql_db()
    sql(url, "CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB", "INSERT INTO t VALUES (1, 0), (2, 0)")
    conn = Conn(parse_url(url), timeout=20)
    other = raw(url, autocommit=False)
    both_hold = threading.Barrier(2, timeout=20)

    def cross() -> None:  # locks row 2, then wants row 1
        cur = other.cursor()
        # The heavier transaction: InnoDB rolls back the lighter one, ours.
        cur.executemany("INSERT INTO t VALUES (%s, 0)", [(i,) for i in range(10, 210)])
        cur.execute("UPDATE t SET v = 2 WHERE id = 2")
        both_hold.wait()
        try:
            cur.execute("UPDATE t SET v = 2 WHERE id = 1")
            other.commit()
        except pymysql.err.OperationalError:
            other.rollback()

    worker = threading.Thread(target=cross)
    worker.start()
    try:
        with pytest.raises(peersync.DatabaseLocked) as raised, conn.txn():
            conn.execute("UPDATE t SET v = 1 WHERE id = 1")
            with conn.savepoint():
                both_hold.wait()
                conn.execute("UPDATE t SET v = 1 WHERE id = 2")  # each waits for the other
                raise AssertionError("not chosen as the deadlock victim")  # pragma: no cover
        assert errno(raised.value.__cause__) == ER_LOCK_DEADLOCK, raised.value.__cause__
    finally:
        worker.join(timeout=20)
        other.close()
        conn.close()
