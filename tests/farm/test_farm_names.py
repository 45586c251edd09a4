"""A farm whose servers' databases name the scope's tables and columns their
own way (a names file at provisioning): the mapping is stored with the scope
in each database, so the farm needs nothing more to know of it; rows meet
under the global names on every link, served or local."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import peersync
from peersync.farm import Farm, SessionEvent, parse_config

from ..http.threaded import ThreadedServer
from .conftest import SCOPE, make_db, notes

NAMES = {"note": {"table": "nota", "columns": {"id": "clave", "body": "texto", "n": "numero"}}}


def _local_names_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE nota (clave TEXT PRIMARY KEY, texto TEXT, numero INTEGER)")
    conn.close()
    with peersync.connect(path) as db:
        db.provision(SCOPE, ["note"], names=NAMES)
    return path


def _insert(path: Path, table: str, *rows: tuple[str, str, int]) -> None:
    conn = sqlite3.connect(path)
    conn.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()


def _rows(path: Path, table: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    finally:
        conn.close()


def test_a_farm_syncs_servers_whose_databases_use_their_own_names(tmp_path: Path) -> None:
    plain = make_db(tmp_path / "plain.db")
    local = _local_names_db(tmp_path / "local.db")
    served_file = _local_names_db(tmp_path / "served.db")
    _insert(plain, "note", ("p1", "from plain", 1))
    _insert(local, "nota", ("l1", "from local", 2))
    _insert(served_file, "nota", ("s1", "from served", 3))
    server = ThreadedServer(served_file)
    try:
        cfg = parse_config(
            {
                "scope": SCOPE,
                "topology": "mesh",
                "servers": {"plain": {"url": str(plain)}, "local": {"url": str(local)}, "served": {"url": server.url}},
            }
        )
        seen: list[SessionEvent] = []
        run = Farm(cfg, on_event=seen.append).run(once=True)
        assert (run.sessions, run.failed) == (3, 0), [e.error for e in seen]
        quiet: list[SessionEvent] = []
        Farm(cfg, on_event=quiet.append).run(once=True)
        assert [e.result.sent_a_to_b + e.result.sent_b_to_a for e in quiet if e.result] == [0, 0, 0]
    finally:
        server.stop()
    expected = [("l1", "from local", 2), ("p1", "from plain", 1), ("s1", "from served", 3)]
    assert notes(plain) == expected
    assert _rows(local, "nota") == expected
    assert _rows(served_file, "nota") == expected
