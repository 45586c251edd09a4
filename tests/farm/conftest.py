"""A farm's servers: real ``peersync serve`` processes on free loopback ports
(started as in tests/http), their SQLite files, and the farm's TOML file.

The schema uses text keys so every client creates rows that no other
creates (the counts of "received" against "created by others" are exact).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import peersync

from ..http.conftest import Server, cli, env
from ..postgres.conftest import make_pg, pg_admin  # noqa: F401 (fixtures: the demo's PostgreSQL servers)

SCOPE = "notes"
SCHEMA = "CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT, n INTEGER);"


def make_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.close()
    with peersync.connect(path) as db:
        db.provision(SCOPE, ["note"])
    return path


def notes(path: Path) -> list[tuple[object, ...]]:
    """The rows, read from the file itself."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute("SELECT id, body, n FROM note ORDER BY id").fetchall()
    finally:
        conn.close()


def write_config(path: Path, servers: dict[str, str], **top: object) -> Path:
    """A farm file: ``servers`` maps names to URLs; ``top`` adds keys (TOML literals as Python values)."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in top.items()]
    for name, url in servers.items():
        lines += [f"[servers.{name}]", f"url = {json.dumps(url)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


class FarmProcess:
    """``peersync farm CONFIG --json`` as a subprocess; its JSON lines are
    collected as they come (a reader thread), so tests can wait on them."""

    def __init__(self, config: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            cli("farm", str(config), "--json", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        self.events: list[dict[str, Any]] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cv:
                self.events.append(json.loads(line))
                self._cv.notify_all()

    def wait_for(self, test: Callable[[list[dict[str, Any]]], bool], timeout: float = 30) -> list[dict[str, Any]]:
        """Wait until ``test(events so far)`` holds; return the events."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while not test(self.events):
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"the farm did not get there in {timeout} s; last events: {self.events[-5:]}")
                self._cv.wait(min(left, 0.2))
            return list(self.events)

    def since(self, mark: int) -> list[dict[str, Any]]:
        with self._cv:
            return self.events[mark:]

    def stop(self, sig: int) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(10)
        assert self.proc.stderr is not None
        return rc, self.proc.stderr.read()


@pytest.fixture
def farm_process() -> Iterator[Callable[..., FarmProcess]]:
    started: list[FarmProcess] = []

    def start(config: Path, *args: str) -> FarmProcess:
        f = FarmProcess(config, *args)
        started.append(f)
        return f

    yield start
    for f in started:
        if f.proc.poll() is None:
            f.proc.kill()
            f.proc.wait()


@pytest.fixture
def serve() -> Iterator[Callable[[Path], Server]]:
    """``serve(db)``: a started ``peersync serve`` over ``db``; all stop with the test."""
    started: list[Server] = []

    def start(db: Path) -> Server:
        s = Server(db).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
