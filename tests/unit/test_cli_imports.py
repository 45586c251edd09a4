"""The CLI's start on the path of a local sync: ``peersync sync A.db B.db`` pays for
SQLite and the engine only, not for the HTTP client or server, nor the drivers of other
databases (issue 7, item 5: figure 1c times the command from process start)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import peersync

HEAVY = ("httpx", "starlette", "uvicorn", "psycopg", "pymysql")


def _loaded_after(code: str) -> set[str]:
    src = str(Path(peersync.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    return set(out.stdout.split())


def test_the_cli_with_every_command_loads_no_http_library_nor_other_driver() -> None:
    assert _loaded_after("import peersync._cli.main") == set()


def test_a_local_sync_loads_none_of_them(tmp_path: Path) -> None:
    code = f"""
import sqlite3, peersync
for name in ("a", "b"):
    path = {str(tmp_path)!r} + f"/{{name}}.db"
    sqlite3.connect(path).execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    with peersync.connect(path) as db:
        db.provision("s", ["t"])
with peersync.connect({str(tmp_path)!r} + "/a.db") as a, peersync.connect({str(tmp_path)!r} + "/b.db") as b:
    peersync.sync(a, b, "s")
"""
    assert _loaded_after(code) == set()


def test_an_http_url_still_loads_the_client_when_asked() -> None:
    code = "import peersync._transports.http as h\nassert h.HTTPPeer.__name__ == 'HTTPPeer'"
    assert _loaded_after(code) == {"httpx"}
