"""``python examples/farm_demo.py``, the farm scenario in one command, run
as the README shows it (small sizes): three servers, the farm, five clients;
it must report identical replicas and every row received exactly once."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import peersync

from ..http.conftest import env

DEMO = Path(__file__).resolve().parents[2] / "examples" / "farm_demo.py"


def test_the_farm_demo_converges_and_counts_every_row_received_once(tmp_path: Path) -> None:
    args = ["--insert-rounds", "1", "--mixed-rounds", "2", "--writes", "3", "--interval", "0.2", "--seed", "7"]
    p = subprocess.run(
        [sys.executable, str(DEMO), *args, "--keep", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env(),
        timeout=240,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all 8 replicas hold identical rows: yes" in p.stdout
    assert "every client received each row the others created exactly once: yes" in p.stdout
    # five clients, each created 3 rows in the insert round and received the 12 of the others
    rows = re.findall(r"^client\d\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", p.stdout, re.M)
    assert rows == [("3", "12", "12", "0")] * 5, p.stdout
    assert sorted(f.name for f in (tmp_path / "demo").glob("*.db")) == [
        *(f"client{i}.db" for i in range(1, 6)),
        "server-a.db",
        "server-b.db",
        "server-c.db",
    ]


def _demo_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("farm_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("farm_demo", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_demos_postgresql_servers_hold_the_clients_table_and_read_back_alike(
    tmp_path: Path, make_pg: Callable[..., str]
) -> None:
    """``--server-db postgresql://...``: the demo's table there has the
    clients' shape (same fingerprint: they sync), and the demo reads its rows
    in the order it reads a SQLite file's, so equal replicas compare equal.
    (The whole demo over PostgreSQL runs by hand; its servers are the same.)"""
    demo = _demo_module()
    pg = make_pg()
    client = str(tmp_path / "client.db")
    demo.make_database(pg)
    demo.make_database(client)
    conn = sqlite3.connect(client)
    with conn:
        conn.executemany("INSERT INTO note VALUES (?, ?, ?)", [("b-1", "x", 0), ("B-2", "y", 1), ("a-3", "z", 2)])
    conn.close()
    with peersync.connect(client) as c, peersync.connect(pg) as s:
        assert peersync.sync(c, s, demo.SCOPE).sent_a_to_b == 3
    assert demo.rows_of(pg) == demo.rows_of(client) == [("B-2", "y", 1), ("a-3", "z", 2), ("b-1", "x", 0)]
