"""Conflicts with a PostgreSQL destination (and source): every type, each
policy, callbacks (merge, defer), constraint errors; then convergence with
SQLite peers, row by row.

PostgreSQL writes take the real clock; the SQLite writer's clock is set
(``at``) a day before or after, so last-writer-wins outcomes are fixed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import ConflictType, Outcome, Policy, Resolution

from ..helpers import at, write
from .helpers import pg_rows, sqlite_rows

SCOPE = "s"
TABLES = ["item", "note"]
SQLITE_SCHEMA = """
CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);
CREATE TABLE note (owner TEXT NOT NULL, slug TEXT NOT NULL, body TEXT, PRIMARY KEY (owner, slug));
"""
PG_SCHEMA = """
CREATE TABLE item (id integer PRIMARY KEY, name text, qty integer CHECK (qty IS NULL OR qty >= 0));
CREATE TABLE note (owner text NOT NULL, slug text NOT NULL, body text, PRIMARY KEY (owner, slug));
"""
PAST = (int(time.time()) - 86_400) * 1000 + 500
FUTURE = (int(time.time()) + 86_400) * 1000 + 500


@pytest.fixture
def trio(make_db: Callable[..., Path], make_pg: Callable[..., str]) -> Iterator[list[peersync.Database]]:
    """SQLite a, PostgreSQL b, SQLite c, each provisioned with scope s."""
    dbs = [
        peersync.connect(make_db("a", SQLITE_SCHEMA)),
        peersync.connect(make_pg(PG_SCHEMA)),
        peersync.connect(make_db("c", SQLITE_SCHEMA)),
    ]
    for db in dbs:
        db.provision(SCOPE, TABLES)
    yield dbs
    for db in dbs:
        db.close()


def state(db: peersync.Database) -> dict[str, list[tuple[Any, ...]]]:
    if db.url.startswith("postgresql"):
        return {t: pg_rows(db.url, t) for t in TABLES}
    return {t: sqlite_rows(Path(db.url[len("sqlite:///") :]), t) for t in TABLES}


def settle(dbs: Sequence[peersync.Database], policy: Any = Policy.LAST_WRITER_WINS) -> None:
    for _ in range(5):
        moved = 0
        for i, a in enumerate(dbs):
            for b in dbs[i + 1 :]:
                res = peersync.sync(a, b, SCOPE, policy=policy, batch_size=50)
                assert res.error is None
                moved += res.sent_a_to_b + res.sent_b_to_a
        if moved == 0:
            return
    raise AssertionError("five rounds still moved changes")


def converged(dbs: Sequence[peersync.Database]) -> dict[str, list[tuple[Any, ...]]]:
    first = state(dbs[0])
    for db in dbs[1:]:
        assert state(db) == first, f"{db.url} differs from {dbs[0].url}"
    return first


def pg(db: peersync.Database, *statements: str) -> None:
    import psycopg

    with psycopg.connect(db.url) as conn:
        for st in statements:
            conn.execute(st)


def path(db: peersync.Database) -> str:
    return db.url[len("sqlite:///") :]


def test_every_conflict_type_on_a_postgres_destination(trio: list[peersync.Database]) -> None:
    a, b, _ = trio
    write(path(a), "INSERT INTO item VALUES (1, 'uu', 0), (2, 'ud', 0), (3, 'du', 0), (5, 'dd', 0)")
    settle(trio)
    at(path(a), PAST, "UPDATE item SET qty = 1 WHERE id = 2", "INSERT INTO item VALUES (4, 'ii-a', 1)")
    pg(b, "UPDATE item SET qty = 2 WHERE id IN (1, 2)", "DELETE FROM item WHERE id IN (3, 5)",
       "INSERT INTO item VALUES (4, 'ii-b', 2)")  # fmt: skip
    at(path(a), FUTURE, "UPDATE item SET qty = 3 WHERE id IN (1, 3)", "DELETE FROM item WHERE id IN (2, 5)")
    res = peersync.run_session(a, b, SCOPE)
    assert res.conflicts == 5
    log = {x.key[0]: x for x in b.conflicts(SCOPE)}
    assert {k: (v.type, v.outcome) for k, v in log.items()} == {
        1: (ConflictType.UPDATE_UPDATE, Outcome.SOURCE),
        2: (ConflictType.UPDATE_DELETE, Outcome.SOURCE),
        3: (ConflictType.DELETE_UPDATE, Outcome.SOURCE),
        4: (ConflictType.INSERT_INSERT, Outcome.DESTINATION),
        5: (ConflictType.DELETE_DELETE, Outcome.SOURCE),
    }
    assert log[1].local_row == {"id": 1, "name": "uu", "qty": 2}
    assert log[1].remote_row == {"id": 1, "name": "uu", "qty": 3}
    assert log[4].local_row == {"id": 4, "name": "ii-b", "qty": 2}
    b_rid = b.describe(SCOPE).replica_id
    assert all(v.local_version is not None and v.local_version[0] == b_rid for v in log.values())
    settle(trio)
    assert converged(trio)["item"] == [(1, "uu", 3), (3, "du", 3), (4, "ii-b", 2)]


def test_every_conflict_type_from_a_postgres_source(trio: list[peersync.Database]) -> None:
    a, b, _ = trio
    pg(b, "INSERT INTO item VALUES (1, 'uu', 0), (2, 'ud', 0), (3, 'du', 0)")
    settle(trio)
    at(path(a), PAST, "UPDATE item SET qty = 9 WHERE id IN (1, 2)", "DELETE FROM item WHERE id = 3")
    pg(b, "UPDATE item SET qty = 5 WHERE id IN (1, 3)", "DELETE FROM item WHERE id = 2")
    res = peersync.run_session(b, a, SCOPE)  # PostgreSQL -> SQLite; b wrote later everywhere
    assert res.conflicts == 3
    log = {x.key[0]: (x.type, x.outcome) for x in a.conflicts(SCOPE)}
    assert log == {
        1: (ConflictType.UPDATE_UPDATE, Outcome.SOURCE),
        2: (ConflictType.UPDATE_DELETE, Outcome.SOURCE),
        3: (ConflictType.DELETE_UPDATE, Outcome.SOURCE),
    }
    settle(trio)
    assert converged(trio)["item"] == [(1, "uu", 5), (3, "du", 5)]


@pytest.mark.parametrize(
    ("policy", "winner"),
    [
        (Policy.LAST_WRITER_WINS, "from b"),
        (Policy.SOURCE_WINS, "from a"),
        (Policy.DESTINATION_WINS, "from b"),
        (lambda c: Outcome.SOURCE, "from a"),
        (lambda c: Resolution(Outcome.DESTINATION), "from b"),
    ],
    ids=["lww", "source-wins", "destination-wins", "callback-source", "callback-destination"],
)
def test_policy_decides_on_postgres_and_every_replica_follows(
    trio: list[peersync.Database], policy: Any, winner: str
) -> None:
    a, b, _ = trio
    write(path(a), "INSERT INTO item VALUES (1, 'x', 10)")
    settle(trio)
    at(path(a), PAST, "UPDATE item SET name = 'from a', qty = 11 WHERE id = 1")
    pg(b, "UPDATE item SET name = 'from b', qty = 12 WHERE id = 1")
    res = peersync.run_session(a, b, SCOPE, policy=policy)
    assert res.conflicts == 1
    assert state(b)["item"][0][1] == winner
    (logged,) = b.conflicts(SCOPE)
    assert logged.outcome is (Outcome.SOURCE if winner == "from a" else Outcome.DESTINATION)
    settle(trio, policy=policy)
    assert converged(trio)["item"][0][1] == winner


def test_merge_callback_row_reaches_every_replica(trio: list[peersync.Database]) -> None:
    a, b, _ = trio
    write(path(a), "INSERT INTO item VALUES (1, 'x', 10)")
    settle(trio)
    at(path(a), PAST, "UPDATE item SET name = 'a' WHERE id = 1")
    pg(b, "UPDATE item SET qty = 20 WHERE id = 1")

    def merge(conf: peersync.Conflict) -> Resolution:
        assert conf.local_row is not None and conf.remote_row is not None
        return Resolution(Outcome.MERGE, {"name": conf.remote_row["name"], "qty": conf.local_row["qty"]})

    assert peersync.run_session(a, b, SCOPE, policy=merge).conflicts == 1
    assert state(b)["item"] == [(1, "a", 20)]
    settle(trio, policy=merge)
    assert converged(trio)["item"] == [(1, "a", 20)]


def test_defer_leaves_the_row_and_asks_again(trio: list[peersync.Database]) -> None:
    a, b, _ = trio
    write(path(a), "INSERT INTO item VALUES (1, 'x', 10)")
    settle(trio)
    at(path(a), PAST, "UPDATE item SET name = 'a' WHERE id = 1")
    pg(b, "UPDATE item SET name = 'b' WHERE id = 1")
    asked: list[int] = []

    def defer(conf: peersync.Conflict) -> Outcome:
        asked.append(1)
        return Outcome.DEFER

    peersync.run_session(a, b, SCOPE, policy=defer)
    assert state(b)["item"] == [(1, "b", 10)]
    assert b.status(SCOPE)[0].pending == 1
    peersync.run_session(a, b, SCOPE, policy=defer)
    assert len(asked) == 2  # the deferred change came again
    peersync.run_session(a, b, SCOPE, policy=Policy.SOURCE_WINS)
    assert state(b)["item"] == [(1, "a", 10)]
    assert b.status(SCOPE)[0].pending == 0


def test_constraint_error_is_one_row_the_rest_applies(trio: list[peersync.Database]) -> None:
    a, b, _ = trio
    write(path(a), "INSERT INTO item VALUES (1, 'ok', 1), (2, 'bad', -5), (3, 'ok', 3)")
    res = peersync.sync(a, b, SCOPE, direction="push")
    assert res.errors == 1 and res.applied == 2
    assert state(b)["item"] == [(1, "ok", 1), (3, "ok", 3)]
    (err,) = [x for x in b.conflicts(SCOPE) if x.type is ConflictType.ERROR]
    assert err.key == (2,) and "check" in err.detail.lower()
    assert b.status(SCOPE)[0].pending == 1
    # Fixed at the source, the row comes again and applies.
    write(path(a), "UPDATE item SET qty = 2 WHERE id = 2")
    res = peersync.sync(a, b, SCOPE, direction="push")
    assert res.errors == 0
    assert state(b)["item"] == [(1, "ok", 1), (2, "bad", 2), (3, "ok", 3)]
    assert b.status(SCOPE)[0].pending == 0


def test_row_a_user_trigger_changes_on_apply_reaches_every_replica(trio: list[peersync.Database]) -> None:
    a, b, _ = trio
    pg(
        b,
        "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$",
        "CREATE TRIGGER shout BEFORE INSERT OR UPDATE ON item FOR EACH ROW EXECUTE FUNCTION shout()",
    )
    b.close()
    trio[1] = b = peersync.connect(b.url)  # the trigger is seen when the peer opens the scope
    write(path(a), "INSERT INTO item VALUES (1, 'quiet', 1)")
    peersync.run_session(a, b, SCOPE)
    assert state(b)["item"] == [(1, "QUIET", 1)]
    settle(trio)
    assert converged(trio)["item"] == [(1, "QUIET", 1)]
