"""The final batches a served database applied are kept in the database
(``_adapters/sql/finals.py``), not in the server process: a ``finish`` that
reaches a restarted server, or another worker process, still merges what its
final batch vouched for (docs/protocol.md, "Finish"). For SQLite, PostgreSQL
and MariaDB.

Under ``CI=true`` a database server that cannot be reached fails the test;
elsewhere it is skipped with the reason."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import peersync
from peersync._adapters.sql.finals import FINALS_KEPT
from peersync._engine.model import SessionEnd

from ..helpers import drop_mariadb_database, write
from .conftest import Server, make
from .test_finish_with_final_batch import DESCRIBE, Recording
from .threaded import ThreadedServer

PG_ADMIN = os.environ.get("PEERSYNC_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL = os.environ.get("PEERSYNC_MYSQL", "mysql://root@127.0.0.1:3306")
# The same table in each kind (the fingerprints match); the clients are SQLite files.
LITE = "CREATE TABLE item (id INTEGER PRIMARY KEY, name VARCHAR(40), qty INTEGER);"
TABLES = {
    "postgres": "CREATE TABLE item (id integer PRIMARY KEY, name varchar(40), qty integer)",
    "mariadb": "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(40), qty INT)",
}


def _unreachable(what: str, exc: Exception) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} unreachable under CI=true: {exc}")
    pytest.skip(f"{what} unreachable: {exc}")


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL (or path) of a database of each kind with scope ``s`` over ``item``."""
    kind = request.param
    if kind == "sqlite":
        yield str(make(tmp_path / "served.db", LITE))
        return
    name = "ps_finals_" + uuid.uuid4().hex[:12]
    drop: Callable[[], None]
    if kind == "postgres":
        psycopg = pytest.importorskip("psycopg")
        try:
            admin: Any = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
        except psycopg.Error as exc:
            _unreachable(f"PostgreSQL at {PG_ADMIN}", exc)
        admin.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN.rpartition("/")[0] + "/" + name
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(TABLES[kind])

        def drop() -> None:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        pymysql = pytest.importorskip("pymysql")
        from peersync._adapters.mysql.conn import parse_url

        t = parse_url(MYSQL + "/mysql")
        try:
            admin = pymysql.connect(
                host=t.host, port=t.port, user=t.user, password=t.password, autocommit=True, ssl_disabled=True
            )
        except pymysql.err.OperationalError as exc:
            _unreachable(f"MariaDB at {MYSQL}", exc)
        admin.cursor().execute(f"CREATE DATABASE {name}")
        admin.cursor().execute(f"CREATE TABLE {name}.item (id INT PRIMARY KEY, name VARCHAR(40), qty INT)")
        url = f"{MYSQL}/{name}"

        def drop() -> None:
            drop_mariadb_database(admin, name)

    with peersync.connect(url) as db:
        db.provision("s", ["item"])
    try:
        yield url
    finally:
        drop()
        admin.close()


def _learn_through_no_row(folder: Path, url: str, tag: str = "") -> tuple[Path, Path]:
    """Clients A and B of the served database S, such that B knows more than S
    through no row: C's row came to A and B through S, S learned all of B's
    ticks, then B learned A's ticks from A, which sent no row (B held it).
    Returns (A, B)."""
    a, b, c = (make(folder / f"{n}{tag}.db", LITE) for n in "abc")
    write(c, f"INSERT INTO item VALUES ({int(tag or 0)}, 'from c', 1)")
    with (
        peersync.connect(a) as pa,
        peersync.connect(b) as pb,
        peersync.connect(c) as pc,
        peersync.connect(url) as s,
    ):
        for source, dest in ((pc, s), (s, pa), (s, pb), (pb, s), (pa, pb)):
            peersync.sync(source, dest, "s", direction="push")
        assert not s.describe("s").knowledge.contains_knowledge(pa.describe("s").knowledge)
        assert pb.describe("s").knowledge.contains_knowledge(pa.describe("s").knowledge)
    return a, b


def _final_batch_without_finish(server: str, b: Path) -> peersync.Knowledge:
    """B's final batch (empty: nothing of B's is due at S) applied at S by a
    client that does not ask the server to end the session with it, as the
    first half of a session whose ``finish`` comes later; its made-with knowledge."""
    from peersync._engine import codec

    with peersync.connect(b) as pb, peersync.connect(server) as remote:
        known, info = remote.describe("s").knowledge, pb.describe("s")
        assert known.floor(info.replica_id) == info.tick  # nothing of B's is due
        batch = pb.changes("s", known, info.tick, info.tick, max_rows=1, max_bytes=1 << 20)
    reply = httpx.post(
        server + "/v1/scopes/s/apply", content=batch, headers={"content-type": "application/vnd.peersync.batch"}
    )
    assert reply.status_code == 200 and "peersync-finished" not in reply.headers
    report = codec.APPLY_REPORT.decode(reply.content)
    assert report.final and report.received == 0
    return report.made_with


def test_a_finish_after_a_server_restart_merges_and_the_next_session_sends_nothing(tmp_path: Path, served: str) -> None:
    a, b = _learn_through_no_row(tmp_path, served)
    first = ThreadedServer(served)  # type: ignore[arg-type]
    made_with = _final_batch_without_finish(first.url, b)
    first.stop()
    second = ThreadedServer(served)  # type: ignore[arg-type]  # a new process state: nothing of the first is left but the database
    try:
        with peersync.connect(second.url) as remote, peersync.connect(a) as pa:
            remote.finish("s", SessionEnd(uuid.uuid4().hex, made_with, peersync.Knowledge.empty()))
            assert remote.describe("s").knowledge.contains_knowledge(pa.describe("s").knowledge)
        rec = Recording()
        with peersync.connect(a) as pa, peersync.connect(second.url, transport=rec) as remote:
            r = peersync.sync(pa, remote, "s", direction="push")
        assert (r.sent_a_to_b, r.batches) == (0, 0)
        assert rec.paths == [DESCRIBE]  # A's ticks are known: no batch, no finish
    finally:
        second.stop()
    del b


def test_a_finish_reaching_another_worker_merges(tmp_path: Path, servers: Callable[..., Server]) -> None:
    """``serve --workers 2``: the final ``apply`` and the ``finish`` travel on
    separate connections, each to whichever worker accepts it; over several
    rounds, every finish merges."""
    served = make(tmp_path / "workers.db", LITE)
    server = servers(served, "--workers", "2")
    for round_ in range(6):
        a, b = _learn_through_no_row(tmp_path, server.url, str(round_))
        made_with = _final_batch_without_finish(server.url, b)
        with peersync.connect(server.url) as remote, peersync.connect(a) as pa:
            remote.finish("s", SessionEnd(uuid.uuid4().hex, made_with, peersync.Knowledge.empty()))
            assert remote.describe("s").knowledge.contains_knowledge(pa.describe("s").knowledge), f"round {round_}"


def test_the_records_are_bounded_and_dropped_once_known(tmp_path: Path, served: str) -> None:
    from peersync._engine.knowledge import Knowledge

    with peersync.connect(served) as db:
        assert db.kept_finals("s") == []  # type: ignore[attr-defined]
        rid = db.describe("s").replica_id
        other = bytes(range(16))
        for last in range(1, FINALS_KEPT + 6):
            made_with = Knowledge.empty().add_range(other, 1, last)
            db.keep_final("s", (other, last, made_with), Knowledge.empty())  # type: ignore[attr-defined]
        kept = db.kept_finals("s")  # type: ignore[attr-defined]
        assert len(kept) == FINALS_KEPT
        assert [f[1] for f in kept[:2]] == [FINALS_KEPT + 5, FINALS_KEPT + 4]  # newest first
        assert kept[0][2] == Knowledge.empty().add_range(other, 1, FINALS_KEPT + 5)
        # Once the scope knows a record's made-with knowledge, the record can vouch for nothing new.
        known = Knowledge.empty().add_range(other, 1, FINALS_KEPT + 2)
        db.keep_final("s", (rid, 1, Knowledge.empty().add_range(rid, 1, 1)), known)  # type: ignore[attr-defined]
        assert [f[1] for f in db.kept_finals("s")] == [1, FINALS_KEPT + 5, FINALS_KEPT + 4, FINALS_KEPT + 3]  # type: ignore[attr-defined]
        db.deprovision("s")
        assert db.scopes() == []
    with peersync.connect(served) as db:
        db.provision("s", ["item"])
        assert db.kept_finals("s") == []  # type: ignore[attr-defined]


def test_a_final_batch_whose_knowledge_is_already_known_is_not_recorded(tmp_path: Path) -> None:
    """A record vouches only for knowledge the scope lacks: a batch whose
    made-with knowledge its apply taught whole (or a replay) writes none."""
    served = make(tmp_path / "known.db", LITE)
    laptop = make(tmp_path / "laptop.db", LITE)
    write(laptop, "INSERT INTO item VALUES (1, 'one', 1)")
    server = ThreadedServer(served)
    try:
        with peersync.connect(laptop) as a:
            batch = a.changes("s", peersync.Knowledge.empty(), 0, a.describe("s").tick, max_rows=10, max_bytes=1 << 20)
        for _ in range(2):
            headers = {"content-type": "application/vnd.peersync.batch"}
            reply = httpx.post(server.url + "/v1/scopes/s/apply", content=batch, headers=headers)
            assert reply.status_code == 200
        with peersync.connect(served) as db:
            assert db.kept_finals("s") == []  # type: ignore[attr-defined]
    finally:
        server.stop()
