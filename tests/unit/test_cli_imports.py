"""The CLI's start on the path of a local sync: ``peersync sync A.db B.db`` pays for
click, SQLite and the engine only: not for the HTTP client or server, the drivers of
other databases, rich (nothing is drawn under ``--json`` or on a pipe), a TOML parser
(no names file), nor the modules of the other subcommands (issue 7, item 5: figure 1c
times the command from process start)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest

import peersync
from peersync._cli import app

HEAVY = ("httpx", "httpcore", "starlette", "uvicorn", "psycopg", "pymysql", "ssl", "certifi", "rich", "tomllib")
# What a local sync must not load of peersync itself: the other subcommands, the farm,
# the HTTP transport, the clone machinery.
OWN = (
    "peersync._cli.clone",
    "peersync._cli.demo",
    "peersync._cli.farm",
    "peersync._cli.inspect",
    "peersync._cli.manage",
    "peersync._cli.serve",
    "peersync._cli.token",
    "peersync._farm",
    "peersync._transports",
    "peersync._adapters.sqlite.clone",
    "peersync._adapters.sql.snapshot",
)
SRC = str(Path(peersync.__file__).parents[1])


def _loaded_after(code: str) -> set[str]:
    """Modules of HEAVY and OWN (or below them) that ``code`` loads in a fresh
    interpreter, beyond those the bare interpreter loads (a ``.pth`` file of
    the machine may import one at start)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    names = HEAVY + OWN
    probe = (
        "import sys\n"
        f"names = {names!r}\n"
        "def loaded():\n"
        "    return {m for m in sys.modules if m in names or m.startswith(tuple(n + '.' for n in names))}\n"
        "bare = loaded()\n"
        f"{code}\n"
        "print(' '.join(sorted(loaded() - bare)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    return set(out.stdout.split())


def test_the_command_group_alone_loads_none_of_them() -> None:
    assert _loaded_after("import peersync._cli.main") == set()


def _provisioned_pair(tmp_path: Path) -> tuple[str, str]:
    paths = []
    for name in ("a", "b"):
        path = str(tmp_path / f"{name}.db")
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (?, ?)", (1 if name == "a" else 2, name))
        conn.commit()
        conn.close()
        with peersync.connect(path) as db:
            db.provision("s", ["t"])
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_a_local_sync_through_the_command_loads_none_of_them(tmp_path: Path, as_json: bool) -> None:
    a, b = _provisioned_pair(tmp_path)
    argv = ["peersync", "sync", a, b, "--scope", "s", *(["--json"] if as_json else [])]
    code = f"""
import io, sys
sys.argv = {argv!r}
sys.stdout = io.StringIO()  # not a terminal, like a pipe
from peersync._cli.main import main
main()
out, sys.stdout = sys.stdout.getvalue(), sys.__stdout__
assert '"sent_a_to_b": 1' in out if {as_json!r} else "sent" in out, out
"""
    loaded = _loaded_after(code)
    if not as_json:  # the result table is drawn by rich: that much, and nothing else
        assert "rich" in loaded
        loaded = {m for m in loaded if m != "rich" and not m.startswith("rich.")}
    assert loaded == set()
    with peersync.connect(b) as db:
        assert db.status("s")[0].tracked_rows == 2  # the sync did run


def test_a_local_sync_through_the_api_loads_none_of_them(tmp_path: Path) -> None:
    a, b = _provisioned_pair(tmp_path)
    code = f"""
import peersync
with peersync.connect({a!r}) as a, peersync.connect({b!r}) as b:
    peersync.sync(a, b, "s")
"""
    assert _loaded_after(code) == set()


def test_an_http_url_still_loads_the_client_when_asked() -> None:
    code = "import peersync._transports.http as h\nassert h.HTTPPeer.__name__ == 'HTTPPeer'"
    assert {"httpx", "peersync._transports"} <= _loaded_after(code)


def test_every_command_is_found_in_the_module_the_table_names() -> None:
    """``app.COMMANDS`` must list every subcommand, with the module defining it,
    or a command would be missing from ``peersync --help`` or fail to load."""
    ctx = click.Context(app.cli)
    listed = {name: app.cli.get_command(ctx, name) for name in app.cli.list_commands(ctx)}
    assert set(listed) == set(app.COMMANDS)
    for name, command in listed.items():
        assert command is not None and command.callback is not None, name
        assert command.callback.__module__ == f"peersync._cli.{app.COMMANDS[name]}", name
