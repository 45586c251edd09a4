"""``peersync clone http://server DST`` from a ``peersync serve`` process over
a PostgreSQL database: the server writes the scope's snapshot as a SQLite
file in its temporary folder and streams it (docs/protocol.md, "The snapshot
stream"); the clone's first sync through the server sends nothing either
way, later writes arrive, and a stream cut short leaves no database and no
file on either side."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import peersync

from ..conformance.kinds import SCOPE, PostgresKind
from .conftest import Server, run
from .test_clone import _Budget
from .test_resilience import CuttingProxy

ROWS = 3000


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database (the conformance tables, scope ``s``) with
    ``ROWS`` items, some updated and some deleted; dropped with the module."""
    server = PostgresKind.server()
    name = f"peersync_h_{uuid.uuid4().hex[:12]}"
    server.create(name)
    url = PostgresKind.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO item SELECT g, 'item ' || g || repeat('x', 40), g FROM generate_series(0, %s) AS g",
            (ROWS - 1,),
        )
        conn.execute("UPDATE item SET qty = -1 WHERE id < 10")
        conn.execute("DELETE FROM item WHERE id >= %s", (ROWS - 10,))
        conn.execute("INSERT INTO note VALUES ('ann', 'a', 'hello')")
    yield url
    server.drop(name)
    server.close()


@pytest.fixture(scope="module")
def served(
    pg: str, servers: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    """A ``peersync serve`` of ``pg``, whose temporary folder is its own."""
    tmp = tmp_path_factory.mktemp("server-tmp")
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)  # the server process inherits it
    try:
        yield servers(pg), tmp
    finally:
        if old is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall())


def _sqlite_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    import sqlite3

    conn = sqlite3.connect(path)
    out = sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
    conn.close()
    return out


def test_a_postgres_server_streams_a_clone_whose_first_sync_sends_nothing(
    pg: str, served: tuple[Server, Path], tmp_path: Path
) -> None:
    server, server_tmp = served
    dst = tmp_path / "laptop.db"
    out = run("clone", server.url, str(dst), "--scope", SCOPE)
    assert "cloned scope s" in out.stdout
    for table in ("item", "note"):
        assert _sqlite_rows(dst, table) == _rows(pg, table)
    assert os.listdir(server_tmp) == []  # the server's snapshot file is gone
    assert os.listdir(tmp_path) == ["laptop.db"]
    with peersync.connect(dst) as c, peersync.connect(server.url) as remote:
        assert c.describe(SCOPE).replica_id != remote.describe(SCOPE).replica_id
        assert c.status(SCOPE)[0].tombstones == 10
        first = peersync.sync(c, remote, SCOPE)
    assert (first.sent_a_to_b, first.sent_b_to_a, first.conflicts) == (0, 0, 0)
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute("INSERT INTO item VALUES (%s, 'later', 1)", (ROWS + 1,))
        conn.execute("DELETE FROM item WHERE id = 0")
    with peersync.connect(dst) as c, peersync.connect(server.url) as remote:
        pull = peersync.sync(c, remote, SCOPE, direction="pull")
    assert pull.sent_b_to_a == 2
    assert _sqlite_rows(dst, "item") == _rows(pg, "item")


def test_a_cut_stream_from_a_postgres_server_leaves_nothing(served: tuple[Server, Path], tmp_path: Path) -> None:
    server, server_tmp = served
    proxy = CuttingProxy(server.port, 0, max_cuts=100)
    proxy.rng = _Budget(40_000)  # every connection cut 40 kB into the reply: mid snapshot
    dst = tmp_path / "cut.db"
    try:
        with pytest.raises(peersync.TransportError, match="cut"):
            peersync.clone(proxy.url, dst, SCOPE)
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert os.listdir(tmp_path) == []
    assert os.listdir(server_tmp) == []


def test_an_unknown_scope_on_a_postgres_server_is_a_clear_error(served: tuple[Server, Path], tmp_path: Path) -> None:
    server, _ = served
    proc = run("clone", server.url, str(tmp_path / "x.db"), "--scope", "nope", check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "nope" in proc.stderr
    assert os.listdir(tmp_path) == []
