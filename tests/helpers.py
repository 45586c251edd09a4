"""Helpers for tests: a foreign writer and a reader, both plain sqlite3."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

import peersync

SHARED = Path(__file__).resolve().parents[2] / "shared"
CHINOOK_SQL = SHARED / "data" / "chinook" / "Chinook_Sqlite.sql"


def write(path: Path | str, *statements: tuple[str, tuple[object, ...]] | str) -> None:
    """A foreign writer: plain sqlite3, foreign keys on, one transaction."""
    _foreign(path, None, statements)


def rows(path: Path | str, table: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    out = conn.execute(f'SELECT * FROM "{table}" ORDER BY 1, 2').fetchall()
    conn.close()
    return out


def at(path: Path | str, ms: int, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """A foreign writer whose clock reads ``ms`` (milliseconds since the epoch)."""
    _foreign(path, ms, statements)


def _foreign(path: Path | str, ms: int | None, statements: tuple[str | tuple[str, tuple[Any, ...]], ...]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    if ms is not None:
        # + 0.5 ms: SQLite truncates the computed milliseconds, and the double is only that exact.
        conn.create_function(
            "julianday", -1, lambda arg, *_: (ms + 0.5) / 86_400_000 + 2440587.5 if arg == "now" else None
        )
    with conn:
        for st in statements:
            if isinstance(st, str):
                conn.execute(st)
            else:
                conn.execute(*st)
    conn.close()


def peers(make_db: Callable[..., Path], schema: str, tables: list[str], names: str = "abc") -> list[Path]:
    """Databases named by the letters of ``names``, each with scope ``s`` over ``tables``."""
    paths = [make_db(n, schema) for n in names]
    for p in paths:
        with peersync.connect(p) as db:
            db.provision("s", tables)
    return paths


def sync(a: Path, b: Path, **kw: Any) -> peersync.SyncResult:
    """``peersync.sync`` of scope ``s`` between two database files."""
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", **kw)


def push(a: Path, b: Path, **kw: Any) -> peersync.SyncResult:
    return sync(a, b, direction="push", **kw)


def full_rounds(paths: list[Path], n: int = 2, **kw: Any) -> int:
    """``n`` rounds of every pair syncing both ways; the rows sent in all."""
    sent = 0
    for _ in range(n):
        for i in range(len(paths)):
            for j in range(i + 1, len(paths)):
                r = sync(paths[i], paths[j], **kw)
                sent += r.sent_a_to_b + r.sent_b_to_a
    return sent


def connect_all(*paths: Path) -> list[peersync.Database]:
    """One open :class:`peersync.Database` per file, in order (the caller closes them)."""
    return [peersync.connect(p) for p in paths]


def drop_mariadb_database(admin: Any, name: str) -> None:
    """``DROP DATABASE IF EXISTS name`` on MariaDB, as PostgreSQL's ``WITH (FORCE)``:
    first end every other connection still on that database. A connection a test
    left inside a transaction holds a metadata lock; the DROP would wait for it, and
    every information_schema query on the server would queue behind the DROP.

    Only idle connections (``Sleep``) are ended: processlist shows a connection
    that runs an information_schema query (``information_schema.triggers``, as
    peersync's describe does) with the ``db`` of whichever database that query
    is reading at the moment, so "db = name" also lists other tests' busy
    connections; killing those was the "Lost connection" (2013) that failed
    other tests at random under load."""
    cur = admin.cursor()
    cur.execute(
        "SELECT id FROM information_schema.processlist WHERE db = %s AND command = 'Sleep' AND id <> CONNECTION_ID()",
        (name,),
    )
    for (conn_id,) in cur.fetchall():
        with contextlib.suppress(Exception):  # it may have ended meanwhile
            cur.execute(f"KILL {int(conn_id)}")
    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


PG_ADMIN = os.environ.get("PEERSYNC_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def unavailable(what: str, reason: str) -> NoReturn:
    """A server a test needs is missing: a failure under ``CI=true``, a skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} cannot run under CI=true: {reason}")
    pytest.skip(f"{what} skipped: {reason}")


def pg_admin(what: str) -> Any:
    """An autocommit psycopg connection to ``PG_ADMIN``, or :func:`unavailable`."""
    try:
        import psycopg
    except ImportError:
        unavailable(what, "psycopg is not installed (pip install -e '.[test]')")
    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        unavailable(what, f"cannot reach {PG_ADMIN}: {' '.join(str(exc).split())}")


def fresh_and_checked(
    monkeypatch: pytest.MonkeyPatch,
    fresh: Any,
    run: Callable[[Path], dict[str, Any]],
    tmp_path: Path,
    offered: list[bool],
    writers: tuple[str, ...] = ("write",),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A server's "never seen here" path (``fresh``: its module, with the
    functions named ``writers`` and ``MIN_ROWS``) against its checked path:
    ``run`` plays one history in a folder and returns the state it ends in; it
    runs once with the fresh path, whose writers must have answered
    ``offered`` (True: taken, False: refused and rolled back), then once with
    it out of reach. Both states."""
    taken: list[bool] = []

    def spy(real: Callable[..., Any]) -> Callable[..., bool]:
        def spied(*args: Any) -> bool:
            taken.append(bool(real(*args)))
            return taken[-1]

        return spied

    for name in writers:
        monkeypatch.setattr(fresh, name, spy(getattr(fresh, name)))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with_fresh = run(tmp_path / "a")
    assert taken == offered
    monkeypatch.setattr(fresh, "MIN_ROWS", 10**9)
    taken.clear()
    checked = run(tmp_path / "b")
    assert not taken
    return with_fresh, checked
